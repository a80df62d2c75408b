"""The day's stages after its slices: merge → diff → outputs and report → manifest → publish → tables.

Both ways of running a day end here: in one process (billing.run.local) and spread over machines
(billing.run.distributed). The caller holds the day's lock and has deduplicated the slices.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import billing
from billing import engine, faults, progress, report, sql
from billing.config import ReconcileConfig
from billing.day.diff import day_session, diff_day
from billing.day.manifest import build_manifest
from billing.day.merge import check_day_spend
from billing.day.outputs import OUTPUT_FILES, build_outputs, write_json, write_outputs
from billing.day.publish import Commit, Day
from billing.day.restatement import per_ad_totals, previous_per_ad
from billing.day.tables import TablesResult, publish_current
from billing.io.inputs import Inputs
from billing.month.context import fresh_context, previous_context, same_as_current
from billing.slice.partial import SlicePartial
from billing.slice.setaside import SetAside

log = logging.getLogger(__name__)

#: What writing the outputs holds outside DuckDB: a fetched batch, each file's pending rows and the row group
#: being encoded (1M rows of drift.parquet at ~110 bytes a row); RSS rose 306 MiB writing longtail 10M's.
ARROW_HELD_WHILE_WRITING = 320 * 2**20


@dataclass
class RunResult:
    summary: dict[str, Any]
    commit: Commit
    exit_code: int
    tables: TablesResult | None = None
    """What the Delta tables under OUT/tables/ got (None: ``--no-tables``)."""


def finish(cfg: ReconcileConfig, inputs: Inputs, day: Day, merged: SlicePartial, run_id: str,
           started: float, work: Path, scale: dict[str, Any] | None = None) -> RunResult:
    """Diff the merged slices against the stream side, stage every output, publish (caller holds the lock).

    Each stage reports through billing.progress (a bar on a terminal, a line with its duration in logs).
    """
    check_day_spend(cfg.date, merged.ledger)  # each slice fits int64; their sum may not
    after_slices = time.monotonic()
    # One DuckDB session from the diff to the manifest: it holds the day's keys (spilling past the memory
    # limit), the outputs and the report read them from it a batch at a time.
    con = day_session(cfg, work)
    try:
        with progress.stage("diff"):
            result = diff_day(cfg, inputs, merged, con)
        # From here the outputs leave DuckDB a row group at a time: Arrow holds a few row groups meanwhile
        # (the fetched batch, each file's pending rows, the group being encoded); DuckDB's sort of the day's
        # keys keeps its share while both fit (at 1.5GiB, 512 MiB: sorting 80M keys needs 102–150 MiB).
        engine.set_memory(con, cfg.memory_limit, held=ARROW_HELD_WHILE_WRITING)
        faults.point("after_diff")
        with progress.stage("outputs"):
            out = build_outputs(cfg, inputs, merged, result, con)
        folder = work / "out"
        previous = previous_per_ad(day)  # a sign-off in force implies a current version, hence ``after`` below
        after = None if previous is None else per_ad_totals(sql.reader(con, "totals_per_ad"))
        # summary.restates_signed_off and .anomalies: kept from the current version when nothing else changed
        context, kept = fresh_context(day, cfg, out.summary, after or {}), previous_context(day, out.summary)
        out.summary.update(kept if kept is not None else context)

        def render() -> dict[str, Path]:
            return report.render_all(folder, con=con, summary=out.summary, quarantine=out.quarantine,
                                     conflicts=out.conflicts, inputs=inputs.listing(),
                                     code_version=billing.__version__)

        with progress.stage("write outputs and report"):
            staged = write_outputs(out, folder, con, alongside=render)
            if kept is not None and kept != context and not same_as_current(day, staged, OUTPUT_FILES):
                out.summary.update(context)  # the data changed: a new version, with its own context
                write_json(out.summary, staged["summary.json"])
                staged.update(render())
    finally:
        con.close()
    out.let_go()
    windows = out.summary["drift"]["keys"]
    seconds = time.monotonic() - after_slices
    log.info("after the slices: %.1fs for %d windows (%.2f µs per window)", seconds, windows,
             seconds * 1e6 / max(1, windows))
    with progress.stage("publish"):
        manifest = build_manifest(cfg, inputs, out.summary, run_id, started, after, previous)
        if scale is not None:
            manifest["scale"] = scale
        commit = day.publish(staged, manifest, compare=OUTPUT_FILES)
    log.info("%s %s in %.1fs: %s", "unchanged" if commit.unchanged else "published", commit.url,
             time.monotonic() - started, out.summary["status"])
    # After the commit, still under the lock: the tables follow the current version (unchanged ones too,
    # so a run after a crash between the two brings them level).
    tables = None
    if cfg.tables:
        with progress.stage("tables"):
            tables = publish_current(day, commit.version, s3_endpoint=cfg.s3_endpoint)
    return RunResult(out.summary, commit, out.summary["exit_code"], tables)


def scale_of(partials: list[SlicePartial], rows_read: int, set_aside: dict[str, Any] | None) -> dict[str, Any]:
    """manifest.json's "scale": slices, the workers that ran them, the rows they decoded between them.

    ``decode_amplification`` is that sum over the rows read (the set-aside pass, which decodes the
    files it lands once more, is counted apart, under ``set_aside``).
    """
    decoded = sum(int(p.stats.get("rows_decoded", 0)) for p in partials)
    workers = {p.stats["worker"] for p in partials if "worker" in p.stats}
    return {"slices": len(partials), "workers": max(1, len(workers)), "rows_decoded": decoded,
            "decode_amplification": round(decoded / rows_read, 4) if rows_read else None,
            "slice_seconds": round(sum(float(p.stats.get("seconds", 0)) for p in partials), 3),
            "set_aside": set_aside}


def aside_stats(aside: SetAside, files: int, rows_decoded: int, rows_written: int) -> dict[str, Any]:
    """What the set-aside pass did, for manifest.json's "scale"."""
    return {"mode": aside.mode, "parts": len(aside.parts), "files_read_directly": len(aside.direct),
            "files": files, "rows_decoded": rows_decoded, "rows_set_aside": rows_written}

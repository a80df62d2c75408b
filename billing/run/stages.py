"""The day's stages after its slices: merge → diff → outputs and report → manifest → publish.

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
from billing import engine, faults, report, sql
from billing.config import ReconcileConfig
from billing.day.diff import day_session, diff_day
from billing.day.manifest import build_manifest
from billing.day.merge import check_day_spend
from billing.day.outputs import OUTPUT_FILES, build_outputs, write_outputs
from billing.day.publish import Commit, Day
from billing.day.restatement import per_ad_totals, previous_per_ad
from billing.io.inputs import Inputs
from billing.slice.partial import SlicePartial

log = logging.getLogger(__name__)

#: What the streamed outputs hold in Arrow at once: ~4 row groups of drift.parquet (~110 bytes a row).
ARROW_HELD_WHILE_WRITING = 4 * 1_000_000 * 110


@dataclass
class RunResult:
    summary: dict[str, Any]
    commit: Commit
    exit_code: int


def finish(cfg: ReconcileConfig, inputs: Inputs, day: Day, merged: SlicePartial, run_id: str,
           started: float, work: Path) -> RunResult:
    """Diff the merged slices against the stream side, stage every output, publish (caller holds the lock)."""
    check_day_spend(cfg.date, merged.ledger)  # each slice fits int64; their sum may not
    after_slices = time.monotonic()
    # One DuckDB session from the diff to the manifest: it holds the day's keys (spilling past the memory
    # limit), the outputs and the report read them from it a batch at a time.
    con = day_session(cfg, work)
    try:
        result = diff_day(cfg, inputs, merged, con)
        # From here the outputs leave DuckDB a row group at a time: Arrow holds a few row groups meanwhile
        # (the fetched batch, each file's pending rows, the group being encoded), so DuckDB's share shrinks
        # by about that much (longtail 10M at --memory-limit 2GB peaked at 1.86 GiB while they were written).
        engine.set_memory(con, cfg.memory_limit, held=ARROW_HELD_WHILE_WRITING)
        faults.point("after_diff")
        out = build_outputs(cfg, inputs, merged, result, con)
        folder = work / "out"
        staged = write_outputs(out, folder, con, alongside=lambda: report.render_all(
            folder, con=con, summary=out.summary, quarantine=out.quarantine, conflicts=out.conflicts,
            inputs=inputs.listing(), code_version=billing.__version__))
        previous = previous_per_ad(day)
        after = None if previous is None else per_ad_totals(sql.reader(con, "totals_per_ad"))
    finally:
        con.close()
    manifest = build_manifest(cfg, inputs, out.summary, run_id, started, after, previous)
    windows = out.summary["drift"]["keys"]
    seconds = time.monotonic() - after_slices
    log.info("after the slices: %.1fs for %d windows (%.2f µs per window)", seconds, windows,
             seconds * 1e6 / max(1, windows))
    commit = day.publish(staged, manifest, compare=OUTPUT_FILES)
    log.info("%s %s in %.1fs: %s", "unchanged" if commit.unchanged else "published", commit.url,
             time.monotonic() - started, out.summary["status"])
    return RunResult(out.summary, commit, out.summary["exit_code"])

"""A day in one process: its slices run here, one after another or in a pool of processes.

``--workers 1`` runs the slices in turn, each slice's partial written in a thread while the next
is read; ``--workers W`` runs W slices at once in worker processes. When the slices would decode
the lake many times over, rows are set aside by slice first (billing.slice.setaside).
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq

from billing import faults, progress
from billing.config import ReconcileConfig
from billing.day.lock import new_run_id
from billing.day.merge import merge
from billing.day.publish import Day
from billing.io.inputs import Inputs
from billing.io.raw import ClickRange, SourceFile
from billing.io.storage import open_store
from billing.run.inputs import open_inputs
from billing.run.stages import RunResult, aside_stats, finish, scale_of
from billing.slice import land, setaside
from billing.slice import plan as slice_plan
from billing.slice.partial import SlicePartial, empty_partial
from billing.slice.run import run_slice

log = logging.getLogger(__name__)


def reconcile(cfg: ReconcileConfig) -> RunResult:
    """The whole day in this process (slices in ``cfg.workers`` processes), published atomically."""
    started = time.monotonic()
    run_id = new_run_id()
    inputs, _ = open_inputs(cfg)
    day = Day(inputs.out, cfg.date)
    with day.lock(run_id, cfg.lock_ttl), tempfile.TemporaryDirectory(prefix="billing-") as tmp:
        faults.point("after_lock")
        ranges = slice_plan.slice_ranges(cfg, inputs.sources)
        merged, scale = dedup_day(cfg, inputs, ranges, Path(tmp))
        result = finish(cfg, inputs, day, merged, run_id, started, Path(tmp), scale)
    return result


def dedup_day(cfg: ReconcileConfig, inputs: Inputs, ranges: list[ClickRange],
              work: Path) -> tuple[SlicePartial, dict[str, Any]]:
    """Every slice of the day, saved under ``work``; their partials put together, and how it scaled."""
    log.info("reading %d raw files, %d rows, in %d slice(s)", len(inputs.sources), inputs.total_rows, len(ranges))
    if not inputs.sources:
        return empty_partial(), scale_of([], 0, None)
    aside, aside_stats, files = _set_aside(cfg, inputs, ranges, work)
    directs: list[land.Direct | None] = [None] * len(ranges) if aside is None else [
        land.Direct(aside.direct_sources(inputs.sources), aside.mode == "core", files.get(k, []))
        for k in range(len(ranges))]
    with progress.stage("slices", total=inputs.total_rows, unit="rows") as bar:
        if cfg.workers > 1 and len(ranges) > 1:
            jobs = [(cfg, inputs.sources, rng, str(work / f"slice-{i:04d}"), directs[i])
                    for i, rng in enumerate(ranges)]
            with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
                partials = []
                for i, folder in enumerate(pool.map(_run_slice_job, jobs)):
                    partials.append(SlicePartial.load(Path(folder)))
                    _slice_done(bar, i, len(ranges), partials[-1])
        else:
            # Each slice's partial is written in a thread while the next slice is read (Arrow lets go of the GIL).
            with ThreadPoolExecutor(max_workers=1) as writer:
                saved = []
                for i, rng in enumerate(ranges):
                    slice_dir = work / f"slice-{i:04d}"
                    partial = run_slice(cfg, inputs.raw, inputs.sources, rng, temp_dir=str(work), direct=directs[i],
                                        folder=slice_dir)
                    _slice_done(bar, i, len(ranges), partial)
                    saved.append(writer.submit(partial.save, slice_dir))
                partials = [s.result() for s in saved]
    with progress.stage("merge"):
        merged = merge(partials)
    return merged, scale_of(partials, merged.ledger.rows_read, aside_stats)


def _slice_done(bar: progress.Tracker, i: int, n: int, partial: SlicePartial) -> None:
    st = partial.stats
    bar.advance(st.get("rows_in_range", 0),
                f"slice {i + 1}/{n}: {st.get('rows_in_range', 0):,} rows in range, {st.get('rows_decoded', 0):,} "
                f"decoded, {partial.ledger.billable_clicks:,} billable, {st.get('seconds', 0):.1f}s")


def _run_slice_job(args: tuple[ReconcileConfig, list[SourceFile], ClickRange, str, land.Direct | None]) -> str:
    cfg, sources, rng, folder, direct = args
    store = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    run_slice(cfg, store, sources, rng, temp_dir=folder, direct=direct, folder=Path(folder)).save(Path(folder))
    return folder


def _set_aside(cfg: ReconcileConfig, inputs: Inputs, ranges: list[ClickRange], work: Path
               ) -> tuple[setaside.SetAside | None, dict[str, Any] | None, dict[int, list[Path]]]:
    """Rows set aside by slice when the slices would otherwise decode the lake many times over."""
    total_rows = inputs.total_rows
    aside = setaside.plan_set_aside(cfg, inputs.raw, inputs.sources, ranges, slice_plan.STRAGGLERS_FROM_AMPLIFICATION)
    if aside is None:
        return None, None, {}
    files: dict[int, list[Path]] = {}
    by_id = {s.file_id: s for s in inputs.sources}
    read = sum(by_id[i].num_rows for part in aside.parts for i in part)
    try:
        with progress.stage("set aside", total=read, unit="rows") as bar:
            for p, part in enumerate(aside.parts):
                t0 = time.monotonic()
                got = setaside.set_aside_part(cfg, inputs.raw, inputs.sources, ranges, aside, p,
                                              work / "aside" / f"part-{p:04d}", temp_dir=str(work))
                for k, paths in got.items():
                    files.setdefault(k, []).extend(paths)
                rows = sum(by_id[i].num_rows for i in part)
                bar.advance(rows, f"set aside part {p + 1}/{len(aside.parts)}: {len(part)} file(s), "
                                  f"{rows:,} rows read in {time.monotonic() - t0:.1f}s")
    except duckdb.Error as e:  # the slices fall back to reading every row group, through Arrow if need be
        if aside.mode == "core":
            log.warning("could not set rows aside (%s); slices read the lake directly",
                        str(e).strip().splitlines()[0][:200])
            return None, None, {}
        raise
    written = sum(pq.ParquetFile(f).metadata.num_rows for fs in files.values() for f in fs)
    log.info("set aside %d rows (%.2f%% of %d rows; %d of %d files read directly, %s mode) in %d part(s): "
             "slices would otherwise decode %.1fx the rows", written, 100 * written / total_rows, total_rows,
             len(aside.direct), len(inputs.sources), aside.mode, len(aside.parts),
             slice_plan.rows_decoded(inputs.sources, ranges) / total_rows)
    return aside, aside_stats(aside, len(inputs.sources), read, written), files

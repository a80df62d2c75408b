"""A day in one process: its slices run here, one after another or in a pool of processes.

``--workers 1`` runs the slices in turn, each slice's partial written in a thread while the next
is read; ``--workers W`` runs W slices at once in worker processes. When the slices would decode
the lake many times over, the stragglers are set aside first (billing.slice.land).
"""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import duckdb

from billing import engine, faults
from billing.config import ReconcileConfig
from billing.day.lock import new_run_id
from billing.day.merge import merge
from billing.day.publish import Day
from billing.io.inputs import Inputs
from billing.io.raw import ClickRange, SourceFile
from billing.io.storage import open_store
from billing.run.inputs import open_inputs
from billing.run.stages import RunResult, finish
from billing.slice import land
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
        merged = dedup_day(cfg, inputs, ranges, Path(tmp))
        result = finish(cfg, inputs, day, merged, run_id, started, Path(tmp))
    return result


def dedup_day(cfg: ReconcileConfig, inputs: Inputs, ranges: list[ClickRange], work: Path) -> SlicePartial:
    """Every slice of the day, saved under ``work``; their partials put together."""
    log.info("reading %d raw files, %d rows, in %d slice(s)", len(inputs.sources), inputs.total_rows, len(ranges))
    if not inputs.sources:
        return empty_partial()
    stragglers = _set_aside_stragglers(cfg, inputs, ranges, work)
    if cfg.workers > 1 and len(ranges) > 1:
        jobs = [(cfg, inputs.sources, rng, str(work / f"slice-{i:04d}"), stragglers) for i, rng in enumerate(ranges)]
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            folders = list(pool.map(_run_slice_job, jobs))
        partials = [SlicePartial.load(Path(f)) for f in folders]
    else:
        # Each slice's partial is written in a thread while the next slice is read (Arrow lets go of the GIL).
        with ThreadPoolExecutor(max_workers=1) as writer:
            saved = [writer.submit(run_slice(cfg, inputs.raw, inputs.sources, rng, temp_dir=str(work),
                                             stragglers=stragglers).save, work / f"slice-{i:04d}")
                     for i, rng in enumerate(ranges)]
            partials = [s.result() for s in saved]
    return merge(partials)


def _run_slice_job(args: tuple[ReconcileConfig, list[SourceFile], ClickRange, str, Path | None]) -> str:
    cfg, sources, rng, folder, stragglers = args
    store = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    run_slice(cfg, store, sources, rng, temp_dir=folder, stragglers=stragglers).save(Path(folder))
    return folder


def _set_aside_stragglers(cfg: ReconcileConfig, inputs: Inputs, ranges: list[ClickRange],
                          work: Path) -> Path | None:
    """The stragglers file when the slices would otherwise decode the lake many times over, else None."""
    total_rows = inputs.total_rows
    if len(ranges) < 2 or not land.stragglers_apply(inputs.raw, inputs.sources):
        return None
    amplification = slice_plan.rows_decoded(inputs.sources, ranges) / total_rows
    if amplification < slice_plan.STRAGGLERS_FROM_AMPLIFICATION:
        return None
    started = time.monotonic()
    path = work / "stragglers.parquet"
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=str(work))
    try:
        n = land.set_aside_stragglers(con, inputs.raw, inputs.sources, cfg, path)
    except duckdb.Error as e:  # the slices fall back to reading every row group, through Arrow if need be
        log.warning("could not set the stragglers aside (%s); slices read the lake directly",
                    str(e).strip().splitlines()[0][:200])
        return None
    finally:
        con.close()
    log.info("set aside %d stragglers (%.2f%% of %d rows) in %.1fs: slices would otherwise decode %.1fx the rows",
             n, 100 * n / total_rows, total_rows, time.monotonic() - started, amplification)
    return path

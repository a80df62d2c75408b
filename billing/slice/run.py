"""One slice, start to finish: land, validate, dedup and total a click_id range in its own DuckDB session."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from billing import engine, faults
from billing.config import ReconcileConfig
from billing.io.raw import ClickRange, SourceFile
from billing.io.storage import Store
from billing.slice import dedup, land, totals, validate
from billing.slice.partial import SlicePartial

log = logging.getLogger(__name__)


def run_slice(cfg: ReconcileConfig, store: Store, sources: list[SourceFile], rng: ClickRange,
              temp_dir: str | None = None, stragglers: Path | None = None) -> SlicePartial:
    """Read, validate, dedup and total one slice in a DuckDB session of its own."""
    started = time.monotonic()
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=temp_dir)
    try:
        land.land_clicks(con, store, sources, rng, cfg, stragglers)
        faults.point("after_read")
        ids = dedup.valid_ids(con)
        with ThreadPoolExecutor(max_workers=1) as pool:
            # numpy sorts the ids in a thread (without the GIL) while DuckDB counts the windows:
            # neither uses both cores on its own.
            repeats = pool.submit(dedup.repeated, ids)
            totals.count_own_windows(con, cfg)
            dedup.pick_winners(con, repeats.result())
        del ids
        faults.point("after_dedup")
        reasons = validate.invalid_by_reason(con)
        partial = SlicePartial(
            window_facts=totals.window_facts(con, cfg),
            ledger=totals.slice_ledger(con, reasons),
            quarantine_pointers=validate.quarantine_pointers(con),
            conflicts=dedup.conflicts(con),
        )
    finally:
        con.close()
    log.info("slice %s..%s: %d rows read, %d winners billable, %.1fs", rng.lo, rng.hi,
             partial.ledger.rows_read, partial.ledger.billable_clicks, time.monotonic() - started)
    return partial

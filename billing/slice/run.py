"""One slice, start to finish: land, validate, dedup and total a click_id range in its own DuckDB session."""

from __future__ import annotations

import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow.parquet as pq

from billing import engine, faults
from billing.config import ReconcileConfig
from billing.io.raw import ClickRange, SourceFile
from billing.io.storage import Store
from billing.slice import dedup, land, setaside, totals, validate
from billing.slice.partial import FACTS_FILE, SlicePartial

log = logging.getLogger(__name__)


def run_slice(cfg: ReconcileConfig, store: Store, sources: list[SourceFile], rng: ClickRange,
              temp_dir: str | None = None, direct: land.Direct | None = None,
              folder: Path | None = None) -> SlicePartial:
    """Read, validate, dedup and total one slice in a DuckDB session of its own.

    With ``folder`` (where the caller then saves the partial, :meth:`SlicePartial.save`), the window facts are
    written there by DuckDB, not returned in Arrow.

    Its ``stats`` (slice.json) say how many rows it decoded: those of the row groups whose statistics
    the reader cannot rule out (billing.slice.setaside.file_decode), plus its set-aside rows.
    """
    started = time.monotonic()
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=temp_dir)
    try:
        land.land_clicks(con, store, sources, rng, cfg, direct)
        ((in_range,),) = con.execute("SELECT count(*) FROM clicks").fetchall()
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
        facts_file = None if folder is None else folder / FACTS_FILE
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        partial = SlicePartial(
            window_facts=totals.window_facts(con, cfg, facts_file),
            ledger=totals.slice_ledger(con, reasons),
            quarantine_pointers=validate.quarantine_pointers(con),
            conflicts=dedup.conflicts(con),
            facts_files=[] if facts_file is None else [facts_file],
            stats={"lo": rng.lo, "hi": rng.hi, "rows_decoded": rows_decoded(cfg, sources, rng, direct),
                   "rows_in_range": int(in_range), "worker": f"{socket.gethostname()}:{os.getpid()}"},
        )
    finally:
        con.close()
    partial.stats["seconds"] = round(time.monotonic() - started, 3)
    log.debug("slice %s..%s: %d rows read, %d winners billable, %.1fs", rng.lo, rng.hi,
              partial.ledger.rows_read, partial.ledger.billable_clicks, partial.stats["seconds"])
    return partial


def rows_decoded(cfg: ReconcileConfig, sources: list[SourceFile], rng: ClickRange, direct: land.Direct | None) -> int:
    """Rows a slice decodes: of the row groups its reader cannot skip by statistics, and its set-aside rows."""
    if direct is None:
        return sum(setaside.file_decode(s, rng, "all", cfg.snowflake_epoch_ms) for s in sources)
    read, read_rng = (direct.files, rng) if direct.files else (sources[:1], ClickRange(1, 1))
    mode = "core" if direct.core else "all"
    return (sum(setaside.file_decode(s, read_rng, mode, cfg.snowflake_epoch_ms) for s in read)
            + sum(pq.ParquetFile(p).metadata.num_rows for p in direct.aside))

"""Slices of click_id space: how a day is split, deduplicated piece by piece, and put back together.

A slice holds every copy of each click whose id falls in its range, so its winners,
totals and ledger are final for that range; slices add up to the day. One slice is
the whole day; many slices bound memory (each is landed, deduplicated and dropped in
turn) and let slices run in parallel processes or on other machines.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from billing import dedup, engine, faults, totals, validate
from billing.config import SNOWFLAKE_TIME_SHIFT, ReconcileConfig
from billing.ledger import Ledger
from billing.read import ClickRange, SourceFile, column_stats
from billing.storage import Store

log = logging.getLogger(__name__)

#: A rough budget of DuckDB memory per landed raw row (the table, the sorted ids, the ranked copies):
#: a 12M-row slice of the benchmark day peaks at ~1.3 GiB of process RSS, ~110 bytes a row.
BYTES_PER_ROW = 160
MIN_SLICE_ROWS = 1_000_000
#: Fewer, larger slices decode fewer shared row groups and pay fewer per-slice costs (100M day: 9
#: slices of 11M rows 31.0 s, 4 of 25M 29.6 s, same peak RSS, which is set by the diff, not the slices).
MAX_SLICE_ROWS = 25_000_000


_PARQUET_PARTS = ("window_facts", "quarantine_pointers", "conflicts")
#: The files a saved partial consists of (what run-slice uploads and merge downloads).
PARTIAL_FILES = (*(f"{name}.parquet" for name in _PARQUET_PARTS), "ledger.json")


@dataclass
class SlicePartial:
    """What one slice contributes to the day."""

    window_facts: pa.Table
    """The slice's windows while in memory; empty once saved (see ``facts_files``)."""
    ledger: Ledger
    quarantine_pointers: pa.Table
    conflicts: pa.Table
    facts_files: list[Path] = field(default_factory=list)
    """Parquet files holding the window facts once saved. A day's merged partial keeps its millions of
    windows there, not in memory: the diff reads them with DuckDB, inside its memory limit."""

    def save(self, folder: Path) -> SlicePartial:
        """Write the partial to ``folder``; return it with its window facts left on disk."""
        folder.mkdir(parents=True, exist_ok=True)
        for name in _PARQUET_PARTS:
            pq.write_table(getattr(self, name), folder / f"{name}.parquet")
        (folder / "ledger.json").write_text(json.dumps(self.ledger.as_dict(), sort_keys=True, allow_nan=False))
        return SlicePartial(self.window_facts.schema.empty_table(), self.ledger, self.quarantine_pointers,
                            self.conflicts, [*self.facts_files, folder / "window_facts.parquet"])

    @classmethod
    def load(cls, folder: Path) -> SlicePartial:
        """A saved partial; its window facts stay on disk."""
        return cls(
            window_facts=pq.read_schema(folder / "window_facts.parquet").empty_table(),
            ledger=Ledger.from_dict(json.loads((folder / "ledger.json").read_text())),
            quarantine_pointers=pq.read_table(folder / "quarantine_pointers.parquet"),
            conflicts=pq.read_table(folder / "conflicts.parquet"),
            facts_files=[folder / "window_facts.parquet"],
        )


def auto_slice_count(total_rows: int, memory_limit: int) -> int:
    """Slices for a day of ``total_rows`` under a run memory limit (DuckDB gets its share of it)."""
    per_slice = min(MAX_SLICE_ROWS, max(MIN_SLICE_ROWS, int(memory_limit * engine.DUCKDB_SHARE) // BYTES_PER_ROW))
    return max(1, math.ceil(total_rows / per_slice))


#: How long before its arrival a click is taken to have happened, for planning only: the bulk of a
#: row group's click_ids lie between (first ingest - this) and its last ingest, in Snowflake time.
CLICK_LEAD_MS = 60_000


def plan_ranges(sources: list[SourceFile], n: int, epoch_ms: int | None = None) -> list[ClickRange]:
    """``n`` disjoint click_id ranges of similar row counts, from row-group statistics only.

    Each row group is taken as spread evenly over where its click_ids bunch. Raw files are
    written in arrival order, so that is the Snowflake-time span of its ingest_time statistics
    (less :data:`CLICK_LEAD_MS`) within its [min, max] click_id: a few late copies per row group
    stretch [min, max] over hours, and spreading the rows evenly over that put twice the average
    into the last slice of the 100M benchmark day. Without ingest statistics (or ``epoch_ms``),
    [min, max] it is. The boundaries are the quantiles of that piecewise-even distribution; a
    wrong guess costs balance, never correctness. Row groups without click_id statistics weigh
    nothing. The first range is open below (null and non-positive ids land there), the last above.
    """
    if n <= 1:
        return [ClickRange()]
    mins, maxs, rows = [], [], []
    for src in sources:
        ingest = src.row_group_ingest_ms or [None] * len(src.row_group_click_ranges)
        for (mn, mx, cnt, _), arrival in zip(src.row_group_click_ranges, ingest, strict=True):
            if mn is None or mx is None or not cnt:
                continue
            lo, hi = max(mn, 1), max(mx, 1)
            if arrival is not None and epoch_ms is not None:
                bulk_lo = (arrival[0] - CLICK_LEAD_MS - epoch_ms) << SNOWFLAKE_TIME_SHIFT
                bulk_hi = ((arrival[1] + 1 - epoch_ms) << SNOWFLAKE_TIME_SHIFT) - 1
                if max(lo, bulk_lo) <= min(hi, bulk_hi):
                    lo, hi = max(lo, bulk_lo), min(hi, bulk_hi)
            mins.append(lo)
            maxs.append(hi)
            rows.append(cnt)
    if not rows:
        return [ClickRange()]
    lo_arr = np.array(mins, dtype=np.float64)
    span = np.array(maxs, dtype=np.float64) - lo_arr + 1.0
    weight = np.array(rows, dtype=np.float64)
    total = weight.sum()

    def cdf(x: float) -> float:
        return float((weight * np.clip((x - lo_arr) / span, 0.0, 1.0)).sum())

    bounds: list[int] = []
    a0, b0 = int(min(mins)), int(max(maxs)) + 1
    for k in range(1, n):
        target = total * k / n
        a, b = a0, b0
        while b - a > 1:  # integer bisection on click_id
            mid = (a + b) // 2
            if cdf(mid) < target:
                a = mid
            else:
                b = mid
        if not bounds or b > bounds[-1]:
            bounds.append(b)
    edges: list[int | None] = [None, *bounds, None]
    return [ClickRange(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]


#: Set the stragglers aside first when the slices would decode at least this many times the day's rows:
#: the extra pass costs about one more decode of the day (100M benchmark day: 9 slices decode 2.4x, 84 slices 14x).
STRAGGLERS_FROM_AMPLIFICATION = 4.0


def rows_decoded(sources: list[SourceFile], ranges: list[ClickRange]) -> int:
    """Rows the slices decode between them: every row group is read by each slice it overlaps.

    Divided by the day's rows this is the plan's read amplification; late copies stretch row
    groups' click_id ranges, so it grows as slices narrow.
    """
    return sum(cnt for rng in ranges for src in sources for mn, mx, cnt, nulls in src.row_group_click_ranges
               if rng.overlaps(mn, mx, nulls))


def run_slice(cfg: ReconcileConfig, store: Store, sources: list[SourceFile], rng: ClickRange,
              temp_dir: str | None = None, stragglers: Path | None = None) -> SlicePartial:
    """Read, validate, dedup and total one slice in a DuckDB session of its own."""
    started = time.monotonic()
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=temp_dir)
    try:
        validate.land_clicks(con, store, sources, rng, cfg, stragglers)
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


#: A window_start interval, both ends included.
Span = tuple[dt.datetime, dt.datetime]
#: Every window_start there can be: what a part of unknown extent is taken to span.
ALL_TIME: Span = (dt.datetime(1, 1, 1, tzinfo=dt.UTC), dt.datetime(9999, 12, 31, 23, 59, tzinfo=dt.UTC))


def facts_span(path: Path) -> Span | None:
    """The first and last window_start of a saved slice's facts, from their Parquet statistics.

    None for a slice without windows; :data:`ALL_TIME` when a row group carries no statistics.
    """
    pfile = pq.ParquetFile(path)
    lo = hi = None
    for i, stats in enumerate(column_stats(pfile, "window_start")):
        if pfile.metadata.row_group(i).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max:
            return ALL_TIME
        lo = stats.min if lo is None else min(lo, stats.min)
        hi = stats.max if hi is None else max(hi, stats.max)
    return None if lo is None or hi is None else (lo, hi)


def shared_windows(spans: list[Span]) -> list[Span]:
    """Where two or more spans overlap, as disjoint intervals in order.

    Each slice has one row per window, so only windows in these intervals can have rows from
    several slices and need summing when the slices are put together (sql/batch_windows.sql).
    """
    shared: list[Span] = []
    reach: dt.datetime | None = None  # the furthest end among the spans seen so far
    for lo, hi in sorted(spans):
        if reach is not None and lo <= reach:
            end = min(hi, reach)
            if shared and lo <= shared[-1][1]:
                shared[-1] = (shared[-1][0], max(shared[-1][1], end))
            else:
                shared.append((lo, end))
        reach = hi if reach is None else max(reach, hi)
    return shared


def day_shared_windows(merged: SlicePartial) -> list[Span]:
    """:func:`shared_windows` of a merged day, from its saved facts files."""
    return shared_windows([span for f in merged.facts_files if (span := facts_span(f)) is not None])


def empty_partial(facts_schema: pa.Schema) -> SlicePartial:
    """What a day without raw files contributes."""
    return SlicePartial(facts_schema.empty_table(), Ledger(),
                        pa.table({"file_id": pa.array([], pa.int32()), "row_no": pa.array([], pa.int64()),
                                  "reason": pa.array([], pa.string())}),
                        pa.schema([]).empty_table())


def merge(partials: list[SlicePartial]) -> SlicePartial:
    """The day from its saved slices (:meth:`SlicePartial.save`): window facts stay in their files."""
    if any(p.window_facts.num_rows for p in partials):
        raise ValueError("merge takes saved partials, whose window facts are on disk")
    ledger = Ledger()
    for p in partials:
        ledger = ledger.add(p.ledger)
    return SlicePartial(
        window_facts=partials[0].window_facts if partials else pa.table({}),
        ledger=ledger,
        quarantine_pointers=pa.concat_tables([p.quarantine_pointers for p in partials]),
        conflicts=pa.concat_tables([p.conflicts for p in partials]),
        facts_files=[f for p in partials for f in p.facts_files],
    )

"""Planning a day's slices: how many, and which click_id ranges, from Parquet statistics only.

A slice holds every copy of each click whose id falls in its range, so its winners, totals and
ledger are final for that range; slices add up to the day. One slice is the whole day; many
slices bound memory (each is landed, deduplicated and dropped in turn) and let slices run in
parallel processes or on other machines. The measurements behind the constants here are in the
README's Scale section.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from billing import engine
from billing.config import SNOWFLAKE_TIME_SHIFT, ReconcileConfig
from billing.io.raw import ClickRange, SourceFile

log = logging.getLogger(__name__)

#: A rough budget of DuckDB memory per landed raw row (the table, the sorted ids, the ranked copies),
#: with room above what a slice of the benchmark day was measured to take.
BYTES_PER_ROW = 160
MIN_SLICE_ROWS = 1_000_000
#: Fewer, larger slices decode fewer shared row groups and pay fewer per-slice costs; the peak memory
#: of a run is set by the diff, not by slices of this size.
MAX_SLICE_ROWS = 25_000_000


def rows_per_slice(memory_limit: int) -> int:
    """The most rows a slice (or a part of the set-aside pass) lands under a run memory limit."""
    return min(MAX_SLICE_ROWS, max(MIN_SLICE_ROWS, int(memory_limit * engine.DUCKDB_SHARE) // BYTES_PER_ROW))


def auto_slice_count(total_rows: int, memory_limit: int) -> int:
    """Slices for a day of ``total_rows`` under a run memory limit (DuckDB gets its share of it)."""
    return max(1, math.ceil(total_rows / rows_per_slice(memory_limit)))


#: How long before its arrival a click is taken to have happened, for planning only: the bulk of a
#: row group's click_ids lie between (first ingest - this) and its last ingest, in Snowflake time.
CLICK_LEAD_MS = 60_000


def plan_ranges(sources: list[SourceFile], n: int, epoch_ms: int | None = None) -> list[ClickRange]:
    """``n`` disjoint click_id ranges of similar row counts, from row-group statistics only.

    Each row group is taken as spread evenly over where its click_ids bunch. Raw files are
    written in arrival order, so that is the Snowflake-time span of its ingest_time statistics
    (less :data:`CLICK_LEAD_MS`) within its [min, max] click_id: a few late copies per row group
    stretch [min, max] over hours, and spreading the rows evenly over that put about twice the
    average into the last slice. Without ingest statistics (or ``epoch_ms``),
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


def slice_ranges(cfg: ReconcileConfig, sources: list[SourceFile]) -> list[ClickRange]:
    """The day's slices: ``cfg.slices`` of them, or as many as its rows need under the memory limit."""
    total_rows = sum(s.num_rows for s in sources)
    n = cfg.slices or auto_slice_count(total_rows, cfg.memory_limit)
    ranges = plan_ranges(sources, n, cfg.snowflake_epoch_ms)
    if total_rows:
        log.info("plan: %d slice(s) of %d rows; they decode %.1fx the rows (row groups read by several slices)",
                 len(ranges), total_rows, rows_decoded(sources, ranges) / total_rows)
    return ranges


#: In one process, set rows aside first (billing.slice.setaside) when the slices would decode at least this
#: many times the day's rows: the extra pass costs about one more decode of the day.
STRAGGLERS_FROM_AMPLIFICATION = 4.0


def rows_decoded(sources: list[SourceFile], ranges: list[ClickRange]) -> int:
    """Rows the slices decode between them: every row group is read by each slice it overlaps.

    Divided by the day's rows this is the plan's read amplification; late copies stretch row
    groups' click_id ranges, so it grows as slices narrow.
    """
    return sum(cnt * n for src in sources
               for (_, _, cnt, _), n in zip(src.row_group_click_ranges, slices_reading(src, ranges), strict=True))


def slices_reading(src: SourceFile, ranges: list[ClickRange],
                   arrival_us: tuple[np.ndarray, np.ndarray] | None = None) -> list[int]:
    """For each row group of ``src``, how many of ``ranges`` (ascending, adjacent) read it.

    A range reads a row group its click_id statistics overlap (:meth:`ClickRange.overlaps`) and,
    given ``arrival_us`` (each range's lowest and highest arrival time in µs, both ascending), whose
    ingest_time statistics overlap those. The ranges it overlaps are consecutive: found by bisection.
    """
    n = len(ranges)
    bounds = np.array([r.lo for r in ranges[1:]], dtype=np.int64)
    ingest = src.row_group_ingest_ms or [None] * len(src.row_group_click_ranges)
    counts = []
    for (mn, mx, _, nulls), arrival in zip(src.row_group_click_ranges, ingest, strict=True):
        a_lo, a_hi = 0, n - 1
        if arrival_us is not None and arrival is not None:
            a_lo = int(np.searchsorted(arrival_us[1], arrival[0] * 1000, side="left"))
            a_hi = int(np.searchsorted(arrival_us[0], arrival[1] * 1000 + 999, side="right")) - 1
        if mn is None or mx is None:
            k_lo, k_hi = 0, n - 1
        else:
            k_lo = int(np.searchsorted(bounds, mn, side="right"))
            k_hi = int(np.searchsorted(bounds, mx, side="right"))
        count = max(0, min(k_hi, a_hi) - max(k_lo, a_lo) + 1)
        if nulls and k_lo > 0 and a_lo == 0:  # null ids are in the first range
            count += 1
        counts.append(count)
    return counts

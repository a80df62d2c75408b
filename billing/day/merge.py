"""Putting a day's slices together: their ledgers and pointers added up, and where their windows overlap.

Each slice has one row per window, and slices are click_id (so time) ranges: two slices can hold
the same window only where their ``window_start`` spans overlap, a minute or a few around each
boundary. The diff sums windows only there (``sql/day/batch_windows.sql``); the rest pass through.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from billing.errors import BadInputError
from billing.io.parquet import column_stats
from billing.ledger import Ledger
from billing.schemas import FACTS_SCHEMA
from billing.slice.partial import SlicePartial

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


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
    several slices and need summing when the slices are put together (sql/day/batch_windows.sql).
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


def check_day_spend(date: dt.date, ledger: Ledger) -> None:
    """Each slice's spend fits int64 micros (billing.slice.totals); raise when their sum does not."""
    spend = ledger.billable_spend_micros
    if spend is not None and not INT64_MIN <= spend <= INT64_MAX:
        raise BadInputError(f"{date}: billable spend sums to {spend} micros, more than int64 holds "
                            f"(cost_micros too large?)")


def facts_relation(con: duckdb.DuckDBPyConnection, merged: SlicePartial) -> duckdb.DuckDBPyRelation:
    """The day's window facts as a relation, read from the slices' saved files."""
    if not merged.facts_files:
        return con.from_arrow(FACTS_SCHEMA.empty_table())
    return con.read_parquet([str(f) for f in merged.facts_files])

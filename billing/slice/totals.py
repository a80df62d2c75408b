"""A slice's totals: the authoritative (ad_id, minute) clicks and spend of its winners in day D, and its ledger."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from billing import sql
from billing.config import ReconcileConfig
from billing.errors import BadInputError
from billing.ledger import Ledger
from billing.schemas import FACTS_SCHEMA


def day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def day_minutes(date: dt.date) -> tuple[int, int]:
    """Day D as [first, last) minute since the epoch: windows are whole minutes, so are days."""
    start, end = day_bounds(date)
    return int(start.timestamp()) // 60, int(end.timestamp()) // 60


def _lateness_us(cfg: ReconcileConfig) -> int:
    return int(cfg.stream_allowed_lateness.total_seconds() * 1_000_000)


def count_own_windows(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig) -> None:
    """Table ``own_windows``: every valid copy counted in its own window (needs no dedup)."""
    sql.run(con, "own_windows", stream_lateness_us=_lateness_us(cfg))


def window_facts(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig, path: Path | None = None) -> pa.Table:
    """Table ``all_windows`` (every winner's window, in day or not); returns the in-day ones, or with ``path``
    writes them there as Parquet from DuckDB and returns an empty table of their columns.

    Needs ``own_windows`` (:func:`count_own_windows`) and ``copies`` (billing.slice.dedup). Written from DuckDB,
    a slice's windows never sit in Arrow beside DuckDB's share of the memory: on the long-tail day (~20M
    windows a slice of 25M rows) the ~1 GB they took in Arrow had set the run's peak.
    """
    first, last = day_minutes(cfg.date)
    sql.run(con, "all_windows", day_start_minute=first, day_end_minute=last, stream_lateness_us=_lateness_us(cfg))
    check_spend_fits(con, cfg)
    if path is None:
        return sql.table(con, "window_facts")
    sql.copy_to(con, "window_facts", path)
    return FACTS_SCHEMA.empty_table()


def check_spend_fits(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig) -> None:
    """Raise :class:`BadInputError` when a window's spend, or the day's, does not fit int64 micros."""
    for r in sql.fetch_dicts(con, "spend_overflow"):
        if r["ad_id"] is not None:
            raise BadInputError(f"spend of ad {r['ad_id']} in window {r['window_start']:%Y-%m-%d %H:%M} UTC sums to "
                                f"{r['window_spend_micros']} micros, more than int64 holds (cost_micros too large?)")
        raise BadInputError(f"{cfg.date}: billable spend sums to {r['total_spend_micros']} micros, "
                            f"more than int64 holds (cost_micros too large?)")


def slice_ledger(con: duckdb.DuckDBPyConnection, reasons: dict[str, int]) -> Ledger:
    (row,) = sql.fetch_dicts(con, "ledger")
    counts: dict[str, Any] = {k: (int(v) if v is not None else None) for k, v in row.items()}  # sql/ names the fields
    return Ledger(invalid_by_reason=reasons, **counts)

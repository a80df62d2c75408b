"""Totals stage: the authoritative (ad_id, minute) clicks and spend of day D, and the slice ledger."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa

from billing import sql
from billing.config import ReconcileConfig
from billing.ledger import Ledger


def day_bounds(date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def window_facts(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig) -> pa.Table:
    start, end = day_bounds(cfg.date)
    sql.run(con, "totals", day_start=start, day_end=end, stream_lateness=cfg.stream_allowed_lateness)
    return con.sql("SELECT * FROM window_facts").to_arrow_table()


def slice_ledger(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig, reasons: dict[str, int]) -> Ledger:
    start, end = day_bounds(cfg.date)
    (row,) = sql.fetch_dicts(con, "ledger", day_start=start, day_end=end)
    return Ledger(invalid_by_reason=reasons, **{k: (int(v) if v is not None else None) for k, v in row.items()})

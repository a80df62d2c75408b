"""What the report adds up from the day's tables: per ad (the top-ads tables and ads_daily.csv) and per
hour (the chart), and the flagged windows (drift_flagged.csv).

Computed in DuckDB (``sql/report/``) over two relations of the session: ``day_drift`` (drift.parquet's
columns) and ``day_totals`` (totals.parquet's). A run hands over the session its diff ran in, where they
are views of the day's drift (millions of windows, spilled to disk past the memory limit, never copied
into Python); ``billing report`` and the small-table helpers register Arrow tables under those names.
Only the hours, the top ads and one batch of rows at a time become Python values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import duckdb
import pyarrow as pa

from billing import sql

#: Rows of the top-ads tables.
TOP_ADS = 15


def session(drift: pa.Table, totals: pa.Table | None = None) -> duckdb.DuckDBPyConnection:
    """A small DuckDB session holding Arrow tables as ``day_drift`` and ``day_totals``."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.register("day_drift", drift)
    if totals is not None:
        con.register("day_totals", totals)
    return con


def build_ads(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``report_ads``: one row per ad of the day."""
    sql.run(con, "report_ads")


def ad_batches(con: duckdb.DuckDBPyConnection) -> Iterator[pa.RecordBatch]:
    """Every ad of ``report_ads`` (:func:`build_ads`), by ad_id, a batch at a time."""
    yield from sql.reader(con, "report_ads_sorted")


def top_ads(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The candidates of both top-ads tables: the TOP_ADS ads by |money at risk| and by |delta|."""
    return sql.table(con, "report_top_ads", top=TOP_ADS).to_pylist()


def hours(con: duckdb.DuckDBPyConnection) -> list[dict[str, int]]:
    """Batch and stream clicks per hour of day, and the flagged windows and their |delta|: 24 rows."""
    out = [{"hour": h, "batch": 0, "stream": 0, "flagged": 0, "abs_delta": 0} for h in range(24)]
    for r in sql.table(con, "report_hours").to_pylist():
        out[r["hour"]].update(batch=r["batch"], stream=r["stream"], abs_delta=r["abs_delta"], flagged=r["flagged"])
    return out


def flagged_batches(con: duckdb.DuckDBPyConnection) -> Iterator[pa.RecordBatch]:
    """The flagged windows in key order, with drift_flagged.csv's columns."""
    yield from sql.reader(con, "report_flagged")


def per_ad(totals: pa.Table, drift: pa.Table) -> list[dict[str, Any]]:
    """Per ad of small tables (tests, tools): billable clicks and spend, stream clicks, delta, money at risk,
    flagged windows and main cause, sorted by ad (the same SQL a run uses)."""
    con = session(drift, totals)
    try:
        build_ads(con)
        return [ad for batch in ad_batches(con) for ad in batch.to_pylist()]
    finally:
        con.close()


def per_hour(drift: pa.Table) -> list[dict[str, int]]:
    """:func:`hours` of a small drift table."""
    con = session(drift)
    try:
        return hours(con)
    finally:
        con.close()

"""Diff stage: authoritative windows against the stream side's, with each flagged key's cause and money.

``sql/stream.sql`` sums the sink's rows per key, ``sql/drift.sql`` joins both sides,
``sql/attribute.sql`` explains each flagged key, ``sql/drift_money.sql`` prices it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from billing import schemas, sql
from billing.config import ReconcileConfig
from billing.totals import day_bounds

DRIFT_COLUMNS = tuple(schemas.arrow_schema(schemas.Drift).names)


@dataclass
class DiffResult:
    totals: pa.Table
    drift: pa.Table
    """drift.parquet's columns."""
    stream_counts: dict[str, int]
    summary: dict[str, Any]
    """The ``drift`` block of summary.json."""


def diff(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig, facts: duckdb.DuckDBPyRelation | pa.Table,
         stream: pa.Table, *, has_cost: bool, stream_has_spend: bool) -> DiffResult:
    start, end = day_bounds(cfg.date)
    con.register("batch_facts", facts)
    con.register("stream_source", stream)
    # The caller hands the stream table over: once DuckDB has loaded it, it is let go of, so a day's
    # millions of sink rows are not held twice (issue 5's memory cap).
    del facts, stream
    try:
        sql.run(con, "batch_windows")
        con.unregister("batch_facts")
        totals = sql.table(con, "totals_out", has_cost=has_cost)
        sql.run(con, "stream", day_start=start, day_end=end)
        (counts,) = sql.fetch_dicts(con, "stream_counts", day_start=start, day_end=end)
        con.unregister("stream_source")
        sql.run(con, "drift", tolerance_abs=cfg.tolerance_abs, tolerance_rel=cfg.tolerance_rel)
        con.execute("DROP TABLE stream_windows")
        # Each key-sized table is dropped once the next is built: a day has millions of keys,
        # and holding all of them at once set the run's peak memory.
        sql.run(con, "attribute")
        sql.run(con, "drift_money", stream_has_spend=stream_has_spend)
        con.execute("DROP VIEW attributed")
        con.execute("DROP TABLE drift")
        con.execute("DROP TABLE batch_windows")
        # Only the published columns come out of DuckDB (the summary is computed in SQL).
        columns = ", ".join(DRIFT_COLUMNS)  # names from the output schema, not values
        drift = con.sql(f"SELECT {columns} FROM drift_out ORDER BY ad_id, window_start").to_arrow_table()
        block = drift_summary(con)
    finally:
        for name in ("batch_facts", "stream_source"):
            con.unregister(name)  # a no-op when already let go of
    return DiffResult(totals, drift, {k: int(v) for k, v in counts.items()}, block)


def drift_summary(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The ``drift`` block of summary.json, computed in SQL from table ``drift_out``."""
    (t,) = sql.fetch_dicts(con, "drift_summary")
    by_status: dict[str, int] = {}
    by_cause: dict[str, dict[str, int]] = {}
    for r in sql.fetch_dicts(con, "drift_by"):
        if r["kind"] == "status":
            by_status[r["name"]] = int(r["keys"])
        else:
            by_cause[r["name"]] = {"keys": int(r["keys"]), "clicks": int(r["clicks"])}
    priced = t["priced_keys"] > 0
    return {
        "keys": t["keys"],
        "flagged": t["flagged"],
        "by_status": by_status,
        "net_delta_clicks": t["net_delta_clicks"],
        "abs_delta_clicks": t["abs_delta_clicks"],
        "by_cause": by_cause,
        "unexplained": {"keys": t["unexplained_keys"], "clicks": t["unexplained_clicks"]},
        "money": {k: (t[k] if priced else None)
                  for k in ("net_at_risk_micros", "abs_at_risk_micros", "flagged_abs_at_risk_micros")},
    }

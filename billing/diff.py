"""Diff stage: authoritative windows against the stream side's, with each flagged key's cause and money.

``sql/stream.sql`` sums the sink's rows per key, ``sql/drift.sql`` joins both sides,
``sql/attribute.sql`` explains each flagged key, ``sql/drift_money.sql`` prices it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from billing import sql
from billing.config import ReconcileConfig
from billing.totals import day_bounds


@dataclass
class DiffResult:
    totals: pa.Table
    drift: pa.Table
    """drift.parquet's columns plus ``explained_clicks`` (dropped before publishing)."""
    stream_counts: dict[str, int]


def diff(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig, facts: pa.Table, stream: pa.Table, *,
         has_cost: bool, stream_has_spend: bool) -> DiffResult:
    start, end = day_bounds(cfg.date)
    con.register("batch_facts", facts)
    con.register("stream_source", stream)
    try:
        sql.run(con, "batch_windows")
        totals = sql.table(con, "totals_out", has_cost=has_cost)
        sql.run(con, "stream", day_start=start, day_end=end)
        (counts,) = sql.fetch_dicts(con, "stream_counts", day_start=start, day_end=end)
        sql.run(con, "drift", tolerance_abs=cfg.tolerance_abs, tolerance_rel=cfg.tolerance_rel)
        sql.run(con, "attribute")
        sql.run(con, "drift_money", stream_has_spend=stream_has_spend)
        drift = con.sql("SELECT * FROM drift_out ORDER BY ad_id, window_start").to_arrow_table()
    finally:
        con.unregister("batch_facts")
        con.unregister("stream_source")
    return DiffResult(totals, drift, {k: int(v) for k, v in counts.items()})


def drift_summary(drift: pa.Table) -> dict[str, Any]:
    """The ``drift`` block of summary.json, computed from the finished drift table."""
    rows = drift.to_pylist()
    by_status: dict[str, int] = {}
    by_cause: dict[str, dict[str, int]] = {}
    unexplained_keys = unexplained_clicks = 0
    net = absolute = 0
    money_net = money_abs = money_flagged = 0
    priced = False
    for r in rows:
        by_status[r["status"]] = by_status.get(r["status"], 0) + 1
        net += r["delta"]
        absolute += abs(r["delta"])
        m = r["money_at_risk_micros"]
        if m is not None:
            priced = True
            money_net += m
            money_abs += abs(m)
            if r["flagged"]:
                money_flagged += abs(m)
        if r["flagged"]:
            c = by_cause.setdefault(r["cause"], {"keys": 0, "clicks": 0})
            c["keys"] += 1
            c["clicks"] += r["explained_clicks"]
            rest = abs(r["delta"]) - r["explained_clicks"]
            if rest:
                unexplained_keys += 1
                unexplained_clicks += rest
    return {
        "keys": len(rows),
        "flagged": sum(1 for r in rows if r["flagged"]),
        "by_status": dict(sorted(by_status.items())),
        "net_delta_clicks": net,
        "abs_delta_clicks": absolute,
        "by_cause": dict(sorted(by_cause.items())),
        "unexplained": {"keys": unexplained_keys, "clicks": unexplained_clicks},
        "money": {
            "net_at_risk_micros": money_net if priced else None,
            "abs_at_risk_micros": money_abs if priced else None,
            "flagged_abs_at_risk_micros": money_flagged if priced else None,
        },
    }

"""What the report adds up from the day's tables: per ad (the ads table and ads_daily.csv) and per hour
(the chart). Aggregated in Arrow: a day holds millions of windows, but only thousands of ads."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


def _by_key(table: pa.Table, key: str, aggs: list[tuple[str, str]]) -> dict[Any, dict[str, Any]]:
    if table.num_rows == 0:
        return {}
    g = table.group_by(key).aggregate(aggs)
    cols = {name: g.column(name).to_pylist() for name in g.column_names}
    return {k: {name: cols[name][i] for name in cols} for i, k in enumerate(cols[key])}


def per_ad(totals: pa.Table, drift: pa.Table) -> list[dict[str, Any]]:
    """Per ad: billable clicks and spend, stream clicks, delta, money at risk (sorted by ad)."""
    billed = _by_key(totals, "ad_id", [("clicks", "sum"), ("spend_micros", "sum")])
    flagged_tbl = drift.filter(drift.column("flagged")) if drift.num_rows else drift
    drifted = _by_key(drift, "ad_id", [("stream_clicks", "sum"), ("delta", "sum"), ("money_at_risk_micros", "sum")])
    n_flagged = _by_key(flagged_tbl, "ad_id", [("flagged", "count")])
    main_cause: dict[int, str] = {}
    if flagged_tbl.num_rows:
        t = flagged_tbl.append_column("abs_delta", pc.abs(flagged_tbl.column("delta")))
        g = t.group_by(["ad_id", "cause"]).aggregate([("abs_delta", "sum")])
        g = g.sort_by([("ad_id", "ascending"), ("abs_delta_sum", "descending"), ("cause", "ascending")])
        for ad, cause in zip(g.column("ad_id").to_pylist(), g.column("cause").to_pylist(), strict=True):
            main_cause.setdefault(ad, cause)
    out = []
    for ad in sorted(set(billed) | set(drifted)):
        b, d = billed.get(ad, {}), drifted.get(ad, {})
        out.append({
            "ad_id": ad,
            "billable_clicks": b.get("clicks_sum") or 0,
            "spend_micros": b.get("spend_micros_sum"),
            "stream_clicks": d.get("stream_clicks_sum") or 0,
            "delta": d.get("delta_sum") or 0,
            "money_at_risk_micros": d.get("money_at_risk_micros_sum"),
            "flagged_windows": n_flagged.get(ad, {}).get("flagged_count", 0),
            "main_cause": main_cause.get(ad),
        })
    return out


def per_hour(drift: pa.Table) -> list[dict[str, int]]:
    """Batch and stream clicks per hour of day, and |delta| of the flagged windows.

    A million rows at a time: the day's drift table is already in memory, its derived columns need not be.
    """
    hours = [{"hour": h, "batch": 0, "stream": 0, "flagged": 0, "abs_delta": 0} for h in range(24)]
    for batch in drift.to_batches(max_chunksize=1 << 20):
        if batch.num_rows == 0:
            continue
        flagged = batch.column("flagged")
        t = pa.table({"hour": pc.hour(batch.column("window_start")), "batch": batch.column("batch_clicks"),
                      "stream": batch.column("stream_clicks"), "flagged": flagged,
                      "abs_delta": pc.if_else(flagged, pc.abs(batch.column("delta")), 0)})
        g = t.group_by("hour").aggregate([("batch", "sum"), ("stream", "sum"), ("abs_delta", "sum"),
                                          ("flagged", "sum")])
        for h, b, st, a, f in zip(*(g.column(c).to_pylist() for c in
                                    ("hour", "batch_sum", "stream_sum", "abs_delta_sum", "flagged_sum")), strict=True):
            row = hours[h]
            row.update(batch=row["batch"] + b, stream=row["stream"] + st, abs_delta=row["abs_delta"] + a,
                       flagged=row["flagged"] + f)
    return hours

"""What a new version changes per ad: clicks and spend before → after (the manifest's restatement,
``billing diff-versions``). Summed batch by batch: a day's totals need not fit in memory twice."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pyarrow as pa

from billing.day.publish import Day

PerAd = dict[int, tuple[int, int | None]]
TOTALS_PER_AD = ["ad_id", "clicks", "spend_micros"]


def per_ad_totals(batches: Iterable[pa.RecordBatch]) -> PerAd:
    """Per ad: (clicks, spend) summed batch by batch; spend None when no window of the ad has one."""
    out: PerAd = {}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        g = pa.Table.from_batches([batch]).group_by("ad_id").aggregate([("clicks", "sum"), ("spend_micros", "sum")])
        for ad, c, sp in zip(g.column("ad_id").to_pylist(), g.column("clicks_sum").to_pylist(),
                             g.column("spend_micros_sum").to_pylist(), strict=True):
            clicks, spend = out.get(ad, (0, None))
            out[ad] = (clicks + c, spend if sp is None else sp if spend is None else spend + sp)
    return out


def previous_per_ad(day: Day) -> PerAd | None:
    """:func:`per_ad_totals` of the day's current version (None before its first)."""
    v = day.current_version()
    return None if v is None else per_ad_totals(day.iter_batches(v, "totals.parquet", TOTALS_PER_AD))


def restatement(before: PerAd | None, after: PerAd) -> list[dict[str, Any]] | None:
    """Per ad whose clicks or spend changed: before → after (None for a first version)."""
    if before is None:
        return None
    changes = []
    for ad in sorted(set(before) | set(after)):
        cb, sb = before.get(ad, (0, 0))
        ca, sa = after.get(ad, (0, 0))
        if (cb, sb) != (ca, sa):
            changes.append({"ad_id": ad, "clicks_before": cb, "clicks_after": ca,
                            "spend_micros_before": sb, "spend_micros_after": sa})
    return changes

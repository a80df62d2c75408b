"""Post-close adjustments: what changed per ad since a day was signed off.

When a day's current version differs from the version of its latest sign-off, the difference is an
open adjustment: per ad, clicks and spend of the signed-off version → the current one, and the delta
(a credit when negative, a debit when positive). Signing off the current version closes it; the
older sign-offs stay in the day's history.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billing.day.publish import Day
from billing.day.restatement import TOTALS_PER_AD, PerAd, per_ad_totals
from billing.month.signoff import SignOff, in_force
from billing.month.verified import checked

ADJUSTMENT_COLUMNS = ["date", "ad_id", "signed_off_version", "current_version", "signed_off_by", "signed_off_at",
                      "signed_off_clicks", "current_clicks", "clicks_delta",
                      "signed_off_spend_micros", "current_spend_micros", "spend_micros_delta"]


def version_per_ad(day: Day, version: int) -> PerAd:
    """Per-ad totals of a version's totals.parquet, once it was checked against the version's manifest."""
    checked(day, version, "totals.parquet")
    return per_ad_totals(day.iter_batches(version, "totals.parquet", TOTALS_PER_AD))


def per_ad_changes(before: PerAd, after: PerAd) -> list[tuple[int, int, int, int | None, int | None]]:
    """(ad, clicks before, clicks after, spend before, spend after) for every ad whose figures differ."""
    out = []
    for ad in sorted(set(before) | set(after)):
        cb, sb = before.get(ad, (0, None))
        ca, sa = after.get(ad, (0, None))
        # an ad absent on one side had no clicks there: spend 0, unless spend is unknown (no cost column)
        sb = 0 if ad not in before and sa is not None else sb
        sa = 0 if ad not in after and sb is not None else sa
        if (cb, sb or 0) != (ca, sa or 0):
            out.append((ad, cb, ca, sb, sa))
    return out


def net(changes: list[tuple[int, int, int, int | None, int | None]]) -> tuple[int, int]:
    """Net click and spend deltas of :func:`per_ad_changes`."""
    return (sum(ca - cb for _, cb, ca, _, _ in changes),
            sum((sa or 0) - (sb or 0) for _, _, _, sb, sa in changes))


@dataclass(frozen=True)
class DayAdjustment:
    date: dt.date
    signoff: SignOff
    current_version: int
    changes: list[tuple[int, int, int, int | None, int | None]]

    def rows(self) -> list[dict[str, Any]]:
        s = self.signoff
        return [{"date": self.date.isoformat(), "ad_id": ad, "signed_off_version": s.version,
                 "current_version": self.current_version, "signed_off_by": s.by, "signed_off_at": s.at,
                 "signed_off_clicks": cb, "current_clicks": ca, "clicks_delta": ca - cb,
                 "signed_off_spend_micros": sb, "current_spend_micros": sa,
                 "spend_micros_delta": (sa or 0) - (sb or 0)} for ad, cb, ca, sb, sa in self.changes]

    def summary(self) -> dict[str, Any]:
        clicks, spend = net(self.changes)
        return {"signed_off_version": self.signoff.version, "current_version": self.current_version,
                "by": self.signoff.by, "at": self.signoff.at, "ads": len(self.changes),
                "net_clicks_delta": clicks, "net_spend_micros_delta": spend}


def open_adjustment(day: Day, signoff: SignOff | None = None, current: int | None = None,
                    read: Callable[[Day, int], PerAd] = version_per_ad) -> DayAdjustment | None:
    """The day's open adjustment: None when never signed off, or when the current version is the one
    signed off, or when the current version has the same per-ad figures as the signed-off one (a re-run
    with other settings changes no money: nothing is open)."""
    signoff = signoff or in_force(day)
    current = current if current is not None else day.current_version()
    if signoff is None or current is None or current == signoff.version:
        return None
    changes = per_ad_changes(read(day, signoff.version), read(day, current))
    return DayAdjustment(day.date, signoff, current, changes) if changes else None

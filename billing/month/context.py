"""What a day's summary says about its place among the other days: ``summary.restates_signed_off`` and
``summary.anomalies`` (computed at reconcile time from published days only).

Both depend on more than the day's inputs (a sign-off made since, the days before it), so they are
the context of a version, decided when it is committed: a re-run whose data and the rest of whose
summary equal the current version's keeps the current version's context and stays unchanged (an
Airflow retry after a sign-off must not commit a version nobody signed off). A run whose data
differ gets a fresh context.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from billing.config import ReconcileConfig
from billing.day.publish import MANIFEST, Day, sha256_file
from billing.day.restatement import PerAd
from billing.month.adjustments import net, per_ad_changes, version_per_ad
from billing.month.anomalies import AnomalyRule, judge, reference_days
from billing.month.signoff import in_force

CONTEXT_KEYS = ("restates_signed_off", "anomalies")


def restates_signed_off(day: Day, after: PerAd) -> dict[str, Any] | None:
    """When the day has a sign-off and these totals differ from the signed-off version's per ad: who signed
    off which version when, how many ads change and the net click and spend deltas. Else None.
    ``after``: the per-ad totals of the version being staged (billing.day.restatement.per_ad_totals)."""
    signoff = in_force(day)
    if signoff is None:
        return None
    changes = per_ad_changes(version_per_ad(day, signoff.version), after)
    if not changes:
        return None
    clicks, spend = net(changes)
    return {"signed_off_version": signoff.version, "by": signoff.by, "at": signoff.at, "ads": len(changes),
            "net_clicks_delta": clicks, "net_spend_micros_delta": spend}


def fresh_context(day: Day, cfg: ReconcileConfig, summary: dict[str, Any], after: PerAd) -> dict[str, Any]:
    rule = AnomalyRule.from_settings(cfg)
    return {"restates_signed_off": restates_signed_off(day, after),
            "anomalies": judge(summary, reference_days(day.out, day.date, rule), rule)}


def previous_context(day: Day, summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The current version's context when the rest of its summary equals ``summary`` (else None)."""
    v = day.current_version()
    if v is None:
        return None
    prev = day.read_json(v, "summary.json")
    if {k: x for k, x in prev.items() if k not in CONTEXT_KEYS} != dict(summary):
        return None
    return {k: prev.get(k) for k in CONTEXT_KEYS}


def same_as_current(day: Day, staged: Mapping[str, Path], names: tuple[str, ...]) -> bool:
    """Whether the staged files ``names`` have the hashes of the current version's."""
    v = day.current_version()
    if v is None:
        return False
    outputs = day.read_json(v, MANIFEST).get("outputs", {})
    return all(outputs.get(n, {}).get("sha256") == sha256_file(staged[n]) for n in names)

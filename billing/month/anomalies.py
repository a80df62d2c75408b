"""Anomalous days: a day whose drift departs from its trailing reconciled days by a robust rule.

For each measure of a day (its drift rate = absolute drift / billable clicks, its absolute money at risk,
and the share of the absolute drift each cause explains) the reference is the same measure over the
``window`` most recent days before it that have a committed version (their current versions'
summary.json: published days only, no raw data re-read). With ``m`` their median and ``MAD`` the (scaled)
median of ``|x - m|``, the day is anomalous on that measure when ``|x - m| > k × max(MAD, floor)``; the floor
keeps a run of identical quiet days (MAD 0) from flagging the first small wobble. For the drift rate and
the money at risk the floor is also at least ``floor_rel`` × the median: a small day's drift is a few
dozen windows, and seven of them can agree by chance more closely than the next day will. A day with fewer than
``min_days`` reference days is not judged. Parameters: :class:`AnomalyRule`, from the config.

The MAD is scaled by 1.4826 (:data:`MAD_SCALE`), the usual factor that makes it estimate the standard
deviation of normally distributed values: ``k = 5`` then means "five standard deviations, robustly".
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from billing.anomaly_settings import ANOMALY_FIELDS, AnomalySettings
from billing.day.publish import Day
from billing.io.storage import Store
from billing.month.verified import checked

MAD_SCALE = 1.4826
_DAY_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class AnomalyRule:
    # The defaults are the settings' (billing.anomaly_settings): one place for them.
    k: float = AnomalySettings.anomaly_k
    window: int = AnomalySettings.anomaly_window
    min_days: int = AnomalySettings.anomaly_min_days
    floor_rate: float = AnomalySettings.anomaly_floor_rate
    floor_money: int = AnomalySettings.anomaly_floor_money
    floor_share: float = AnomalySettings.anomaly_floor_share
    floor_rel: float = AnomalySettings.anomaly_floor_rel

    @classmethod
    def from_settings(cls, s: AnomalySettings | dict[str, Any]) -> AnomalyRule:
        """From the config (a ReconcileConfig) or the settings layered alone (``billing month``)."""
        get: Callable[[str], Any] = (lambda n: s[n]) if isinstance(s, dict) else (lambda n: getattr(s, n))
        return cls(*(get(n) for n in ANOMALY_FIELDS))


def measures(summary: dict[str, Any]) -> dict[str, float]:
    """The measures of one day's summary that the rule judges."""
    led, dr = summary["ledger"], summary["drift"]
    out: dict[str, float] = {}
    if led["billable_clicks"]:
        out["drift_rate"] = dr["abs_delta_clicks"] / led["billable_clicks"]
    out["money_at_risk_micros"] = float(dr["money"]["abs_at_risk_micros"] or 0)
    total = dr["abs_delta_clicks"]
    for cause, v in dr["by_cause"].items():
        out[f"share:{cause}"] = v["clicks"] / total if total else 0.0
    return out


def _floor(name: str, median: float, rule: AnomalyRule) -> float:
    if name == "drift_rate":
        return max(rule.floor_rate, rule.floor_rel * abs(median))
    if name == "money_at_risk_micros":
        return max(float(rule.floor_money), rule.floor_rel * abs(median))
    return rule.floor_share


def _r(x: float) -> float:
    return round(x, 6)


def judge(summary: dict[str, Any], reference: list[dict[str, Any]], rule: AnomalyRule) -> dict[str, Any]:
    """``summary.anomalies`` of a day against the summaries of its reference days (newest first)."""
    mine = measures(summary)
    theirs = [measures(s) for s in reference]
    result: dict[str, Any] = {"rule": asdict(rule), "reference_days": len(reference),
                              "reference_from": reference[-1]["date"] if reference else None,
                              "reference_to": reference[0]["date"] if reference else None,
                              "judged": len(reference) >= rule.min_days, "anomalous": False, "flags": [],
                              "measures": {}}
    if not result["judged"]:
        return result
    names = sorted(set(mine) | {n for t in theirs for n in t if n.startswith("share:")})
    for name in names:
        if name == "drift_rate" and name not in mine:
            continue
        values = [t.get(name, 0.0) for t in theirs if name in t or name.startswith("share:")]
        if len(values) < rule.min_days:
            continue
        x = mine.get(name, 0.0)
        med = statistics.median(values)
        mad = MAD_SCALE * statistics.median(abs(v - med) for v in values)
        spread = rule.k * max(mad, _floor(name, med, rule))
        flagged = abs(x - med) > spread
        result["measures"][name] = {"value": _r(x), "median": _r(med), "mad": _r(mad), "low": _r(med - spread),
                                    "high": _r(med + spread), "anomalous": flagged}
        if flagged:
            result["flags"].append(name)
    result["anomalous"] = bool(result["flags"])
    return result


def day_dates(out: Store) -> list[dt.date]:
    """Every day with a folder under OUT, in order."""
    return sorted(dt.date.fromisoformat(m.group(1)) for name in out.list_dirs("") if (m := _DAY_DIR.match(name)))


def current_summary(out: Store, date: dt.date, *, verify: bool = False) -> dict[str, Any] | None:
    """The day's current summary.json (None when no version is committed); ``verify``: checked against its
    manifest first (billing.month.verified, as the month reads it)."""
    day = Day(out, date)
    v = day.current_version()
    if v is None:
        return None
    if verify:
        checked(day, v, "summary.json")
    return day.read_json(v, "summary.json")


def reference_days(out: Store, date: dt.date, rule: AnomalyRule,
                   summaries: Callable[[dt.date], dict[str, Any] | None] | None = None,
                   dates: Iterable[dt.date] | None = None) -> list[dict[str, Any]]:
    """The current summaries of the ``rule.window`` most recent reconciled days before ``date``, newest first."""
    get = summaries or (lambda d: current_summary(out, d))
    found: list[dict[str, Any]] = []
    for d in sorted((x for x in (dates if dates is not None else day_dates(out)) if x < date), reverse=True):
        s = get(d)
        if s is not None:
            found.append(s)
            if len(found) >= rule.window:
                break
    return found

"""The month's books, from its published days: per day (status, versions, sign-off, open adjustment,
figures, anomalies), per ad (month totals from the current versions, the same from the signed-off ones,
the adjustment between them), and what the month is waiting for.

Everything is read from each day's current version (and its latest sign-off's version); no raw data is
read. Per-ad month totals are exact integer sums of the days' totals.parquet, batch by batch.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from billing.day.publish import Day
from billing.day.restatement import PerAd
from billing.errors import UsageError
from billing.io.storage import Store
from billing.month.adjustments import DayAdjustment, open_adjustment, version_per_ad
from billing.month.anomalies import AnomalyRule, current_summary, day_dates, judge, reference_days
from billing.month.signoff import in_force
from billing.month.verified import checked

ADS_COLUMNS = ["ad_id", "billable_clicks", "billable_spend_micros", "signed_off_clicks", "signed_off_spend_micros",
               "adjustment_clicks", "adjustment_spend_micros"]
DAYS_COLUMNS = ["date", "status", "version", "signed_off_version", "billable_clicks", "billable_spend_micros",
                "stream_clicks", "abs_delta_clicks", "drift_rate", "anomalous", "anomaly_flags", "signed_off_by",
                "open_adjustment", "adjustment_clicks", "adjustment_spend_micros", "flagged_keys",
                "abs_at_risk_micros"]


def parse_month(text: str) -> dt.date:
    """``YYYY-MM`` → the month's first day (exit 2 otherwise)."""
    try:
        y, m = str(text).split("-")
        if len(y) != 4 or len(m) != 2:
            raise ValueError
        return dt.date(int(y), int(m), 1)
    except ValueError:
        raise UsageError(f"--month {text!r}: not a month, expected YYYY-MM (e.g. 2026-11)") from None


def month_days(first: dt.date) -> list[dt.date]:
    return [first.replace(day=d) for d in range(1, calendar.monthrange(first.year, first.month)[1] + 1)]


def _add(a: int | None, b: int | None) -> int | None:
    return a if b is None else b if a is None else a + b


@dataclass
class Book:
    month: str
    days: list[dict[str, Any]]
    ads: list[dict[str, Any]]
    adjustments: list[dict[str, Any]]
    anomalies: dict[str, Any]
    money: list[dict[str, Any]]
    """Per ad: clicks, spend, net click drift and money at risk over the month (top ads by money at risk)."""
    used: dict[str, Any] = field(default_factory=dict)
    """Per reconciled day: the version used and its outputs' hashes (the month manifest records them)."""

    @property
    def missing(self) -> list[str]:
        return [d["date"] for d in self.days if d["status"] == "missing"]

    def verdict(self) -> dict[str, Any]:
        reconciled = [d for d in self.days if d["status"] != "missing"]
        not_signed = [d["date"] for d in reconciled if d["signed_off_version"] is None]
        open_adj = [d["date"] for d in self.days if d["open_adjustment"]]
        anomalous = [d["date"] for d in self.days if d["anomalous"]]
        closed = not self.missing and not not_signed and not open_adj
        return {"closed": closed, "days": len(self.days), "reconciled": len(reconciled),
                "signed_off": len(reconciled) - len(not_signed), "missing": self.missing, "not_signed_off": not_signed,
                "open_adjustments": open_adj, "anomalous": anomalous,
                "flagged": [d["date"] for d in reconciled if d["status"] == "drift_flagged"]}

    def totals(self) -> dict[str, Any]:
        rec = [d for d in self.days if d["status"] != "missing"]
        spend = None
        for d in rec:
            spend = _add(spend, d["billable_spend_micros"])
        return {"billable_clicks": sum(d["billable_clicks"] for d in rec), "billable_spend_micros": spend,
                "stream_clicks": sum(d["stream_clicks"] for d in rec),
                "abs_delta_clicks": sum(d["abs_delta_clicks"] for d in rec),
                "abs_at_risk_micros": sum(d["abs_at_risk_micros"] or 0 for d in rec),
                "adjustment_clicks": sum(d["adjustment_clicks"] or 0 for d in rec),
                "adjustment_spend_micros": sum(d["adjustment_spend_micros"] or 0 for d in rec)}

    def as_json(self) -> dict[str, Any]:
        return {"month": self.month, "verdict": self.verdict(), "totals": self.totals(), "days": self.days,
                "ads": self.ads, "adjustments": self.adjustments, "anomalies": self.anomalies,
                "top_ads_by_money_at_risk": self.money, "days_used": self.used}


def _drift_per_ad(day: Day, version: int) -> dict[int, tuple[int, int | None]]:
    """Per ad: net click delta and money at risk of the version's drift table."""
    out: dict[int, tuple[int, int | None]] = {}
    for batch in day.iter_batches(version, "drift.parquet", ["ad_id", "delta", "money_at_risk_micros"]):
        if batch.num_rows == 0:
            continue
        g = pa.Table.from_batches([batch]).group_by("ad_id").aggregate([("delta", "sum"),
                                                                          ("money_at_risk_micros", "sum")])
        for ad, d, m in zip(*(g.column(c).to_pylist() for c in ("ad_id", "delta_sum", "money_at_risk_micros_sum")),
                            strict=True):
            cd, cm = out.get(ad, (0, None))
            out[ad] = (cd + d, _add(cm, m))
    return out


def _reader(known: dict[int, PerAd]) -> Callable[[Day, int], PerAd]:
    return lambda _day, version: known[version]


def build_book(out: Store, first: dt.date, rule: AnomalyRule) -> Book:
    """The books of the month starting ``first``, from the days published under ``out``."""
    all_dates = day_dates(out)
    cache: dict[dt.date, dict[str, Any] | None] = {}

    def summary_of(d: dt.date) -> dict[str, Any] | None:
        if d not in cache:
            cache[d] = current_summary(out, d, verify=True)
        return cache[d]

    days, adjustments, anomalies, used = [], [], {}, {}
    cur_ads: dict[int, list[int | None]] = defaultdict(lambda: [0, None])
    signed_ads: dict[int, list[int | None]] = defaultdict(lambda: [0, None])
    signed_days_now: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # current figures of signed-off days
    money: dict[int, list[Any]] = defaultdict(lambda: [0, None, 0, None])
    any_signed = signed_spend_known = False
    for d in month_days(first):
        day = Day(out, d)
        version = day.current_version()
        s = summary_of(d) if version is not None else None
        if version is None or s is None:
            days.append({c: None for c in DAYS_COLUMNS} | {"date": d.isoformat(), "status": "missing",
                                                          "anomalous": False, "open_adjustment": False})
            continue
        manifest = checked(day, version, "drift.parquet")
        used[d.isoformat()] = {"version": version, "outputs": {k: v["sha256"] for k, v in
                                                                 sorted(manifest.get("outputs", {}).items())}}
        signoff = in_force(day)
        current = version_per_ad(day, version)
        for ad, (c, sp) in current.items():
            cur_ads[ad][0] = (cur_ads[ad][0] or 0) + c
            cur_ads[ad][1] = _add(cur_ads[ad][1], sp)
        for ad, (delta, m) in _drift_per_ad(day, version).items():
            money[ad][2] += delta
            money[ad][3] = _add(money[ad][3], m)
        for ad, (c, sp) in current.items():
            money[ad][0] += c
            money[ad][1] = _add(money[ad][1], sp)
        adj: DayAdjustment | None = None
        if signoff is not None:
            any_signed = True
            signed: PerAd = current if signoff.version == version else version_per_ad(day, signoff.version)
            signed_spend_known = signed_spend_known or s["ledger"]["billable_spend_micros"] is not None
            for ad, (c, sp) in signed.items():
                signed_ads[ad][0] = (signed_ads[ad][0] or 0) + c
                signed_ads[ad][1] = _add(signed_ads[ad][1], sp)
            for ad, (c, sp) in current.items():
                signed_days_now[ad][0] += c
                signed_days_now[ad][1] += sp or 0
            known = {version: current, signoff.version: signed}  # already read and checked
            adj = open_adjustment(day, signoff, version, _reader(known))
            if adj is not None:
                adjustments.extend(adj.rows())
        judged = judge(s, reference_days(out, d, rule, summary_of, all_dates), rule)
        anomalies[d.isoformat()] = judged
        led, dr = s["ledger"], s["drift"]
        adj_sum = adj.summary() if adj is not None else None
        days.append({
            "date": d.isoformat(), "status": s["status"], "version": version,
            "signed_off_version": signoff.version if signoff else None,
            "billable_clicks": led["billable_clicks"], "billable_spend_micros": led["billable_spend_micros"],
            "stream_clicks": s["stream"]["clicks"], "abs_delta_clicks": dr["abs_delta_clicks"],
            "drift_rate": round(dr["abs_delta_clicks"] / led["billable_clicks"], 6) if led["billable_clicks"] else None,
            "anomalous": judged["anomalous"], "anomaly_flags": " ".join(judged["flags"]),
            "signed_off_by": signoff.by if signoff else None,
            "open_adjustment": adj is not None,
            "adjustment_clicks": adj_sum["net_clicks_delta"] if adj_sum else None,
            "adjustment_spend_micros": adj_sum["net_spend_micros_delta"] if adj_sum else None,
            "flagged_keys": dr["flagged"], "abs_at_risk_micros": dr["money"]["abs_at_risk_micros"],
            "by_cause": {c: v["clicks"] for c, v in dr["by_cause"].items()},
        })
    ads = []
    for ad in sorted(set(cur_ads) | set(signed_ads)):
        bc, bsp = cur_ads.get(ad, [0, None])
        sc: int | None
        ssp: int | None
        ac: int | None
        asp: int | None
        if any_signed:
            sc, ssp = signed_ads.get(ad, (0, None))
            if ad not in signed_ads and signed_spend_known:
                ssp = 0  # no clicks on the signed-off days: spend 0 (empty only when spend is unknown)
            # the difference over signed-off days only: their current figures minus their signed-off ones
            now_c, now_sp = signed_days_now.get(ad, (0, 0))
            ac, asp = now_c - (sc or 0), now_sp - (ssp or 0)
        else:
            sc = ssp = ac = asp = None
        ads.append({"ad_id": ad, "billable_clicks": bc, "billable_spend_micros": bsp, "signed_off_clicks": sc,
                    "signed_off_spend_micros": ssp, "adjustment_clicks": ac, "adjustment_spend_micros": asp})
    top = sorted(({"ad_id": ad, "billable_clicks": v[0], "spend_micros": v[1], "delta": v[2],
                   "money_at_risk_micros": v[3]} for ad, v in money.items() if v[3]),
                 key=lambda a: (-abs(a["money_at_risk_micros"]), a["ad_id"]))
    return Book(first.strftime("%Y-%m"), days, ads, adjustments, anomalies, top, used)

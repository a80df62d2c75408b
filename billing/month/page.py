"""month.html: what the month page shows, as plain data, rendered with the day report's Jinja2 environment
(autoescape on, the same macros and style) from ``billing/report/templates/month.html.j2``."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from billing.money import money
from billing.month.book import Book
from billing.month.charts import chart_days, chart_drift
from billing.report.formats import n, signed
from billing.report.page import TOP_ADS, Figure, Table
from billing.report.render import environment

TEMPLATE = "month.html.j2"
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass(frozen=True)
class MonthPage:
    month: str
    code_version: str
    verdict: tuple[str, str, str]
    waiting: list[tuple[str, str]]  # (what, which days)
    figures: list[Figure]
    weekdays: list[str]
    calendar: list[list[dict[str, Any] | None]]  # weeks of cells, None outside the month
    chart_days: Markup
    chart_drift: Markup
    days: Table
    top_money: Table
    adjustments: Table
    anomalies: Table


def _cell(d: dict[str, Any]) -> dict[str, Any]:
    status = d["status"]
    cls = {"billable": "ok", "drift_within_tolerance": "warn", "drift_flagged": "bad"}.get(status, "missing")
    lines = ["missing"] if status == "missing" else [
        f"v{d['version']} {status.replace('_', ' ')}",
        f"signed off v{d['signed_off_version']} by {d['signed_off_by']}" if d["signed_off_version"] is not None
        else "not signed off"]
    if d["open_adjustment"]:
        lines.append("open adjustment")
    if d["anomalous"]:
        lines.append("anomalous")
    return {"day": int(d["date"][8:]), "cls": cls, "lines": lines, "date": d["date"]}


def _calendar(days: list[dict[str, Any]]) -> list[list[dict[str, Any] | None]]:
    first = dt.date.fromisoformat(days[0]["date"])
    cells: list[dict[str, Any] | None] = [None] * first.weekday() + [_cell(d) for d in days]
    cells += [None] * (-len(cells) % 7)
    return [cells[i:i + 7] for i in range(0, len(cells), 7)]


def _measure(name: str, v: float) -> str:
    """A measure of the anomaly rule as people read it: money in currency units, rates and shares in %."""
    return money(round(v)) if name == "money_at_risk_micros" else f"{v:.2%}"


def _rate(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.3%}"


def month_page(book: Book, code_version: str) -> MonthPage:
    v, t = book.verdict(), book.totals()
    if v["closed"]:
        verdict = ("Closed", f"All {v['days']} days are reconciled and signed off, with no open adjustment.", "ok")
    else:
        verdict = ("Not closed", f"{v['reconciled']} of {v['days']} days reconciled, {v['signed_off']} signed off, "
                                 f"{len(v['open_adjustments'])} with an open adjustment.", "bad")
    waiting = [(what, ", ".join(ds) or "none") for what, ds in (
        ("missing (not reconciled)", v["missing"]), ("reconciled, not signed off", v["not_signed_off"]),
        ("open adjustments (restated after sign-off)", v["open_adjustments"]),
        ("drift flagged", v["flagged"]), ("anomalous", v["anomalous"]))]
    rec = [d for d in book.days if d["status"] != "missing"]
    days = Table(["date", "status", "version", "signed off", "billable clicks", "spend", "stream clicks",
                  "abs drift", "drift rate", "money at risk", "open adjustment", "anomalies"],
                 [[d["date"], d["status"], d["version"] or "", d["signed_off_version"] or "",
                   n(d["billable_clicks"]) if d["status"] != "missing" else "",
                   money(d["billable_spend_micros"]) if d["status"] != "missing" else "",
                   n(d["stream_clicks"]) if d["status"] != "missing" else "",
                   n(d["abs_delta_clicks"]) if d["status"] != "missing" else "", _rate(d["drift_rate"]),
                   money(d["abs_at_risk_micros"]) if d["status"] != "missing" else "",
                   (f"{signed(d['adjustment_clicks'])} clicks, {money(d['adjustment_spend_micros'])}"
                    if d["open_adjustment"] else ""), d["anomaly_flags"] or ""] for d in book.days],
                 frozenset({4, 5, 6, 7, 8, 9}), id="days")
    top = book.money[:TOP_ADS]
    top_money = Table(["ad", "billable clicks", "spend", "net drift", "money at risk"],
                      [[a["ad_id"], n(a["billable_clicks"]), money(a["spend_micros"]), signed(a["delta"]),
                        money(a["money_at_risk_micros"])] for a in top], frozenset({1, 2, 3, 4}),
                      sort_values=[[a["ad_id"], a["billable_clicks"], a["spend_micros"], a["delta"],
                                    a["money_at_risk_micros"]] for a in top], id="top-money")
    adjustments = Table(["date", "ad", "signed off", "current", "by", "clicks", "clicks delta", "spend",
                         "spend delta"],
                        [[r["date"], r["ad_id"], f"v{r['signed_off_version']}", f"v{r['current_version']}",
                          r["signed_off_by"], f"{n(r['signed_off_clicks'])} → {n(r['current_clicks'])}",
                          signed(r["clicks_delta"]),
                          f"{money(r['signed_off_spend_micros'])} → {money(r['current_spend_micros'])}",
                          money(r["spend_micros_delta"])] for r in book.adjustments],
                        frozenset({6, 8}), id="adjustments")
    anomalies = Table(["date", "measure", "value", "reference median", "allowed range", "reference days"],
                      [[date, m, _measure(m, x["value"]), _measure(m, x["median"]),
                        f"{_measure(m, x['low'])} … {_measure(m, x['high'])}", a["reference_days"]]
                       for date, a in sorted(book.anomalies.items()) for m, x in sorted(a["measures"].items())
                       if x["anomalous"]], frozenset({2, 3}), id="anomalies")
    not_judged = sum(1 for a in book.anomalies.values() if not a["judged"])
    return MonthPage(
        month=book.month, code_version=code_version, verdict=verdict, waiting=waiting,
        figures=[Figure("Billable clicks", n(t["billable_clicks"]), f"{len(rec)} reconciled days"),
                 Figure("Billable spend", money(t["billable_spend_micros"])),
                 Figure("Stream clicks", n(t["stream_clicks"])),
                 Figure("Absolute drift", f"{n(t['abs_delta_clicks'])} clicks",
                        f"money {money(t['abs_at_risk_micros'])}"),
                 Figure("Open adjustments", f"{signed(t['adjustment_clicks'])} clicks",
                        f"{money(t['adjustment_spend_micros'])} (positive: debit, negative: credit)"),
                 Figure("Anomalous days", n(len(v["anomalous"])), f"{not_judged} days without enough history")],
        weekdays=WEEKDAYS, calendar=_calendar(book.days), chart_days=chart_days(book.days),
        chart_drift=chart_drift(book.days), days=days, top_money=top_money, adjustments=adjustments,
        anomalies=anomalies)


def render_month(book: Book, code_version: str) -> str:
    return environment().get_template(TEMPLATE).render(p=month_page(book, code_version))

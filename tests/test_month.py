"""Issue 15, finance's month: sign-offs, post-close adjustments, the month's books, anomalies.

The truth comes from :mod:`billing.demo_days`' own bookkeeping (per day and ad, late files included),
never from the pipeline's SQL or the month code.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.config import ReconcileConfig
from billing.day.publish import Day
from billing.demo_days import add_late_file, generate_days, truth_per_ad
from billing.io.storage import LocalStore
from billing.money import money
from billing.month.anomalies import MAD_SCALE, AnomalyRule, judge
from billing.month.signoff import sign_offs
from billing.run.local import reconcile
from tests.browser import opened

FIRST = dt.date(2026, 11, 1)


def _day(i: int) -> dt.date:
    return FIRST + dt.timedelta(days=i - 1)


def _reconcile(root: Path, d: dt.date, out: Path | None = None) -> Any:
    return reconcile(ReconcileConfig(date=d, raw=str(root / "raw"), stream=str(root / "stream"),
                                     out=str(out or root / "out"), memory_limit=1536 << 20, threads=2))


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, [*args], catch_exceptions=False)


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def _summary(root: Path, d: dt.date) -> dict[str, Any]:
    day = Day(LocalStore(root / "out"), d)
    return day.read_json(day.require_current(), "summary.json")


# --- the rule, on numbers worked out by hand ------------------------------------------------------

def _fake(date: str, billable: int, abs_delta: int, money_micros: int, causes: dict[str, int]) -> dict[str, Any]:
    return {"date": date, "ledger": {"billable_clicks": billable},
            "drift": {"abs_delta_clicks": abs_delta, "money": {"abs_at_risk_micros": money_micros},
                      "by_cause": {c: {"keys": k, "clicks": k} for c, k in causes.items()}}}


def test_anomaly_rule_median_mad_floor_and_min_days() -> None:
    # reference drift rates 1.0%, 1.1%, 0.9%, 1.2%, 0.8%, 1.0%, 1.0%: median 1.0%, |x - m| 0,0.1,0.1,0.2,0.2,0,0 %
    # -> MAD 0.1% (scaled 0.14826%); k=5 -> allowed 1.0% ± 0.7413%
    ref = [_fake(f"2026-11-0{i + 1}", 10_000, c, 5_000_000, {"lost_events": c}) for i, c in
           enumerate((100, 110, 90, 120, 80, 100, 100))]
    ref.reverse()
    rule = AnomalyRule(floor_rel=0)  # the absolute floors only (0.1% for the rate): the MAD decides here
    inside = judge(_fake("2026-11-08", 10_000, 174, 5_000_000, {"lost_events": 174}), ref, rule)
    outside = judge(_fake("2026-11-08", 10_000, 175, 5_000_000, {"lost_events": 175}), ref, rule)
    m = inside["measures"]["drift_rate"]
    assert m["median"] == 0.01 and m["mad"] == round(0.001 * MAD_SCALE, 6)
    assert not inside["anomalous"] and outside["flags"] == ["drift_rate"]
    # identical quiet days: MAD 0; the floor (0.1%) keeps a 0.4% wobble quiet and 0.6% not
    flat = [_fake(f"2026-10-{i:02d}", 10_000, 100, 5_000_000, {"lost_events": 100}) for i in range(1, 9)]
    assert not judge(_fake("2026-11-01", 10_000, 140, 5_000_000, {"lost_events": 140}), flat, rule)["anomalous"]
    assert "drift_rate" in judge(_fake("2026-11-01", 10_000, 160, 5_000_000, {"lost_events": 160}), flat,
                                 rule)["flags"]
    # the default relative floor (a quarter of the median): 1% ± 5 × 0.25% -> up to 2.25%; money alike
    rule = AnomalyRule()
    assert not judge(_fake("2026-11-01", 10_000, 225, 11_250_000, {"lost_events": 225}), flat, rule)["anomalous"]
    assert judge(_fake("2026-11-01", 10_000, 226, 11_250_001, {"lost_events": 226}), flat, rule)["flags"] == [
        "drift_rate", "money_at_risk_micros"]
    # a new cause taking the whole drift is a share anomaly; too few reference days: not judged
    mix = judge(_fake("2026-11-01", 10_000, 100, 5_000_000, {"phantom_window": 100}), flat, rule)
    assert {"share:lost_events", "share:phantom_window"} <= set(mix["flags"])
    few = judge(_fake("2026-11-01", 10_000, 900, 5_000_000, {"lost_events": 900}), flat[:6], rule)
    assert not few["judged"] and not few["anomalous"]
    assert statistics.median([0.0, 1.0]) == 0.5  # (the rule's median of an even count is the mean of the middle two)


def test_anomaly_settings_come_from_the_config_layers(tmp_path: Path) -> None:
    toml = tmp_path / "c.toml"
    toml.write_text("anomaly_k = 3\nanomaly_floor_money = 5000\n")
    cfg = ReconcileConfig.load({"date": "2026-11-01", "raw": "r", "stream": "s", "out": "o"},
                               env={"BILLING_ANOMALY_WINDOW": "14"}, file=toml)
    rule = AnomalyRule.from_settings(cfg)
    assert (rule.k, rule.window, rule.floor_money, rule.min_days) == (3.0, 14, 5000, 7)
    r = _run("month", "--month", "2026-13", "--out", str(tmp_path))
    assert r.exit_code == 2 and "not a month" in r.output


# --- one reconciled day: sign-off rules -----------------------------------------------------------

@pytest.fixture
def one_day(tmp_path: Path) -> Path:
    generate_days(tmp_path, FIRST, 1, rows=1000, seed=7)
    _reconcile(tmp_path, FIRST)
    return tmp_path


def test_sign_off_refusals_immutability_and_history(one_day: Path) -> None:
    out = str(one_day / "out")
    day = ["--date", FIRST.isoformat(), "--out", out]
    r = _run("sign-off", *day, "--by", "alice", "--version", "2")
    assert r.exit_code == 2 and "no such committed version" in r.output and len(r.output.splitlines()) == 1
    r = _run("sign-off", "--date", "2026-11-02", "--out", out, "--by", "alice")
    assert r.exit_code == 2 and "no committed version" in r.output
    r = _run("sign-off", *day, "--by", "alice", "--note", "invoice run 1")
    assert r.exit_code == 0, r.output
    folder = one_day / "out" / f"dt={FIRST}" / "_signoff"
    first = (folder / "s=000001.json").read_bytes()
    r = _run("sign-off", *day, "--by", "bob")
    assert r.exit_code == 0
    assert (folder / "s=000001.json").read_bytes() == first  # never overwritten
    assert [(s.seq, s.by, s.version) for s in sign_offs(Day(LocalStore(one_day / "out"), FIRST))] == [
        (1, "alice", 1), (2, "bob", 1)]
    assert not LocalStore(one_day / "out").create_exclusive(f"dt={FIRST}/_signoff/s=000001.json", b"{}")
    hist = json.loads(_run("history", *day, "--json").output)
    assert [(s["by"], s["in_force"]) for s in hist[0]["sign_offs"]] == [("alice", False), ("bob", True)]
    assert "signed off by bob" in _run("history", *day).output
    # a version whose files no longer match its manifest cannot be signed off
    (one_day / "out" / f"dt={FIRST}" / "v=1" / "totals.parquet").write_bytes(b"tampered")
    r = _run("sign-off", *day, "--by", "carol")
    assert r.exit_code == 2 and "no longer matches its manifest" in r.output
    assert len(sign_offs(Day(LocalStore(one_day / "out"), FIRST))) == 2


def test_month_with_missing_days_still_builds_and_names_them(one_day: Path) -> None:
    r = _run("month", "--month", "2026-11", "--out", str(one_day / "out"))
    assert r.exit_code == 0, r.output
    days = _csv(one_day / "out" / "month=2026-11" / "v=1" / "month_days.csv")
    assert len(days) == 30 and days[0]["status"] != "missing"
    assert [d["date"] for d in days if d["status"] == "missing"] == [_day(i).isoformat() for i in range(2, 31)]
    assert "missing: 2026-11-02, 2026-11-03" in r.output


@pytest.mark.integration
def test_sign_off_and_month_on_s3(s3: Any, tmp_path: Path) -> None:
    generate_days(tmp_path, FIRST, 1, rows=1000, seed=3)
    raw, stream = s3.upload_tree(tmp_path / "raw", "raw"), s3.upload_tree(tmp_path / "stream", "stream")
    out = f"s3://{s3.bucket}/out"
    reconcile(ReconcileConfig(date=FIRST, raw=raw, stream=stream, out=out, memory_limit=1536 << 20, threads=2))
    day = ["--date", FIRST.isoformat(), "--out", out]
    assert _run("sign-off", *day, "--by", "alice").exit_code == 0
    assert _run("sign-off", *day, "--by", "bob").exit_code == 0
    keys = [k for k in s3.keys("out/") if "/_signoff/" in k]
    assert keys == [f"out/dt={FIRST}/_signoff/s=000001.json", f"out/dt={FIRST}/_signoff/s=000002.json"]
    assert json.loads(s3.read(keys[0]))["by"] == "alice"
    r = _run("month", "--month", "2026-11", "--out", out)
    assert r.exit_code == 0, r.output
    month_days = s3.read("out/month=2026-11/v=1/month_days.csv").decode("utf-8-sig").splitlines()
    assert month_days[1].startswith(f"{FIRST},") and ",1,1," in month_days[1]
    assert "unchanged, still version 1" in _run("month", "--month", "2026-11", "--out", out).output
    s3.client.put_object(Bucket=s3.bucket, Key=f"out/dt={FIRST}/v=1/drift.parquet", Body=b"tampered")
    r = _run("sign-off", *day, "--by", "carol")
    assert r.exit_code == 2 and "no longer matches its manifest" in r.output


# --- a planted month: reconcile, sign off, restate, close -----------------------------------------

SIGNED = (2, 4, 9)
RESTATED = 4
SPIKE = 9
LATE = {2003: 4, 2011: 2, 2039: 1}  # late clicks per ad added to the restated day (2039 may have none before)


@pytest.fixture(scope="module")
def month_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten planted days (day 9 with ten times the drift), each reconciled; days 2, 4 and 9 signed off
    (day 2's sign-off by a hostile name); day 4 then restated by a late file and reconciled again."""
    root = tmp_path_factory.mktemp("month")
    generate_days(root, FIRST, 10, rows=2000, seed=11, spike_days=(_day(SPIKE),))
    for i in range(1, 11):
        _reconcile(root, _day(i))
    out = str(root / "out")
    for i in SIGNED:
        by = "<script>alert('x')</script>" if i == 2 else "alice@example.com"
        assert _run("sign-off", "--date", _day(i).isoformat(), "--out", out, "--by", by).exit_code == 0
    add_late_file(root, _day(RESTATED), LATE, seed=11)
    assert _reconcile(root, _day(RESTATED)).commit.version == 2
    assert _run("month", "--month", "2026-11", "--out", out).exit_code == 0
    return root


@pytest.mark.slow
def test_month_totals_are_the_sum_of_the_days_per_ad(month_lake: Path) -> None:
    folder = month_lake / "out" / "month=2026-11" / "v=1"
    ads = _csv(folder / "month_ads.csv")
    assert list(ads[0]) == ["ad_id", "billable_clicks", "billable_spend_micros", "signed_off_clicks",
                            "signed_off_spend_micros", "adjustment_clicks", "adjustment_spend_micros"]
    truth: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for i in range(1, 11):
        for ad, (c, s) in truth_per_ad(month_lake, _day(i)).items():
            truth[ad][0] += c
            truth[ad][1] += s
    assert {int(a["ad_id"]): [int(a["billable_clicks"]), int(a["billable_spend_micros"])] for a in ads} == truth
    days = _csv(folder / "month_days.csv")
    assert list(days[0])[:10] == ["date", "status", "version", "signed_off_version", "billable_clicks",
                                  "billable_spend_micros", "stream_clicks", "abs_delta_clicks", "drift_rate",
                                  "anomalous"]
    for i in range(1, 11):
        t = truth_per_ad(month_lake, _day(i))
        row = days[i - 1]
        assert int(row["billable_clicks"]) == sum(c for c, _ in t.values())
        assert int(row["billable_spend_micros"]) == sum(s for _, s in t.values())
    assert [d["signed_off_version"] for d in days[:10]] == ["", "1", "", "1", "", "", "", "", "1", ""]
    assert days[RESTATED - 1]["version"] == "2" and days[RESTATED - 1]["open_adjustment"] == "true"
    assert all(d["status"] == "missing" for d in days[10:]) and len(days) == 30


@pytest.mark.slow
def test_adjustments_are_the_planted_late_clicks_exactly(month_lake: Path, tmp_path: Path) -> None:
    late = json.loads((month_lake / "truth" / f"dt={_day(RESTATED)}.json").read_text())["late_files"][0]["ads"]
    r = _run("adjustments", "--month", "2026-11", "--out", str(month_lake / "out"), "--csv", str(tmp_path / "a.csv"))
    assert r.exit_code == 0, r.output
    rows = _csv(tmp_path / "a.csv")
    assert {int(x["ad_id"]): (int(x["clicks_delta"]), int(x["spend_micros_delta"])) for x in rows} == {
        int(a): (c, s) for a, (c, s) in late.items()}
    assert {x["date"] for x in rows} == {_day(RESTATED).isoformat()}
    assert {(x["signed_off_version"], x["current_version"]) for x in rows} == {("1", "2")}
    for x in rows:
        assert int(x["current_clicks"]) - int(x["signed_off_clicks"]) == int(x["clicks_delta"])
    # the restating run said so in its summary and its report
    s = _summary(month_lake, _day(RESTATED))["restates_signed_off"]
    assert s == {"signed_off_version": 1, "by": "alice@example.com", "at": s["at"], "ads": len(late),
                 "net_clicks_delta": sum(c for c, _ in late.values()),
                 "net_spend_micros_delta": sum(sp for _, sp in late.values())}
    report = (month_lake / "out" / f"dt={_day(RESTATED)}" / "v=2" / "report.html").read_text()
    assert "Restates a signed-off day" in report and money(s["net_spend_micros_delta"]) in report
    assert _summary(month_lake, _day(3))["restates_signed_off"] is None
    # month_ads.csv: the adjustment per ad over signed-off days is the same difference
    ads = {int(a["ad_id"]): a for a in _csv(month_lake / "out" / "month=2026-11" / "v=1" / "month_ads.csv")}
    for ad, (c, sp) in late.items():
        assert (int(ads[int(ad)]["adjustment_clicks"]), int(ads[int(ad)]["adjustment_spend_micros"])) == (c, sp)
    assert sum(int(a["adjustment_clicks"]) for a in ads.values()) == sum(c for c, _ in late.values())


@pytest.mark.slow
def test_anomaly_flags_the_spike_day_only(month_lake: Path) -> None:
    flagged = [i for i in range(1, 11) if _summary(month_lake, _day(i))["anomalies"]["anomalous"]]
    assert flagged == [SPIKE]
    assert "drift_rate" in _summary(month_lake, _day(SPIKE))["anomalies"]["flags"]
    assert [i for i in range(1, 11) if not _summary(month_lake, _day(i))["anomalies"]["judged"]] == list(range(1, 8))
    m = json.loads((month_lake / "out" / "month=2026-11" / "v=1" / "month.json").read_text())
    assert [d for d, a in m["anomalies"].items() if a["anomalous"]] == [_day(SPIKE).isoformat()]
    spike = _summary(month_lake, _day(SPIKE))
    assert "Anomalous against 8 reconciled days" in (
        month_lake / "out" / f"dt={_day(SPIKE)}" / "v=1" / "report.html").read_text()
    assert spike["anomalies"]["reference_days"] == 8


@pytest.mark.slow
def test_a_quiet_month_has_no_anomalous_day(tmp_path: Path) -> None:
    generate_days(tmp_path, FIRST, 14, rows=2000, seed=5)
    for i in range(1, 15):
        _reconcile(tmp_path, _day(i))
    judged = [_summary(tmp_path, _day(i))["anomalies"] for i in range(1, 15)]
    assert sum(a["judged"] for a in judged) == 7
    assert [a["flags"] for a in judged if a["anomalous"]] == []
    r = _run("month", "--month", "2026-11", "--out", str(tmp_path / "out"), "--json")
    assert json.loads(r.output)["verdict"]["anomalous"] == []


@pytest.mark.slow
@pytest.mark.integration
def test_month_html_in_headless_chromium(month_lake: Path, tmp_path: Path) -> None:
    from tests.test_report import Refs

    page_file = month_lake / "out" / "month=2026-11" / "v=1" / "month.html"
    html = page_file.read_text(encoding="utf-8")
    refs = Refs()
    refs.feed(html)
    assert not {"link", "img", "iframe", "object", "embed"} & refs.tags and not refs.refs
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert html.count("<script>") == 1
    m = json.loads((page_file.parent / "month.json").read_text())
    with opened(page_file) as seen:
        page = seen.page
        text = page.inner_text("body")
        calendar = page.inner_text("#calendar")
        adjustments = page.inner_text("#adjustments")
        shot = tmp_path / "month.png"
        page.screenshot(path=str(shot), full_page=True)
    assert seen.problems == [] and seen.requests == [page_file.as_uri()]
    assert shot.stat().st_size > 50_000
    assert "Not closed" in text and f"{m['totals']['billable_clicks']:,}" in text
    assert money(m["totals"]["billable_spend_micros"]) in text
    assert "<script>alert('x')</script>" in text  # shown as text, never run
    assert "open adjustment" in calendar and "missing" in calendar and "anomalous" in calendar
    for ad in LATE:
        assert str(ad) in adjustments
    assert _day(SPIKE).isoformat() in page_file.read_text() and "drift_rate" in text


@pytest.mark.slow
def test_month_is_versioned_unchanged_on_rerun_and_closes_the_adjustment(month_lake: Path) -> None:
    """Last in this file: it signs off the restated day (a copy of the lake would name other input paths in
    its reports, so re-runs there would not be unchanged)."""
    root = month_lake
    out = str(root / "out")
    before = {p.name: p.read_bytes() for p in (root / "out" / "month=2026-11" / "v=1").iterdir()}
    r = _run("month", "--month", "2026-11", "--out", out)
    assert "unchanged, still version 1" in r.output
    assert not (root / "out" / "month=2026-11" / "v=2").exists()
    # a re-run of a signed-off day with nothing new keeps its version (and its sign-off in force)
    assert _reconcile(root, _day(2)).commit.unchanged
    # signing off the restated version closes the adjustment; the month commits version 2
    assert _run("sign-off", "--date", _day(RESTATED).isoformat(), "--out", out, "--by", "bob").exit_code == 0
    assert json.loads(_run("adjustments", "--month", "2026-11", "--out", out, "--json").output)["adjustments"] == []
    assert _run("month", "--month", "2026-11", "--out", out).exit_code == 0
    v2 = root / "out" / "month=2026-11" / "v=2"
    assert {p.name: p.read_bytes() for p in (root / "out" / "month=2026-11" / "v=1").iterdir()} == before
    manifest = json.loads((v2 / "manifest.json").read_text())
    assert manifest["previous_version"] == 1 and manifest["days"][_day(RESTATED).isoformat()]["version"] == 2
    day4 = json.loads((root / "out" / f"dt={_day(RESTATED)}" / "v=2" / "manifest.json").read_text())
    assert manifest["days"][_day(RESTATED).isoformat()]["outputs"] == {k: v["sha256"] for k, v in
                                                                       day4["outputs"].items()}
    days = _csv(v2 / "month_days.csv")
    assert days[RESTATED - 1]["signed_off_version"] == "2" and days[RESTATED - 1]["open_adjustment"] == "false"
    assert len(sign_offs(Day(LocalStore(root / "out"), _day(RESTATED)))) == 2  # the first stays in the history
    # still one re-run later: unchanged
    assert _reconcile(root, _day(RESTATED)).commit.unchanged

"""Issue 15, finance's month: sign-offs, post-close adjustments, the month's books, anomalies.

The truth comes from :mod:`billing.demo_days`' own bookkeeping (per day and ad, late files included),
never from the pipeline's SQL or the month code.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
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

FIRST = dt.date(2026, 11, 1)


def _day(i: int) -> dt.date:
    return FIRST + dt.timedelta(days=i - 1)


def _reconcile(root: Path, d: dt.date, out: Path | None = None) -> Any:
    return reconcile(ReconcileConfig(date=d, raw=str(root / "raw"), stream=str(root / "stream"),
                                     out=str(out or root / "out"), memory_limit=1 << 30, threads=2))


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
    rule = AnomalyRule()
    inside = judge(_fake("2026-11-08", 10_000, 174, 5_000_000, {"lost_events": 174}), ref, rule)
    outside = judge(_fake("2026-11-08", 10_000, 175, 5_000_000, {"lost_events": 175}), ref, rule)
    m = inside["measures"]["drift_rate"]
    assert m["median"] == 0.01 and m["mad"] == round(0.001 * MAD_SCALE, 6)
    assert not inside["anomalous"] and outside["flags"] == ["drift_rate"]
    # identical quiet days: MAD 0, the floor (0.1%) keeps a 0.4% wobble quiet and 0.6% not
    flat = [_fake(f"2026-10-{i:02d}", 10_000, 100, 5_000_000, {"lost_events": 100}) for i in range(1, 9)]
    assert not judge(_fake("2026-11-01", 10_000, 140, 5_000_000, {"lost_events": 140}), flat, rule)["anomalous"]
    assert "drift_rate" in judge(_fake("2026-11-01", 10_000, 160, 5_000_000, {"lost_events": 160}), flat,
                                 rule)["flags"]
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
    reconcile(ReconcileConfig(date=FIRST, raw=raw, stream=stream, out=out, memory_limit=1 << 30, threads=2))
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

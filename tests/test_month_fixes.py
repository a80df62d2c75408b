"""Fix round for closing a month: tampered day files and sign-offs, broken records, control characters.

Every check goes through the CLI, the way the outsider who reported them used it. The truth is what the
test itself wrote (the doubled clicks, the edited record), never the month code.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.config import ReconcileConfig
from billing.demo_days import _prices, add_late_file, generate_days
from billing.money import money
from billing.run.local import reconcile

FIRST = dt.date(2026, 11, 1)
SECOND = FIRST + dt.timedelta(days=1)


def _reconcile(root: Path, d: dt.date, **settings: Any) -> Any:
    return reconcile(ReconcileConfig(date=d, raw=str(root / "raw"), stream=str(root / "stream"),
                                     out=str(root / "out"), memory_limit=1536 << 20, threads=2, **settings))


def _run(*args: str) -> Any:
    return CliRunner().invoke(cli, [*args], catch_exceptions=False)


def _month(root: Path, *extra: str) -> Any:
    return _run("month", "--month", "2026-11", "--out", str(root / "out"), *extra)


def _adjustments(root: Path, *extra: str) -> Any:
    return _run("adjustments", "--month", "2026-11", "--out", str(root / "out"), *extra)


def _sign(root: Path, d: dt.date, *extra: str) -> Any:
    return _run("sign-off", "--date", d.isoformat(), "--out", str(root / "out"), *extra)


def _refused(r: Any, *names: str) -> None:
    assert r.exit_code == 2, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    for n in names:
        assert n in r.output, r.output


def _odd_priced() -> int:
    """An ad of the demo whose price is not a whole number of cents' tens (rounding to cents would hide it)."""
    return next(a for a, p in sorted(_prices(5).items()) if p % 10_000)


@pytest.fixture
def restated(tmp_path: Path) -> Path:
    """Two days; day 1 signed off at version 1, then restated by late clicks (version 2: an open adjustment)."""
    generate_days(tmp_path, FIRST, 2, rows=1000, seed=5)
    for d in (FIRST, SECOND):
        _reconcile(tmp_path, d)
    assert _sign(tmp_path, FIRST, "--by", "alice").exit_code == 0
    add_late_file(tmp_path, FIRST, {1: 3, 2: 4, _odd_priced(): 1}, seed=5)
    assert _reconcile(tmp_path, FIRST).commit.version == 2
    return tmp_path


def _day_dir(root: Path, d: dt.date) -> Path:
    return root / "out" / f"dt={d}"


@pytest.mark.slow
def test_a_day_file_rewritten_after_publishing_is_refused(restated: Path) -> None:
    assert _month(restated).exit_code == 0
    totals = _day_dir(restated, FIRST) / "v=2" / "totals.parquet"
    original = totals.read_bytes()
    t = pq.read_table(totals)
    i = t.schema.get_field_index("clicks")
    pq.write_table(t.set_column(i, t.schema.field(i), pc.multiply(t.column(i), 2)), totals)  # valid, clicks × 2
    _refused(_month(restated), str(FIRST), "totals.parquet", "no longer matches its manifest")
    _refused(_adjustments(restated), str(FIRST), "totals.parquet", "no longer matches its manifest")
    totals.write_bytes(original[: len(original) // 2])  # truncated: no ArrowInvalid, the hash says it first
    _refused(_month(restated), str(FIRST), "totals.parquet")
    totals.write_bytes(original)
    summary = _day_dir(restated, SECOND) / "v=1" / "summary.json"
    s = json.loads(summary.read_text())
    s["ledger"]["billable_clicks"] += 1
    summary.write_text(json.dumps(s))
    _refused(_month(restated), str(SECOND), "summary.json")
    summary.unlink()
    _refused(_month(restated), str(SECOND), "summary.json", "is missing")
    # nothing was published by the refused runs
    assert sorted(p.name for p in (restated / "out" / "month=2026-11").glob("v=*")) == ["v=1"]


def _signoff_file(root: Path, seq: int = 1) -> Path:
    return _day_dir(root, FIRST) / "_signoff" / f"s={seq:06d}.json"


@pytest.mark.slow
@pytest.mark.parametrize("edit", ["version 2", "bad hash", "version 9", "garbage", "empty"])
def test_an_edited_or_broken_sign_off_is_refused_naming_it(restated: Path, edit: str) -> None:
    f = _signoff_file(restated)
    rec = json.loads(f.read_text())
    body = {"version 2": json.dumps(rec | {"version": 2}), "bad hash": json.dumps(rec | {"manifest_sha256": "0" * 64}),
            "version 9": json.dumps(rec | {"version": 9}), "garbage": "{garbage", "empty": "{}"}[edit]
    f.write_text(body)
    for r in (_month(restated), _adjustments(restated),
              _run("history", "--date", FIRST.isoformat(), "--out", str(restated / "out"))):
        _refused(r, "s=000001.json")
        assert "Failed to open" not in r.output


@pytest.mark.slow
def test_a_genuine_sign_off_still_counts(restated: Path) -> None:
    r = _adjustments(restated, "--json")
    assert r.exit_code == 0, r.output
    days = json.loads(r.output)["days"]
    assert [(d["date"], d["signed_off_version"], d["current_version"], d["ads"], d["net_clicks_delta"])
            for d in days] == [(FIRST.isoformat(), 1, 2, 3, 8)]


@pytest.mark.slow
def test_new_ads_have_spend_0_and_deltas_are_exact(restated: Path, tmp_path: Path) -> None:
    price = _prices(5)[_odd_priced()]
    rows = {r["ad_id"]: r for r in json.loads(_adjustments(restated, "--json").output)["adjustments"]}
    # ads 1 and 2 had no clicks in the signed-off version: 0 clicks and 0 spend there, never null
    assert [(rows[a]["signed_off_clicks"], rows[a]["signed_off_spend_micros"], rows[a]["current_spend_micros"])
            for a in (1, 2)] == [(0, 0, 1_500_000), (0, 0, 2_000_000)]
    r = _adjustments(restated, "--csv", str(tmp_path / "a.csv"))
    assert r.exit_code == 0, r.output
    assert "n/a" not in r.output and "n/a" not in (tmp_path / "a.csv").read_text(encoding="utf-8-sig")
    assert f"(+{money(price, 6)})" in r.output  # the odd-priced ad's one late click, to the micro
    assert f"net +8 clicks, +{money(3_500_000 + price, 6)}" in r.output
    assert _month(restated).exit_code == 0
    with open(restated / "out" / "month=2026-11" / "v=1" / "month_ads.csv", encoding="utf-8-sig") as f:
        ads = {int(a["ad_id"]): a for a in csv.DictReader(f)}
    assert [(ads[a]["signed_off_clicks"], ads[a]["signed_off_spend_micros"]) for a in (1, 2)] == [("0", "0")] * 2


def test_control_characters_in_by_and_note_are_refused(tmp_path: Path) -> None:
    generate_days(tmp_path, FIRST, 1, rows=300, seed=3)
    _reconcile(tmp_path, FIRST)
    forged = "alice at 2026-11-29 (in force)\n         signed off by mallory"
    _refused(_sign(tmp_path, FIRST, "--by", forged), "--by", "control characters")
    _refused(_sign(tmp_path, FIRST, "--by", "bob", "--note", "ok\x1b[2J"), "--note", "control characters")
    assert not (_day_dir(tmp_path, FIRST) / "_signoff").exists() or not any(
        (_day_dir(tmp_path, FIRST) / "_signoff").iterdir())
    # a stored value with control characters (written by hand, hash intact) is printed escaped
    assert _sign(tmp_path, FIRST, "--by", "carol", "--note", "fine").exit_code == 0
    f = _day_dir(tmp_path, FIRST) / "_signoff" / "s=000001.json"
    f.write_text(json.dumps(json.loads(f.read_text()) | {"by": forged, "note": "x\x1b[31m"}))
    r = _run("history", "--date", FIRST.isoformat(), "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    assert [line.strip()[:13] for line in r.output.splitlines()[2:]] == ["signed off by"] and "\x1b" not in r.output
    assert "\\n" in r.output and "\\x1b[31m" in r.output


@pytest.mark.slow
def test_a_rerun_that_changes_no_money_leaves_no_open_adjustment(tmp_path: Path) -> None:
    generate_days(tmp_path, FIRST, 1, rows=1000, seed=9)
    _reconcile(tmp_path, FIRST)
    assert _sign(tmp_path, FIRST, "--by", "alice").exit_code == 0
    assert _reconcile(tmp_path, FIRST, tolerance_abs=1_000_000).commit.version == 2
    assert _reconcile(tmp_path, FIRST).commit.version == 3
    r = _adjustments(tmp_path, "--json")
    assert r.exit_code == 0 and json.loads(r.output)["days"] == [], r.output
    r = _month(tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["verdict"]["open_adjustments"] == []


@pytest.mark.parametrize(("env", "value"), [
    ("BILLING_ANOMALY_K", "-1"), ("BILLING_ANOMALY_K", "0"), ("BILLING_ANOMALY_K", "nan"),
    ("BILLING_ANOMALY_WINDOW", "0"), ("BILLING_ANOMALY_MIN_DAYS", "0"), ("BILLING_ANOMALY_FLOOR_RATE", "inf"),
    ("BILLING_ANOMALY_FLOOR_MONEY", "-1"), ("BILLING_ANOMALY_FLOOR_REL", "-0.5")])
def test_bad_anomaly_settings_are_refused_naming_the_variable(tmp_path: Path, env: str, value: str) -> None:
    out = str(tmp_path / "out")
    month = CliRunner().invoke(cli, ["month", "--month", "2026-11", "--out", out], env={env: value})
    run = CliRunner().invoke(cli, ["reconcile", "--date", "2026-11-01", "--raw", str(tmp_path / "raw"),
                                   "--stream", str(tmp_path / "stream"), "--out", out], env={env: value})
    for r in (month, run):
        _refused(r, env)
        assert "--anomaly" not in r.output and "unexpected" not in r.output
    assert not (tmp_path / "out").exists()  # refused before any work


def test_a_bad_anomaly_key_in_the_config_file_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "billing.toml"
    cfg.write_text("anomaly_min_days = 0\n")
    r = _run("month", "--config", str(cfg), "--month", "2026-11", "--out", str(tmp_path / "out"))
    _refused(r, "anomaly_min_days", str(cfg))
    assert "BILLING_" not in r.output and "--anomaly" not in r.output
    cfg.write_text("anomaly_k = 2.5\nanomaly_window = 3\n")
    assert _run("month", "--config", str(cfg), "--month", "2026-11", "--out", str(tmp_path / "out")).exit_code == 0


def test_a_concurrent_month_build_names_the_month(tmp_path: Path) -> None:
    from billing.io.storage import LocalStore
    from billing.month.build import month_folder

    (tmp_path / "out").mkdir()
    with month_folder(LocalStore(tmp_path / "out"), FIRST).lock("other-run"):
        r = _month(tmp_path)
    _refused(r, "the month 2026-11 is being built by another run", "month=2026-11/_lock.json")
    assert "reconciled" not in r.output and "2026-11-01" not in r.output
    assert _month(tmp_path).exit_code == 0  # released: the next build goes through

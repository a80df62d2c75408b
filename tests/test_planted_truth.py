"""Exactness: the pipeline against the truth the demo generator planted and recorded in plain Python."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from billing.config import ReconcileConfig
from billing.run.local import reconcile
from tests.conftest import DEMO_DATE

pytestmark = pytest.mark.slow

DRIFT_COLUMNS = ("batch_clicks", "stream_clicks", "delta", "status", "flagged", "cause", "money_at_risk_micros")


def check_against_truth(lake: Path, out: Path, **cfg) -> dict:
    result = reconcile(ReconcileConfig(date=DEMO_DATE, raw=str(lake / "raw"), stream=str(lake / "stream"),
                                       out=str(out), memory_limit=2 << 30, **cfg))
    truth = json.loads((lake / "truth" / "truth.json").read_text())
    vdir = Path(result.commit.url)
    s = result.summary
    assert s["ledger"] == truth["ledger"]
    assert s["stream"] == truth["stream"]
    assert result.exit_code == truth["expected_exit_code"] == s["exit_code"]
    assert (s["drift"]["keys"], s["drift"]["flagged"]) == (truth["drift"]["keys"], truth["drift"]["flagged"])
    assert s["drift"]["by_cause"] == truth["drift"]["by_cause"]
    assert s["drift"]["unexplained"] == {"keys": 0, "clicks": 0}
    assert pq.read_table(vdir / "totals.parquet").to_pylist() == pq.read_table(
        lake / "truth" / "totals.parquet").to_pylist()
    got = pq.read_table(vdir / "drift.parquet").to_pylist()
    want = pq.read_table(lake / "truth" / "drift.parquet").to_pylist()
    assert [(g["ad_id"], g["window_start"]) for g in got] == [(w["ad_id"], w["window_start"]) for w in want]
    mismatches = [(g, w) for g, w in zip(got, want, strict=True) if any(g[c] != w[c] for c in DRIFT_COLUMNS)]
    assert not mismatches, mismatches[:3]
    return s


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_demo_lake_matches_planted_truth(demo_factory, tmp_path: Path, seed: int) -> None:
    lake = demo_factory(seed)
    s = check_against_truth(lake, tmp_path / "out")
    # every cause was planted and came back
    assert set(s["drift"]["by_cause"]) == {
        "raw_duplicates_counted", "late_beyond_stream_watermark", "sink_duplicate_rows", "window_boundary_shift",
        "replay_overcount", "lost_events", "missing_window", "phantom_window"}
    assert s["ledger"]["conflicting_click_ids"] > 0 and s["ledger"]["clicks_out_of_day"] > 0
    assert all(n > 0 for n in s["ledger"]["invalid_by_reason"].values()) and len(
        s["ledger"]["invalid_by_reason"]) == 6


def test_dt_only_layout_matches_planted_truth(demo_factory, tmp_path: Path) -> None:
    check_against_truth(demo_factory(4, layout="day"), tmp_path / "out")


def test_many_slices_match_planted_truth(demo_factory, tmp_path: Path) -> None:
    check_against_truth(demo_factory(5), tmp_path / "out", slices=7)


def test_parallel_slices_match_planted_truth(demo_factory, tmp_path: Path) -> None:
    check_against_truth(demo_factory(6), tmp_path / "out", slices=4, workers=2)


@pytest.mark.parametrize("workers", [1, 2])
def test_stragglers_set_aside_match_planted_truth(demo_factory, tmp_path: Path, monkeypatch, caplog,
                                                  workers: int) -> None:
    """Slices reading only the row groups that arrived around their range, plus the set-aside
    stragglers, give the planted truth and the very bytes of slices reading the lake directly."""
    import hashlib
    import logging

    from billing.day.outputs import CONTENT_FILES
    from billing.slice import plan as slice_plan

    lake = demo_factory(7)
    monkeypatch.setattr(slice_plan, "STRAGGLERS_FROM_AMPLIFICATION", float("inf"))
    with caplog.at_level(logging.INFO, logger="billing.run.local"):
        direct = check_against_truth(lake, tmp_path / "direct", slices=6, workers=workers)
    assert "in 6 slice(s)" in caplog.text  # the pipeline's log is seen here...
    assert "set aside" not in caplog.text  # ...and it set nothing aside
    caplog.clear()
    monkeypatch.setattr(slice_plan, "STRAGGLERS_FROM_AMPLIFICATION", 0.0)
    with caplog.at_level(logging.INFO, logger="billing.run.local"):
        aside = check_against_truth(lake, tmp_path / "aside", slices=6, workers=workers)
    assert "set aside" in caplog.text
    assert aside == direct
    for name in CONTENT_FILES:
        a, b = (hashlib.sha256((tmp_path / o / f"dt={DEMO_DATE}" / "v=1" / name).read_bytes()).hexdigest()
                for o in ("direct", "aside"))
        assert a == b, name

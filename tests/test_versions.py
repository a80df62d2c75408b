"""Versioned publishing: re-runs, restatements, history and version diffs."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from billing.cli import cli
from billing.day.outputs import OUTPUT_FILES
from billing.run.local import reconcile
from tests.lake import at, click, config, write_raw, write_stream


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def small_lake(tmp: Path) -> None:
    write_raw(tmp / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(at(10), seq=1, ad=1, cost=10), click(at(10), seq=2, ad=2, cost=20)])
    write_raw(tmp / "raw", "dt=2026-11-27/hour=02/a.parquet",  # arrives at 02:30 the next day
              [click(at(23, 50), seq=3, ad=2, cost=30, ingest=at(26, 30))])
    write_stream(tmp / "stream", [(1, at(10), 1), (2, at(10), 1)])


def test_rerun_is_byte_identical_and_commits_nothing(tmp_path: Path, demo_lake: Path) -> None:
    cfg = config(tmp_path, raw=str(demo_lake / "raw"), stream=str(demo_lake / "stream"))
    first = reconcile(cfg)
    v1 = Path(first.commit.url)
    hashes = {n: sha(v1 / n) for n in OUTPUT_FILES}
    second = reconcile(cfg)
    assert second.commit.unchanged and second.commit.version == 1
    assert second.exit_code == first.exit_code == 3
    day = tmp_path / "out/dt=2026-11-26"
    assert sorted(p.name for p in day.iterdir()) == ["_claims", "_current.json", "v=1"]
    assert sorted(p.name for p in (day / "_claims").iterdir()) == ["v=1.json"]  # no number claimed for nothing
    # run into a fresh OUT and compare the bytes
    third = reconcile(config(tmp_path, raw=str(demo_lake / "raw"), stream=str(demo_lake / "stream"),
                             out=str(tmp_path / "again"), threads=1))
    assert {n: sha(Path(third.commit.url) / n) for n in OUTPUT_FILES} == hashes
    manifest = json.loads((v1 / "manifest.json").read_text())
    assert {n: manifest["outputs"][n]["sha256"] for n in OUTPUT_FILES} == hashes


def test_restatement_commits_next_version_and_keeps_the_old(tmp_path: Path) -> None:
    small_lake(tmp_path)
    first = reconcile(config(tmp_path))
    assert first.summary["ledger"]["billable_clicks"] == 2
    second = reconcile(config(tmp_path, lateness=dt.timedelta(hours=3)))
    assert (second.commit.version, second.commit.unchanged) == (2, False)
    day = tmp_path / "out/dt=2026-11-26"
    assert json.loads((day / "_current.json").read_text()) == {"version": 2, "dir": "v=2"}
    old = pq.read_table(day / "v=1/totals.parquet").to_pylist()  # the old version is still there
    assert [(r["ad_id"], r["clicks"]) for r in old] == [(1, 1), (2, 1)]
    m2 = json.loads((day / "v=2/manifest.json").read_text())
    m1 = json.loads((day / "v=1/manifest.json").read_text())
    assert m2["previous_version"] == 1 and m2["version"] == 2
    assert m2["previous_outputs"] == {k: v["sha256"] for k, v in m1["outputs"].items()}
    assert m2["restatement"] == [{"ad_id": 2, "clicks_before": 1, "clicks_after": 2,
                                  "spend_micros_before": 20, "spend_micros_after": 50}]
    assert m1["restatement"] is None

    runner = CliRunner()
    r = runner.invoke(cli, ["history", "--date", "2026-11-26", "--out", str(tmp_path / "out"), "--json"])
    assert r.exit_code == 0, r.output
    hist = json.loads(r.stdout)
    assert [(h["version"], h["current"], h["billable_clicks"], h["restated_ads"]) for h in hist] == [
        (2, True, 3, 1), (1, False, 2, None)]
    r = runner.invoke(cli, ["diff-versions", "--date", "2026-11-26", "--out", str(tmp_path / "out"),
                            "--from", "1", "--to", "2", "--csv", "-"])
    assert r.exit_code == 0, r.output
    assert list(csv.DictReader(io.StringIO(r.stdout))) == [
        {"ad_id": "2", "clicks_before": "1", "clicks_after": "2", "clicks_delta": "1",
         "spend_micros_before": "20", "spend_micros_after": "50", "spend_micros_delta": "30"}]
    r = runner.invoke(cli, ["diff-versions", "--date", "2026-11-26", "--out", str(tmp_path / "out"), "--from", "1"])
    assert "version 1 -> 2: 1 ad(s) changed" in r.stdout


def test_abandoned_version_folders_are_skipped_not_reused(tmp_path: Path) -> None:
    small_lake(tmp_path)
    reconcile(config(tmp_path))
    (tmp_path / "out/dt=2026-11-26/v=2").mkdir()  # a run that died before committing
    (tmp_path / "out/dt=2026-11-26/v=2/totals.parquet").write_bytes(b"half")
    result = reconcile(config(tmp_path, lateness=dt.timedelta(hours=3)))
    assert result.commit.version == 3
    assert json.loads((tmp_path / "out/dt=2026-11-26/_current.json").read_text())["version"] == 3
    m = json.loads((tmp_path / "out/dt=2026-11-26/v=3/manifest.json").read_text())
    assert m["previous_version"] == 1


def test_per_ad_totals_sum_across_batches_like_one_table() -> None:
    import pyarrow as pa

    from billing.day.restatement import per_ad_totals

    t = pa.table({"ad_id": [1, 2, 1, 3, 2, 3], "clicks": [1, 2, 3, 4, 5, 6],
                  "spend_micros": pa.array([10, None, None, None, 7, None], pa.int64())})
    whole = per_ad_totals(t.to_batches())
    assert whole == {1: (4, 10), 2: (7, 7), 3: (10, None)}  # spend None only where no window has one
    assert per_ad_totals(t.to_batches(max_chunksize=1)) == whole == per_ad_totals(t.to_batches(max_chunksize=4))

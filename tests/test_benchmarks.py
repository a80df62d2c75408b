"""The benchmark's baselines compute what they claim, checked against pyarrow on a small generated day."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest


@pytest.mark.parametrize("shape", ["longtail", "disorder"])
def test_the_naive_diff_is_the_naive_count_joined_to_the_stream_sums(tmp_path: Path, shape: str) -> None:
    from benchmarks.generate import generate
    from benchmarks.run import totals_of
    from benchmarks.workloads import horizon_files, naive_duckdb, naive_reconcile, stream_files

    lake = tmp_path / "lake"
    generate(lake, 60_000, shape=shape)
    files, stream = horizon_files(lake), stream_files(lake)
    assert files and stream
    for name in ("b", "f"):
        (tmp_path / name).mkdir()
    naive_duckdb(files, tmp_path / "b")
    naive_reconcile(files, tmp_path / "f", stream)
    assert totals_of("diff", tmp_path / "f") == totals_of("duckdb", tmp_path / "b")

    # independently: one copy per click_id (any: the generator's copies share ad and time), counted per
    # (ad, minute); the stream rows summed per key; every key of the union, delta = stream - batch
    raw = pa.concat_tables(pq.read_table(f, columns=["click_id", "ad_id", "event_time"]) for f in files)
    first = raw.group_by("click_id").aggregate([("ad_id", "min"), ("event_time", "min")])
    minute = pc.floor_temporal(first.column("event_time_min"), unit="minute")
    batch = {(a, w): n for a, w, n in zip(*pa.table({"a": first.column("ad_id_min"), "w": minute})
                                           .group_by(["a", "w"]).aggregate([("a", "count")])
                                           .to_pydict().values(), strict=True)}
    srows = pa.concat_tables(pq.read_table(f, columns=["ad_id", "window_start", "clicks"]) for f in stream)
    sums = srows.group_by(["ad_id", "window_start"]).aggregate([("clicks", "sum")])
    streamed = {(a, w): n for a, w, n in zip(*sums.to_pydict().values(), strict=True)}
    drift = pq.read_table(tmp_path / "f" / "drift.parquet").to_pylist()
    got = {(r["ad_id"], r["window_start"]): (r["batch_clicks"], r["stream_clicks"], r["delta"]) for r in drift}
    assert len(got) == len(drift) == len(batch.keys() | streamed.keys())
    for key in batch.keys() | streamed.keys():
        b, s = batch.get(key, 0), streamed.get(key, 0)
        assert got[key] == (b, s, s - b), key
    assert [(r["ad_id"], r["window_start"]) for r in drift] == sorted(got)  # written in key order
    assert any(r["delta"] != 0 for r in drift)  # the generator drifts 0.1% of keys: the check can fail


def test_the_benchmark_prints_its_usage_on_help_and_starts_nothing(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "BENCH_DATA": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "benchmarks.run", "--help"], capture_output=True, text=True,
                       timeout=60, env=env, cwd=Path(__file__).parent.parent)
    assert r.returncode == 0 and "BENCH_SHAPES" in r.stdout
    wrong = subprocess.run([sys.executable, "-m", "benchmarks.run", "dense"], capture_output=True, text=True,
                           timeout=60, env=env, cwd=Path(__file__).parent.parent)
    assert wrong.returncode == 1 and "BENCH_* environment variables" in wrong.stderr
    assert not (tmp_path / "data").exists()  # no day generated, nothing run

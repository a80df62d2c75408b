"""Cases from an outsider's trial of the README (issue 10's follow-up): inputs we did not make, each reckoned
here in plain Python. Each failed before its fix."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from tests.lake import RAW_SCHEMA, at, cid, click, write_raw, write_stream

GOOD = "dt=2026-11-26/hour=10/good.parquet"


def invoke(tmp: Path, *extra: str, raw: str | None = None, stream: str | None = None):
    args = ["reconcile", "--date", "2026-11-26", "--raw", raw or str(tmp / "raw"),
            "--stream", stream or str(tmp / "stream"), "--out", str(tmp / "out"), *extra]
    return CliRunner().invoke(cli, args)


def current(tmp: Path) -> Path:
    day = tmp / "out" / "dt=2026-11-26"
    return day / json.loads((day / "_current.json").read_text())["dir"]


def test_values_python_cannot_hold_do_not_stop_the_report(tmp_path: Path) -> None:
    """An invalid row with an extra ns timestamp 1 ns past the µs, and an event_time past year 9999."""
    good = [click(at(10), seq=i) for i in range(3)]
    schema = RAW_SCHEMA.append(pa.field("recv", pa.timestamp("ns", tz="UTC")))
    rows = [{**r, "recv": None} for r in good]
    rows.append({**click(at(10), seq=9), "click_id": None, "recv": None})
    table = pa.Table.from_pylist(rows, schema=schema)
    recv = pa.array([None, None, None, 1_795_000_000_000_000_001], pa.int64()).view(pa.timestamp("ns", tz="UTC"))
    table = table.set_column(table.schema.get_field_index("recv"), "recv", recv)
    path = tmp_path / "raw" / GOOD
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)
    far = pa.table({"click_id": pa.array([cid(at(11))], pa.int64()), "ad_id": pa.array([1], pa.int64()),
                    "event_time": pa.array([253402300800 * 10**6], pa.int64()).view(pa.timestamp("us", tz="UTC"))})
    (tmp_path / "raw" / "dt=2026-11-26/hour=11").mkdir()
    pq.write_table(far, tmp_path / "raw" / "dt=2026-11-26/hour=11/far.parquet")
    write_stream(tmp_path / "stream", [(1, at(10), 3)])
    r = invoke(tmp_path)
    assert r.exit_code == 0, r.output + r.stderr
    q = pq.read_table(current(tmp_path) / "quarantine.parquet")
    assert sorted(q.column("reason").to_pylist()) == ["id_time_mismatch", "null_click_id"]
    page = (current(tmp_path) / "report.html").read_text()
    assert "2026-11-18 11:06:40.000000001" in page  # 1,795,000,000 s after 1970, and 1 ns
    assert "10000-01-01" in page  # 253,402,300,800 s after 1970


def test_a_hand_edited_current_pointer_is_exit_2_naming_it(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i) for i in range(3)])
    write_stream(tmp_path / "stream", [(1, at(10), 3)])
    assert invoke(tmp_path).exit_code == 0
    pointer = tmp_path / "out" / "dt=2026-11-26" / "_current.json"
    pointer.write_text("nonsense")
    for args in (["reconcile", "--date", "2026-11-26", "--raw", str(tmp_path / "raw"), "--stream",
                  str(tmp_path / "stream"), "--out", str(tmp_path / "out")],
                 ["history", "--date", "2026-11-26", "--out", str(tmp_path / "out")],
                 ["show", "--date", "2026-11-26", "--out", str(tmp_path / "out")]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, r.output
        assert r.stderr.strip().splitlines()[-1].startswith(f"billing: error: {pointer} is not a version pointer")
    assert pointer.read_text() == "nonsense"  # nothing published over it


def test_touching_an_input_commits_nothing(tmp_path: Path) -> None:
    """Same bytes, new mtime: the outputs (report included) are the same, so the re-run is unchanged."""
    path = write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i) for i in range(3)])
    write_stream(tmp_path / "stream", [(1, at(10), 3)])
    assert invoke(tmp_path).exit_code == 0
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9, path.stat().st_mtime_ns + 10**9))
    r = invoke(tmp_path, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["publish"]["unchanged"] is True


def test_input_columns_named_like_quarantine_columns_are_kept(tmp_path: Path) -> None:
    rows = [{**click(at(10), seq=1), "reason": "upstream says ok", "source_file": "kafka-3", "source_row": "17"},
            {**click(at(10), seq=2), "click_id": None, "reason": "r2", "source_file": "kafka-4", "source_row": "18"}]
    write_raw(tmp_path / "raw", GOOD, rows)
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    assert invoke(tmp_path).exit_code == 0
    q = pq.read_table(current(tmp_path) / "quarantine.parquet").to_pylist()
    assert len(q) == 1
    assert (q[0]["reason"], q[0]["source_file"], q[0]["source_row"]) == ("null_click_id", GOOD, 1)
    assert (q[0]["reason_input"], q[0]["source_file_input"], q[0]["source_row_input"]) == ("r2", "kafka-4", "18")


def test_a_column_written_twice_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "raw" / GOOD
    path.parent.mkdir(parents=True)
    t = pa.Table.from_pylist([click(at(10))], schema=RAW_SCHEMA)
    pq.write_table(pa.Table.from_arrays([*t.columns, t.column("ad_id")], names=[*t.column_names, "ad_id"]), path)
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().endswith("column 'ad_id' appears 2 times")


@pytest.mark.parametrize(("args", "message"), [
    (["reconcile", "--bogus"], "billing: error: No such option '--bogus'"),
    (["show", "--version", "abc", "--date", "2026-11-26", "--out", "/tmp"],
     "billing: error: Invalid value for '--version': 'abc' is not a valid integer."),
])
def test_click_usage_errors_are_one_line(args: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "billing", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(message), r.stderr


@pytest.mark.integration
def test_s3_folder_markers_are_not_files(s3, tmp_path: Path) -> None:
    """Zero-byte keys ending in '/' (the S3 console's folders) are folders, as locally: same result."""
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i) for i in range(3)])
    write_stream(tmp_path / "stream", [(1, at(10), 3)])
    raw = s3.upload_tree(tmp_path / "raw", "raw")
    stream = s3.upload_tree(tmp_path / "stream", "stream")
    for key in ("raw/dt=2026-11-26/", "raw/dt=2026-11-26/hour=10/", "stream/dt=2026-11-26/"):
        s3.client.put_object(Bucket=s3.bucket, Key=key, Body=b"")
    r = invoke(tmp_path, "--json", raw=raw, stream=stream)
    assert r.exit_code == 0, r.output + r.stderr
    assert json.loads(r.stdout)["ledger"]["billable_clicks"] == 3


def test_dates_before_1970_are_refused() -> None:
    r = CliRunner().invoke(cli, ["reconcile", "--date", "1969-12-31", "--raw", "/r", "--stream", "/s", "--out", "/o"])
    assert r.exit_code == 2
    assert "days before 1970-01-02 cannot be reconciled" in r.stderr


def test_lateness_of_more_than_a_day_is_refused() -> None:
    r = CliRunner().invoke(cli, ["reconcile", "--date", "2026-11-26", "--raw", "/r", "--stream", "/s", "--out", "/o",
                                 "--lateness", "25h"])
    assert r.exit_code == 2
    assert "--lateness 25h: at most 1d" in r.stderr
    assert dt.timedelta(days=1)  # the bound itself is allowed (tests/test_config.py checks the parser)


def test_versions_that_were_never_committed_are_named(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i) for i in range(3)])
    write_stream(tmp_path / "stream", [(1, at(10), 3)])
    assert invoke(tmp_path).exit_code == 0
    out = ["--date", "2026-11-26", "--out", str(tmp_path / "out")]
    for args, option in ((["show", *out, "--version", "9"], "--version 9"),
                         (["diff-versions", *out, "--from", "1", "--to", "3"], "--to 3")):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, r.output
        assert r.stderr.strip() == (f"billing: error: {option}: no committed version {option.split()[1]} for "
                                    f"2026-11-26 (committed: 1)")


def test_demo_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "old.txt").write_text("x")
    r = CliRunner().invoke(cli, ["demo", "--out", str(tmp_path / "lake"), "--date", "2026-11-26", "--rows", "1000"])
    assert r.exit_code == 2
    assert "is not empty" in r.stderr
    assert [p.name for p in (tmp_path / "lake").iterdir()] == ["old.txt"]


def test_a_raw_time_that_would_wrap_as_microseconds_is_named(tmp_path: Path) -> None:
    """The raw side gets the stream side's check: an ms value past year 294,000 stops the run naming it."""
    write_raw(tmp_path / "raw", GOOD, [click(at(10), seq=i) for i in range(3)])
    far = pa.table({"click_id": pa.array([cid(at(11))], pa.int64()), "ad_id": pa.array([1], pa.int64()),
                    "event_time": pa.array([2**62], pa.int64()).view(pa.timestamp("ms", tz="UTC"))})
    (tmp_path / "raw" / "dt=2026-11-26/hour=11").mkdir()
    pq.write_table(far, tmp_path / "raw" / "dt=2026-11-26/hour=11/far.parquet")
    write_stream(tmp_path / "stream", [(1, at(10), 3)])
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines()[-1].startswith(
        f"billing: error: {tmp_path / 'raw' / 'dt=2026-11-26/hour=11/far.parquet'}: column 'event_time' does not fit "
        f"timestamp[us]")
    assert not (tmp_path / "out" / "dt=2026-11-26" / "_current.json").exists()

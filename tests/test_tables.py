"""The Delta tables under OUT/tables/ as a user gets them (issue 14, wiring): published by ``reconcile`` after
each commit, brought level by the next run or ``billing publish-tables`` after a crash between the two,
read back by real ``deltalake`` and Polars readers and checked against each day's current totals.parquet
(found from ``_current.json``, read with pyarrow: an independent source). The table core itself (one commit
per replace, retries, conditional puts on S3) is tested in tests/test_delta_tables.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable

from billing import faults
from billing.cli import cli
from billing.day.tables import NAMES
from tests.lake import at, click, write_raw, write_stream

ROOT = Path(__file__).resolve().parents[1]
D1 = dt.date(2026, 11, 26)
D2 = dt.date(2026, 11, 27)
TABLE_OF = {"totals": "totals.parquet", "drift": "drift.parquet", "conflicts": "conflicts.parquet"}


def add_clicks(tmp: Path, date: dt.date, name: str, n: int, ad: int = 1) -> None:
    """``n`` more clicks of ``ad`` at 10:00 on ``date`` (a new raw file: the day's totals change)."""
    day = (date - D1).days
    write_raw(tmp / "raw", f"dt={date}/hour=10/{name}.parquet",
              [click(at(10, seconds=i, day=day), ad=ad, seq=hash(name) % 1000 + i) for i in range(n)])


def two_day_lake(tmp: Path) -> None:
    for date in (D1, D2):
        add_clicks(tmp, date, "a", 3)
        write_stream(tmp / "stream", [(1, at(10, day=(date - D1).days), 3)], date=date)


def args(tmp: Path, date: dt.date, *extra: str) -> list[str]:
    return ["reconcile", "--date", str(date), "--raw", str(tmp / "raw"), "--stream", str(tmp / "stream"),
            "--out", str(tmp / "out"), "--memory-limit", "1536MiB", "--threads", "2", *extra]


def run_cli(argv: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    full.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "billing", *argv], cwd=ROOT, env=full, capture_output=True,
                          text=True, timeout=300)


def current(out: Path, date: dt.date) -> int:
    return int(json.loads((out / f"dt={date}" / "_current.json").read_text())["version"])


def version_rows(out: Path, date: dt.date, version: int, name: str = "totals") -> list[dict[str, Any]]:
    """A committed version's file, read with pyarrow, as the table's rows of that day (date first)."""
    rows = pq.read_table(out / f"dt={date}" / f"v={version}" / TABLE_OF[name]).to_pylist()
    return [{"date": date, **r} for r in rows]


def table_rows(uri: str, date: dt.date, opts: dict[str, str] | None = None) -> list[dict[str, Any]]:
    t = DeltaTable(uri, storage_options=opts).to_pyarrow_table(filters=[("date", "=", date)])
    return sorted(t.to_pylist(), key=lambda r: tuple(str(v) for v in r.values()))


def ordered(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


def our_commits(uri: str) -> list[tuple[str, int, str]]:
    """(date, billing_version, manifest_sha256) of the table's commits, oldest first."""
    return [(c["date"], int(c["billing_version"]), c["manifest_sha256"]) for c in DeltaTable(uri).history()[::-1]
            if "billing_version" in c]


def manifest_sha(out: Path, date: dt.date, version: int) -> str:
    import hashlib

    return hashlib.sha256((out / f"dt={date}" / f"v={version}" / "manifest.json").read_bytes()).hexdigest()


def assert_level(out: Path, date: dt.date, version: int) -> None:
    """Every table holds exactly ``version`` of ``date`` (the days table: its figures and manifest hash)."""
    for name in TABLE_OF:
        assert table_rows(str(out / "tables" / name), date) == ordered(version_rows(out, date, version, name)), name
    (day,) = table_rows(str(out / "tables" / "days"), date)
    summary = json.loads((out / f"dt={date}" / f"v={version}" / "summary.json").read_text())
    assert (day["version"], day["manifest_sha256"], day["status"], day["billable_clicks"], day["drift_keys"]) == (
        version, manifest_sha(out, date, version), summary["status"], summary["ledger"]["billable_clicks"],
        summary["drift"]["keys"])


def assert_files_are_the_versions(out: Path, date: dt.date, version: int) -> None:
    """The totals and drift tables hold ``date`` as one data file each, byte for byte the version's own
    totals.parquet / drift.parquet (copied in, not decoded and encoded again)."""
    for name in ("totals", "drift"):
        table = DeltaTable(str(out / "tables" / name))
        files = [Path(u) for u in table.file_uris() if f"date={date}/" in u]
        assert len(files) == 1, (name, files)
        assert files[0].read_bytes() == (out / f"dt={date}" / f"v={version}" / TABLE_OF[name]).read_bytes(), name


def assert_some_committed_version(out: Path, date: dt.date) -> dict[str, set[int]]:
    """Each table's partition for ``date`` equals a committed version of it, never a mix: which ones (a
    version's file may equal another's, e.g. two empty conflicts files)."""
    found = {}
    committed = sorted(int(p.name[2:]) for p in (out / f"dt={date}").glob("v=*"))
    for name in TABLE_OF:
        rows = table_rows(str(out / "tables" / name), date)
        matches = [v for v in committed if rows == ordered(version_rows(out, date, v, name))]
        assert matches, (name, date)
        found[name] = set(matches)
    return found


@pytest.mark.slow
def test_two_days_three_versions_a_crash_between_commit_and_tables_and_a_rerun(tmp_path: Path) -> None:
    two_day_lake(tmp_path)
    out = tmp_path / "out"
    runner = CliRunner()
    for date in (D1, D2):
        r = runner.invoke(cli, args(tmp_path, date))
        assert r.exit_code == 0, r.output
        assert f"{date}: tables at version 1: wrote totals, drift, conflicts, quarantine, days" in r.stdout
    delta_versions = {n: DeltaTable(str(out / "tables" / n)).version() for n in NAMES}

    # an unchanged re-run commits nothing, to the versions or the tables
    r = runner.invoke(cli, args(tmp_path, D1))
    assert "unchanged, still version 1" in r.stdout and "tables unchanged, already at version 1" in r.stdout
    assert {n: DeltaTable(str(out / "tables" / n)).version() for n in NAMES} == delta_versions

    # version 2 of D1 committed, then killed before any table commit: tables stay at version 1
    add_clicks(tmp_path, D1, "b", 2)
    r = run_cli(args(tmp_path, D1), {faults.ENV: "before_tables"})
    assert r.returncode == -9, r.stderr[-2000:]
    assert current(out, D1) == 2
    found = assert_some_committed_version(out, D1)
    assert found["totals"] == found["drift"] == {1} and 1 in found["conflicts"]
    assert_level(out, D1, 1)
    # the next run finds the outputs unchanged, and brings the tables level
    r = runner.invoke(cli, args(tmp_path, D1))
    assert "unchanged, still version 2" in r.stdout and "tables at version 2" in r.stdout, r.output
    assert_level(out, D1, 2)

    # version 3, killed between the totals table and the others: each still equals a committed version
    add_clicks(tmp_path, D1, "c", 4, ad=2)
    r = run_cli(args(tmp_path, D1), {faults.ENV: "mid_tables"})
    assert r.returncode == -9, r.stderr[-2000:]
    assert current(out, D1) == 3
    found = assert_some_committed_version(out, D1)
    assert found["totals"] == {3} and found["drift"] == {2} and 2 in found["conflicts"]
    r = runner.invoke(cli, ["publish-tables", "--date", str(D1), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{D1}: tables at version 3: wrote drift, conflicts, quarantine, days (unchanged: totals)\n"
    assert_level(out, D1, 3)
    assert_level(out, D2, 1)
    assert_files_are_the_versions(out, D1, 3)
    assert_files_are_the_versions(out, D2, 1)

    # readers: deltalake and Polars see exactly the current versions' rows, with a DATE column
    expected = ordered(version_rows(out, D1, 3) + version_rows(out, D2, 1))
    uri = str(out / "tables" / "totals")
    assert ordered(DeltaTable(uri).to_pyarrow_table().to_pylist()) == expected
    polars = pl.scan_delta(uri).collect()
    assert polars.schema["date"] == pl.Date
    assert ordered(polars.to_arrow().to_pylist()) == expected
    per_day = pl.scan_delta(uri).group_by("date").agg(pl.col("clicks").sum()).sort("date").collect().rows()
    assert per_day == [(D1, 9), (D2, 3)]
    # history: one commit per published version of each day, with its metadata; none doubled by the re-runs
    for name in NAMES:
        assert our_commits(str(out / "tables" / name)) == [
            (str(d), v, manifest_sha(out, d, v)) for d, v in ((D1, 1), (D2, 1), (D1, 2), (D1, 3))], name
    # the versions themselves: the audit record, untouched by the tables
    assert sorted(p.name for p in (out / f"dt={D1}").iterdir() if p.name.startswith("v=")) == ["v=1", "v=2", "v=3"]


def test_no_tables_then_a_backfill_of_every_day(tmp_path: Path) -> None:
    two_day_lake(tmp_path)
    out = tmp_path / "out"
    runner = CliRunner()
    for date in (D1, D2):
        r = runner.invoke(cli, args(tmp_path, date, "--no-tables"))
        assert r.exit_code == 0 and ": tables " not in r.stdout, r.output
    assert not (out / "tables").exists()
    r = runner.invoke(cli, ["reconcile", "--json", *args(tmp_path, D1)[1:]])
    assert json.loads(r.stdout)["publish"]["tables"]["written"] == list(NAMES)  # tables on by default
    r = runner.invoke(cli, ["publish-tables", "--all-days", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    done = json.loads(r.stdout)
    assert [(d["date"], d["version"], d["written"], d["unchanged"]) for d in done] == [
        (str(D1), 1, [], list(NAMES)), (str(D2), 1, list(NAMES), [])]
    assert_level(out, D1, 1)
    assert_level(out, D2, 1)
    # history/show ignore OUT/tables/; a day without a version and a contradiction are exit 2, one line
    assert runner.invoke(cli, ["history", "--date", str(D1), "--out", str(out)]).exit_code == 0
    for argv, needle in ((["--date", "2026-11-28"], "no committed version for 2026-11-28"),
                         (["--date", str(D1), "--all-days"], "--all-days and --date exclude each other")):
        r = runner.invoke(cli, ["publish-tables", "--out", str(out), *argv])
        assert r.exit_code == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.output


def test_current_paths(tmp_path: Path) -> None:
    two_day_lake(tmp_path)
    out = tmp_path / "out"
    runner = CliRunner()
    for date in (D1, D2):
        assert runner.invoke(cli, args(tmp_path, date, "--no-tables")).exit_code == 0
    add_clicks(tmp_path, D2, "b", 1)
    assert runner.invoke(cli, args(tmp_path, D2, "--no-tables")).exit_code == 3  # the stream still says 3
    r = runner.invoke(cli, ["current-paths", "--out", str(out)])
    assert r.stdout.splitlines() == [str(out / f"dt={D1}" / "v=1" / "totals.parquet"),
                                     str(out / f"dt={D2}" / "v=2" / "totals.parquet")]
    r = runner.invoke(cli, ["current-paths", "--out", str(out), "--table", "drift", "--json"])
    assert json.loads(r.stdout) == [{"date": str(D1), "version": 1, "path": str(out / f"dt={D1}/v=1/drift.parquet")},
                                    {"date": str(D2), "version": 2, "path": str(out / f"dt={D2}/v=2/drift.parquet")}]
    # what a tool without Delta does with them: current totals for all days, nothing double-counted
    import duckdb

    paths = runner.invoke(cli, ["current-paths", "--out", str(out)]).stdout.split()
    got = duckdb.sql("SELECT dt, sum(clicks) FROM read_parquet($p, hive_partitioning = true) GROUP BY dt ORDER BY dt",
                     params={"p": paths}).fetchall()
    assert got == [(D1, 3), (D2, 4)]


def test_two_days_published_at_once_by_two_processes_both_land(tmp_path: Path) -> None:
    two_day_lake(tmp_path)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env["PYTHONPATH"] = str(ROOT)
    # both pause right before their first table commit, so the two processes write the tables at once
    env[faults.PAUSE_ENV] = "before_tables:1"
    procs = [subprocess.Popen([sys.executable, "-m", "billing", *args(tmp_path, d)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for d in (D1, D2)]
    for p in procs:
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr[-2000:]
        assert "tables at version 1: wrote totals, drift, conflicts, quarantine, days" in stdout
    for name in NAMES:
        history = DeltaTable(str(out / "tables" / name)).history()
        assert [c["operation"] for c in history].count("CREATE TABLE") == 1, name
        assert sorted((c["date"], c["billing_version"]) for c in history if "billing_version" in c) == [
            (str(D1), "1"), (str(D2), "1")], name
    assert_level(out, D1, 1)
    assert_level(out, D2, 1)


@pytest.mark.integration
def test_s3_through_the_cli(s3: Any, tmp_path: Path) -> None:
    two_day_lake(tmp_path)
    raw = s3.upload_tree(tmp_path / "raw", "raw")
    stream = s3.upload_tree(tmp_path / "stream", "stream")
    out = f"s3://{s3.bucket}/out"
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    for date in (D1, D2):  # the endpoint given as billing's option, not in AWS_ENDPOINT_URL
        r = run_cli(["reconcile", "--date", str(date), "--raw", raw, "--stream", stream, "--out", out,
                     "--s3-endpoint", s3.endpoint, "--memory-limit", "1536MiB"], env)
        assert r.returncode == 0 and "tables at version 1" in r.stdout, r.stderr[-2000:]
    r = run_cli(["publish-tables", "--all-days", "--out", out, "--s3-endpoint", s3.endpoint], env)
    assert r.returncode == 0 and r.stdout.count("tables unchanged, already at version 1") == 2, r.stderr[-2000:]
    opts = {"AWS_ENDPOINT_URL": s3.endpoint, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1"}
    for date in (D1, D2):
        expected = pq.read_table(pa.BufferReader(s3.read(f"out/dt={date}/v=1/totals.parquet"))).to_pylist()
        assert table_rows(f"{out}/tables/totals", date, opts) == ordered([{"date": date, **r} for r in expected])
        # the day's data file is the version's totals.parquet, copied on the server
        table = DeltaTable(f"{out}/tables/totals", storage_options=opts)
        (uri,) = [u for u in table.file_uris() if f"date={date}/" in u]
        assert s3.read(uri.split(f"{s3.bucket}/", 1)[1]) == s3.read(f"out/dt={date}/v=1/totals.parquet")
    log = [k for k in s3.keys("out/tables/totals/_delta_log/") if k.endswith(".json")]
    assert len(log) == 3  # CREATE TABLE, one commit per day; the backfill committed nothing
    assert env["AWS_SECRET_ACCESS_KEY"] not in r.stdout + r.stderr


def test_a_broken_or_misshapen_table_after_the_commit_says_the_version_is_committed(tmp_path: Path) -> None:
    """The version commit happened; a table that cannot be opened (a corrupt log) or replaced (partitioned by
    another column) stops the run with exit 2 in one line that says the version is committed and what to do."""
    from deltalake import DeltaTable as Table

    two_day_lake(tmp_path)
    out = tmp_path / "out"
    log = out / "tables" / "totals" / "_delta_log"
    log.mkdir(parents=True)
    (log / f"{0:020d}.json").write_text("garbage, not a Delta log\n")
    r = CliRunner().invoke(cli, args(tmp_path, D1))
    assert r.exit_code == 2 and current(out, D1) == 1, r.output
    (line,) = [x for x in r.stderr.splitlines() if x.strip()]
    assert "version 1 of 2026-11-26 is committed, but its tables are not level" in line, line
    assert "cannot be opened" in line and "publish-tables --date 2026-11-26" in line and "<unknown>" not in line
    # a totals table partitioned by ad_id: refused, named, with the fix first
    import shutil

    shutil.rmtree(out / "tables" / "totals")
    schema = pa.schema([pa.field("date", pa.date32()), *pq.read_schema(out / f"dt={D1}" / "v=1" / "totals.parquet")])
    Table.create(str(out / "tables" / "totals"), schema.remove_metadata(), partition_by=["ad_id"])
    r = CliRunner().invoke(cli, ["publish-tables", "--date", str(D1), "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert "partitioned by ['ad_id'], not by date" in r.stderr and "fix the table or move it aside" in r.stderr


def test_publish_tables_of_every_day_under_a_missing_out_is_exit_2(tmp_path: Path) -> None:
    """A mistyped OUT is not an OUT without days: exit 2 in one line (an existing OUT without days: exit 0)."""
    r = CliRunner().invoke(cli, ["publish-tables", "--all-days", "--out", str(tmp_path / "no-such-out")])
    assert r.exit_code == 2 and "no such directory" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
    (tmp_path / "empty").mkdir()
    r = CliRunner().invoke(cli, ["publish-tables", "--all-days", "--out", str(tmp_path / "empty")])
    assert r.exit_code == 0 and "no committed day under" in r.stdout, r.output


def test_current_paths_without_a_committed_day_is_exit_2(tmp_path: Path) -> None:
    """Like export and show: an OUT that does not exist, or holds no committed day, is unusable input."""
    empty = tmp_path / "empty"
    empty.mkdir()
    for out, as_json in ((tmp_path / "nonexistent", False), (empty, False), (empty, True)):
        r = CliRunner().invoke(cli, ["current-paths", "--table", "totals", "--out", str(out),
                                     *(["--json"] if as_json else [])])
        assert r.exit_code == 2 and r.stdout == "", r.output
        assert r.stderr == f"billing: error: no committed day under {out}\n", r.stderr
    assert not (tmp_path / "nonexistent").exists()

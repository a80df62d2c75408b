"""The stream side read from a PostgreSQL sink table, end to end through the command line (issue 13).

The reader itself (URI, types, digest, errors at the library level) is tested in test_postgres_stream.py;
here: the day reconciled from a table equals the same day reconciled from Parquet, the column mapping
through the CLI, only day D read, one snapshot under a concurrent writer (fault point), every bad input as
exit 2 with no password anywhere, plan/run-slice/merge, and show/report/history on such a day.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from billing.io.postgres_load import load_stream_table
from tests.lake import D, at
from tests.pg import ADMIN, fresh_schema, sql
from tests.test_postgres_stream import AUTH_PW, FAKE_PW, _closed_port, auth_server  # noqa: F401  (a fixture)

pytestmark = pytest.mark.integration

DATE = D.isoformat()
HOST = "127.0.0.1:5432/test"
#: Identical outputs whatever the source; summary.json and the report name the source, so they are compared apart.
SAME_FILES = ("totals.parquet", "drift.parquet", "quarantine.parquet", "conflicts.parquet",
              "stream_quarantine.parquet", "drift_flagged.csv", "ads_daily.csv")


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("t13cli") as name:
        yield name


def table_uri(schema: str, table: str, *, pw: str = FAKE_PW, extra: str = "") -> str:
    """Trust auth ignores the password: it is there to be absent from every output."""
    return f"postgresql://postgres:{pw}@{HOST}?table={schema}.{table}{extra}"


def billing(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "billing", *args], capture_output=True, text=True, env=full,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])


def reconcile(lake: Path, stream: str, out: Path, *extra: str,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return billing("reconcile", "--date", DATE, "--raw", str(lake / "raw"), "--stream", stream, "--out", str(out),
                   *extra, env=env)


def version(out: Path, v: int = 1) -> Path:
    return out / f"dt={DATE}" / f"v={v}"


def no_password_anywhere(r: subprocess.CompletedProcess[str], *roots: Path) -> None:
    assert FAKE_PW not in r.stdout and FAKE_PW not in r.stderr
    for root in roots:
        for p in root.rglob("*"):
            if p.is_file():
                assert FAKE_PW.encode() not in p.read_bytes(), p


def summary(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text())


def without_source(s: dict[str, Any]) -> dict[str, Any]:
    """summary.json apart from what names the source and counts rows of other days (only files hold them)."""
    s = json.loads(json.dumps(s))
    for k in ("source", "table", "rows_read", "rows_out_of_day"):
        s["stream"].pop(k, None)
    s["horizon"].pop("stream_files")
    return s


def same_files(a: Path, b: Path) -> None:
    for name in SAME_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


# --- the planted-truth day from a table equals the day from Parquet ---------------------------------------

def test_demo_day_from_an_insert_only_and_an_upsert_table_equals_parquet(schema: str, tmp_path: Path) -> None:
    ins, ups = table_uri(schema, "ins"), table_uri(schema, "ups")
    r = billing("demo", "--out", str(tmp_path / "lake"), "--date", DATE, "--rows", "20000", "--stream-db", ins,
                "--stream-db-mode", "insert")
    assert r.returncode == 0, r.stderr
    assert f"postgresql://postgres@{HOST}?table={schema}.ins" in r.stdout
    lake = tmp_path / "lake"
    files = reconcile(lake, str(lake / "stream"), tmp_path / "out-files")
    assert files.returncode == 3, files.stderr  # the demo plants drift
    # insert-only: every sink row, duplicates included, as in the files (less the 3 rows of other days)
    r = reconcile(lake, ins, tmp_path / "out-ins")
    assert r.returncode == 3, r.stderr
    same_files(version(tmp_path / "out-files"), version(tmp_path / "out-ins"))
    s_files, s_ins = summary(version(tmp_path / "out-files")), summary(version(tmp_path / "out-ins"))
    assert without_source(s_ins) == without_source(s_files)
    truth = json.loads((lake / "truth" / "truth.json").read_text())
    assert s_ins["stream"]["duplicate_keys"] == truth["stream"]["duplicate_keys"] > 0
    assert s_ins["stream"]["rows_read"] == s_files["stream"]["rows_read"] - 3 == truth["stream"]["rows_read"] - 3
    assert (s_ins["stream"]["rows_out_of_day"], s_ins["stream"]["source"], s_ins["stream"]["table"]) == (
        0, "postgresql", f"{schema}.ins")
    assert "source" not in s_files["stream"]
    manifest = json.loads((version(tmp_path / "out-ins") / "manifest.json").read_text())
    (entry,) = manifest["inputs"]["stream"]
    assert entry["uri"] == f"postgresql://postgres@{HOST}?table={schema}.ins"
    assert entry["rows_read"] == s_ins["stream"]["rows_read"]
    assert entry["server_version"].startswith("15") and entry["snapshot"] and len(entry["sha256"]) == 64
    assert manifest["config"]["run"]["stream"] == entry["uri"]
    html = (version(tmp_path / "out-ins") / "report.html").read_text()
    assert f"stream table {schema}.ins (PostgreSQL" in html and entry["sha256"][:16] in html
    no_password_anywhere(r, tmp_path / "out-ins")
    # a re-run against the unchanged table is "unchanged"
    again = reconcile(lake, ins, tmp_path / "out-ins")
    assert again.returncode == 3 and "unchanged, still version 1" in again.stdout, again.stderr

    # upsert: the last write per key; equals Parquet holding exactly those rows (computed here, not by billing)
    load_stream_table(ups, lake / "stream", D, mode="upsert")
    rows = pa.concat_tables([pq.read_table(p) for p in sorted((lake / "stream" / f"dt={DATE}").glob("*.parquet"))])
    last: dict[tuple[int, Any], dict[str, Any]] = {}
    for row in rows.to_pylist():
        last[(row["ad_id"], row["window_start"])] = row
    in_day = [r for r in last.values() if at(0) <= r["window_start"] < at(0, day=1)]
    folder = tmp_path / "ups-files" / f"dt={DATE}"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(in_day, schema=rows.schema), folder / "part-0.parquet")
    a = reconcile(lake, str(tmp_path / "ups-files"), tmp_path / "out-ups-files")
    b = reconcile(lake, ups, tmp_path / "out-ups")
    assert a.returncode == b.returncode == 3, a.stderr + b.stderr
    same_files(version(tmp_path / "out-ups-files"), version(tmp_path / "out-ups"))
    s_ups = summary(version(tmp_path / "out-ups"))
    assert without_source(s_ups) == without_source(summary(version(tmp_path / "out-ups-files")))
    assert s_ups["stream"]["duplicate_keys"] == 0 and s_ups["stream"]["rows_read"] == len(in_day)
    # the upsert sink lost the re-emitted rows' first writes: its drift differs from the insert-only sink's
    assert (version(tmp_path / "out-ups") / "drift.parquet").read_bytes() != (
        version(tmp_path / "out-ins") / "drift.parquet").read_bytes()


# --- column mapping and types; only day D -----------------------------------------------------------------

@pytest.mark.parametrize(("id_t", "ts_t", "n_t"), [("integer", "timestamptz", "bigint"),
                                                    ("bigint", "timestamp", "numeric(12,0)"),
                                                    ("numeric(18)", "timestamp", "integer")])
def test_mapped_columns_and_types_through_the_cli_and_only_day_d_read(
        schema: str, demo_lake: Path, tmp_path: Path, id_t: str, ts_t: str, n_t: str) -> None:
    load_stream_table(table_uri(schema, "src"), demo_lake / "stream", D, mode="insert")
    to_ts = "window_start AT TIME ZONE 'UTC'" if ts_t == "timestamp" else "window_start"
    sql(f'CREATE TABLE "{schema}"."Minute Agg" (campaign_id {id_t}, minute {ts_t}, click_count {n_t}, '
        f'spend numeric(20,0), note text)')
    for shift in ("0", "-1 day", "1 day", "-400 days"):  # the day itself, and three other days of the sink
        sql(f'INSERT INTO "{schema}"."Minute Agg" SELECT ad_id, ({to_ts}) + interval \'{shift}\', clicks, '
            f'spend_micros, \'x\' FROM "{schema}".src WHERE window_start >= $1 AND window_start < $2',
            (at(0), at(0, day=1)))
    mapped = table_uri(schema, '"Minute Agg"')
    cols = "ad_id=campaign_id,window_start=minute,clicks=click_count,spend_micros=spend"
    r = reconcile(demo_lake, mapped, tmp_path / "out-db", "--stream-columns", cols)
    files = reconcile(demo_lake, str(demo_lake / "stream"), tmp_path / "out-files")
    assert r.returncode == files.returncode == 3, r.stderr + files.stderr
    same_files(version(tmp_path / "out-files"), version(tmp_path / "out-db"))
    s = summary(version(tmp_path / "out-db"))
    assert without_source(s) == without_source(summary(version(tmp_path / "out-files")))
    in_day = sql(f'SELECT count(*) FROM "{schema}".src WHERE window_start >= $1 AND window_start < $2',
                 (at(0), at(0, day=1)))[0][0]
    assert s["stream"]["rows_read"] == in_day and s["stream"]["table"] == f'{schema}."Minute Agg"'
    no_password_anywhere(r, tmp_path / "out-db")
    # the same mapping from BILLING_STREAM_COLUMNS and from a config file
    env = reconcile(demo_lake, mapped, tmp_path / "out-env", env={"BILLING_STREAM_COLUMNS": cols})
    (tmp_path / "b.toml").write_text(f'stream-columns = "{cols}"\n')
    toml = reconcile(demo_lake, mapped, tmp_path / "out-toml", "--config", str(tmp_path / "b.toml"))
    for o in ("out-env", "out-toml"):
        assert (version(tmp_path / o) / "drift.parquet").read_bytes() == (
            version(tmp_path / "out-db") / "drift.parquet").read_bytes()
    assert env.returncode == toml.returncode == 3


# --- one snapshot -----------------------------------------------------------------------------------------

def test_a_concurrent_writer_during_the_read_does_not_change_what_billing_saw(
        schema: str, demo_lake: Path, tmp_path: Path) -> None:
    uri = table_uri(schema, "sink", extra="&application_name=t13snap")
    load_stream_table(uri, demo_lake / "stream", D, mode="insert")
    before = reconcile(demo_lake, uri, tmp_path / "out-before")
    assert before.returncode == 3, before.stderr
    out = tmp_path / "out"
    env = {**os.environ, "BILLING_FAULT_PAUSE_AT": "mid_stream_read:4"}
    env = {k: v for k, v in env.items() if not k.startswith("BILLING_") or k == "BILLING_FAULT_PAUSE_AT"}
    proc = subprocess.Popen([sys.executable, "-m", "billing", "reconcile", "--date", DATE, "--raw",
                             str(demo_lake / "raw"), "--stream", uri, "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    # paused inside its snapshot: idle in its transaction for a while (the early check's is gone in ms)
    while not sql("SELECT 1 FROM pg_stat_activity WHERE application_name = 't13snap' "
                  "AND state = 'idle in transaction' AND clock_timestamp() - state_change > interval '1 second'"):
        assert proc.poll() is None and time.monotonic() < deadline, "billing never paused inside its snapshot"
        time.sleep(0.05)
    # committed by another session while billing holds its snapshot: new rows of D, and a changed row
    sql(f'INSERT INTO "{schema}".sink VALUES (424242, $1, 77, 1), (1, $2, 5, NULL)', (at(3), at(4)))
    sql(f'UPDATE "{schema}".sink SET clicks = clicks + 1000 WHERE ad_id = (SELECT min(ad_id) FROM "{schema}".sink)')
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 3, stderr
    for name in (*SAME_FILES, "summary.json", "report.html"):
        assert (version(out) / name).read_bytes() == (version(tmp_path / "out-before") / name).read_bytes(), name
    m_before = json.loads((version(tmp_path / "out-before") / "manifest.json").read_text())["inputs"]["stream"][0]
    m_during = json.loads((version(out) / "manifest.json").read_text())["inputs"]["stream"][0]
    assert m_during["sha256"] == m_before["sha256"] and m_during["rows_read"] == m_before["rows_read"]
    after = reconcile(demo_lake, uri, out)  # the writes did commit: the next run sees them
    assert after.returncode == 3 and "published as version 2" in after.stdout, after.stderr
    assert summary(version(out, 2))["stream"]["rows_read"] == m_before["rows_read"] + 2


def test_killed_inside_the_snapshot_publishes_nothing_and_a_rerun_completes(
        schema: str, demo_lake: Path, tmp_path: Path) -> None:
    uri = table_uri(schema, "sink")
    load_stream_table(uri, demo_lake / "stream", D, mode="insert")
    out = tmp_path / "out"
    killed = reconcile(demo_lake, uri, out, env={"BILLING_FAULT_KILL_AT": "mid_stream_read"})
    assert killed.returncode == -9, killed.stderr
    assert not any((out / f"dt={DATE}").glob("v=*"))
    again = reconcile(demo_lake, uri, out)
    assert again.returncode == 3 and "published as version 1" in again.stdout, again.stderr


# --- bad input: exit 2, one line, nothing published, no password ------------------------------------------

def _fails(r: subprocess.CompletedProcess[str], out: Path, needle: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    errors = [ln for ln in r.stderr.splitlines() if "billing: error:" in ln]
    assert len(errors) == 1 and needle in errors[0], r.stderr
    assert errors[0] == r.stderr.strip().splitlines()[-1]
    assert not (out / f"dt={DATE}").exists() or not any((out / f"dt={DATE}").glob("v=*"))
    no_password_anywhere(r, out) if out.exists() else no_password_anywhere(r)


@pytest.mark.parametrize("case", ["unreachable", "no_database", "no_table", "no_column", "wrong_type",
                                  "bad_mapping", "statement_timeout", "closed_mid_read"])
def test_bad_stream_table_is_exit_2_one_line_nothing_published_no_password(
        schema: str, demo_lake: Path, tmp_path: Path, case: str) -> None:
    sql(f'CREATE TABLE "{schema}".sink (ad_id bigint, window_start timestamptz, clicks bigint, label text)')
    sql(f'INSERT INTO "{schema}".sink VALUES (1, $1, 3, \'a\')', (at(5),))
    out, uri, extra, env = tmp_path / "out", table_uri(schema, "sink"), [], {}
    stop = threading.Event()
    helper: threading.Thread | None = None
    if case == "unreachable":
        uri, needle = f"postgresql://u:{FAKE_PW}@127.0.0.1:{_closed_port()}/test?table=s.t", "cannot reach the server"
        extra = ["--pg-connect-timeout", "2s"]
    elif case == "no_database":
        uri, needle = f"postgresql://postgres:{FAKE_PW}@127.0.0.1:5432/t13_nope?table=s.t", "database does not exist"
    elif case == "no_table":
        uri, needle = table_uri(schema, "nope"), f"table {schema}.nope does not exist"
    elif case == "no_column":
        extra, needle = ["--stream-columns", "clicks=click_count"], "has no column click_count (mapped to clicks)"
    elif case == "wrong_type":
        extra, needle = ["--stream-columns", "clicks=label"], "column label of"
    elif case == "bad_mapping":
        extra, needle = ["--stream-columns", "clicks"], "stream columns: 'clicks' is not KEY=COLUMN"
    elif case == "statement_timeout":  # the day's read waits on a lock until the statement timeout ends it
        import adbc_driver_postgresql.dbapi as pg

        locker = pg.connect(ADMIN)
        locker.cursor().execute(f'LOCK TABLE "{schema}".sink IN ACCESS EXCLUSIVE MODE')
        extra, needle = ["--pg-statement-timeout", "1s"], "statement timeout while reading"
    else:  # the server closes billing's connection inside its snapshot, every time: retried, then exit 2
        uri, needle = table_uri(schema, "sink", extra="&application_name=t13kill"), "the server closed the connection"
        env = {"BILLING_FAULT_PAUSE_AT": "mid_stream_read:1"}

        def terminate() -> None:
            while not stop.is_set():
                sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 't13kill' "
                    "AND state = 'idle in transaction'")
                time.sleep(0.1)
        helper = threading.Thread(target=terminate)
        helper.start()
    try:
        r = reconcile(demo_lake, uri, out, *extra, env=env)
    finally:
        stop.set()
        if helper is not None:
            helper.join()
        if case == "statement_timeout":
            locker.close()
    _fails(r, out, needle)
    if case == "closed_mid_read":
        assert "(after 3 attempts)" in r.stderr and r.stderr.count("retrying in") == 2


def test_wrong_password_through_the_cli(auth_server: str, demo_lake: Path, tmp_path: Path,  # noqa: F811
                                        ) -> None:
    env = {"PGPASSFILE": "/nonexistent/pgpass", "PGPASSWORD": ""}
    r = reconcile(demo_lake, f"postgresql://postgres:{FAKE_PW}@{auth_server}?table=sink", tmp_path / "out", env=env)
    _fails(r, tmp_path / "out", "authentication failed")
    # the right password from PGPASSWORD gets through the check (the table has no demo rows: it reconciles)
    ok = reconcile(demo_lake, f"postgresql://postgres@{auth_server}?table=sink", tmp_path / "out",
                   env={"PGPASSFILE": "/nonexistent/pgpass", "PGPASSWORD": AUTH_PW})
    assert ok.returncode == 3 and AUTH_PW not in ok.stdout + ok.stderr, ok.stderr


# --- plan / run-slice / merge, show / report / history -----------------------------------------------------

def test_plan_run_slice_merge_from_a_table_and_the_version_commands(
        schema: str, demo_lake: Path, tmp_path: Path) -> None:
    uri = table_uri(schema, "sink")
    load_stream_table(uri, demo_lake / "stream", D, mode="insert")
    one = reconcile(demo_lake, uri, tmp_path / "out-one")
    out = tmp_path / "out"
    p = billing("plan", "--date", DATE, "--raw", str(demo_lake / "raw"), "--stream", uri, "--out", str(out),
                "--slices", "3")
    assert p.returncode == 0, p.stderr
    plan = Path(p.stdout.strip())
    assert json.loads(plan.read_text())["config"]["stream"] == f"postgresql://postgres@{HOST}?table={schema}.sink"
    a = billing("set-aside", "--plan", str(plan))  # no connection to the table: only raw rows are set aside
    assert a.returncode == 0, a.stderr
    for k in range(3):
        r = billing("run-slice", "--plan", str(plan), "--slice", str(k))
        assert r.returncode == 0, r.stderr
    m = billing("merge", "--plan", str(plan))
    assert one.returncode == m.returncode == 3, m.stderr
    for name in (*SAME_FILES, "summary.json", "report.html"):
        assert (version(out) / name).read_bytes() == (version(tmp_path / "out-one") / name).read_bytes(), name
    shown = {}
    for cmd in ("show", "history", "report"):
        r = shown[cmd] = billing(cmd, "--date", DATE, "--out", str(out))
        assert r.returncode == 0, (cmd, r.stderr)
        no_password_anywhere(r)
    assert json.loads(shown["show"].stdout)["stream"]["source"] == "postgresql"
    rendered = Path(shown["report"].stdout.strip().splitlines()[-1])
    rendered = rendered if rendered.name == "report.html" else rendered / "report.html"
    assert rendered.read_bytes() == (version(out) / "report.html").read_bytes()  # from the manifest's inputs
    no_password_anywhere(m, out)
    assert pc.sum(pq.read_table(version(out) / "totals.parquet")["clicks"]).as_py() > 0

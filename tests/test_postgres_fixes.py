"""The PostgreSQL stream side as an outsider met it (fix round): the demo refusing to replace a table that
holds rows, rows without window_start quarantined, statement timeouts 0 and out of range, rejected stream
rows in the text summary, the host as a libpq parameter (Unix socket), and the messages that were wrong.
Every check goes through the command line; the truth comes from SQL run here, not from billing."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billing.io.postgres_load import load_stream_table
from tests.lake import D
from tests.pg import fresh_schema, sql

pytestmark = pytest.mark.integration

DATE = D.isoformat()
HOST = "127.0.0.1:5432/test"


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("fixpg") as name:
        yield name


def uri(schema: str, table: str) -> str:
    return f"postgresql://postgres@{HOST}?table={schema}.{table}"


def billing(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    return subprocess.run([sys.executable, "-m", "billing", *args], capture_output=True, text=True, env=env,
                          timeout=300, cwd=Path(__file__).resolve().parents[1])


def reconcile(lake: Path, stream: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return billing("reconcile", "--date", DATE, "--raw", str(lake / "raw"), "--stream", stream, "--out", str(out),
                   *extra)


def summary(out: Path) -> dict[str, Any]:
    return json.loads((out / f"dt={DATE}" / "v=1" / "summary.json").read_text())


def one_line_exit_2(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.strip().splitlines() if " INFO " not in ln]  # progress logs may come first
    assert len(lines) == 1 and lines[0].startswith("billing: error: "), r.stderr
    for n in needles:
        assert n in lines[0], (n, lines[0])


def count(schema: str, table: str, where: str = "true") -> int:
    return int(sql(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {where}')[0][0])


def test_demo_refuses_a_table_holding_rows_unless_told_to_replace_it(schema: str, tmp_path: Path) -> None:
    sql(f'CREATE TABLE "{schema}".sink (ad_id bigint, window_start timestamptz, clicks bigint)')
    sql(f'INSERT INTO "{schema}".sink SELECT g, now(), 1 FROM generate_series(1, 5) g')
    r = billing("demo", "--out", str(tmp_path / "lake"), "--date", DATE, "--rows", "2000",
                "--stream-db", uri(schema, "sink"))
    one_line_exit_2(r, f"{schema}.sink", "holds 5 rows", "--stream-db-replace")
    assert count(schema, "sink") == 5 and not (tmp_path / "lake").exists()  # nothing touched, no lake written
    # an empty existing table is not data: loaded without the flag; the message counts every row it got
    sql(f'TRUNCATE "{schema}".sink')
    sql(f'DROP TABLE "{schema}".sink')
    sql(f'CREATE TABLE "{schema}".sink (ad_id bigint, window_start timestamptz, clicks bigint)')
    r = billing("demo", "--out", str(tmp_path / "lake2"), "--date", DATE, "--rows", "2000",
                "--stream-db", uri(schema, "sink"), "--stream-db-mode", "insert")
    assert r.returncode == 0, r.stderr
    total = count(schema, "sink")
    in_day = count(schema, "sink", f"window_start >= '{DATE}T00:00:00Z' AND window_start < "
                                   f"'{DATE}T00:00:00Z'::timestamptz + interval '1 day'")
    assert 0 < in_day < total, (in_day, total)  # the demo plants rows of other days
    assert f"{total:,} rows ({in_day:,} of {DATE}, {total - in_day:,} of other days" in r.stdout, r.stdout
    # now it holds rows: refused again; with --stream-db-replace it is replaced
    r = billing("demo", "--out", str(tmp_path / "lake3"), "--date", DATE, "--rows", "2000",
                "--stream-db", uri(schema, "sink"))
    one_line_exit_2(r, f"holds {total:,} rows")
    r = billing("demo", "--out", str(tmp_path / "lake3"), "--date", DATE, "--rows", "2000",
                "--stream-db", uri(schema, "sink"), "--stream-db-replace")
    assert r.returncode == 0, r.stderr
    upserted = count(schema, "sink")
    assert f"(upsert): {upserted:,} rows" in r.stdout, r.stdout


def test_rows_without_window_start_are_read_and_quarantined_every_day(
        schema: str, demo_lake: Path, tmp_path: Path) -> None:
    load_stream_table(uri(schema, "sink"), demo_lake / "stream", D, mode="insert")
    sql(f'INSERT INTO "{schema}".sink VALUES (7, NULL, 5, 10), (8, NULL, 6, NULL)')
    day = count(schema, "sink", f"window_start >= '{DATE}T00:00:00Z' AND window_start < "
                                f"'{DATE}T00:00:00Z'::timestamptz + interval '1 day'")
    r = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "out")
    assert r.returncode == 3, r.stderr
    st = summary(tmp_path / "out")["stream"]
    assert st["rows_read"] == day + 2
    assert st["invalid_by_reason"].get("null_window_start") == 2, st
    q = pq.read_table(tmp_path / "out" / f"dt={DATE}" / "v=1" / "stream_quarantine.parquet").to_pylist()
    nulls = sorted((row["ad_id"], row["clicks"]) for row in q if row["reason"] == "null_window_start")
    assert nulls == [(7, 5), (8, 6)]
    # the text summary itemises the rejected stream rows (problem 4)
    assert f"{st['rows_invalid']:,} rows rejected: " in r.stdout and "null_window_start 2" in r.stdout, r.stdout
    # unchanged table, unchanged day; a third NULL row is a change (it is in the rows read and the digest)
    again = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "out")
    assert again.returncode == 3 and "unchanged, still version 1" in again.stdout, again.stdout
    sql(f'INSERT INTO "{schema}".sink VALUES (9, NULL, 1, NULL)')
    third = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "out")
    assert third.returncode == 3 and "published as version 2" in third.stdout, third.stdout
    # the next day reads them too: they belong to no day
    nxt = billing("reconcile", "--date", (D + dt.timedelta(days=1)).isoformat(),
                  "--raw", str(demo_lake / "raw"), "--stream", uri(schema, "sink"), "--out", str(tmp_path / "o2"),
                  "--allow-empty")
    assert "null_window_start 3" in nxt.stdout, (nxt.returncode, nxt.stdout, nxt.stderr)


def test_statement_timeout_zero_is_no_timeout_and_out_of_range_is_refused(
        schema: str, demo_lake: Path, tmp_path: Path) -> None:
    load_stream_table(uri(schema, "sink"), demo_lake / "stream", D, mode="insert")
    r = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "out", "--pg-statement-timeout", "0")
    assert r.returncode == 3, r.stderr
    for value in ("999999d", "25d"):
        r = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "bad", "--pg-statement-timeout", value)
        one_line_exit_2(r, "--pg-statement-timeout", "out of range", "2147483647ms")
        assert not (tmp_path / "bad" / f"dt={DATE}").exists()
    r = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "out", "--pg-statement-timeout", "24d")
    assert r.returncode == 3, r.stderr


def test_text_summary_counts_rejected_stream_rows_from_files(demo_lake: Path, tmp_path: Path) -> None:
    folder = demo_lake / "stream" / f"dt={DATE}"
    schema = pq.read_schema(folder / "part-0000.parquet")
    ws = dt.datetime.combine(D, dt.time(10), tzinfo=dt.UTC)
    bad = pa.table({"ad_id": [None, 5, 6], "window_start": [ws, ws, ws], "clicks": [1, -4, -2]}, schema=schema)
    pq.write_table(bad, folder / "part-0009.parquet")
    r = reconcile(demo_lake, str(demo_lake / "stream"), tmp_path / "out")
    assert r.returncode == 3, r.stderr
    st = summary(tmp_path / "out")["stream"]
    assert st["invalid_by_reason"] == {"negative_clicks": 2, "null_ad_id": 1}, st
    assert "3 rows rejected: " in r.stdout and "negative_clicks 2" in r.stdout and "null_ad_id 1" in r.stdout, \
        r.stdout


def test_host_as_a_parameter_a_socket_directory(schema: str, demo_lake: Path, tmp_path: Path) -> None:
    load_stream_table(uri(schema, "sink"), demo_lake / "stream", D, mode="insert")
    socket = f"postgresql:///test?table={schema}.sink&host=/var/run/postgresql&user=postgres"
    r = reconcile(demo_lake, socket, tmp_path / "out")
    assert r.returncode == 3, r.stderr
    tcp = reconcile(demo_lake, uri(schema, "sink"), tmp_path / "tcp")
    assert tcp.returncode == 3, tcp.stderr
    for name in ("totals.parquet", "stream_quarantine.parquet"):
        assert (tmp_path / "out" / f"dt={DATE}" / "v=1" / name).read_bytes() == \
            (tmp_path / "tcp" / f"dt={DATE}" / "v=1" / name).read_bytes()
    one_line_exit_2(reconcile(demo_lake, f"postgresql:///test?table={schema}.sink", tmp_path / "x"), "no host")


def test_driver_suffixed_scheme_and_a_value_beyond_int64_are_named(
        schema: str, demo_lake: Path, tmp_path: Path) -> None:
    r = reconcile(demo_lake, f"postgresql+psycopg://postgres:s3cret@{HOST}?table={schema}.sink", tmp_path / "a")
    one_line_exit_2(r, "postgresql:// or postgres://")
    assert "s3cret" not in r.stderr and "local path or s3://bucket" not in r.stderr
    sql(f'CREATE TABLE "{schema}".wide (ad_id bigint, window_start timestamptz, "Click Count" numeric(30))')
    sql(f'INSERT INTO "{schema}".wide VALUES (1, $1::timestamptz, 1e25)', (f"{DATE}T10:00:00Z",))
    r = reconcile(demo_lake, uri(schema, "wide"), tmp_path / "b", "--stream-columns", 'clicks="Click Count"')
    one_line_exit_2(r, 'column "Click Count" (mapped to clicks)', "does not fit int64")

"""The stream side read from a PostgreSQL sink table (issue 13, reader core): a real server, no mocks.

The machine runs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, database test). Each test works in
its own uniquely named schema, dropped afterwards. Trust auth accepts any password over 127.0.0.1, so the
wrong-password, PGPASSWORD and pgpass cases run against a private scram-sha-256 cluster this module starts
(initdb + pg_ctl, about a second); they fail, not skip, when that cannot be done (this machine kind ships
PostgreSQL 15 with its server binaries).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from billing.demo import generate
from billing.errors import BadInputError
from billing.io.postgres import ROWS_SCHEMA, StreamDatabase
from billing.io.postgres_load import load_stream_table
from billing.io.postgres_read import _data_sql, read_day, rows_sha256
from billing.io.storage import open_store
from billing.io.stream import discover_stream, inspect_stream, read_stream
from tests.lake import D, at, write_stream
from tests.pg import ADMIN, fresh_schema, sql

pytestmark = pytest.mark.integration

FAKE_PW = "Hunter2-Sekrit-9f3Q"  # must never appear in any message or log line
PG_BIN = Path("/usr/lib/postgresql/15/bin")


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("t13") as name:
        yield name


def uri(schema: str, table: str = "sink", extra: str = "") -> str:
    return f"{ADMIN}?table={schema}.{table}{extra}"


def make_table(schema: str, ddl_cols: str, rows: list[tuple[Any, ...]], table: str = "sink") -> None:
    sql(f'CREATE TABLE "{schema}"."{table}" ({ddl_cols})')
    if rows:
        marks = ", ".join(f"${i + 1}" for i in range(len(rows[0])))
        with pg.connect(ADMIN, autocommit=True) as c, c.cursor() as cur:
            for r in rows:
                cur.execute(f'INSERT INTO "{schema}"."{table}" VALUES ({marks})', parameters=r)


def as_rows(t: pa.Table) -> list[tuple[Any, ...]]:
    t = t.select(list(ROWS_SCHEMA.names))
    return sorted((tuple(r.values()) for r in t.to_pylist()), key=lambda r: tuple((v is not None, v) for v in r))


def one_line(e: pytest.ExceptionInfo[BadInputError]) -> str:
    text = str(e.value)
    assert "\n" not in text and text.strip() == text and text
    assert FAKE_PW not in text
    assert e.value.exit_code == 2
    return text


# --- parsing ---------------------------------------------------------------------------------------------

def test_parse_uri_mapping_and_redaction() -> None:
    db = StreamDatabase.parse(f"postgresql://bill:{FAKE_PW}@db.example:6543/sinks?table=Agg.\"Minute Counts\""
                              "&sslmode=require&application_name=billing",
                              'ad_id=campaign_id, window_start=Minute, clicks="ClickCount", spend_micros=spend')
    assert (db.schema, db.table) == ("agg", "Minute Counts")  # unquoted folded like PostgreSQL, quoted kept
    assert db.columns == {"ad_id": "campaign_id", "window_start": "minute", "clicks": "ClickCount",
                          "spend_micros": "spend"}
    assert db.qualified == '"agg"."Minute Counts"' and db.display == 'agg."Minute Counts"'
    assert FAKE_PW not in db.redacted() and FAKE_PW not in repr(db)
    assert db.redacted().startswith("postgresql://bill@db.example:6543/sinks?table=")
    assert "sslmode=require" in db.redacted() and "application_name=billing" in db.redacted()
    assert "table=" not in db.conninfo and "sslmode=require" in db.conninfo  # the rest goes to libpq
    # no schema: public (never search_path); defaults: every key its own name, spend optional
    db = StreamDatabase.parse("postgres://h/d?table=sink")
    assert (db.schema, db.table, db.columns) == ("public", "sink",
                                                 {"ad_id": "ad_id", "window_start": "window_start", "clicks": "clicks"})
    db = StreamDatabase.parse(f"postgresql://u@h/d?table=s.t&password={FAKE_PW}")
    assert FAKE_PW not in db.redacted() and "password" not in db.redacted()
    assert db.scrub(f"x {FAKE_PW} y") == "x *** y"


@pytest.mark.parametrize(("uri_", "columns", "needle"), [
    ("mysql://h/d?table=t", None, "expected postgresql://"),
    ("postgresql://h/d", None, "table=[SCHEMA.]TABLE parameter is required"),
    ("postgresql://h/d?table=a&table=b", None, "exactly one"),
    ("postgresql://h/?table=t", None, "no database name"),
    ("postgresql://h/d?table=a.b.c", None, "not [SCHEMA.]TABLE"),
    ("postgresql://h/d?table=a;drop", None, "unexpected ';'"),
    ('postgresql://h/d?table="abc', None, "unterminated"),
    ("postgresql://h/d?table=" + "x" * 64, None, "longer than 63 bytes"),
    ("postgresql://h/d?table=t", "ad=x", "KEY=COLUMN"),
    ("postgresql://h/d?table=t", "ad_id=x,ad_id=y", "mapped twice"),
    ("postgresql://h/d?table=t", "ad_id=x,clicks=x", "two keys"),
    ("postgresql://h/d?table=t", "clicks=a b", "unexpected"),
])
def test_parse_refuses(uri_: str, columns: str | None, needle: str) -> None:
    with pytest.raises(BadInputError) as e:
        StreamDatabase.parse(uri_, columns)
    assert needle in one_line(e)


def test_values_are_bound_never_formatted() -> None:
    db = StreamDatabase.parse('postgresql://h/d?table=s."we""ird"', 'clicks="c""x"')
    for kind in ("timestamptz", "timestamp"):
        q = _data_sql(db, db.columns, {"window_start": kind})
        assert "$1" in q and "$2" in q and "2026" not in q and "'" not in q.replace("'UTC'", "")
        assert '"we""ird"' in q and '"c""x"' in q


# --- mapping and types -----------------------------------------------------------------------------------

ROWS = [(1, at(0, 0), 3, 300), (2, at(23, 59), 1, None), (1, at(0, 0), 2, 200)]  # a sink duplicate kept


@pytest.mark.parametrize(("id_t", "ts_t", "n_t"), [
    ("bigint", "timestamptz", "bigint"),
    ("integer", "timestamp", "integer"),
    ("smallint", "timestamptz(0)", "smallint"),
    ("numeric(12,0)", "timestamp(3)", "numeric(12,0)"),
    ("numeric(18,-2)", "timestamptz", "numeric(10,0)"),  # a negative scale holds integers too (ids of hundreds)
])
def test_mapped_columns_of_every_accepted_type(schema: str, id_t: str, ts_t: str, n_t: str) -> None:
    rows = [(100 * r[0], *r[1:]) for r in ROWS] if "-2" in id_t else ROWS
    naive = ts_t.startswith("timestamp") and not ts_t.startswith("timestamptz")
    stored = [(a, w.replace(tzinfo=None) if naive else w, c, s) for a, w, c, s in rows]
    make_table(schema, f"campaign_id {id_t}, minute {ts_t}, click_count {n_t}, spend {n_t}, note text", stored)
    db = StreamDatabase.parse(uri(schema), "ad_id=campaign_id,window_start=minute,clicks=click_count,"
                                           "spend_micros=spend")
    got = read_day(db, D)
    assert got.rows.schema == ROWS_SCHEMA
    assert as_rows(got.rows) == as_rows(pa.Table.from_pylist(
        [dict(zip(ROWS_SCHEMA.names, r, strict=True)) for r in rows], schema=ROWS_SCHEMA))
    assert got.rows_read == 3 and got.columns["spend_micros"] == "spend"


def test_spend_all_null_when_not_mapped_and_absent(schema: str) -> None:
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks int", [(1, at(1), 2)])
    got = read_day(StreamDatabase.parse(uri(schema)), D)
    assert got.rows.column("spend_micros").null_count == 1 and got.rows.schema == ROWS_SCHEMA
    assert "spend_micros" not in got.columns


def test_spend_read_when_present_under_its_own_name(schema: str) -> None:
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks int, spend_micros bigint", [(1, at(1), 2, 7)])
    got = read_day(StreamDatabase.parse(uri(schema)), D)
    assert got.rows.column("spend_micros").to_pylist() == [7]


@pytest.mark.parametrize(("col", "typ", "shown"), [
    ("click_count", "numeric(12,2)", "numeric(12,2)"),
    ("click_count", "numeric", "numeric"),
    ("click_count", "text", "text"),
    ("click_count", "double precision", "double precision"),
    ("campaign_id", "text", "text"),
    ("minute", "date", "date"),
    ("minute", "text", "text"),
    ("spend", "real", "real"),
])
def test_wrong_column_type_is_exit_2_naming_column_and_type(schema: str, col: str, typ: str, shown: str) -> None:
    types = {"campaign_id": "bigint", "minute": "timestamptz", "click_count": "bigint", "spend": "bigint"}
    types[col] = typ
    make_table(schema, ", ".join(f"{c} {t}" for c, t in types.items()), [])
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@127.0.0.1:5432/test?table={schema}.sink",
                              "ad_id=campaign_id,window_start=minute,clicks=click_count,spend_micros=spend")
    with pytest.raises(BadInputError) as e:
        read_day(db, D)
    msg = one_line(e)
    assert f"column {col} of {schema}.sink" in msg and f"has type {shown}" in msg


def test_missing_mapped_column_is_exit_2(schema: str) -> None:
    make_table(schema, "campaign_id bigint, minute timestamptz, clicks bigint", [])
    with pytest.raises(BadInputError) as e:
        read_day(StreamDatabase.parse(uri(schema), "ad_id=campaign_id,window_start=minute,spend_micros=spend"), D)
    assert f"table {schema}.sink has no column spend (mapped to spend_micros)" in one_line(e)


# --- what is read ----------------------------------------------------------------------------------------

def test_only_day_d_is_read_from_a_table_of_several_days(schema: str) -> None:
    rows = [(a, at(h, day=day), 1, None) for day in (-2, -1, 0, 1, 2) for a in (1, 2) for h in (0, 12, 23.99)]
    rows += [(9, at(0, day=1) - dt.timedelta(microseconds=1), 5, None)]  # last µs of D: in
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint, spend_micros bigint", rows)
    make_table(schema, "ad_id bigint, window_start timestamp, clicks bigint",
               [(a, w.replace(tzinfo=None), c) for a, w, c, _ in rows], table="naive")
    for table in ("sink", "naive"):
        got = read_day(StreamDatabase.parse(uri(schema, table)), D)
        ws = got.rows.column("window_start")
        assert got.rows_read == 7
        assert pc.min(ws).as_py() == at(0) and pc.max(ws).as_py() == at(0, day=1) - dt.timedelta(microseconds=1)


def _parquet_stream(root: Path) -> pa.Table:
    store = open_store(str(root))
    return read_stream(store, inspect_stream(store, discover_stream(store, D)))


def test_equals_the_parquet_read_of_the_same_rows(schema: str, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    write_stream(stream, [(1, at(0), 3), (1, at(0), 3), (2, at(1, 5), 4), (None, at(2), 1)], name="a.parquet",  # type: ignore[list-item]  # a null ad_id on purpose
                 spend=[300, 300, None, 5])
    write_stream(stream, [(3, at(23, 59), 1), (4, at(3), -1)], name="b.parquet")  # no spend column
    files = _parquet_stream(stream)
    loaded = load_stream_table(uri(schema), stream, D, mode="insert")
    assert (loaded.rows_in_files, loaded.rows_in_table) == (6, 6)
    got = read_day(StreamDatabase.parse(uri(schema)), D)
    assert as_rows(got.rows) == as_rows(files)
    assert got.sha256 == rows_sha256(got.rows) == rows_sha256(pa.Table.from_pylist(as_rows_dicts(files),
                                                                                    schema=ROWS_SCHEMA))


def as_rows_dicts(t: pa.Table) -> list[dict[str, Any]]:
    return [dict(zip(ROWS_SCHEMA.names, r, strict=True)) for r in as_rows(t)]


def test_demo_day_insert_and_upsert_sinks(schema: str, tmp_path: Path) -> None:
    generate(tmp_path / "demo", D, rows=20_000, seed=1)
    files = _parquet_stream(tmp_path / "demo" / "stream")
    in_day = files.filter(pc.and_(pc.greater_equal(files["window_start"], pa.scalar(at(0), ROWS_SCHEMA[1].type)),
                                  pc.less(files["window_start"], pa.scalar(at(0, day=1), ROWS_SCHEMA[1].type))))
    # insert-only sink: every row, duplicate keys included
    load_stream_table(uri(schema, "ins"), tmp_path / "demo" / "stream", D, mode="insert")
    ins = read_day(StreamDatabase.parse(uri(schema, "ins")), D)
    assert as_rows(ins.rows) == as_rows(in_day) and ins.rows_read == in_day.num_rows
    # upsert sink: the last write per key (files by path, rows in file order)
    res = load_stream_table(uri(schema, "ups"), tmp_path / "demo" / "stream", D, mode="upsert")
    ups = read_day(StreamDatabase.parse(uri(schema, "ups")), D)
    last: dict[tuple[Any, Any], tuple[Any, ...]] = {}
    for r in files.select(list(ROWS_SCHEMA.names)).to_pylist():
        if r["ad_id"] is not None and r["window_start"] is not None and at(0) <= r["window_start"] < at(0, day=1):
            last[(r["ad_id"], r["window_start"])] = tuple(r.values())
    assert as_rows(ups.rows) == sorted(last.values())
    assert ups.rows_read == res.rows_in_table < ins.rows_read  # the demo plants sink duplicates


def test_sha256_stable_across_reads_and_changed_by_any_row_change(schema: str) -> None:
    rows = [(a, at(h), a * 100 + h, None if a == 2 else a) for a in (1, 2, 3) for h in range(5)]
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint, spend_micros bigint", rows)
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint, spend_micros bigint",
               list(reversed(rows)), table="reversed")
    db = StreamDatabase.parse(uri(schema))
    first = read_day(db, D)
    assert read_day(db, D).sha256 == first.sha256 == read_day(StreamDatabase.parse(uri(schema, "reversed")), D).sha256
    changes = [
        (f'UPDATE "{schema}".sink SET clicks = 1300 WHERE clicks = 300',
         f'UPDATE "{schema}".sink SET clicks = 300 WHERE clicks = 1300'),
        (f'UPDATE "{schema}".sink SET spend_micros = 0 WHERE clicks = 200',  # null -> 0
         f'UPDATE "{schema}".sink SET spend_micros = NULL WHERE clicks = 200'),
        (f'UPDATE "{schema}".sink SET ad_id = 4 WHERE clicks = 302',
         f'UPDATE "{schema}".sink SET ad_id = 3 WHERE clicks = 302'),
        (f'UPDATE "{schema}".sink SET window_start = window_start + interval \'1 microsecond\' WHERE clicks = 101',
         f'UPDATE "{schema}".sink SET window_start = window_start - interval \'1 microsecond\' WHERE clicks = 101'),
        (f'INSERT INTO "{schema}".sink VALUES (1, \'{at(0).isoformat()}\', 100, 1)',  # an exact duplicate row
         f'DELETE FROM "{schema}".sink WHERE ctid = (SELECT max(ctid) FROM "{schema}".sink)'),
        (f'DELETE FROM "{schema}".sink WHERE clicks = 304',
         f'INSERT INTO "{schema}".sink VALUES (3, \'{at(4).isoformat()}\', 304, 3)'),
    ]
    for change, undo in changes:
        sql(change)
        assert read_day(db, D).sha256 != first.sha256, change
        sql(undo)
        assert read_day(db, D).sha256 == first.sha256, undo


def test_empty_day_hashes_the_empty_string(schema: str) -> None:
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint", [(1, at(1, day=1), 1)])
    got = read_day(StreamDatabase.parse(uri(schema)), D)
    assert got.rows_read == 0 and got.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert got.rows.schema == ROWS_SCHEMA


# --- one snapshot ----------------------------------------------------------------------------------------

def test_a_concurrent_writer_does_not_change_what_was_read(schema: str) -> None:
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint", [(1, at(1), 1), (2, at(2), 2)])
    db = StreamDatabase.parse(uri(schema))
    before = read_day(db, D)
    calls: list[int] = []

    def writer() -> None:  # another connection, committed, between billing's first and last statement
        calls.append(1)
        sql(f'INSERT INTO "{schema}".sink VALUES (1, $1, 5), (3, $2, 7)', (at(1), at(3)))
        sql(f'UPDATE "{schema}".sink SET clicks = 99 WHERE ad_id = 2')

    during = read_day(db, D, pause_hook=writer)
    assert calls == [1]
    assert (during.sha256, during.rows_read, as_rows(during.rows)) == (before.sha256, 2, as_rows(before.rows))
    after = read_day(db, D)  # the writes did commit: a read that starts afterwards sees them
    assert after.rows_read == 4 and after.sha256 != before.sha256
    assert during.snapshot and during.server_version.startswith("15") and after.snapshot != during.snapshot
    assert during.source == db.redacted() and during.table == f"{schema}.sink"


# --- errors ----------------------------------------------------------------------------------------------

def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_host(schema: str) -> None:
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@127.0.0.1:{_closed_port()}/test?table={schema}.sink")
    with pytest.raises(BadInputError) as e:
        read_day(db, D, connect_timeout_s=2)
    msg = one_line(e)
    assert "cannot reach the server" in msg and "Connection refused" in msg and msg.startswith("postgresql://postgres@")


def test_unresolvable_host() -> None:
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@no-such-host.invalid/test?table=s.t")
    with pytest.raises(BadInputError) as e:
        read_day(db, D)
    assert "cannot reach the server" in one_line(e)


def test_database_missing() -> None:
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@127.0.0.1/no_such_db_13?table=s.t")
    with pytest.raises(BadInputError) as e:
        read_day(db, D)
    assert "database does not exist" in one_line(e) and "no_such_db_13" in str(e.value)


@pytest.mark.parametrize("table", ["nosuch", "nosuchschema_13.sink"])
def test_table_missing(schema: str, table: str) -> None:
    name = table if "." in table else f"{schema}.{table}"
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@127.0.0.1/test?table={name}")
    with pytest.raises(BadInputError) as e:
        read_day(db, D)
    assert f"table {name} does not exist" in one_line(e)


def test_role_that_may_not_log_in_is_an_authentication_failure(schema: str) -> None:
    role = f"t13_nologin_{uuid.uuid4().hex[:8]}"
    sql(f'CREATE ROLE "{role}" NOLOGIN')
    try:
        for user in (role, f"t13_absent_{uuid.uuid4().hex[:8]}"):
            db = StreamDatabase.parse(f"postgresql://{user}:{FAKE_PW}@127.0.0.1/test?table={schema}.sink")
            with pytest.raises(BadInputError) as e:
                read_day(db, D)
            assert "authentication failed" in one_line(e)
    finally:
        sql(f'DROP ROLE "{role}"')


def test_statement_timeout(schema: str) -> None:
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint", [(1, at(1), 1)])
    sql(f'CREATE VIEW "{schema}".slow AS SELECT ad_id, window_start, clicks FROM "{schema}".sink, pg_sleep(2)')
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@127.0.0.1/test?table={schema}.slow")
    with pytest.raises(BadInputError) as e:
        read_day(db, D, statement_timeout=0.2)
    assert "statement timeout" in one_line(e)
    assert read_day(StreamDatabase.parse(uri(schema)), D, statement_timeout=5).rows_read == 1


def _terminator(app: str, times: int) -> Callable[[], None]:
    done: list[int] = []

    def hook() -> None:
        if len(done) < times:
            killed = sql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
                         (app,))
            assert killed[0][0] == 1
            done.append(1)
    return hook


def test_server_closing_mid_read_is_retried_then_exit_2(schema: str, caplog: pytest.LogCaptureFixture) -> None:
    make_table(schema, "ad_id bigint, window_start timestamptz, clicks bigint", [(1, at(1), 1)])
    app = f"t13_{uuid.uuid4().hex[:8]}"
    db = StreamDatabase.parse(f"postgresql://postgres:{FAKE_PW}@127.0.0.1/test?table={schema}.sink"
                              f"&application_name={app}")
    with caplog.at_level(logging.WARNING, logger="billing.io.postgres_read"), pytest.raises(BadInputError) as e:
        read_day(db, D, pause_hook=_terminator(app, 99), backoff_s=0.05)
    msg = one_line(e)
    assert "the server closed the connection" in msg and "after 3 attempts" in msg
    assert len([r for r in caplog.records if "retrying" in r.getMessage()]) == 2
    assert all(FAKE_PW not in r.getMessage() for r in caplog.records)
    # closed once, then the retry reads the day
    got = read_day(db, D, pause_hook=_terminator(app, 1), backoff_s=0.05)
    assert (got.rows_read, got.attempts) == (1, 2)


# --- a server that checks passwords: wrong password, PGPASSWORD, pgpass ----------------------------------

AUTH_PW = "Right-Pw-13-c0ffee"


@pytest.fixture(scope="module")
def auth_server() -> Iterator[str]:
    """A private PostgreSQL 15 cluster with scram-sha-256 for every connection; yields its base URI."""
    if not (PG_BIN / "initdb").exists() or (shutil.which("su") is None and os.geteuid() == 0):
        pytest.fail("no initdb here: password authentication cannot be exercised")
    root = Path(tempfile.mkdtemp(prefix="t13auth."))
    port = _closed_port()
    (root / "pw").write_text(AUTH_PW + "\n")

    def run(*cmd: str) -> None:
        line = " ".join(f"'{c}'" for c in cmd)
        full = ["su", "postgres", "-s", "/bin/sh", "-c", line] if os.geteuid() == 0 else list(cmd)
        subprocess.run(full, check=True, capture_output=True, timeout=60)

    try:
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
            shutil.chown(root / "pw", "postgres")
        run(str(PG_BIN / "initdb"), "-D", str(root / "data"), "-A", "scram-sha-256", "-U", "postgres",
            f"--pwfile={root / 'pw'}", "-N")
        run(str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off", "start")
    except (subprocess.CalledProcessError, OSError, LookupError) as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.fail(f"cannot start a private PostgreSQL with password auth: {e}")
    base = f"127.0.0.1:{port}/postgres"
    sql("CREATE TABLE public.sink (ad_id bigint, window_start timestamptz, clicks bigint)",
        uri=f"postgresql://postgres:{AUTH_PW}@{base}")
    sql("INSERT INTO public.sink VALUES (1, $1, 4)", (at(2),), uri=f"postgresql://postgres:{AUTH_PW}@{base}")
    try:
        yield base
    finally:
        subprocess.run(["su", "postgres", "-s", "/bin/sh", "-c",
                        f"'{PG_BIN / 'pg_ctl'}' -D '{root / 'data'}' -m immediate stop"]
                       if os.geteuid() == 0 else [str(PG_BIN / "pg_ctl"), "-D", str(root / "data"), "-m",
                                                  "immediate", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_wrong_password_is_exit_2_without_the_password(auth_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    for u in (f"postgresql://postgres:{FAKE_PW}@{auth_server}?table=sink",
              f"postgresql://postgres@{auth_server}?table=sink&password={FAKE_PW}",
              f"postgresql://postgres@{auth_server}?table=sink"):  # no password at all
        with pytest.raises(BadInputError) as e:
            read_day(StreamDatabase.parse(u), D)
        msg = one_line(e)
        assert msg.startswith(f"postgresql://postgres@{auth_server}?table=sink: authentication failed: ")


def test_pgpassword_and_pgpass_work_as_for_libpq(auth_server: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    db = StreamDatabase.parse(f"postgresql://postgres@{auth_server}?table=sink")
    monkeypatch.setenv("PGPASSFILE", "/nonexistent/pgpass")
    monkeypatch.setenv("PGPASSWORD", AUTH_PW)
    assert read_day(db, D).rows_read == 1
    monkeypatch.delenv("PGPASSWORD")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{auth_server.split(':')[1].split('/')[0]}:*:postgres:{AUTH_PW}\n")
    passfile.chmod(0o600)
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    got = read_day(db, D)
    assert got.rows_read == 1 and AUTH_PW not in got.source
    # the password in the URI works as well and is in no field of the result
    got = read_day(StreamDatabase.parse(f"postgresql://postgres:{AUTH_PW}@{auth_server}?table=sink"), D)
    assert AUTH_PW not in repr(got) and AUTH_PW not in str(got.manifest())


# --- the demo loader -------------------------------------------------------------------------------------

def test_load_upsert_keeps_the_last_write_per_key_and_insert_keeps_every_row(schema: str, tmp_path: Path) -> None:
    stream = tmp_path / "stream"
    write_stream(stream, [(1, at(1), 1), (2, at(1), 5), (None, at(1), 9)], name="a.parquet",  # type: ignore[list-item]  # a null ad_id on purpose
                 spend=[10, 50, 90])
    write_stream(stream, [(1, at(1), 3), (1, at(1), 4)], name="b.parquet", spend=[30, None])
    ins = load_stream_table(uri(schema, "ins"), stream, D, mode="insert")
    ups = load_stream_table(uri(schema, "ups"), stream, D, mode="upsert")
    assert (ins.rows_in_table, ins.dropped_null_key) == (5, 0)
    assert (ups.rows_in_table, ups.dropped_null_key) == (2, 1)
    assert as_rows(read_day(StreamDatabase.parse(uri(schema, "ups")), D).rows) == [(1, at(1), 4, None),
                                                                                  (2, at(1), 5, 50)]
    # replace=False appends (insert) / upserts into the existing table; the default replaces it
    assert load_stream_table(uri(schema, "ins"), stream, D, mode="insert", replace=False).rows_in_table == 10
    assert load_stream_table(uri(schema, "ins"), stream, D, mode="insert").rows_in_table == 5
    # a mapped table: the loader names the columns as the reader will map them
    cols = "ad_id=campaign_id,window_start=minute,clicks=click_count,spend_micros=spend"
    load_stream_table(uri(schema, "mapped"), stream, D, mode="insert", columns=cols)
    assert as_rows(read_day(StreamDatabase.parse(uri(schema, "mapped"), cols), D).rows) == as_rows(
        read_day(StreamDatabase.parse(uri(schema, "ins")), D).rows)

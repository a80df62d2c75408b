"""The day's totals exported to the invoicing database (issue 14, export core): a real PostgreSQL server.

The machine runs PostgreSQL on 127.0.0.1:5432 (user postgres, trust auth, database test). Each test works in
its own uniquely named schema, dropped afterwards (and its own roles, dropped too).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import pyarrow as pa
import pytest

from billing.errors import BadInputError
from billing.io.invoicing import Export, ddl, export_day
from tests.pg import ADMIN, fresh_schema, sql

pytestmark = pytest.mark.integration

FAKE_PW = "Hunter2-Sekrit-9f3Q"  # must never appear in any message
D = dt.date(2026, 11, 26)
D2 = dt.date(2026, 11, 27)
TS = pa.timestamp("us", tz="UTC")


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("t14") as name:
        yield name


@pytest.fixture
def role() -> Iterator[str]:
    name = f"t14_role_{uuid.uuid4().hex[:8]}"
    sql(f'CREATE ROLE "{name}" LOGIN')
    yield name
    sql(f'DROP OWNED BY "{name}"')
    sql(f'DROP ROLE "{name}"')


def target(schema: str, table: str = "billing_totals", user: str = "postgres", pw: str | None = None) -> str:
    auth = f"{user}:{pw}" if pw else user
    return f"postgresql://{auth}@127.0.0.1:5432/test?table={schema}.{table}"


def totals(date: dt.date, version: int, n: int = 100) -> pa.Table:
    """The day's totals; clicks and spend say which version wrote them."""
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    return pa.table({
        "ad_id": pa.array([i // 1440 for i in range(n)], pa.int64()),
        "window_start": pa.array([start + dt.timedelta(minutes=i % 1440) for i in range(n)], TS),
        "clicks": pa.array([version * 1_000_000 + i for i in range(n)], pa.int64()),
        "spend_micros": pa.array([None if i % 7 == 0 else version * 10 + i for i in range(n)], pa.int64()),
    })


def sha(version: int, salt: str = "") -> str:
    return (f"{salt}{version:x}".encode().hex() * 64)[:64]


def rows_of(schema: str, date: dt.date, table: str = "billing_totals") -> list[tuple[Any, ...]]:
    return sql(f'SELECT ad_id, window_start, clicks, spend_micros, billing_version FROM "{schema}"."{table}" '
               "WHERE date = $1 ORDER BY ad_id, window_start", (date,))


def as_rows(t: pa.Table, version: int) -> list[tuple[Any, ...]]:
    return sorted((r["ad_id"], r["window_start"], r["clicks"], r["spend_micros"], version) for r in t.to_pylist())


def ledger(schema: str, table: str = "billing_totals") -> list[tuple[Any, ...]]:
    return sql(f'SELECT date, version, manifest_sha256, row_count FROM "{schema}"."{table}_exports" ORDER BY date')


def one_line(e: pytest.ExceptionInfo[BadInputError]) -> str:
    text = str(e.value)
    assert "\n" not in text and text.strip() == text and text
    assert FAKE_PW not in text
    assert e.value.exit_code == 2
    return text


# --- export, re-export ---------------------------------------------------------------------------------------

def test_export_then_reexport_changes_nothing(schema: str) -> None:
    uri = target(schema)
    first = export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert isinstance(first, Export)
    assert (first.unchanged, first.previous_version, first.rows, first.rows_deleted) == (False, None, 100, 0)
    assert first.created_tables == (f"{schema}.billing_totals", f"{schema}.billing_totals_exports")
    assert first.target == uri and first.table == f"{schema}.billing_totals"
    assert first.message().startswith(f"{D}: exported version 1 to {schema}.billing_totals: 100 rows")
    assert rows_of(schema, D) == as_rows(totals(D, 1), 1)
    assert ledger(schema) == [(D, 1, sha(1), 100)]
    # the documented DDL is what was created: primary key (date, ad_id, window_start), ledger keyed by date
    pk = sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'",
             (f'"{schema}".billing_totals',))
    assert pk == [("PRIMARY KEY (date, ad_id, window_start)",)]
    pk = sql("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = to_regclass($1) AND contype = 'p'",
             (f'"{schema}".billing_totals_exports',))
    assert pk == [("PRIMARY KEY (date)",)]
    assert "PRIMARY KEY (date, ad_id, window_start)" in ddl(schema, "billing_totals")[0]

    stamp = sql(f'SELECT xmin::text, exported_at FROM "{schema}".billing_totals_exports')
    row_xmins = sql(f'SELECT DISTINCT xmin::text FROM "{schema}".billing_totals')
    again = export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert again.unchanged and not again.rollback
    assert (again.previous_version, again.rows, again.rows_deleted, again.created_tables) == (1, 100, 0, ())
    assert again.exported_at == first.exported_at
    assert again.message().startswith(f"{D}: unchanged, {schema}.billing_totals already holds version 1")
    # nothing was written: same tuples (xmin), same ledger row
    assert sql(f'SELECT xmin::text, exported_at FROM "{schema}".billing_totals_exports') == stamp
    assert sql(f'SELECT DISTINCT xmin::text FROM "{schema}".billing_totals') == row_xmins


def test_days_are_independent_and_an_empty_day_is_exported(schema: str) -> None:
    uri = target(schema)
    export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    export_day(uri, D2, totals(D2, 4, n=30), version=4, manifest_sha256=sha(4))
    empty = export_day(uri, D, totals(D, 2).slice(0, 0), version=2, manifest_sha256=sha(2))
    assert (empty.rows, empty.rows_deleted, empty.previous_version) == (0, 100, 1)
    assert rows_of(schema, D) == [] and rows_of(schema, D2) == as_rows(totals(D2, 4, n=30), 4)
    assert ledger(schema) == [(D, 2, sha(2), 0), (D2, 4, sha(4), 30)]
    assert export_day(uri, D, totals(D, 2).slice(0, 0), version=2, manifest_sha256=sha(2)).unchanged


def test_rows_changed_by_hand_are_restored_by_a_reexport(schema: str) -> None:
    uri = target(schema)
    export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    sql(f'DELETE FROM "{schema}".billing_totals WHERE ad_id = 0 AND clicks % 2 = 0')
    again = export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert not again.unchanged and again.rows_deleted == 50
    assert rows_of(schema, D) == as_rows(totals(D, 1), 1)


def test_a_restated_day_is_replaced_in_one_transaction(schema: str) -> None:
    """A reader polling in another connection while version 2 replaces version 1 (the export paused between
    its DELETE and its COPY) sees all of version 1 or all of version 2: never a mix, never an empty day."""
    uri = target(schema)
    n1, n2 = 20_000, 30_000
    export_day(uri, D, totals(D, 1, n=n1), version=1, manifest_sha256=sha(1))
    export_day(uri, D2, totals(D2, 1, n=50), version=1, manifest_sha256=sha(1, "d2"))
    seen: list[tuple[int, int, int]] = []
    paused = threading.Event()
    done = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with pg.connect(ADMIN, autocommit=True) as c, c.cursor() as cur:
                while not done.is_set():
                    cur.execute(f'SELECT count(*), min(billing_version), max(billing_version), sum(clicks)::int8 '
                                f'FROM "{schema}".billing_totals WHERE date = $1', parameters=(D,))
                    count, lo, hi, clicks = cur.fetchone()
                    seen.append((int(count), lo or 0, hi or 0))
                    expected = {n1: (1, 1, sum(1_000_000 + i for i in range(n1))),
                                n2: (2, 2, sum(2_000_000 + i for i in range(n2)))}
                    assert (lo, hi, clicks) == expected.get(count), (count, lo, hi, clicks)
                    time.sleep(0.005)
        except BaseException as e:
            errors.append(e)

    def pause() -> None:
        paused.set()
        time.sleep(1.0)  # the day's old rows are deleted, the new ones not yet loaded

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        time.sleep(0.1)
        restated = export_day(uri, D, totals(D, 2, n=n2), version=2, manifest_sha256=sha(2), pause_hook=pause)
        time.sleep(0.1)
    finally:
        done.set()
        thread.join(30)
    assert not errors, errors[0]
    assert paused.is_set()
    assert (restated.previous_version, restated.rows_deleted, restated.rows, restated.unchanged) == (1, n1, n2, False)
    assert restated.message().startswith(f"{D}: restated version 2")
    assert set(seen) == {(n1, 1, 1), (n2, 2, 2)}  # both were seen, and nothing else
    assert sum(1 for s in seen if s[2] == 1) > 20  # the reader kept reading the old day during the pause
    assert rows_of(schema, D) == as_rows(totals(D, 2, n=n2), 2)
    assert rows_of(schema, D2) == as_rows(totals(D2, 1, n=50), 1)  # the other day untouched
    assert ledger(schema) == [(D, 2, sha(2), n2), (D2, 1, sha(1, "d2"), 50)]


def test_a_failed_export_leaves_the_previous_version(schema: str) -> None:
    uri = target(schema)
    export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))

    def boom() -> None:
        raise RuntimeError("killed between DELETE and COPY")

    with pytest.raises(RuntimeError):
        export_day(uri, D, totals(D, 2), version=2, manifest_sha256=sha(2), pause_hook=boom)
    assert rows_of(schema, D) == as_rows(totals(D, 1), 1)
    assert ledger(schema) == [(D, 1, sha(1), 100)]


# --- versions -------------------------------------------------------------------------------------------------

def test_rollback_is_refused_unless_allowed(schema: str) -> None:
    uri = target(schema)
    export_day(uri, D, totals(D, 3), version=3, manifest_sha256=sha(3))
    with pytest.raises(BadInputError) as e:
        export_day(uri, D, totals(D, 2), version=2, manifest_sha256=sha(2))
    text = one_line(e)
    assert "holds version 3" in text and "refusing to export older version 2" in text
    assert rows_of(schema, D) == as_rows(totals(D, 3), 3) and ledger(schema) == [(D, 3, sha(3), 100)]
    back = export_day(uri, D, totals(D, 2, n=80), version=2, manifest_sha256=sha(2), allow_rollback=True)
    assert back.rollback and not back.unchanged and back.previous_version == 3
    assert back.message().startswith(f"{D}: rolled back version 2")
    assert rows_of(schema, D) == as_rows(totals(D, 2, n=80), 2) and ledger(schema) == [(D, 2, sha(2), 80)]
    # a newer version after that is a plain restatement
    assert not export_day(uri, D, totals(D, 3), version=3, manifest_sha256=sha(3)).rollback


def test_same_version_with_another_manifest_is_refused(schema: str) -> None:
    uri = target(schema)
    export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    with pytest.raises(BadInputError) as e:
        export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1, "other"))
    assert "one version, two contents" in one_line(e)


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"version": 0}, ">= 1"),
    ({"manifest_sha256": "abc"}, "64 lowercase hex"),
    ({"totals": totals(D, 1).drop_columns(["clicks"])}, "missing column(s) clicks"),
    ({"totals": totals(D2, 1)}, "outside the day"),
    ({"totals": totals(D, 1).set_column(2, "clicks", pa.array([None] * 100, pa.int64()))}, "null"),
])
def test_bad_totals_are_refused_before_connecting(kwargs: dict[str, Any], needle: str) -> None:
    args: dict[str, Any] = {"totals": totals(D, 1), "version": 1, "manifest_sha256": sha(1), **kwargs}
    with pytest.raises(BadInputError) as e:  # the URI's server does not exist: nothing was tried
        export_day(target("s", user="u", pw=FAKE_PW).replace("127.0.0.1:5432", "127.0.0.1:1"), D, args.pop("totals"),
                   **args)
    assert needle in one_line(e)


# --- errors -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "needle"), [
    (f"mysql://u:{FAKE_PW}@h/d?table=s.t", "invoicing URI: expected postgresql://"),
    (f"postgresql://u:{FAKE_PW}@h/d", "invoicing URI: exactly one table="),
    (f"postgresql://u:{FAKE_PW}@127.0.0.1:5432/test?table=s." + "x" * 60, "too long for its ledger"),
])
def test_bad_uri(uri: str, needle: str) -> None:
    with pytest.raises(BadInputError) as e:
        export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert needle in one_line(e)


def test_unreachable_server() -> None:
    uri = f"postgresql://billing:{FAKE_PW}@127.0.0.1:1/test?table=inv.totals"
    with pytest.raises(BadInputError) as e:
        export_day(uri, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    text = one_line(e)
    assert "cannot reach the server" in text and text.startswith("postgresql://billing@127.0.0.1:1/test?table=")


def test_missing_database_and_schema(schema: str) -> None:
    with pytest.raises(BadInputError) as e:
        export_day(f"postgresql://postgres:{FAKE_PW}@127.0.0.1:5432/no_such_db_t14?table=s.t", D, totals(D, 1),
                   version=1, manifest_sha256=sha(1))
    assert "database does not exist" in one_line(e)
    with pytest.raises(BadInputError) as e:
        export_day(target(schema + "_absent", pw=FAKE_PW), D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert f"schema {schema}_absent does not exist" in one_line(e)


def test_a_role_without_insert_permission(schema: str, role: str) -> None:
    export_day(target(schema), D, totals(D, 1), version=1, manifest_sha256=sha(1))
    sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    sql(f'GRANT SELECT, DELETE, UPDATE ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')  # no INSERT
    with pytest.raises(BadInputError) as e:
        export_day(target(schema, user=role, pw=FAKE_PW), D, totals(D, 2), version=2, manifest_sha256=sha(2))
    text = one_line(e)
    assert "permission denied loading" in text and "billing_totals" in text
    assert text.startswith(f"postgresql://{role}@127.0.0.1:5432/test?table=")
    assert rows_of(schema, D) == as_rows(totals(D, 1), 1)  # the DELETE was rolled back with the rest
    assert ledger(schema) == [(D, 1, sha(1), 100)]
    # reading is allowed: the same version again is "unchanged" for this role too
    assert export_day(target(schema, user=role, pw=FAKE_PW), D, totals(D, 1), version=1,
                      manifest_sha256=sha(1)).unchanged


def test_a_role_that_cannot_create_the_tables(schema: str, role: str) -> None:
    sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')
    with pytest.raises(BadInputError) as e:
        export_day(target(schema, user=role, pw=FAKE_PW), D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert "permission denied creating the tables" in one_line(e)
    assert sql("SELECT to_regclass($1)::text", (f'"{schema}".billing_totals',)) == [(None,)]


def test_quoted_names(schema: str) -> None:
    quoted = f'postgresql://postgres@127.0.0.1:5432/test?table={schema}."Billing Totals"'
    done = export_day(quoted, D, totals(D, 1), version=1, manifest_sha256=sha(1))
    assert done.table == f'{schema}."Billing Totals"' and done.ledger == f'{schema}."Billing Totals_exports"'
    assert len(rows_of(schema, D, table="Billing Totals")) == 100


def test_two_exports_of_one_day_at_once_are_serialised(schema: str) -> None:
    """The advisory lock queues the second export behind the first: one restates, the other is unchanged
    or restates again; the day ends with one version's rows, and the ledger agrees."""
    uri = target(schema)
    results: list[Export] = []
    errors: list[BaseException] = []

    def run(version: int) -> None:
        try:
            results.append(export_day(uri, D, totals(D, version, n=5000), version=version,
                                      manifest_sha256=sha(version), pause_hook=lambda: time.sleep(0.3)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(v,)) for v in (1, 1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:  # v1 after v2: refused as a rollback, the only acceptable failure
        assert all(isinstance(e, BadInputError) and "refusing to export older" in str(e) for e in errors)
    ((_, final, _, n),) = ledger(schema)
    assert rows_of(schema, D) == as_rows(totals(D, final, n=5000), final) and n == 5000
    assert final == 2 or not any(r.version == 2 for r in results)


def test_the_out_recorded_in_the_ledger_carries_no_credentials() -> None:
    from billing.io.invoicing_ledger import out_identity

    assert out_identity(f"s3://AKIAX:{FAKE_PW}@lake/billing?region=eu") == "s3://lake/billing"
    assert out_identity("s3://lake:9000/billing") == "s3://lake:9000/billing"
    assert out_identity("/data/out") == "/data/out"

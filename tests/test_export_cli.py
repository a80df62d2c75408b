"""``billing export`` against the local PostgreSQL server (issue 14, wiring): the current version's totals of a
reconciled day, fed to the invoicing table through the command line. The export core's own cases (ledger
rules, locks, quoting, bad totals) are tested in tests/test_invoicing_export.py; these are the CLI's.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from tests.lake import at, click, write_raw, write_stream
from tests.pg import ADMIN, fresh_schema, sql

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
D = dt.date(2026, 11, 26)
FAKE_PW = "Hunter2-Sekrit-CLI-7xQ"  # must never appear in any output


@pytest.fixture
def schema() -> Iterator[str]:
    with fresh_schema("t14cli") as name:
        yield name


def target(schema: str, user: str = "postgres", pw: str | None = None, port: int = 5432) -> str:
    return f"postgresql://{user}{':' + pw if pw else ''}@127.0.0.1:{port}/test?table={schema}.invoicing"


def reconcile(tmp: Path, out: Path, extra_clicks: int = 0) -> None:
    """A day of 5 clicks (+ ``extra_clicks``) of two ads under ``out``: a new version when they change."""
    rows = [click(at(10, seconds=i), ad=1 + i % 2, seq=i) for i in range(5 + extra_clicks)]
    write_raw(tmp / "raw", "dt=2026-11-26/hour=10/a.parquet", rows)
    write_stream(tmp / "stream", [(1, at(10), 3), (2, at(10), 2)])
    r = CliRunner().invoke(cli, ["reconcile", "--date", str(D), "--raw", str(tmp / "raw"), "--stream",
                                 str(tmp / "stream"), "--out", str(out), "--no-tables", "--memory-limit", "1536MiB"])
    assert r.exit_code in (0, 3), r.output


def export(out: Path, uri: str, *extra: str) -> Any:
    return CliRunner().invoke(cli, ["export", "--date", str(D), "--out", str(out), "--to", uri, *extra])


def current_rows(out: Path) -> list[tuple[Any, ...]]:
    """The current version's totals.parquet (pyarrow) as the invoicing table's rows."""
    import json

    v = json.loads((out / f"dt={D}" / "_current.json").read_text())["version"]
    t = pq.read_table(out / f"dt={D}" / f"v={v}" / "totals.parquet")
    return sorted((D, r["ad_id"], r["window_start"], r["clicks"], r["spend_micros"], v) for r in t.to_pylist())


def table_rows(schema: str) -> list[tuple[Any, ...]]:
    return sql(f'SELECT date, ad_id, window_start, clicks, spend_micros, billing_version FROM "{schema}".invoicing '
               "ORDER BY ad_id, window_start")


def test_export_reexport_restatement_and_rollback(schema: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    reconcile(tmp_path, out)
    r = export(out, target(schema))
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{D}: exported version 1 to {schema}.invoicing: 2 rows\n"
    assert table_rows(schema) == current_rows(out)
    exported_at = sql(f'SELECT exported_at FROM "{schema}".invoicing_exports')

    r = export(out, target(schema))  # a retry: nothing changes, and it says so
    assert r.exit_code == 0 and r.stdout.startswith(f"{D}: unchanged, {schema}.invoicing already holds version 1 "
                                                    "(2 rows, exported "), r.output
    assert sql(f'SELECT exported_at FROM "{schema}".invoicing_exports') == exported_at

    # version 2, exported while a reader in another connection watches the day: old rows or new, never a mix
    old = current_rows(out)
    reconcile(tmp_path, out, extra_clicks=2)
    new = current_rows(out)
    assert new != old
    blocker = pg.connect(ADMIN)  # holds one of the day's rows: the export's DELETE waits on it, mid-transaction
    with blocker.cursor() as cur:
        cur.execute(f'SELECT 1 FROM "{schema}".invoicing WHERE ad_id = 2 FOR SHARE')
        cur.fetchall()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    proc = subprocess.Popen([sys.executable, "-m", "billing", "export", "--date", str(D), "--out", str(out), "--to",
                             target(schema)], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not sql("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%DELETE FROM%' "
                      "AND query LIKE $1", (f"%{schema}%",)):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.1)
        assert table_rows(schema) == old  # the export is under way: a reader sees the whole old version
    finally:
        blocker.rollback()
        blocker.close()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert stdout == f"{D}: restated version 2 to {schema}.invoicing: 2 rows (was version 1, 2 rows)\n"
    assert table_rows(schema) == new

    # another OUT whose current version is older: refused (exit 2), unless --allow-rollback
    older = tmp_path / "older"
    reconcile(tmp_path / "o", older)
    r = export(older, target(schema), "--replace-other-out")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert "refusing to export older version 1" in r.stderr and "(--allow-rollback to do it)" in r.stderr
    assert table_rows(schema) == new
    r = export(older, target(schema), "--allow-rollback", "--replace-other-out")
    assert r.exit_code == 0 and r.stdout.startswith(f"{D}: rolled back version 1 to {schema}.invoicing"), r.output
    assert table_rows(schema) == current_rows(older)


def test_reexport_repairs_rows_changed_by_hand(schema: str, tmp_path: Path) -> None:
    """The unchanged check compares the day's rows (a fingerprint on both sides), not only version and count."""
    out = tmp_path / "out"
    reconcile(tmp_path, out)
    assert export(out, target(schema)).exit_code == 0
    inv = f'"{schema}".invoicing'
    repaired = f"{D}: repaired: the table's rows of {D} differed from version 1; {schema}.invoicing holds 2 rows"
    changes = [(f"UPDATE {inv} SET clicks = clicks + 1000 WHERE date = $1 AND ad_id = 2", 2),  # the count stays
               (f"UPDATE {inv} SET spend_micros = spend_micros + 1 WHERE date = $1 AND ad_id = 1", 2),
               (f"UPDATE {inv} SET window_start = window_start + interval '1 minute' WHERE date = $1 AND ad_id = 1", 2),
               (f"DELETE FROM {inv} WHERE date = $1 AND ad_id = 2", 1),
               (f"INSERT INTO {inv} SELECT date, 999, window_start, 7, 0, billing_version FROM {inv} "
                "WHERE date = $1 AND ad_id = 1", 3)]
    for change, had in changes:
        sql(change, (D,))
        assert table_rows(schema) != current_rows(out)
        r = export(out, target(schema))
        assert r.exit_code == 0 and r.stdout == f"{repaired} (had {had})\n", (change, r.output)
        assert table_rows(schema) == current_rows(out)
        r = export(out, target(schema))
        assert r.exit_code == 0 and " unchanged, " in r.stdout, r.output
    before = sql(f'SELECT exported_at FROM "{schema}".invoicing_exports')
    r = export(out, target(schema), "--force")
    assert r.exit_code == 0, r.output
    assert r.stdout == f"{D}: rewrote version 1 (forced); {schema}.invoicing holds 2 rows (had 2)\n"
    assert table_rows(schema) == current_rows(out)
    assert sql(f'SELECT exported_at FROM "{schema}".invoicing_exports') != before


def test_an_export_from_another_out_is_refused(schema: str, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    reconcile(tmp_path / "ta", a)
    reconcile(tmp_path / "tb", b)
    reconcile(tmp_path / "tb", b, extra_clicks=2)  # b's day is at version 2, a's at version 1
    assert export(a, target(schema)).exit_code == 0
    assert sql(f'SELECT out_uri FROM "{schema}".invoicing_exports') == [(str(a),)]
    r = export(b, target(schema))
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output
    assert f"was exported from OUT {a}, not {b}; refusing (--replace-other-out to do it)" in r.stderr
    assert table_rows(schema) == current_rows(a)
    r = export(b, target(schema), "--replace-other-out")
    assert r.exit_code == 0 and r.stdout.startswith(f"{D}: restated version 2 "), r.output
    assert table_rows(schema) == current_rows(b)
    assert sql(f'SELECT out_uri FROM "{schema}".invoicing_exports') == [(str(b),)]
    # a ledger made before the OUT was recorded: its rows (no OUT) keep working, and get one
    sql(f'ALTER TABLE "{schema}".invoicing_exports DROP COLUMN out_uri')
    r = export(b, target(schema))
    assert r.exit_code == 0 and " unchanged, " in r.stdout, r.output
    r = export(a, target(schema), "--allow-rollback")
    assert r.exit_code == 0 and r.stdout.startswith(f"{D}: rolled back version 1 "), r.output
    assert sql(f'SELECT out_uri FROM "{schema}".invoicing_exports') == [(str(a),)]


@pytest.fixture
def role() -> Iterator[str]:
    name = f"t14cli_role_{uuid.uuid4().hex[:8]}"
    sql(f'CREATE ROLE "{name}" LOGIN')
    yield name
    sql(f'DROP OWNED BY "{name}"')
    sql(f'DROP ROLE "{name}"')


def test_errors_are_exit_2_one_line_without_the_password(schema: str, role: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    reconcile(tmp_path, out)
    sql(f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"')  # may read the schema, not create in it
    cases = [
        (f"postgresql://u:{FAKE_PW}@127.0.0.1:5432/test", "exactly one table="),
        (f"mysql://u:{FAKE_PW}@h/d?table=s.t", "expected postgresql://"),
        (target(schema, "billing", FAKE_PW, port=1), "cannot reach the server"),
        (target(schema, role, FAKE_PW), "permission denied creating the tables"),
    ]
    for uri, needle in cases:
        r = export(out, uri)
        assert r.exit_code == 2, (uri, r.output)
        assert r.stderr.count("\n") == 1 and r.stderr.startswith("billing: error: ") and needle in r.stderr, r.stderr
        assert FAKE_PW not in r.output
    # PostgreSQL's whole primary message, not cut off, and no SQL text
    r = export(out, target(schema, role, FAKE_PW))
    assert f"permission denied creating the tables: permission denied for schema {schema}\n" in r.stderr, r.stderr
    assert "CREATE" not in r.stderr and "LINE" not in r.stderr, r.stderr
    assert sql("SELECT to_regclass($1)::text", (f'"{schema}".invoicing',)) == [(None,)]
    # a day without a version: exit 2 before any connection
    r = export(tmp_path / "empty", target(schema))
    assert r.exit_code == 2 and "no committed version" in r.stderr

"""The demo's sink: a day's stream Parquet files loaded into a PostgreSQL table (upsert or insert-only)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from billing.errors import BadInputError
from billing.io.postgres import KEYS, ROWS_SCHEMA, StreamDatabase, quote_ident
from billing.io.postgres_errors import session, with_connect_timeout


@dataclass(frozen=True)
class LoadResult:
    table: str
    mode: str
    rows_in_files: int
    rows_in_table: int
    """Rows of the table with window_start in [D, D+1) UTC after the load."""
    dropped_null_key: int
    """``upsert`` only: rows with a null ad_id or window_start (a primary key cannot hold them)."""
    rows_total: int = 0
    """All rows of the table after the load (other days' rows included)."""


def _stream_files(stream_dir: str | Path, date: dt.date) -> list[Path]:
    folder = Path(stream_dir) / f"dt={date.isoformat()}"
    return sorted(p for p in folder.rglob("*.parquet")
                  if not any(part.startswith(("_", ".")) for part in p.relative_to(folder).parts))


def _file_rows(path: Path) -> pa.Table:
    t = pq.read_table(path)
    n = t.num_rows
    cols = []
    for f in ROWS_SCHEMA:
        if f.name not in t.column_names:
            if f.name != "spend_micros":
                raise BadInputError(f"{path}: no column {f.name}")
            cols.append(pa.nulls(n, pa.int64()))
            continue
        c = t.column(f.name)
        if f.name == "window_start" and pa.types.is_timestamp(c.type) and c.type.tz is None:
            c = c.cast(pa.timestamp(c.type.unit, tz="UTC"))
        cols.append(c.cast(f.type))
    return pa.Table.from_arrays(cols, schema=ROWS_SCHEMA)


def existing_rows(uri: str) -> int | None:
    """How many rows the URI's table holds now, None when it does not exist (the demo refuses to replace
    a table holding rows unless told to)."""
    db = StreamDatabase.parse(uri)
    with session(db, with_connect_timeout(db.conninfo, None)) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass($1) IS NOT NULL", parameters=(db.qualified,))
        if not cur.fetchone()[0]:
            return None
        cur.execute(f"SELECT count(*) FROM {db.qualified}")
        return int(cur.fetchone()[0])


def load_stream_table(uri: str, stream_dir: str | Path, date: dt.date, *,
                      mode: Literal["upsert", "insert"] = "upsert", columns: str | None = None,
                      replace: bool = True) -> LoadResult:
    """Load ``stream_dir/dt=D/*.parquet`` into the URI's table through ADBC bulk ingest (COPY).

    ``insert``: an insert-only sink; every row is kept, duplicates for one key included (the "link three"
    failure billing catches). ``upsert``: an idempotent sink with PRIMARY KEY (ad_id, window_start) that
    keeps the *last write* per key, last meaning file order (files sorted by path, rows in file order);
    rows with a null key cannot be stored and are counted in ``dropped_null_key``. ``replace`` (default)
    drops and recreates the table first; otherwise rows are added to it (created when missing). Column
    names follow ``columns`` (the same mapping the reader takes). One transaction: all or nothing.
    """
    if mode not in ("upsert", "insert"):
        raise BadInputError(f"load mode must be upsert or insert, not {mode!r}")
    db = StreamDatabase.parse(uri, columns)
    names = dict(db.columns)
    names.setdefault("spend_micros", "spend_micros")
    files = _stream_files(stream_dir, date)
    rows = pa.concat_tables([_file_rows(p) for p in files]) if files else ROWS_SCHEMA.empty_table()
    rows = rows.rename_columns([names[k] for k in KEYS])
    q = {k: quote_ident(v) for k, v in names.items()}
    key = f"{q['ad_id']}, {q['window_start']}"
    pk = f", PRIMARY KEY ({key})" if mode == "upsert" else ""
    ddl = (f"CREATE TABLE IF NOT EXISTS {db.qualified} ({q['ad_id']} bigint, {q['window_start']} timestamptz, "
           f"{q['clicks']} bigint, {q['spend_micros']} bigint{pk})")
    dropped = 0
    with session(db, with_connect_timeout(db.conninfo, None)) as conn:
        with conn.cursor() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote_ident(db.schema)}")
            if replace:
                cur.execute(f"DROP TABLE IF EXISTS {db.qualified}")
            cur.execute(ddl)
            if mode == "insert":
                cur.adbc_ingest(db.table, rows, mode="append", db_schema_name=db.schema)
            else:
                stage = f"billing_stage_{uuid.uuid4().hex[:12]}"
                staged = rows.append_column("ord", pa.array(np.arange(rows.num_rows, dtype=np.int64)))
                cur.adbc_ingest(stage, staged, mode="create", temporary=True)
                cols = ", ".join(q[k] for k in KEYS)
                cur.execute(f"SELECT count(*) AS n FROM {quote_ident(stage)} "
                            f"WHERE {q['ad_id']} IS NULL OR {q['window_start']} IS NULL")
                dropped = int(cur.fetchone()[0])
                cur.execute(
                    f"INSERT INTO {db.qualified} ({cols}) SELECT DISTINCT ON ({key}) {cols} FROM {quote_ident(stage)} "
                    f"WHERE {q['ad_id']} IS NOT NULL AND {q['window_start']} IS NOT NULL ORDER BY {key}, ord DESC "
                    f"ON CONFLICT ({key}) DO UPDATE SET {q['clicks']} = EXCLUDED.{q['clicks']}, "
                    f"{q['spend_micros']} = EXCLUDED.{q['spend_micros']}")
                cur.execute(f"DROP TABLE {quote_ident(stage)}")
            start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
            cur.execute(f"SELECT count(*) AS n FROM {db.qualified} WHERE {q['window_start']} >= $1::timestamptz "
                        f"AND {q['window_start']} < $2::timestamptz", parameters=(start, start + dt.timedelta(days=1)))
            in_day = int(cur.fetchone()[0])
            cur.execute(f"SELECT count(*) AS n FROM {db.qualified}")
            total = int(cur.fetchone()[0])
        conn.commit()
    return LoadResult(db.display, mode, rows.num_rows, in_day, dropped, total)

"""The day's rows of a PostgreSQL stream source, in one ``REPEATABLE READ READ ONLY`` snapshot, as Arrow.

Row digest (``StreamRead.sha256``): the rows sorted ascending by (ad_id, window_start, clicks,
spend_micros), nulls first; each row is 4 fields of 9 bytes, in that order: one byte 0x01 when the value is
present (0x00 when null) then the value as a big-endian two's-complement int64 (0 when null);
``window_start`` is microseconds since 1970-01-01 UTC. SHA-256 of the concatenation, as lowercase hex (an
empty day hashes the empty string). The same rows give the same digest whatever their order in the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing.errors import BadInputError
from billing.io.postgres import KEYS, ROWS_SCHEMA, TS, StreamDatabase, display_ident, quote_ident
from billing.io.postgres_errors import Retryable, session, with_connect_timeout

log = logging.getLogger(__name__)

_INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
_TIME_TYPES = frozenset({"timestamptz", "timestamp"})
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5


@dataclass(frozen=True)
class StreamRead:
    """What was read for one day, and what the manifest records about it."""

    rows: pa.Table = field(repr=False)
    """:data:`ROWS_SCHEMA`, sorted by (ad_id, window_start, clicks, spend_micros), nulls first."""
    table: str
    source: str
    server_version: str
    snapshot: str
    rows_read: int
    sha256: str
    seconds: float
    columns: dict[str, str] = field(default_factory=dict)
    attempts: int = 1

    def manifest(self) -> dict[str, Any]:
        return {"source": "postgresql", "uri": self.source, "table": self.table, "columns": self.columns,
                "server_version": self.server_version, "snapshot": self.snapshot, "rows_read": self.rows_read,
                "sha256": self.sha256}



_META_SQL = """
SELECT pg_current_snapshot()::text AS snapshot,
       current_setting('server_version') AS server_version,
       set_config('statement_timeout', {timeout}, true) AS statement_timeout,
       to_regclass($1) IS NOT NULL AS found,
       ARRAY(SELECT a.attname::text FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS names,
       ARRAY(SELECT t.typname::text FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS types,
       ARRAY(SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS shown,
       ARRAY(SELECT a.atttypmod FROM pg_attribute a
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum) AS typmods
"""
"""Statement 1 (it takes the transaction's snapshot): snapshot, version, statement timeout, the table's columns.
The table name is bound (``to_regclass`` parses the quoted name), never formatted in."""


def _numeric_scale(typmod: int) -> int | None:
    """Declared scale of ``numeric(p,s)`` (PostgreSQL 15 allows negative ones); None when unconstrained."""
    if typmod < 4:
        return None
    return (((typmod - 4) & 0x7FF) ^ 1024) - 1024


def _check_columns(db: StreamDatabase, meta: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The mapped columns checked against the table: (key -> column read, key -> PostgreSQL type name)."""
    if not meta["found"]:
        raise BadInputError(f"{db.redacted()}: table {db.display} does not exist")
    columns = {n: (t, s, m) for n, t, s, m in zip(meta["names"], meta["types"], meta["shown"], meta["typmods"],
                                                   strict=True)}
    wanted = dict(db.columns)
    if "spend_micros" not in wanted and "spend_micros" in columns and "spend_micros" not in wanted.values():
        wanted["spend_micros"] = "spend_micros"  # optional, read when present (like a Parquet file)
    kinds: dict[str, str] = {}
    for key, name in wanted.items():
        if name not in columns:
            raise BadInputError(f"{db.redacted()}: table {db.display} has no column {display_ident(name)} "
                                f"(mapped to {key})")
        typname, shown, typmod = columns[name]
        if key == "window_start":
            ok = typname in _TIME_TYPES
        else:
            scale = _numeric_scale(typmod) if typname == "numeric" else None
            ok = typname in _INTEGER_TYPES or (typname == "numeric" and scale is not None and scale <= 0)
        if not ok:
            expected = ("timestamptz or timestamp" if key == "window_start"
                        else "an integer or numeric with scale 0")
            raise BadInputError(f"{db.redacted()}: column {display_ident(name)} of {db.display} (mapped to {key}) "
                                f"has type {shown}, expected {expected}")
        kinds[key] = typname
    return {k: wanted[k] for k in KEYS if k in wanted}, kinds


def _data_sql(db: StreamDatabase, columns: dict[str, str], kinds: dict[str, str]) -> str:
    """Statement 2: the day's rows and the rows without window_start (they belong to no day: every day reads
    them, to quarantine them as null_window_start), normalised in the database. Only quoted identifiers are
    formatted in; the day's bounds are the bound parameters $1 and $2 (timestamptz)."""
    col = {k: quote_ident(v) for k, v in columns.items()}
    ws = col["window_start"]
    if kinds["window_start"] == "timestamp":  # naive = UTC: compare in the column's own type (indexes work)
        ws_out, lo, hi = f"({ws} AT TIME ZONE 'UTC')", "($1::timestamptz AT TIME ZONE 'UTC')", \
            "($2::timestamptz AT TIME ZONE 'UTC')"
    else:
        ws_out, lo, hi = ws, "$1::timestamptz", "$2::timestamptz"
    spend = f"{col['spend_micros']}::int8" if "spend_micros" in col else "NULL::int8"
    return (f"SELECT {col['ad_id']}::int8 AS ad_id, {ws_out} AS window_start, {col['clicks']}::int8 AS clicks, "
            f"{spend} AS spend_micros FROM {db.qualified} WHERE ({ws} >= {lo} AND {ws} < {hi}) OR {ws} IS NULL")


def _out_of_range(db: StreamDatabase, columns: dict[str, str], kinds: dict[str, str]) -> BadInputError:
    """A value beyond int64: only a ``numeric`` column can hold one (int2/4/8 fit), so it is named."""
    suspects = [f"{display_ident(columns[k])} (mapped to {k})" for k in columns if kinds.get(k) == "numeric"]
    where = (f"column {suspects[0]}" if len(suspects) == 1
             else f"one of the numeric columns {', '.join(suspects)}")
    return BadInputError(f"{db.redacted()}: a value of {where} of {db.display} does not fit int64 "
                         f"(-9223372036854775808..9223372036854775807)")


def _normalise(table: pa.Table) -> pa.Table:
    cols = []
    for f in ROWS_SCHEMA:
        c = table.column(f.name)
        if f.name == "window_start" and c.type != TS:
            c = c.cast(pa.timestamp(c.type.unit, tz="UTC")).cast(TS) if c.type.tz is None else c.cast(TS)
        cols.append(c.cast(f.type))
    out = pa.Table.from_arrays(cols, schema=ROWS_SCHEMA)
    order = pc.sort_indices(out, sort_keys=[(k, "ascending", "at_start") for k in KEYS])
    return out.take(order).combine_chunks()


_ROW_DTYPE = np.dtype([(p + k, t) for k in KEYS for p, t in (("v_", "u1"), ("x_", ">i8"))])


def rows_sha256(rows: pa.Table) -> str:
    """SHA-256 of ``rows`` (already in key order) in the byte encoding of the module docstring."""
    buf = np.zeros(rows.num_rows, dtype=_ROW_DTYPE)
    for k in KEYS:
        col = rows.column(k).combine_chunks()
        if pa.types.is_timestamp(col.type):
            col = col.cast(TS).view(pa.int64())
        buf["v_" + k] = np.asarray(col.is_valid(), dtype=np.uint8)
        buf["x_" + k] = col.fill_null(0).to_numpy(zero_copy_only=False)
    return hashlib.sha256(buf.tobytes()).hexdigest()


def read_day(db: StreamDatabase, date: dt.date, *, connect_timeout_s: float | None = None,
             statement_timeout: float | None = None, pause_hook: Callable[[], None] | None = None,
             attempts: int = DEFAULT_ATTEMPTS, backoff_s: float = DEFAULT_BACKOFF_S,
             check_only: bool = False) -> StreamRead:
    """The rows of ``db`` whose window_start is in [date 00:00, date+1 00:00) UTC or NULL, in one snapshot.

    Two statements in one ``REPEATABLE READ READ ONLY`` transaction: (1) snapshot, server version, statement
    timeout and the table's column types, checked; (2) the day's rows with bound bounds. ``pause_hook`` runs
    between them. A connection the server closes is retried (``attempts`` in all, backoff doubling from
    ``backoff_s``), then it is a :class:`BadInputError` like every other failure here.

    ``connect_timeout_s``: None means the URI's ``connect_timeout`` when it has one, else 10 s; a value
    overrides the URI. ``statement_timeout``: seconds, None keeps the server's setting, 0 is no timeout.
    ``check_only``: only statement (1): the server, table and columns are checked (exit 2 when unusable),
    no row is read.
    """
    conninfo = with_connect_timeout(db.conninfo, connect_timeout_s)
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    bounds = (start, start + dt.timedelta(days=1))
    timeout = "current_setting('statement_timeout')" if statement_timeout is None else "$2"
    meta_params: tuple[Any, ...] = (db.qualified,) if statement_timeout is None else (
        db.qualified, "0" if statement_timeout == 0 else f"{max(1, round(statement_timeout * 1000))}ms")
    meta_sql = _META_SQL.format(timeout=timeout)
    t0 = time.perf_counter()
    for attempt in range(1, attempts + 1):
        try:
            meta, table = _read_once(db, conninfo, meta_sql, meta_params, None if check_only else bounds,
                                     pause_hook)
            break
        except Retryable as e:
            if attempt == attempts:
                raise BadInputError(f"{e} (after {attempts} attempts)") from None
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("%s; retrying in %.1f s (attempt %d of %d)", e, delay, attempt + 1, attempts)
            time.sleep(delay)
    rows = _normalise(table)
    return StreamRead(rows=rows, table=db.display, source=db.redacted(), server_version=meta["server_version"],
                      snapshot=meta["snapshot"], rows_read=rows.num_rows, sha256=rows_sha256(rows),
                      seconds=round(time.perf_counter() - t0, 6), columns=meta["columns"], attempts=attempt)


def _read_once(db: StreamDatabase, conninfo: str, meta_sql: str, meta_params: tuple[Any, ...],
               bounds: tuple[dt.datetime, dt.datetime] | None,
               pause_hook: Callable[[], None] | None) -> tuple[dict[str, Any], pa.Table]:
    with session(db, conninfo) as conn:  # autocommit off: the driver opens the transaction block
        with conn.cursor() as cur:
            # Must be the first statement of the block; the snapshot is taken by statement 1 below.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(meta_sql, parameters=meta_params)
            meta = cur.fetch_arrow_table().to_pylist()[0]
            columns, kinds = _check_columns(db, meta)
            table = ROWS_SCHEMA.empty_table()
            if bounds is not None:
                if pause_hook is not None:
                    pause_hook()
                try:
                    cur.execute(_data_sql(db, columns, kinds), parameters=bounds)
                    table = cur.fetch_arrow_table()
                except Exception as e:
                    if getattr(e, "sqlstate", None) == "22003":
                        raise _out_of_range(db, columns, kinds) from None
                    raise
        conn.rollback()  # read only: nothing to commit
    meta["columns"] = columns
    return meta, table

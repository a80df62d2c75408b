"""The stream side read from its sink table in PostgreSQL (issue 13), through ADBC.

Standalone reader core: :meth:`StreamDatabase.parse` (URI + column mapping), :func:`read_day` (one day in
one ``REPEATABLE READ READ ONLY`` snapshot, as Arrow) and :func:`load_stream_table` (a demo's stream
Parquet files into a sink table). Rows are neither deduplicated nor validated here: billing judges them
later in DuckDB exactly like rows read from files.

URI::

    postgresql://[user[:password]@]host[:port]/dbname?table=[SCHEMA.]TABLE[&libpq parameters]

* ``table`` is required. Without a schema it means ``public.TABLE`` (never the server's ``search_path``:
  the manifest must name the table that was read). Identifiers follow PostgreSQL's rules: unquoted ones
  are folded to lower case, ``"Double Quoted"`` ones are kept as written (``""`` inside is one ``"``);
  at most 63 bytes, no NUL. They are only ever put into SQL quoted; values are bound parameters.
* Every other query parameter is handed to libpq untouched (``sslmode``, ``application_name``,
  ``connect_timeout``, ``options``...). A password may come from the URI, ``PGPASSWORD`` or ``~/.pgpass``
  (``PGPASSFILE``), as for any libpq client; :meth:`StreamDatabase.redacted` drops it (and any
  ``password=`` / ``sslpassword=`` parameter) from everything billing prints or records.

Column mapping (``--stream-columns``): ``ad_id=campaign_id,window_start=minute,clicks=click_count
[,spend_micros=spend]``. Unnamed keys default to their own name; ``spend_micros`` is optional: when not
mapped it is read from a ``spend_micros`` column if the table has one, else it is all null (as for a Parquet
file without it). Accepted types: ``smallint``/``integer``/``bigint`` and ``numeric`` whose declared scale
is <= 0 (an unconstrained ``numeric`` may hold fractions: refused) for ``ad_id``, ``clicks`` and
``spend_micros``; ``timestamptz`` or ``timestamp`` (naive means UTC) for ``window_start``.

Row digest (``StreamRead.sha256``): the rows sorted ascending by (ad_id, window_start, clicks,
spend_micros), nulls first; each row is 4 fields of 9 bytes, in that order: one byte 0x01 when the value is
present (0x00 when null) then the value as a big-endian two's-complement int64 (0 when null);
``window_start`` is microseconds since 1970-01-01 UTC. SHA-256 of the concatenation, as lowercase hex (an
empty day hashes the empty string). The same rows give the same digest whatever their order in the table.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing.errors import BadInputError

log = logging.getLogger(__name__)

TS = pa.timestamp("us", tz="UTC")

#: The normalised stream columns this reader returns, in order (the first four of ``read.STREAM_SCHEMA``).
ROWS_SCHEMA = pa.schema([("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()),
                         ("spend_micros", pa.int64())])
KEYS = ("ad_id", "window_start", "clicks", "spend_micros")
_INTEGER_KEYS = ("ad_id", "clicks", "spend_micros")
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_UNQUOTED = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_MAX_IDENT_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names; we refuse them
_INTEGER_TYPES = frozenset({"int2", "int4", "int8"})
_TIME_TYPES = frozenset({"timestamptz", "timestamp"})

DEFAULT_CONNECT_TIMEOUT_S = 10
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5


# --- identifiers -----------------------------------------------------------------------------------------

def _split_identifiers(text: str, what: str) -> list[str]:
    """``a.b`` / ``"A"."b.c"`` into the names PostgreSQL would resolve (unquoted ones folded to lower case)."""
    names: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise BadInputError(f"{what}: unterminated quoted identifier in {text!r}")
                buf.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            name = "".join(buf)
        else:
            m = _UNQUOTED.match(text, i)
            if m is None:
                raise BadInputError(f"{what}: not an identifier at {text[i:]!r} in {text!r}")
            name, i = m.group(0).lower(), m.end()
        if not name or "\x00" in name or len(name.encode()) > _MAX_IDENT_BYTES:
            raise BadInputError(f"{what}: identifier {name!r} is empty, holds NUL or is longer than 63 bytes")
        names.append(name)
        if i == n:
            return names
        if text[i] != ".":
            raise BadInputError(f"{what}: unexpected {text[i]!r} in {text!r}")
        i += 1


def quote_ident(name: str) -> str:
    """An identifier as SQL, always quoted (so no name is a keyword and case is kept)."""
    return '"' + name.replace('"', '""') + '"'


def display_ident(name: str) -> str:
    """An identifier as a person would type it: bare when that resolves to the same name."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else quote_ident(name)


# --- the source ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamDatabase:
    """A parsed stream source: where to connect (libpq URI), which table, which columns."""

    conninfo: str = field(repr=False)
    """The URI handed to libpq (password included when given; never print it: see :meth:`redacted`)."""
    schema: str
    table: str
    columns: dict[str, str]
    """Target key -> column name in the table (``spend_micros`` absent when not mapped)."""
    password: str | None = field(default=None, repr=False)
    _redacted: str = field(default="", repr=False)

    @classmethod
    def parse(cls, uri: str, columns: str | None = None) -> StreamDatabase:
        try:
            parts = urlsplit(uri)
        except ValueError as e:
            raise BadInputError(f"stream URI: {e}") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise BadInputError("stream URI: expected postgresql://[user[:password]@]host[:port]/dbname?table=...")
        userinfo, at, hosts = parts.netloc.rpartition("@")
        user, colon, raw_pw = userinfo.partition(":") if at else ("", "", "")
        password = unquote(raw_pw) if colon else None
        if not hosts:
            raise BadInputError("stream URI: no host (postgresql://host[:port]/dbname?table=...)")
        if not parts.path.strip("/"):
            raise BadInputError("stream URI: no database name (postgresql://host[:port]/dbname?table=...)")
        try:
            params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise BadInputError("stream URI: malformed query string") from None
        tables = [v for k, v in params if k == "table"]
        if len(tables) != 1:
            raise BadInputError("stream URI: exactly one table=[SCHEMA.]TABLE parameter is required")
        names = _split_identifiers(tables[0], "stream URI table")
        if len(names) > 2:
            raise BadInputError(f"stream URI table: {tables[0]!r} is not [SCHEMA.]TABLE")
        schema, table = (["public", *names] if len(names) == 1 else names)
        passthrough = [(k, v) for k, v in params if k != "table"]
        secret = [v for k, v in passthrough if k in _SECRET_PARAMS]
        if password is None and any(k == "password" for k, _ in passthrough):
            password = next(v for k, v in passthrough if k == "password")
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        conninfo = base + ("?" + urlencode(passthrough, quote_via=quote) if passthrough else "")
        shown_netloc = (quote(unquote(user), safe="") + "@" if user else "") + hosts
        shown_params = [(k, v) for k, v in params if k not in _SECRET_PARAMS]
        redacted = (f"{parts.scheme}://{shown_netloc}{parts.path}?"
                    + urlencode(shown_params, quote_via=lambda s, *a: quote(s, safe="./:,=\"")))
        mapping = parse_columns(columns)
        secrets = [s for s in [password, *secret] if s]
        return cls(conninfo, schema, table, mapping, "\x00".join(secrets) or None, redacted)

    def redacted(self) -> str:
        """The URI without any password: for manifests, logs and messages."""
        return self._redacted

    @property
    def qualified(self) -> str:
        """``schema.table`` as SQL (quoted)."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @property
    def display(self) -> str:
        """``schema.table`` as written for people (quoted only where needed)."""
        return f"{display_ident(self.schema)}.{display_ident(self.table)}"

    def scrub(self, text: str) -> str:
        """``text`` with every form of the password replaced by ``***`` (belt and braces: libpq does not
        echo it, but a message must never carry it)."""
        if self.password:
            for secret in self.password.split("\x00"):
                for form in {secret, quote(secret, safe=""), quote(secret)}:
                    if form:
                        text = text.replace(form, "***")
        return text


def parse_columns(spec: str | None) -> dict[str, str]:
    """``ad_id=campaign_id,window_start=minute,...`` into key -> column; unnamed required keys map to
    themselves; ``spend_micros`` is present only when mapped."""
    mapping: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        key, eq, col = (s.strip() for s in item.partition("="))
        if not eq or key not in KEYS:
            raise BadInputError(f"stream columns: {item.strip()!r} is not KEY=COLUMN with KEY one of {', '.join(KEYS)}")
        if key in mapping:
            raise BadInputError(f"stream columns: {key} is mapped twice")
        names = _split_identifiers(col, f"stream columns {key}")
        if len(names) != 1:
            raise BadInputError(f"stream columns: {key}={col!r} must name one column")
        mapping[key] = names[0]
    for key in ("ad_id", "window_start", "clicks"):
        mapping.setdefault(key, key)
    used = list(mapping.values())
    if len(set(used)) != len(used):
        raise BadInputError(f"stream columns: one column is mapped to two keys ({spec})")
    return {k: mapping[k] for k in KEYS if k in mapping}


# --- the read --------------------------------------------------------------------------------------------

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


class _Retryable(Exception):
    """The server closed the connection: the whole read is tried again."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


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
    """Statement 2: the day's rows, normalised in the database. Only quoted identifiers are formatted in;
    the day's bounds are the bound parameters $1 and $2 (timestamptz)."""
    col = {k: quote_ident(v) for k, v in columns.items()}
    ws = col["window_start"]
    if kinds["window_start"] == "timestamp":  # naive = UTC: compare in the column's own type (indexes work)
        ws_out, lo, hi = f"({ws} AT TIME ZONE 'UTC')", "($1::timestamptz AT TIME ZONE 'UTC')", \
            "($2::timestamptz AT TIME ZONE 'UTC')"
    else:
        ws_out, lo, hi = ws, "$1::timestamptz", "$2::timestamptz"
    spend = f"{col['spend_micros']}::int8" if "spend_micros" in col else "NULL::int8"
    return (f"SELECT {col['ad_id']}::int8 AS ad_id, {ws_out} AS window_start, {col['clicks']}::int8 AS clicks, "
            f"{spend} AS spend_micros FROM {db.qualified} WHERE {ws} >= {lo} AND {ws} < {hi}")


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


def error_detail(e: BaseException) -> str:
    """One line out of an ADBC/libpq message, without its status prefix and echoed query."""
    text = str(e).split("\nQuery was:", 1)[0]
    text = re.sub(r"^[A-Z_]+: ", "", text.strip())
    text = re.sub(r"^\[libpq\] ", "", text)
    text = re.sub(r"^Failed to connect: ", "", text)
    text = re.sub(r"\. SQLSTATE: [0-9A-Z]{5}$", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].startswith("LINE ") and len(lines) > 1:
        lines = lines[1:]
    first = re.sub(r"\s+", " ", lines[0]) if lines else type(e).__name__
    return first[:300]


_CLOSED = ("server closed the connection unexpectedly", "terminating connection", "no connection to the server",
           "connection to server was lost", "SSL connection has been closed unexpectedly", "SSL SYSCALL error",
           "could not receive data from server", "could not send data to server")
_UNREACHABLE = ("Connection refused", "could not translate host name", "timeout expired", "No route to host",
                "Network is unreachable", "Connection timed out", "could not connect to server",
                "received invalid response to SSL negotiation", "Connection reset by peer")
_AUTH = ("password authentication failed", "no password supplied", "authentication failed",
         "no pg_hba.conf entry", "is not permitted to log in", "role \"", "pg_hba.conf rejects connection")


def is_connection_failure(raw: str) -> bool:
    """Whether an ADBC message without SQLSTATE is libpq failing to connect or to authenticate."""
    return any(s in raw for s in _UNREACHABLE + _AUTH)


def connection_failure(db: StreamDatabase, raw: str, detail: str, state: str | None) -> BadInputError:
    """The one-line error for a connection that could not be made (every PostgreSQL URI billing opens)."""
    where = db.redacted()
    if re.search(r'database ".*" does not exist', raw):
        return BadInputError(db.scrub(f"{where}: database does not exist: {detail}"))
    if any(s in raw for s in _AUTH) or state in ("28000", "28P01"):
        return BadInputError(db.scrub(f"{where}: authentication failed: {detail}"))
    if any(s in raw for s in _UNREACHABLE):
        return BadInputError(db.scrub(f"{where}: cannot reach the server: {detail}"))
    return BadInputError(db.scrub(f"{where}: cannot connect: {detail}"))


def _classify(db: StreamDatabase, e: Exception, *, connecting: bool) -> BadInputError | _Retryable | None:
    """The one-line error for an ADBC failure (password scrubbed), _Retryable for a dropped connection, or
    None when it is not the input's fault (a bug: re-raised, exit 1)."""
    import adbc_driver_manager as adbc

    if not isinstance(e, adbc.DatabaseError) or isinstance(e, adbc.InternalError | adbc.NotSupportedError):
        return None
    where = db.redacted()
    detail = db.scrub(error_detail(e))
    raw = str(e)
    state = getattr(e, "sqlstate", None)
    if state == "57014":
        return BadInputError(db.scrub(f"{where}: statement timeout while reading {db.display}: {detail}"))
    if state in ("57P01", "57P02", "57P03") or (state is None and any(s in raw for s in _CLOSED) and (
            not connecting or "server closed the connection" in raw)):
        return _Retryable(db.scrub(f"{where}: the server closed the connection: {detail}"))
    if connecting or state is None:
        return connection_failure(db, raw, detail, state)
    if state == "22003":
        return BadInputError(db.scrub(f"{where}: a value of {db.display} does not fit int64: {detail}"))
    if state == "42501":
        return BadInputError(db.scrub(f"{where}: permission denied reading {db.display}: {detail}"))
    if state == "42P01":
        return BadInputError(db.scrub(f"{where}: table {db.display} does not exist"))
    return BadInputError(db.scrub(f"{where}: PostgreSQL error reading {db.display}: {detail}"))


def with_connect_timeout(conninfo: str, seconds: float | None) -> str:
    """libpq's ``connect_timeout`` (whole seconds, at least 2): the URI's own value wins over the default."""
    params = parse_qsl(urlsplit(conninfo).query, keep_blank_values=True)
    if any(k == "connect_timeout" for k, _ in params) and seconds is None:
        return conninfo
    value = max(2, round(seconds if seconds is not None else DEFAULT_CONNECT_TIMEOUT_S))
    base, _, _ = conninfo.partition("?")
    params = [(k, v) for k, v in params if k != "connect_timeout"] + [("connect_timeout", str(value))]
    return base + "?" + urlencode(params, quote_via=quote)


def read_day(db: StreamDatabase, date: dt.date, *, connect_timeout_s: float | None = None,
             statement_timeout: float | None = None, pause_hook: Callable[[], None] | None = None,
             attempts: int = DEFAULT_ATTEMPTS, backoff_s: float = DEFAULT_BACKOFF_S) -> StreamRead:
    """The rows of ``db`` whose window_start is in [date 00:00, date+1 00:00) UTC, in one snapshot.

    Two statements in one ``REPEATABLE READ READ ONLY`` transaction: (1) snapshot, server version, statement
    timeout and the table's column types, checked; (2) the day's rows with bound bounds. ``pause_hook`` runs
    between them. A connection the server closes is retried (``attempts`` in all, backoff doubling from
    ``backoff_s``), then it is a :class:`BadInputError` like every other failure here.

    ``connect_timeout_s``: None means the URI's ``connect_timeout`` when it has one, else 10 s; a value
    overrides the URI. ``statement_timeout``: seconds, None keeps the server's setting.
    """
    conninfo = with_connect_timeout(db.conninfo, connect_timeout_s)
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    bounds = (start, start + dt.timedelta(days=1))
    timeout = "current_setting('statement_timeout')" if statement_timeout is None else "$2"
    meta_params: tuple[Any, ...] = (db.qualified,) if statement_timeout is None else (
        db.qualified, f"{max(1, round(statement_timeout * 1000))}ms")
    meta_sql = _META_SQL.format(timeout=timeout)
    t0 = time.perf_counter()
    for attempt in range(1, attempts + 1):
        try:
            meta, table = _read_once(db, conninfo, meta_sql, meta_params, bounds, pause_hook)
            break
        except _Retryable as e:
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
               bounds: tuple[dt.datetime, dt.datetime],
               pause_hook: Callable[[], None] | None) -> tuple[dict[str, Any], pa.Table]:
    import adbc_driver_postgresql.dbapi as pg

    try:
        conn = pg.connect(conninfo)  # autocommit off: the driver opens the transaction block
    except Exception as e:
        raise _raise_as(db, e, connecting=True) from None
    try:
        with conn.cursor() as cur:
            # Must be the first statement of the block; the snapshot is taken by statement 1 below.
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cur.execute(meta_sql, parameters=meta_params)
            meta = cur.fetch_arrow_table().to_pylist()[0]
            columns, kinds = _check_columns(db, meta)
            if pause_hook is not None:
                pause_hook()
            cur.execute(_data_sql(db, columns, kinds), parameters=bounds)
            table = cur.fetch_arrow_table()
        conn.rollback()  # read only: nothing to commit
    except BadInputError:
        raise
    except Exception as e:
        raise _raise_as(db, e, connecting=False) from None
    finally:
        with contextlib.suppress(Exception):  # closing a connection the server already dropped
            conn.close()
    meta["columns"] = columns
    return meta, table


def _raise_as(db: StreamDatabase, e: Exception, *, connecting: bool) -> Exception:
    err = _classify(db, e, connecting=connecting)
    if err is None:
        return e
    return err


# --- the demo loader -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LoadResult:
    table: str
    mode: str
    rows_in_files: int
    rows_in_table: int
    """Rows of the table with window_start in [D, D+1) UTC after the load."""
    dropped_null_key: int
    """``upsert`` only: rows with a null ad_id or window_start (a primary key cannot hold them)."""


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
    import adbc_driver_postgresql.dbapi as pg

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
    try:
        conn = pg.connect(with_connect_timeout(db.conninfo, None))
    except Exception as e:
        raise _raise_as(db, e, connecting=True) from None
    try:
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
        conn.commit()
    except BadInputError:
        raise
    except Exception as e:
        raise _raise_as(db, e, connecting=False) from None
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return LoadResult(db.display, mode, rows.num_rows, in_day, dropped)

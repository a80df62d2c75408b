"""The day's totals exported to the invoicing database (issue 14, export core), through ADBC.

Standalone core: :func:`export_day` takes a URI, a date, the day's totals as Arrow, the billing version and
its manifest's SHA-256, and returns an :class:`Export`. It does not read ``OUT``; the caller (``billing
export``, the DAG task) picks the current version and hands its totals over.

URI (the stream reader's form, parsed by :meth:`billing.io.postgres.StreamDatabase.parse`)::

    postgresql://[user[:password]@]host[:port]/dbname?table=[SCHEMA.]TABLE[&libpq parameters]

The schema must exist. Two tables are created in it when absent (the role then needs CREATE on it)::

    CREATE TABLE SCHEMA.TABLE (                 -- the totals of every exported day
        date            date        NOT NULL,
        ad_id           bigint      NOT NULL,
        window_start    timestamptz NOT NULL,   -- the minute, UTC
        clicks          bigint      NOT NULL,
        spend_micros    bigint,                 -- null where the day's inputs carried no spend
        billing_version integer     NOT NULL,   -- OUT/dt=D/v=N the rows come from
        PRIMARY KEY (date, ad_id, window_start)
    );
    CREATE TABLE SCHEMA.TABLE_exports (         -- the ledger: one row per exported day
        date            date        PRIMARY KEY,
        version         integer     NOT NULL,
        exported_at     timestamptz NOT NULL,   -- commit time of the export's transaction
        manifest_sha256 text        NOT NULL,
        row_count       bigint      NOT NULL,   -- rows of the day exported
        out_uri         text                    -- the OUT exported from, without credentials (null: before it)
    );

One transaction per export (PostgreSQL's default READ COMMITTED): a transaction-scoped advisory lock on
(table, date) serialises two exports of one day; the ledger row is read; then either nothing happens
(same version, same manifest SHA-256, and the day's rows have the version's fingerprint, see
:mod:`billing.io.invoicing_ledger`: ``unchanged``; rows that differ are ``repaired``), or the day's rows are
deleted, the new ones bulk-loaded with ``COPY`` (ADBC ingest, never row by row) and the ledger row upserted,
and all of it commits at once. A reader in another connection sees the old version's rows or the new one's,
never a mix and never an empty day; a failure anywhere rolls everything back. An older version than the one
exported is refused unless ``allow_rollback``; a day exported from another OUT unless ``replace_other_out``.
Needed privileges: SELECT, INSERT, DELETE on both tables (UPDATE on the ledger), USAGE on the schema (and
ownership of a ledger made before ``out_uri``, once, to add that column).

Errors (a bad URI, an unreachable server, failed authentication, a missing schema, missing privileges)
raise :class:`billing.errors.BadInputError` (exit 2) with one line that never carries the password.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from billing.errors import BadInputError
from billing.io.invoicing_ledger import LEDGER_SUFFIX, ddl, ensure_out_column, rows_fingerprint, table_fingerprint
from billing.io.postgres import StreamDatabase, display_ident, quote_ident
from billing.io.postgres_errors import connection_failure, error_detail, is_connection_failure, with_connect_timeout

TS = pa.timestamp("us", tz="UTC")
#: The columns taken from the day's totals, in order, and their types.
TOTALS_SCHEMA = pa.schema([("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()),
                           ("spend_micros", pa.int64())])
_SHA256 = re.compile(r"[0-9a-f]{64}")
_MAX_IDENT_BYTES = 63
DEFAULT_LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Export:
    """What one export did."""

    date: dt.date
    table: str
    """``schema.table`` as written for people."""
    ledger: str
    target: str
    """The URI without its password."""
    version: int
    manifest_sha256: str
    previous_version: int | None
    """The version the ledger held before (None: the day was never exported)."""
    unchanged: bool
    """The same version was already exported: nothing was written."""
    rollback: bool
    """An older version replaced a newer one (``allow_rollback``)."""
    rows: int
    """Rows of the day in the table after the export."""
    rows_deleted: int
    exported_at: dt.datetime
    """When the day's current rows were exported (for an unchanged export: the earlier export's time)."""
    created_tables: tuple[str, ...]
    seconds: float
    repaired: bool = False
    """The same version was exported, but the table's rows of the day differed from it: rewritten."""
    forced: bool = False
    """The same version was rewritten because ``force`` asked for it."""

    def message(self) -> str:
        if self.repaired or self.forced:
            why = (f"repaired: the table's rows of {self.date} differed from version {self.version}" if self.repaired
                   else f"rewrote version {self.version} (forced)")
            return f"{self.date}: {why}; {self.table} holds {self.rows} rows (had {self.rows_deleted})"
        if self.unchanged:
            return (f"{self.date}: unchanged, {self.table} already holds version {self.version} "
                    f"({self.rows} rows, exported {self.exported_at.isoformat()})")
        verb = ("rolled back" if self.rollback else "restated") if self.previous_version is not None else "exported"
        before = f" (was version {self.previous_version}, {self.rows_deleted} rows)" \
            if self.previous_version is not None else ""
        return f"{self.date}: {verb} version {self.version} to {self.table}: {self.rows} rows{before}"


def parse_target(uri: str) -> StreamDatabase:
    """The URI parsed like the stream reader's (messages say "invoicing URI")."""
    try:
        db = StreamDatabase.parse(uri)
    except BadInputError as e:
        raise BadInputError(str(e).replace("stream URI", "invoicing URI", 1)) from None
    if len((db.table + LEDGER_SUFFIX).encode()) > _MAX_IDENT_BYTES:
        raise BadInputError(f"invoicing URI: table name {db.table!r} is too long for its ledger "
                            f"{db.table + LEDGER_SUFFIX!r} (at most 63 bytes)")
    return db


def _day_rows(date: dt.date, totals: pa.Table, version: int) -> pa.Table:
    missing = [f.name for f in TOTALS_SCHEMA if f.name not in totals.column_names]
    if missing:
        raise BadInputError(f"totals of {date}: missing column(s) {', '.join(missing)}")
    cols: list[pa.ChunkedArray] = []
    for f in TOTALS_SCHEMA:
        c = totals.column(f.name)
        if f.name == "window_start":
            if not pa.types.is_timestamp(c.type):
                raise BadInputError(f"totals of {date}: window_start is {c.type}, not a timestamp")
            c = c.cast(pa.timestamp(c.type.unit, tz="UTC")) if c.type.tz is None else c
        try:
            c = c.cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise BadInputError(f"totals of {date}: column {f.name} ({c.type}) is not {f.type}: {e}") from None
        if f.name != "spend_micros" and c.null_count:
            raise BadInputError(f"totals of {date}: column {f.name} holds {c.null_count} null(s)")
        cols.append(c)
    if totals.num_rows:
        start = pa.scalar(dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC), TS)
        end = pa.scalar(dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC), TS)
        ws = cols[1]
        if not pc.all(pc.and_(pc.greater_equal(ws, start), pc.less(ws, end))).as_py():
            raise BadInputError(f"totals of {date}: a window_start is outside the day")
    n = totals.num_rows
    return pa.table({"date": pa.repeat(pa.scalar(date, pa.date32()), n) if n else pa.array([], pa.date32()),
                     **{f.name: c for f, c in zip(TOTALS_SCHEMA, cols, strict=True)},
                     "billing_version": pa.repeat(pa.scalar(version, pa.int32()), n) if n
                     else pa.array([], pa.int32())})


def _lock_keys(db: StreamDatabase, date: dt.date) -> tuple[int, int]:
    """Advisory lock keys: (CRC-32 of "schema.table" as int4, days since 1970-01-01)."""
    crc = zlib.crc32(f"billing-export:{db.schema}.{db.table}".encode())
    return crc - (1 << 32) if crc >= 1 << 31 else crc, (date - dt.date(1970, 1, 1)).days


def export_day(uri: str, date: dt.date, totals: pa.Table, *, version: int, manifest_sha256: str,
               allow_rollback: bool = False, out_uri: str | None = None, replace_other_out: bool = False,
               force: bool = False, connect_timeout_s: float | None = None,
               lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
               pause_hook: Callable[[], None] | None = None) -> Export:
    """Replace ``date``'s rows of the URI's table by ``totals`` (version ``version``) in one transaction.

    The table is the URI's ``table=``; its ledger is ``TABLE_exports`` beside it. ``totals`` needs the
    columns ad_id, window_start (UTC, inside the day), clicks, spend_micros; others are ignored.
    ``pause_hook`` runs inside the transaction between the DELETE and the COPY (tests use it to hold a
    half-done export open). ``out_uri`` (OUT without credentials) is recorded in the ledger; a day recorded
    from another OUT is refused unless ``replace_other_out``. ``force`` rewrites the same version.
    ``lock_timeout_s`` bounds the wait for another export of the same day.
    """
    import adbc_driver_postgresql.dbapi as pg

    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise BadInputError(f"export of {date}: version {version!r} must be an integer >= 1")
    if not _SHA256.fullmatch(manifest_sha256):
        raise BadInputError(f"export of {date}: manifest_sha256 is not 64 lowercase hex digits")
    db = parse_target(uri)
    rows = _day_rows(date, totals, version)
    t0 = time.perf_counter()
    target = f"{quote_ident(db.schema)}.{quote_ident(db.table)}"
    ledger_name = db.table + LEDGER_SUFFIX
    ledger = f"{quote_ident(db.schema)}.{quote_ident(ledger_name)}"
    shown = f"{display_ident(db.schema)}.{display_ident(db.table)}"
    shown_ledger = f"{display_ident(db.schema)}.{display_ident(ledger_name)}"
    k1, k2 = _lock_keys(db, date)
    try:
        conn = pg.connect(with_connect_timeout(db.conninfo, connect_timeout_s))
    except Exception as e:
        raise _error(db, e, connecting=True, doing="connecting") from None
    doing = "preparing the export"
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET LOCAL lock_timeout = '{max(1, round(lock_timeout_s * 1000))}ms'")
            cur.execute("SELECT to_regnamespace($1) IS NOT NULL, to_regclass($2) IS NOT NULL, "
                        "to_regclass($3) IS NOT NULL", parameters=(quote_ident(db.schema), target, ledger))
            has_schema, has_table, has_ledger = cur.fetchone()
            if not has_schema:
                raise BadInputError(db.scrub(f"{db.redacted()}: schema {display_ident(db.schema)} does not exist"))
            created: list[str] = []
            if not (has_table and has_ledger):
                doing = "creating the tables"
                cur.execute("SELECT pg_advisory_xact_lock($1::int4, 0)", parameters=(k1,))  # creators queue
                totals_ddl, ledger_ddl = ddl(db.schema, db.table)
                for exists_sql, create, name in ((target, totals_ddl, shown), (ledger, ledger_ddl, shown_ledger)):
                    cur.execute("SELECT to_regclass($1) IS NOT NULL", parameters=(exists_sql,))
                    if not cur.fetchone()[0]:
                        cur.execute(create)
                        created.append(name)
            ensure_out_column(cur, ledger)
            doing = f"locking {date} of {shown}"
            cur.execute("SELECT pg_advisory_xact_lock($1::int4, $2::int4)", parameters=(k1, k2))
            doing = f"reading {shown_ledger}"
            cur.execute(f"SELECT version, manifest_sha256, exported_at, row_count, out_uri FROM {ledger} "
                        "WHERE date = $1", parameters=(date,))
            before = cur.fetchone()
            previous = int(before[0]) if before else None
            repaired = False
            if before is not None:
                if out_uri is not None and before[4] is not None and before[4] != out_uri and not replace_other_out:
                    raise BadInputError(
                        f"{db.redacted()}: {date} of {shown} was exported from OUT {before[4]}, not {out_uri}; "
                        "refusing (--replace-other-out to do it)")
                if previous == version:
                    if before[1] != manifest_sha256:
                        raise BadInputError(
                            f"{db.redacted()}: {date} version {version} was exported with manifest SHA-256 "
                            f"{before[1][:12]}..., this one is {manifest_sha256[:12]}...: one version, two "
                            "contents; refusing")
                    present = table_fingerprint(cur, target, date, version)
                    repaired = present != rows_fingerprint(rows)
                    if not (repaired or force):
                        conn.rollback()
                        return Export(date, shown, shown_ledger, db.redacted(), version, manifest_sha256, previous,
                                      True, False, present[0], 0, before[2], tuple(created),
                                      round(time.perf_counter() - t0, 6))
                    # rows were changed by hand since (or --force): the same version is written again
                elif previous is not None and previous > version and not allow_rollback:
                    raise BadInputError(
                        f"{db.redacted()}: {shown} holds version {previous} of {date}; refusing to export older "
                        f"version {version} (--allow-rollback to do it)")
            doing = f"deleting {date} from {shown}"
            cur.execute(f"WITH gone AS (DELETE FROM {target} WHERE date = $1 RETURNING 1) SELECT count(*) FROM gone",
                        parameters=(date,))
            deleted = int(cur.fetchone()[0])
            if pause_hook is not None:
                pause_hook()
            doing = f"loading {date} into {shown}"
            if rows.num_rows:
                cur.adbc_ingest(db.table, rows, mode="append", db_schema_name=db.schema)
            doing = f"writing {shown_ledger}"
            cur.execute(f"INSERT INTO {ledger} AS l (date, version, exported_at, manifest_sha256, row_count, "
                        "out_uri) VALUES ($1, $2, now(), $3, $4, $5) ON CONFLICT (date) DO UPDATE SET "
                        "version = EXCLUDED.version, exported_at = EXCLUDED.exported_at, "
                        "manifest_sha256 = EXCLUDED.manifest_sha256, row_count = EXCLUDED.row_count, "
                        "out_uri = coalesce(EXCLUDED.out_uri, l.out_uri) RETURNING exported_at",
                        parameters=(date, version, manifest_sha256, rows.num_rows, out_uri))
            exported_at = cur.fetchone()[0]
            doing = "committing"
        conn.commit()
    except BadInputError:
        raise
    except Exception as e:
        raise _error(db, e, connecting=False, doing=doing) from None
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return Export(date, shown, shown_ledger, db.redacted(), version, manifest_sha256, previous, False,
                  previous is not None and previous > version, rows.num_rows, deleted, exported_at, tuple(created),
                  round(time.perf_counter() - t0, 6), repaired, force and previous == version and not repaired)


def _error(db: StreamDatabase, e: Exception, *, connecting: bool, doing: str) -> Exception:
    """The one-line BadInputError for a database failure (password scrubbed); other errors unchanged."""
    import adbc_driver_manager as adbc

    if not isinstance(e, adbc.Error) or isinstance(e, adbc.InternalError | adbc.NotSupportedError):
        return e
    where = db.redacted()
    raw = str(e)
    detail = db.scrub(error_detail(e))
    state = getattr(e, "sqlstate", None)
    if connecting or (state is None and is_connection_failure(raw)):
        return connection_failure(db, raw, detail, state)
    if state == "42501":
        return BadInputError(db.scrub(f"{where}: permission denied {doing}: {detail}"))
    if state in ("55P03", "40P01", "40001"):
        return BadInputError(db.scrub(f"{where}: {doing}: lock not obtained (another export?): {detail}"))
    return BadInputError(db.scrub(f"{where}: PostgreSQL error {doing}: {detail}"))

"""Delta Lake tables of the current results (issue 14, table core), through ``deltalake`` (delta-rs).

Standalone core: plain inputs (a table URI, a date, an Arrow table, commit metadata), plain results. It
knows nothing of versions folders or manifests; the caller (``publish-tables``, ``reconcile``/``merge``)
decides what to write and when. Reading back (which version a table holds for a day, the commit that
replaced it): :mod:`billing.io.delta_read`.

Layout of every table this module writes::

    TABLE/_delta_log/000...0.json          CREATE TABLE (schema of the first rows written, partitioned by date)
    TABLE/_delta_log/000...N.json          then one commit per replaced day
    TABLE/date=YYYY-MM-DD/part-....parquet the day's rows

* ``date`` is a DATE column, the first of the table's schema and its only partition column. Every Delta
  reader returns it as a column of each row (Delta keeps partition values in the log, not inside the
  Parquet files: that is the protocol, and it is why a reader never has to infer its type from a path).
* :func:`replace_day` replaces partition ``date`` in ONE commit (``mode="overwrite"`` with the predicate
  ``date = 'YYYY-MM-DD'``): a reader sees the day's previous rows or the new ones, never a mix, never none.
  The commit carries ``billing_version``, ``date``, ``manifest_sha256`` (and any other string given) in its
  commit metadata (``commitInfo``), so Delta's history is a time-travel record of every restatement; and a
  Delta *application transaction* ``billing:dt=YYYY-MM-DD`` whose version is the billing version (kept in
  every checkpoint, so it survives the log clean-up that eventually drops old ``commitInfo``).
* Concurrency: two days written at once by two processes both land. delta-rs commits optimistically and
  re-bases a commit that does not conflict logically; a commit that fails anyway is retried as a whole
  (``attempts``, jittered backoff). Files written by a lost attempt are never referenced by the log (a
  later ``VACUUM`` deletes them).
* S3: :mod:`billing.io.delta_store` (conditional puts, endpoint, region).

Errors (a missing bucket, bad credentials, a schema that does not match the table, conflicts that outlast
the retries) raise :class:`billing.errors.StorageError` (exit 2) with one line that carries no secret.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from billing.errors import BadInputError, StorageError, TableShapeError
from billing.io.delta_store import PARTITION, app_id, one_line, open_or_create, open_table, storage_options_for

log = logging.getLogger(__name__)

DEFAULT_ATTEMPTS = 8
DEFAULT_BACKOFF_S = 0.05
REQUIRED_METADATA = ("billing_version", "manifest_sha256")
#: commitInfo fields Delta writers set themselves: commit metadata may not shadow them.
_RESERVED = frozenset({"timestamp", "operation", "operationParameters", "operationMetrics", "version",
                       "engineInfo", "clientVersion", "readVersion", "isolationLevel", "isBlindAppend",
                       "userMetadata", "txnId", "userId", "userName", "job", "notebook", "clusterId",
                       "inCommitTimestamp"})
_SHA256 = re.compile(r"[0-9a-f]{64}")
def _check_metadata(date: dt.date, metadata: Mapping[str, str]) -> dict[str, str]:
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise BadInputError(f"Delta commit metadata: missing {', '.join(missing)}")
    out = {str(k): str(v) for k, v in metadata.items()}
    if "date" in out and out["date"] != date.isoformat():
        raise BadInputError(f"Delta commit metadata: date {out['date']} is not the day written ({date})")
    out["date"] = date.isoformat()
    shadow = sorted(set(out) & _RESERVED)
    if shadow:
        raise BadInputError(f"Delta commit metadata: {', '.join(shadow)} are Delta's own commitInfo fields")
    try:
        version = int(out["billing_version"])
    except ValueError:
        raise BadInputError(f"Delta commit metadata: billing_version {out['billing_version']!r} is not an integer") \
            from None
    if version < 1:
        raise BadInputError(f"Delta commit metadata: billing_version {version} must be >= 1")
    out["billing_version"] = str(version)
    if not _SHA256.fullmatch(out["manifest_sha256"]):
        raise BadInputError("Delta commit metadata: manifest_sha256 is not 64 lowercase hex digits")
    return out


def with_date(date: dt.date, table: pa.Table) -> pa.Table:
    """``table`` with a DATE column ``date`` (every row ``date``) as its first column. A ``date`` column
    already there must be a DATE holding only ``date``; it is moved first."""
    if PARTITION in table.column_names:
        col = table.column(PARTITION)
        if not pa.types.is_date32(col.type):
            raise BadInputError(f"rows for {date}: column date is {col.type}, not a DATE")
        if col.null_count or (table.num_rows and not pc.all(pc.equal(col, pa.scalar(date, pa.date32()))).as_py()):
            raise BadInputError(f"rows for {date}: column date holds another day or nulls")
        rest = table.drop_columns([PARTITION])
        return rest.add_column(0, pa.field(PARTITION, pa.date32()), col)
    return table.add_column(0, pa.field(PARTITION, pa.date32()), pa.repeat(pa.scalar(date, pa.date32()), table.num_rows)
                            if table.num_rows else pa.array([], pa.date32()))


@dataclass(frozen=True)
class DayRows:
    """A day's rows read a batch at a time, as often as a commit is tried: ``batches()`` starts over each time.

    A day's drift on a long-tail day is tens of millions of rows: held whole in Arrow while delta-rs encodes
    them, it set the run's peak memory (the 100M-row long-tail day: 14 GiB in the tables stage)."""

    schema: pa.Schema
    batches: Callable[[], Iterator[pa.RecordBatch]]


@dataclass(frozen=True)
class DayFile:
    """A day's rows as a Parquet file already written (a published version's totals.parquet, drift.parquet):
    taken into the table as it is, copied beside the table's other files and added by one commit, instead of
    decoded and encoded again. ``schema`` is the file's Arrow schema (no ``date``: Delta keeps partition values
    in its log, never in the files). ``copy_into(path)`` copies the file to ``path``, relative to the table's
    root, and returns its size in bytes. When the table's schema is not ``date`` + ``schema``, ``rows`` are
    written instead (and a schema that does not match fails as it would for them).

    Re-encoding the 100M-row long-tail day's 80M totals and drift rows took 19.9 s of its run and peaked at
    4.30 GiB whatever ``--memory-limit`` said (delta-rs buffers a file's rows while it encodes them)."""

    schema: pa.Schema
    num_rows: int
    null_counts: Mapping[str, int]
    """Nulls per column, for the commit's statistics (a column whose count is unknown is left out)."""
    copy_into: Callable[[str], int]
    rows: DayRows


def _batches_with_date(date: dt.date, rows: pa.Table | DayRows) -> pa.RecordBatchReader:
    if isinstance(rows, pa.Table):
        table = with_date(date, rows)
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    schema = with_date(date, rows.schema.empty_table()).schema

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in rows.batches():
            yield from with_date(date, pa.Table.from_batches([batch], rows.schema)).to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def replace_day(table_uri: str, date: dt.date, table: pa.Table | DayRows | DayFile, *, metadata: Mapping[str, str],
                storage_options: Mapping[str, str] | None = None, attempts: int = DEFAULT_ATTEMPTS,
                backoff_s: float = DEFAULT_BACKOFF_S) -> int:
    """Replace partition ``date`` of the Delta table at ``table_uri`` by ``table``'s rows in one commit.

    The table is created (version 0, an empty ``CREATE TABLE`` commit partitioned by ``date``, with the
    rows' schema) when absent. ``table`` need not hold ``date``: it is added as the first column.
    A :class:`DayFile` is copied into the table as it is when the table's schema is ``date`` + the file's and its
    protocol asks nothing more of writers. A table not partitioned by ``date`` alone, or append-only, is refused
    (:class:`billing.errors.TableShapeError`) before anything is written.
    ``metadata`` must hold ``billing_version`` (an integer >= 1) and ``manifest_sha256`` (64 hex digits);
    ``date`` is added (or checked); every entry goes into the commit's metadata. Returns the Delta table
    version of this commit (exactly this one, even when concurrent commits landed just before or after).
    A commit that delta-rs gives up on because of a concurrent writer is retried as a whole, ``attempts``
    times in all.
    """
    from deltalake import CommitProperties, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError, SchemaMismatchError

    meta = _check_metadata(date, metadata)
    schema = with_date(date, table if isinstance(table, pa.Table) else table.schema.empty_table()).schema
    opts = storage_options_for(table_uri, storage_options)
    predicate = f"{PARTITION} = '{date.isoformat()}'"
    props = CommitProperties(custom_metadata=meta,
                             app_transactions=[Transaction(app_id(date), int(meta["billing_version"]))])
    for attempt in range(1, attempts + 1):
        dtab = open_or_create(table_uri, schema, opts)
        _check_replaceable(dtab, table_uri, opts)
        try:
            if isinstance(table, DayFile) and _takes_files_as_they_are(dtab, schema):
                return _add_file(dtab, table_uri, date, table, schema, meta, props, opts)
            rows = table.rows if isinstance(table, DayFile) else table
            # Through the DeltaTable object: after the commit its version is this commit's, re-based or not.
            write_deltalake(dtab, _batches_with_date(date, rows), mode="overwrite", predicate=predicate,
                            commit_properties=props)
            return int(dtab.version())
        except SchemaMismatchError as e:
            raise TableShapeError(one_line(table_uri, f"the rows for {date} do not match the table's schema", e,
                                            opts)) from None
        except Exception as e:
            if not _is_conflict(e, CommitFailedError):
                raise StorageError(one_line(table_uri, f"replacing {date} failed", e, opts)) from None
            if attempt == attempts:
                raise StorageError(one_line(table_uri, f"replacing {date} lost to concurrent commits "
                                                        f"{attempts} times", e, opts)) from None
            delay = backoff_s * 2 ** (attempt - 1) * (0.5 + random.random())
            log.info("Delta commit for %s conflicted (%s); retrying in %.2f s", date, type(e).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def _check_replaceable(dtab: Any, table_uri: str, opts: Mapping[str, str] | None) -> None:
    """Refuse, in one line and before writing anything, a table whose day partition cannot be replaced: one not
    partitioned by ``date`` alone, or an append-only one (no retry makes either work)."""
    try:
        parts = list(dtab.metadata().partition_columns)
        config = dict(dtab.metadata().configuration or {})
    except Exception as e:
        raise StorageError(one_line(table_uri, "reading its metadata failed", e, opts)) from None
    if parts != [PARTITION]:
        raise TableShapeError(f"Delta table {table_uri}: partitioned by {parts or 'nothing'}, not by {PARTITION}: "
                              f"billing replaces one {PARTITION} partition a day")
    if str(config.get("delta.appendOnly", "false")).lower() == "true":
        raise TableShapeError(f"Delta table {table_uri}: delta.appendOnly=true, so a day's rows cannot be replaced")


def _takes_files_as_they_are(dtab: Any, schema: pa.Schema) -> bool:
    """Whether a published file can be added to the table as it is: the table's schema is ``schema`` and its
    protocol asks writers for nothing a file copied in would skip. Writer version 3 and up bring CHECK
    constraints, generated and identity columns, change data feed, column mapping and table features, which a
    writer must enforce or write for; column invariants (``delta.invariants``) live in the schema. Such a
    table gets rows through delta-rs, which does."""
    protocol = dtab.protocol()
    if protocol.min_writer_version > 2 or protocol.writer_features:
        return False
    if any(f.metadata and "delta.invariants" in f.metadata for f in dtab.schema().fields):
        return False
    return same_columns(dtab.schema().to_arrow(), schema)


def same_columns(a: Any, b: pa.Schema) -> bool:
    """Same columns in the same order, each of the same type and nullability (metadata aside)."""
    a = pa.schema(a)
    return len(a) == len(b) and all(x.name == y.name and x.type == y.type and x.nullable == y.nullable
                                    for x, y in zip(a, b, strict=True))


def _add_file(dtab: Any, table_uri: str, date: dt.date, day_file: DayFile, schema: pa.Schema,
              meta: Mapping[str, str], props: Any, opts: Mapping[str, str] | None) -> int:
    """Copy ``day_file`` under ``date=D/`` and replace the day's files by it in one commit; its table version.

    The commit is delta-rs's own write transaction (``mode="overwrite"`` of partition ``date = D``: it removes
    the day's files and adds this one), with the same metadata and application transaction as a write.
    """
    import uuid

    from deltalake.transaction import AddAction

    path = f"{PARTITION}={date.isoformat()}/part-00000-{uuid.uuid4()}-c000.parquet"
    size = day_file.copy_into(path)
    stats = {"numRecords": day_file.num_rows,
             "nullCount": {k: v for k, v in day_file.null_counts.items() if k in schema.names}}
    add = AddAction(path=path, size=size, partition_values={PARTITION: date.isoformat()},
                    modification_time=int(time.time() * 1000), data_change=True, stats=json.dumps(stats))
    before = int(dtab.version())
    dtab.create_write_transaction([add], mode="overwrite", schema=schema, partition_by=[PARTITION],
                                  partition_filters=[(PARTITION, "=", date.isoformat())], commit_properties=props)
    return _version_of_commit(table_uri, opts, date, int(meta["billing_version"]), after=before)


def _version_of_commit(table_uri: str, opts: Mapping[str, str] | None, date: dt.date, billing_version: int, *,
                       after: int) -> int:
    """The table version of the commit just made for ``date`` (delta-rs's write transaction does not say it): the
    first version after ``after`` whose application transaction for the day is ``billing_version`` (the day's lock
    keeps any other commit of the day out; other days' commits may come between). Read from snapshots, not the
    history, which holds the GIL."""
    dtab = open_table(table_uri, opts)
    for version in range(after + 1, int(dtab.version()) + 1):
        dtab.load_as_version(version)
        if dtab.transaction_version(app_id(date)) == billing_version:
            return version
    raise StorageError(f"Delta table {table_uri}: the commit for {date} is not in its log")


def _is_conflict(e: Exception, commit_failed: type[Exception]) -> bool:
    if isinstance(e, commit_failed):
        return True
    text = str(e).lower()
    # A commit whose version a concurrent writer took, reported as such after delta-rs's own retries.
    return "already exists" in text and ("version" in text or "commit" in text or "_delta_log" in text)

"""The Delta tables of the current results under ``OUT/tables/`` (issue 14): one name per table for every reader.

Layout (each a Delta table partitioned by ``date``, a DATE column also present in every row)::

    OUT/tables/totals      totals.parquet of each day's current version
    OUT/tables/drift       drift.parquet
    OUT/tables/conflicts   conflicts.parquet
    OUT/tables/quarantine  quarantine.parquet's leading columns (schemas.QUARANTINE_HEAD; the raw files'
                           other columns, which differ from day to day, stay in the version only)
    OUT/tables/days        one row per day: its current version, manifest SHA-256, summary figures (schemas.DAYS_SCHEMA)

The versions under ``OUT/dt=D/v=N/`` stay the record; a table's partition D is a copy of the current one,
replaced in one Delta commit (:func:`billing.io.delta.replace_day`, commit metadata ``billing_version``,
``date``, ``manifest_sha256``) after ``_current.json`` moved, by the run that moved it, under the day's lock.
A table already holding the current version for D is not written (an unchanged re-run commits nothing).
The tables are written in the order above, ``days`` last: a day whose row in ``days`` names version N has
every table at N. A crash between the version commit and the tables (fault points ``before_tables``,
``mid_tables``) leaves tables one version behind, each partition still equal to a committed version; the
next run of the day, or ``billing publish-tables``, brings them level.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing import faults, schemas
from billing.day.lock import new_run_id
from billing.day.publish import MANIFEST, Day
from billing.errors import BadInputError, LockedError, StorageError, TableShapeError
from billing.io.delta import DayFile, DayRows, replace_day, same_columns
from billing.io.delta_read import day_version
from billing.io.storage import Store

log = logging.getLogger(__name__)

TABLES_DIR = "tables"
#: Each table and the file of a version it copies (``days`` is built from summary.json and the manifest).
SOURCES = {"totals": "totals.parquet", "drift": "drift.parquet", "conflicts": "conflicts.parquet",
           "quarantine": "quarantine.parquet"}
#: Every table, in the order they are written (``days`` last).
NAMES = (*SOURCES, "days")
_SCHEMAS = {"totals": schemas.arrow_schema(schemas.Totals), "drift": schemas.arrow_schema(schemas.Drift),
            "conflicts": schemas.arrow_schema(schemas.Conflict), "quarantine": schemas.QUARANTINE_HEAD}
_DAY_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


@dataclass(frozen=True)
class TablesResult:
    """What bringing one day's tables level did."""

    date: dt.date
    version: int
    written: tuple[str, ...]
    """Tables that got a commit for the day."""
    unchanged: tuple[str, ...]
    """Tables that already held the version (nothing committed)."""
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "written": list(self.written), "unchanged": list(self.unchanged),
                "seconds": self.seconds}

    def message(self) -> str:
        if not self.written:
            return f"{self.date}: tables unchanged, already at version {self.version}"
        return f"{self.date}: tables at version {self.version}: wrote {', '.join(self.written)}" + (
            f" (unchanged: {', '.join(self.unchanged)})" if self.unchanged else "")


def table_uri(out: Store, name: str) -> str:
    """Where table ``name`` lives: ``OUT/tables/NAME`` (a local path or ``s3://...``)."""
    if name not in NAMES:
        raise BadInputError(f"no table {name!r}: the tables are {', '.join(NAMES)}")
    return out.url(f"{TABLES_DIR}/{name}")


def storage_options(s3_endpoint: str | None) -> dict[str, str] | None:
    """delta-rs options for billing's ``--s3-endpoint`` (the rest comes from the AWS environment)."""
    return {"AWS_ENDPOINT_URL": s3_endpoint} if s3_endpoint else None


def publish_current(day: Day, version: int, *, s3_endpoint: str | None = None) -> TablesResult:
    """Bring every table's partition for ``day`` to ``version`` (its current version); the caller holds the
    day's lock, renewed before each commit (a run that lost it stops before writing)."""
    held = day.held
    if held is None:
        raise RuntimeError("publish_current() needs the day's lock")
    started = time.monotonic()
    opts = storage_options(s3_endpoint)
    manifest_bytes = day.out.read_bytes(day.path(f"v={version}", MANIFEST))
    if manifest_bytes is None:
        raise BadInputError(f"{day.url(f'v={version}', MANIFEST)} does not exist")
    meta = {"billing_version": str(version), "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
    written: list[str] = []
    unchanged: list[str] = []
    for name in NAMES:
        uri = table_uri(day.out, name)
        try:
            if day_version(uri, day.date, storage_options=opts) == version:
                unchanged.append(name)
                continue
            rows = (_day_row(day, version, meta["manifest_sha256"], json.loads(manifest_bytes)) if name == "days"
                    else _version_file(day, version, name))
            if not written:
                faults.point("before_tables")
            held.renew()
            replace_day(uri, day.date, rows, metadata=meta, storage_options=opts)
        except StorageError as e:
            fix = "fix the table or move it aside, then " if isinstance(e, TableShapeError) else ""
            raise type(e)(f"version {version} of {day.date} is committed, but its tables are not level ({e}); "
                          f"{fix}'billing publish-tables --date {day.date}' brings them level") from None
        written.append(name)
        if name == "totals":
            faults.point("mid_tables")
    result = TablesResult(day.date, version, tuple(written), tuple(unchanged), round(time.monotonic() - started, 3))
    log.info("%s (%.1fs)", result.message(), result.seconds)
    return result


def _version_rows(day: Day, version: int, name: str) -> DayRows:
    """The table's rows of ``version``, from its published file, a batch at a time."""
    schema = _SCHEMAS[name].remove_metadata()

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in day.iter_batches(version, SOURCES[name], schema.names):
            yield from pa.Table.from_batches([batch]).select(schema.names).cast(schema).to_batches()

    return DayRows(schema, batches)


def _version_file(day: Day, version: int, name: str) -> DayFile | DayRows:
    """The table's rows of ``version``: its published file as it is, when that file holds exactly the table's
    columns (totals, drift), copied into the table (:class:`billing.io.delta.DayFile`); else its rows."""
    rows = _version_rows(day, version, name)
    path = day.path(f"v={version}", SOURCES[name])
    with day.out.open_input(path) as f:
        meta = pq.ParquetFile(f).metadata
    if not same_columns(meta.schema.to_arrow_schema(), rows.schema):
        return rows
    nulls = {}
    for i, col in enumerate(meta.schema.names):
        counts = [meta.row_group(g).column(i).statistics for g in range(meta.num_row_groups)]
        if all(c is not None and c.has_null_count for c in counts):
            nulls[col] = sum(c.null_count for c in counts if c is not None)
    table_path = f"{TABLES_DIR}/{name}"
    return DayFile(rows.schema, meta.num_rows, nulls,
                   lambda rel: day.out.copy(path, f"{table_path}/{rel}"), rows)


def _day_row(day: Day, version: int, manifest_sha256: str, manifest: dict[str, Any]) -> pa.Table:
    s = day.read_json(version, "summary.json")
    led, st, dr = s["ledger"], s["stream"], s["drift"]
    row = {"date": day.date, "version": version, "manifest_sha256": manifest_sha256,
           "created_at": dt.datetime.fromisoformat(manifest["created_at"]), "status": s["status"],
           "exit_code": s["exit_code"], "rows_read": led["rows_read"], "rows_invalid": led["rows_invalid"],
           "duplicates_removed": led["duplicates_removed"], "conflicting_click_ids": led["conflicting_click_ids"],
           "clicks_out_of_day": led["clicks_out_of_day"], "billable_clicks": led["billable_clicks"],
           "billable_spend_micros": led["billable_spend_micros"], "stream_clicks": st["clicks"],
           "drift_keys": dr["keys"], "drift_flagged": dr["flagged"], "net_delta_clicks": dr["net_delta_clicks"],
           "abs_delta_clicks": dr["abs_delta_clicks"],
           "net_at_risk_micros": (dr.get("money") or {}).get("net_at_risk_micros")}
    schema = schemas.DAYS_SCHEMA
    for k in row:  # exact integers: a DECIMAL(38, 0) column takes Python's int through Decimal
        if schema.field(k).type == schemas.BIG and row[k] is not None:
            row[k] = decimal.Decimal(row[k])
    return pa.Table.from_pylist([row], schema=schema)


def committed_days(out: Store) -> list[dt.date]:
    """Every day under OUT with a committed version (``dt=D/_current.json``), oldest first."""
    found = []
    for name in out.list_dirs(""):
        m = _DAY_DIR.match(name)
        if m and out.exists(f"{name}/_current.json"):
            found.append(dt.date.fromisoformat(m.group(1)))
    return sorted(found)


@dataclass(frozen=True)
class DayTables:
    """One day of ``billing publish-tables``: what was done, or why nothing was."""

    date: dt.date
    result: TablesResult | None
    skipped: str | None = None

    def message(self) -> str:
        return self.result.message() if self.result is not None else f"{self.date}: skipped: {self.skipped}"


def publish_days(out: Store, dates: list[dt.date] | None, *, s3_endpoint: str | None = None,
                 lock_ttl: dt.timedelta) -> list[DayTables]:
    """Bring the tables level with the current version of each day of ``dates`` (None: every committed day),
    each under its day's lock. A named day without a version, or locked by a run, is exit 2; when every
    day is backfilled, a day locked by another run is skipped (that run brings its tables level itself)."""
    every = dates is None
    if every:
        out.check_readable()  # a mistyped local OUT, or a missing bucket, is exit 2, not "no committed day"
    done = []
    for date in committed_days(out) if dates is None else dates:
        day = Day(out, date)
        day.require_current()  # before the lock: a day without versions is left as it is
        try:
            with day.lock(new_run_id(), lock_ttl, "publish-tables") as held:
                if held.base_version is None:
                    raise BadInputError(f"no committed version for {date} under {out.uri}")
                done.append(DayTables(date, publish_current(day, held.base_version, s3_endpoint=s3_endpoint)))
        except LockedError as e:
            if not every:
                raise
            log.warning("%s", e)
            done.append(DayTables(date, None, "locked by another run, which brings its tables level"))
    return done


@dataclass(frozen=True)
class CurrentFile:
    date: dt.date
    version: int
    path: str
    """The file's URI (a local path or ``s3://...``)."""


#: Files of a version that ``billing current-paths`` lists (its Parquet outputs).
PARQUET_OUTPUTS = ("totals", "drift", "quarantine", "conflicts", "stream_quarantine")


def current_paths(out: Store, name: str) -> list[CurrentFile]:
    """The current version's ``NAME.parquet`` of every committed day, oldest day first."""
    if name not in PARQUET_OUTPUTS:
        raise BadInputError(f"no output {name!r}: choose one of {', '.join(PARQUET_OUTPUTS)}")
    found = []
    for date in committed_days(out):
        day = Day(out, date)
        v = day.require_current()
        found.append(CurrentFile(date, v, day.url(f"v={v}", f"{name}.parquet")))
    if not found:
        raise BadInputError(f"no committed day under {out.uri}")
    return found

"""The data contract, declared once as pandera models over Arrow tables.

* :class:`RawClick` and :class:`StreamWindow` describe inputs. Their *structure* is
  checked up front on every file's schema (:func:`check_structure`), before a row is
  read; their *values* are checked in DuckDB by ``sql/macros/validate.sql``, never row by row
  in Python.
* The output models are checked on the finished tables before anything is published.
* The Arrow schemas stages hand each other (normalised click and stream rows, a slice's window
  facts, quarantine pointers) are declared here too, so every column type has one home.

Timestamps of any unit, zoned or naive (naive means UTC), are accepted on input and
normalised to ``timestamp[us, UTC]``; integers of any width are accepted for ids and
counts and widened to int64 when that is lossless.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass

import pandera.pyarrow as pa_
import pyarrow as pa
from pandera.errors import SchemaError, SchemaErrors

from billing.errors import BadInputError

TS = pa.timestamp("us", tz="UTC")

#: Why a raw row is quarantined (sql/macros/validate.sql), in the order the rules are tried.
REASONS = (
    "null_click_id",
    "null_ad_id",
    "null_event_time",
    "nonpositive_click_id",
    "negative_cost",
    "id_time_mismatch",
)

#: Why a stream row is quarantined (sql/macros/stream_validate.sql), in the order the rules are tried.
STREAM_REASONS = (
    "null_ad_id",
    "null_window_start",
    "null_clicks",
    "negative_clicks",
    "negative_spend",
    "unaligned_window",
)


class RawClick(pa_.DataFrameModel):
    """One row of the raw click log, as normalised on read."""

    click_id: pa.int64() = pa_.Field(nullable=True)
    ad_id: pa.int64() = pa_.Field(nullable=True)
    event_time: TS = pa_.Field(nullable=True)
    ingest_time: TS = pa_.Field(nullable=True, required=False)
    cost_micros: pa.int64() = pa_.Field(nullable=True, required=False)


class StreamWindow(pa_.DataFrameModel):
    """One row of the stream job's sink for day D (values are judged by ``sql/macros/stream_validate.sql``)."""

    ad_id: pa.int64() = pa_.Field(nullable=True)
    window_start: TS = pa_.Field(nullable=True)
    clicks: pa.int64() = pa_.Field(nullable=True)
    spend_micros: pa.int64() = pa_.Field(nullable=True, required=False)


class Totals(pa_.DataFrameModel):
    ad_id: pa.int64() = pa_.Field(nullable=False)
    window_start: TS = pa_.Field(nullable=False)
    clicks: pa.int64() = pa_.Field(nullable=False, ge=1)
    spend_micros: pa.int64() = pa_.Field(nullable=True, ge=0)

    class Config:
        strict = True
        ordered = True


DRIFT_STATUSES = ("match", "stream_over", "stream_under", "missing_in_stream", "missing_in_batch")
CAUSES = (
    "raw_duplicates_counted",
    "late_beyond_stream_watermark",
    "sink_duplicate_rows",
    "window_boundary_shift",
    "replay_overcount",
    "lost_events",
    "missing_window",
    "phantom_window",
)


class Drift(pa_.DataFrameModel):
    ad_id: pa.int64() = pa_.Field(nullable=False)
    window_start: TS = pa_.Field(nullable=False)
    batch_clicks: pa.int64() = pa_.Field(nullable=False, ge=0)
    stream_clicks: pa.int64() = pa_.Field(nullable=False)
    delta: pa.int64() = pa_.Field(nullable=False)
    status: pa.string() = pa_.Field(nullable=False, isin=list(DRIFT_STATUSES))
    flagged: pa.bool_() = pa_.Field(nullable=False)
    cause: pa.string() = pa_.Field(nullable=True, isin=list(CAUSES))
    batch_spend_micros: pa.int64() = pa_.Field(nullable=True)
    stream_spend_micros: pa.int64() = pa_.Field(nullable=True)
    money_at_risk_micros: pa.int64() = pa_.Field(nullable=True)

    class Config:
        strict = True
        ordered = True


class Conflict(pa_.DataFrameModel):
    click_id: pa.int64() = pa_.Field(nullable=False)
    copies: pa.int64() = pa_.Field(nullable=False, ge=2)
    ad_ids: pa.list_(pa.int64()) = pa_.Field(nullable=False)
    window_starts: pa.list_(TS) = pa_.Field(nullable=False)
    winner_ad_id: pa.int64() = pa_.Field(nullable=False)
    winner_window_start: TS = pa_.Field(nullable=False)
    winner_source_file: pa.string() = pa_.Field(nullable=False)
    winner_row: pa.int64() = pa_.Field(nullable=False)

    class Config:
        strict = True
        ordered = True


class StreamQuarantine(pa_.DataFrameModel):
    """stream_quarantine.parquet's leading columns; the stream files' other columns follow."""

    ad_id: pa.int64() = pa_.Field(nullable=True)
    window_start: TS = pa_.Field(nullable=True)
    clicks: pa.int64() = pa_.Field(nullable=True)
    spend_micros: pa.int64() = pa_.Field(nullable=True)
    reason: pa.string() = pa_.Field(nullable=False, isin=list(STREAM_REASONS))
    source_file: pa.string() = pa_.Field(nullable=False)
    source_row: pa.int64() = pa_.Field(nullable=False, ge=0)

    class Config:
        ordered = True


#: Sums over a day that may pass int64 (summary.json holds them exactly): DECIMAL(38, 0) in the days table.
BIG = pa.decimal128(38, 0)

#: One row of the ``OUT/tables/days`` Delta table: a day's current version, the SHA-256 of its manifest.json,
#: the manifest's ``created_at``, and summary.json's key figures (``ledger``, ``stream``, ``drift``). Built from
#: summary.json (already checked when the version was published), so an Arrow schema rather than a model
#: (pandera has no DECIMAL for the sums that may pass int64).
DAYS_SCHEMA = pa.schema([
    pa.field("date", pa.date32(), nullable=False), pa.field("version", pa.int64(), nullable=False),
    pa.field("manifest_sha256", pa.string(), nullable=False), pa.field("created_at", TS, nullable=False),
    pa.field("status", pa.string(), nullable=False), pa.field("exit_code", pa.int32(), nullable=False),
    *(pa.field(name, pa.int64(), nullable=False) for name in (
        "rows_read", "rows_invalid", "duplicates_removed", "conflicting_click_ids", "clicks_out_of_day",
        "billable_clicks")),
    pa.field("billable_spend_micros", pa.int64()),  # null: no cost column in the day's raw files
    pa.field("stream_clicks", BIG, nullable=False),
    pa.field("drift_keys", pa.int64(), nullable=False), pa.field("drift_flagged", pa.int64(), nullable=False),
    pa.field("net_delta_clicks", BIG, nullable=False), pa.field("abs_delta_clicks", BIG, nullable=False),
    pa.field("net_at_risk_micros", BIG),  # null: nothing to price the drift at
])


# --- what stages hand each other ------------------------------------------------------------------

#: Normalised raw rows handed to DuckDB, in order. Times are floored to µs (``event_time``,
#: ``ingest_time``); ``*_sub_ns`` hold the nanoseconds below (0..999). ``file_id`` is the index of the
#: row's file in the path-sorted horizon files (so comparing ids compares paths), ``row_no`` its position.
CLICK_SCHEMA = pa.schema([
    ("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", TS), ("ingest_time", TS),
    ("cost_micros", pa.int64()), ("file_id", pa.int32()), ("row_no", pa.int64()),
    ("event_sub_ns", pa.int16()), ("ingest_sub_ns", pa.int16()),
])

#: Normalised stream rows handed to DuckDB, in order. ``window_ns`` is the part of window_start below
#: the microsecond it is floored to (0..999, non-zero only for ns sources), which the normalised
#: ``timestamp[us]`` cannot hold but alignment is judged on (sql/macros/stream_validate.sql).
STREAM_SCHEMA = pa.schema([
    ("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()), ("spend_micros", pa.int64()),
    ("window_ns", pa.int64()), ("file_id", pa.int32()), ("row_no", pa.int64()),
])

#: A slice's windows of day D (sql/slice/window_facts.sql): what the day's diff sums and compares.
FACTS_SCHEMA = pa.schema([
    ("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()),
    ("spend_micros", pa.int64()), ("duplicate_copies", pa.int64()), ("late_clicks", pa.int64()),
])

#: Where an invalid row is (file, row) and why: all of the quarantine that travels between stages.
QUARANTINE_POINTERS = pa.schema([("file_id", pa.int32()), ("row_no", pa.int64()), ("reason", pa.string())])

#: quarantine.parquet's leading columns; the raw files' other columns follow.
QUARANTINE_HEAD = pa.schema([
    ("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", TS), ("ingest_time", TS),
    ("cost_micros", pa.int64()), ("reason", pa.string()), ("source_file", pa.string()), ("source_row", pa.int64()),
])


def arrow_schema(model: type[pa_.DataFrameModel]) -> pa.Schema:
    """The Arrow schema a model declares (in declaration order)."""
    schema = model.to_schema()
    fields = []
    for name, col in schema.columns.items():
        fields.append(pa.field(name, _arrow_type(model, name), nullable=bool(col.nullable)))
    return pa.schema(fields)


def _arrow_type(model: type[pa_.DataFrameModel], name: str) -> pa.DataType:
    hint = typing.get_type_hints(model)[name]  # the model annotates columns with Arrow types
    assert isinstance(hint, pa.DataType), (model.__name__, name, hint)
    return hint


@dataclass(frozen=True)
class ColumnPlan:
    """How one input column is read: its source type and the normalised target."""

    name: str
    source: pa.DataType | None  # None: absent from this file
    target: pa.DataType


def _normalised_type(t: pa.DataType, target: pa.DataType) -> pa.DataType | None:
    """The target type when ``t`` converts to it without loss of meaning, else None.

    Arrow's ``null`` type (a column whose every value is missing) fits any target: all its values are null.
    """
    if pa.types.is_null(t):
        return target
    if pa.types.is_timestamp(target):
        return target if pa.types.is_timestamp(t) else None
    if pa.types.is_integer(target):
        if pa.types.is_integer(t):
            return target
        return None
    return target if t.equals(target) else None


def check_structure(model: type[pa_.DataFrameModel], schema: pa.Schema, where: str) -> list[ColumnPlan]:
    """Check one input file's schema against ``model``; return how to read each column.

    Raises :class:`BadInputError` with a one-line reason naming the file and column.
    The check itself is pandera's: a zero-row table of the normalised schema is
    validated against the model, so the contract lives in one place.
    """
    declared = model.to_schema().columns
    plans: list[ColumnPlan] = []
    normalised_fields = []
    for name, col in declared.items():
        target = _arrow_type(model, name)
        if len(schema.get_all_field_indices(name)) > 1:
            raise BadInputError(f"{where}: column {name!r} appears {len(schema.get_all_field_indices(name))} times")
        idx = schema.get_field_index(name)
        if idx < 0:
            if col.required:
                raise BadInputError(f"{where}: required column {name!r} is missing")
            plans.append(ColumnPlan(name, None, target))
            continue
        source = schema.field(idx).type
        norm = _normalised_type(source, target)
        if norm is None:
            raise BadInputError(f"{where}: column {name!r} has type {source}, expected {_kind(target)}")
        plans.append(ColumnPlan(name, source, target))
        normalised_fields.append(pa.field(name, norm))
    empty = pa.schema(normalised_fields).empty_table()
    try:
        model.validate(empty, lazy=True)
    except (SchemaError, SchemaErrors) as e:  # the model and our normalisation disagree: say so
        raise BadInputError(f"{where}: schema does not match {model.__name__}: {str(e).splitlines()[0]}") from e
    return plans


def _kind(t: pa.DataType) -> str:
    if pa.types.is_timestamp(t):
        return "a timestamp"
    if pa.types.is_integer(t):
        return "an integer"
    return str(t)

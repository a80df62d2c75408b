"""Extra input columns (neither raw nor stream ones the pipeline reads), kept losslessly in the quarantines.

Both quarantine outputs (``quarantine.parquet``, ``stream_quarantine.parquet``) carry every column of
the quarantined rows. An extra column keeps its type where the files agree on it (a column of Arrow
type null agrees with any); where they disagree, every value of it is written as JSON text, so nothing
is lost and no type stops the run.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math

import pyarrow as pa

#: Columns the quarantines add to each row; an input column of the same name is kept as ``<name>_input``.
ADDED = ("reason", "source_file", "source_row")


def keep_extras(full: pa.Table, cols: dict[str, pa.Array]) -> dict[str, pa.ChunkedArray]:
    """The columns of ``full`` not already in ``cols`` (the normalised core columns), by name; one named like
    a column the quarantine adds (:data:`ADDED`) is renamed ``<name>_input`` (``_input`` again while taken)."""
    out: dict[str, pa.ChunkedArray] = {}
    for name in full.column_names:
        if name in ADDED:
            new = f"{name}_input"
            while new in full.column_names or new in cols or new in out:
                new += "_input"
            out[new] = full.column(name)
        elif name not in cols:
            out[name] = full.column(name)
    return out


def union_keeping_extras(head: pa.Schema, parts: list[pa.Table]) -> pa.Table:
    """``parts`` stacked: ``head``'s columns, then every other column by name (sorted)."""
    extra_types: dict[str, list[pa.DataType]] = {}
    for t in parts:
        for f in t.schema:
            if f.name not in head.names and not any(f.type.equals(x) for x in extra_types.setdefault(f.name, [])):
                extra_types[f.name].append(f.type)
    extras = sorted(extra_types)
    schema = pa.schema(list(head) + [pa.field(n, _extra_type(extra_types[n])) for n in extras])
    as_json = {n for n in extras if len([t for t in extra_types[n] if not pa.types.is_null(t)]) > 1}
    aligned = []
    for t in parts:
        cols = []
        for f in schema:
            if f.name not in t.column_names:
                cols.append(pa.nulls(t.num_rows, f.type))
                continue
            col = t.column(f.name)
            if f.name in as_json:
                cols.append(json_text(col))
            else:
                cols.append(col if col.type.equals(f.type) else col.cast(f.type))
        aligned.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(aligned)


def _extra_type(types: list[pa.DataType]) -> pa.DataType:
    """An extra column's type where the files agree (type null agrees with any), else text of JSON values."""
    known = [t for t in types if not pa.types.is_null(t)]
    if not known:
        return pa.null()
    return known[0] if len(known) == 1 else pa.string()


def json_text(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """Each value as strict JSON text (NULL stays NULL): lossless whatever the column's type.

    Numbers and booleans as JSON numbers and literals, strings as JSON strings (so ``5`` and ``"5"``
    stay apart), structs as objects in field order, lists as arrays, maps as arrays of [key, value],
    timestamps, dates and times as ISO-8601 strings, durations as integer microseconds, decimals as
    strings of their digits, binary as base64 strings, NaN and infinities as the strings ``"nan"``,
    ``"inf"``, ``"-inf"`` (JSON has no such numbers).
    """
    try:
        values = col.to_pylist()
    except (ValueError, OverflowError):  # ns below the microsecond, years past 9999: Arrow's text, in full
        values = col.cast(pa.string()).to_pylist()
    return pa.array([None if v is None else json.dumps(_finite(v), ensure_ascii=False, default=_json_default,
                                                      allow_nan=False)
                     for v in values], pa.string())


def _finite(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_finite(x) for x in v]
    return v


def _json_default(v: object) -> object:
    if isinstance(v, dt.timedelta):
        return v // dt.timedelta(microseconds=1)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode("ascii")
    raise TypeError(f"cannot write {type(v).__name__} as JSON")

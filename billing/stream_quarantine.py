"""stream_quarantine.parquet: the stream rows ``sql/stream_validate.sql`` found invalid, every column kept.

Only pointers (file, row, reason) leave DuckDB; the rows are re-read from their files, as the raw
quarantine does, so columns the pipeline never uses are kept too.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from billing import schemas
from billing.read import StreamSource, stream_rows
from billing.storage import Store

CORE = ("ad_id", "window_start", "clicks", "spend_micros")

HEAD = schemas.arrow_schema(schemas.StreamQuarantine)


def assemble(store: Store, sources: list[StreamSource], pointers: pa.Table) -> pa.Table:
    """The quarantined stream rows: normalised stream columns, reason, source (path relative to STREAM)
    and row, then every other column of the files. Sorted by (source_file, source_row)."""
    if pointers.num_rows == 0:
        return HEAD.empty_table()
    by_file: dict[int, list[tuple[int, str]]] = {}
    for fid, row, reason in zip(*(pointers.column(c).to_pylist() for c in ("file_id", "row_no", "reason")),
                                strict=True):
        by_file.setdefault(fid, []).append((row, reason))
    parts = []
    for fid in sorted(by_file):
        src = sources[fid]
        rows = sorted(by_file[fid])
        norm, full = stream_rows(store, src, every_column=True)
        take = pa.array([r for r, _ in rows], pa.int64())
        norm, full = norm.take(take), full.take(take)
        cols: dict[str, Any] = {c: norm.column(c) for c in CORE}
        cols["reason"] = pa.array([r for _, r in rows], pa.string())
        cols["source_file"] = pa.array([src.path] * len(rows), pa.string())
        cols["source_row"] = take
        for name in full.column_names:
            if name not in cols:
                cols[name] = full.column(name)
        parts.append(pa.table(cols))
    return union_keeping_extras(HEAD, parts)


def union_keeping_extras(head: pa.Schema, parts: list[pa.Table]) -> pa.Table:
    """``parts`` stacked: ``head``'s columns, then every other column by name. An extra column keeps its
    type where the parts agree on it (a part where it is all-null type takes no side); where they
    disagree it becomes text, each value written out in full (:func:`as_text`), so nothing is lost."""
    types: dict[str, list[pa.DataType]] = {}
    for t in parts:
        for f in t.schema:
            if f.name not in head.names:
                seen = types.setdefault(f.name, [])
                if not pa.types.is_null(f.type) and not any(f.type.equals(x) for x in seen):
                    seen.append(f.type)
    fields = list(head) + [pa.field(n, types[n][0] if len(types[n]) == 1 else pa.null() if not types[n]
                                    else pa.string()) for n in sorted(types)]
    schema = pa.schema(fields)
    aligned = []
    for t in parts:
        cols = []
        for f in schema:
            if f.name not in t.column_names:
                cols.append(pa.nulls(t.num_rows, f.type))
                continue
            col = t.column(f.name)
            if col.type.equals(f.type):
                cols.append(col)
            elif pa.types.is_string(f.type) and f.name not in head.names and not pa.types.is_null(col.type):
                cols.append(as_text(col))
            else:
                cols.append(col.cast(f.type))
        aligned.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(aligned)


def as_text(col: pa.ChunkedArray) -> pa.Array:
    """Every value as text: Arrow's own cast where it has one (integers, floats, decimals and timestamps
    in full), else JSON (nested values) or Python's repr (bytes that are not UTF-8)."""
    try:
        return pc.cast(col, pa.string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid):
        return pa.array([None if v is None else _text(v) for v in col.to_pylist()], pa.string())


def _text(v: Any) -> str:
    if isinstance(v, bytes):
        return repr(v)
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(_finite(v), default=repr, sort_keys=True, ensure_ascii=False, allow_nan=False)
    return str(v)


def _finite(v: Any) -> Any:
    """``v`` with NaN and infinities as the strings Python prints for them: the text stays strict JSON."""
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v

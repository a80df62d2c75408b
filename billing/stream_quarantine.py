"""stream_quarantine.parquet: the stream rows ``sql/stream_validate.sql`` found invalid, every column kept.

Only pointers (file, row, reason) leave DuckDB; the rows are re-read from their files, as the raw
quarantine does, so columns the pipeline never uses are kept too.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from billing import schemas
from billing.extras import union_keeping_extras
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

"""The day's quarantine outputs: the invalid raw rows (quarantine.parquet) and stream rows
(stream_quarantine.parquet), every column of their files kept.

Only pointers (file, row, reason) leave DuckDB; the rows are re-read from their files here, so
columns the pipeline never uses are kept too (:mod:`billing.extras`).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from billing import schemas
from billing.extras import keep_extras, union_keeping_extras
from billing.io.raw import SourceFile
from billing.io.raw_rows import normalise_batch, read_full_rows
from billing.io.storage import Store
from billing.io.stream import StreamSource, stream_rows
from billing.schemas import QUARANTINE_HEAD

RAW_CORE = ("click_id", "ad_id", "event_time", "ingest_time", "cost_micros")
STREAM_CORE = ("ad_id", "window_start", "clicks", "spend_micros")
STREAM_HEAD = schemas.arrow_schema(schemas.StreamQuarantine)


def by_file(pointers: pa.Table) -> list[tuple[int, list[tuple[int, str]]]]:
    """Quarantine pointers (file_id, row_no, reason) grouped by file, files and rows in order."""
    grouped: dict[int, list[tuple[int, str]]] = {}
    for fid, row, reason in zip(*(pointers.column(c).to_pylist() for c in ("file_id", "row_no", "reason")),
                                strict=True):
        grouped.setdefault(fid, []).append((row, reason))
    return [(fid, sorted(grouped[fid])) for fid in sorted(grouped)]


def assemble_quarantine(store: Store, sources: list[SourceFile], pointers: pa.Table) -> pa.Table:
    """The full quarantined rows: normalised core columns, reason, source, then every other column.

    Extra columns are kept losslessly (:mod:`billing.extras`). Sorted by (source_file, source_row).
    """
    if pointers.num_rows == 0:
        return QUARANTINE_HEAD.empty_table()
    parts = []
    for fid, rows in by_file(pointers):
        src = sources[fid]
        full = read_full_rows(store, src, [r for r, _ in rows])
        core_batch = full.select([p.name for p in src.plans if p.source is not None]).combine_chunks()
        norm = normalise_batch(
            core_batch.to_batches()[0] if core_batch.num_rows else pa.RecordBatch.from_pylist([]),
            src, 0, store.url(src.path))
        cols: dict[str, pa.Array] = {c: norm.column(c) for c in RAW_CORE}
        cols["reason"] = pa.array([r for _, r in rows], pa.string())
        cols["source_file"] = pa.array([src.path] * len(rows), pa.string())
        cols["source_row"] = pa.array([r for r, _ in rows], pa.int64())
        for name, col in keep_extras(full, cols).items():
            cols[name] = col.combine_chunks()
        parts.append(pa.table(cols))
    return union_keeping_extras(QUARANTINE_HEAD, parts)


def assemble_stream_quarantine(store: Store, sources: list[StreamSource], pointers: pa.Table) -> pa.Table:
    """The quarantined stream rows: normalised stream columns, reason, source (path relative to STREAM)
    and row, then every other column of the files. Sorted by (source_file, source_row)."""
    if pointers.num_rows == 0:
        return STREAM_HEAD.empty_table()
    parts = []
    for fid, rows in by_file(pointers):
        src = sources[fid]
        norm, full = stream_rows(store, src, every_column=True)
        take = pa.array([r for r, _ in rows], pa.int64())
        norm, full = norm.take(take), full.take(take)
        cols: dict[str, Any] = {c: norm.column(c) for c in STREAM_CORE}
        cols["reason"] = pa.array([r for _, r in rows], pa.string())
        cols["source_file"] = pa.array([src.path] * len(rows), pa.string())
        cols["source_row"] = take
        cols.update(keep_extras(full, cols))
        parts.append(pa.table(cols))
    return union_keeping_extras(STREAM_HEAD, parts)

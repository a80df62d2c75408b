"""The day's raw quarantine output: the invalid raw rows (quarantine.parquet), every column of their files
kept. The stream side's (stream_quarantine.parquet) is assembled by its source (billing.io.stream_source).

Only pointers (file, row, reason) leave DuckDB; the rows are re-read from their files here, so
columns the pipeline never uses are kept too (:mod:`billing.extras`).
"""

from __future__ import annotations

import pyarrow as pa

from billing.extras import keep_extras, union_keeping_extras
from billing.io.raw import SourceFile
from billing.io.raw_rows import normalise_batch, read_full_rows
from billing.io.storage import Store
from billing.io.stream import by_file
from billing.schemas import QUARANTINE_HEAD

RAW_CORE = ("click_id", "ad_id", "event_time", "ingest_time", "cost_micros")


def assemble_quarantine(store: Store, sources: list[SourceFile], pointers: pa.Table) -> pa.Table:
    """The full quarantined rows: normalised core columns, reason, source, then every other column.

    Extra columns are kept losslessly (:mod:`billing.extras`). Sorted by (source_file, source_row).
    """
    if pointers.num_rows == 0:
        return QUARANTINE_HEAD.empty_table()
    parts = []
    for fid, rows, reasons in by_file(pointers):
        src = sources[fid]
        full = read_full_rows(store, src, rows)
        core_batch = full.select([p.name for p in src.plans if p.source is not None]).combine_chunks()
        norm = normalise_batch(
            core_batch.to_batches()[0] if core_batch.num_rows else pa.RecordBatch.from_pylist([]),
            src, 0, store.url(src.path))
        cols: dict[str, pa.Array] = {c: norm.column(c) for c in RAW_CORE}
        cols["reason"] = reasons
        cols["source_file"] = pa.repeat(pa.scalar(src.path, pa.string()), len(rows))
        cols["source_row"] = rows
        for name, col in keep_extras(full, cols).items():
            cols[name] = col.combine_chunks()
        parts.append(pa.table(cols))
    return union_keeping_extras(QUARANTINE_HEAD, parts)

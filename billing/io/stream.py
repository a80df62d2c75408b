"""Stream files of a day: which files, their structure, and their rows normalised.

The stream side's values are judged in DuckDB (``sql/macros/stream_validate.sql``); here every file is
opened and its schema checked against :class:`billing.schemas.StreamWindow`, and its rows are
normalised to :data:`billing.schemas.STREAM_SCHEMA`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from billing import schemas
from billing.extras import keep_extras, union_keeping_extras
from billing.io.parquet import normalise_column, normalise_time, open_parquet, read_error
from billing.io.raw import data_files
from billing.io.storage import FileInfo, Store
from billing.schemas import STREAM_SCHEMA, StreamWindow, check_structure

STREAM_CORE = ("ad_id", "window_start", "clicks", "spend_micros")
STREAM_HEAD = schemas.arrow_schema(schemas.StreamQuarantine)


def discover_stream(store: Store, date: dt.date) -> list[FileInfo]:
    return data_files(store.list_files(f"dt={date.isoformat()}"))


@dataclass(frozen=True)
class StreamSource:
    """One stream file after its footer was read and its structure checked."""

    file_id: int
    """Index in the path-sorted list of the day's stream files (so comparing ids compares paths)."""
    info: FileInfo
    columns: list[str]

    @property
    def path(self) -> str:
        return self.info.path

    @property
    def has_spend(self) -> bool:
        return "spend_micros" in self.columns


def inspect_stream(store: Store, files: list[FileInfo]) -> list[StreamSource]:
    """Open every stream file (checked: one line naming the file when it is not readable Parquet) and
    check its structure; sorted by path."""
    out = []
    for i, f in enumerate(sorted(files, key=lambda f: f.path)):
        with open_parquet(store, f.path) as pfile:
            check_structure(StreamWindow, pfile.schema_arrow, store.url(f.path))
            out.append(StreamSource(i, f, list(pfile.schema_arrow.names)))
    return out


def stream_rows(store: Store, src: StreamSource) -> tuple[pa.Table, pa.Table]:
    """One stream file: its rows normalised to :data:`STREAM_SCHEMA`, and the stream columns as written."""
    where = store.url(src.path)
    with open_parquet(store, src.path) as pfile:
        plans = check_structure(StreamWindow, pfile.schema_arrow, where)  # checked again: it is read now
        try:
            table = pfile.read(columns=[p.name for p in plans if p.source is not None])
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
            raise read_error(store, src.path, e, "corrupt Parquet data") from e
    return _normalised(table, plans, where, src.file_id, 0), table


#: Rows decoded at a time while the quarantined rows of a stream file are picked out.
QUARANTINE_BATCH = 1 << 16


def stream_rows_at(store: Store, src: StreamSource, rows: pa.Int64Array) -> tuple[pa.Table, pa.Table]:
    """The given rows (ascending row numbers) of one stream file: normalised to :data:`STREAM_SCHEMA`, and every
    column as written; read a batch at a time, so a file of millions of rows is never held whole."""
    where = store.url(src.path)
    wanted = rows.to_numpy()
    norms, fulls = [], []
    with open_parquet(store, src.path) as pfile:
        plans = check_structure(StreamWindow, pfile.schema_arrow, where)
        schema = pfile.schema_arrow
        offset = 0
        try:
            for batch in pfile.iter_batches(batch_size=QUARANTINE_BATCH):
                lo, hi = np.searchsorted(wanted, [offset, offset + batch.num_rows])
                if hi > lo:
                    full = pa.Table.from_batches([batch]).take(pa.array(wanted[lo:hi] - offset))
                    fulls.append(full)
                    norms.append(_normalised(full, plans, where, src.file_id, 0))
                offset += batch.num_rows
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
            raise read_error(store, src.path, e, "corrupt Parquet data") from e
    if not norms:
        return STREAM_SCHEMA.empty_table(), schema.empty_table()
    # one chunk per column, as one take over the whole file gave (chunk edges decide the Parquet pages)
    norm = pa.concat_tables(norms).combine_chunks()
    at = norm.schema.get_field_index("row_no")  # each row's place in its file, as in the whole file's rows
    norm = norm.set_column(at, norm.schema.field(at), rows.cast(pa.int64()))
    return norm, pa.concat_tables(fulls).combine_chunks()


def stream_pieces(store: Store, src: StreamSource) -> Iterator[pa.Table]:
    """One stream file's rows normalised to :data:`STREAM_SCHEMA`, a row group at a time (``row_no`` counts
    through the file): a day's sink file need not be held whole in memory (billing.day.diff.load_stream)."""
    where = store.url(src.path)
    with open_parquet(store, src.path) as pfile:
        plans = check_structure(StreamWindow, pfile.schema_arrow, where)  # checked again: it is read now
        names = [p.name for p in plans if p.source is not None]
        offset = 0
        for i in range(pfile.num_row_groups):
            try:
                table = pfile.read_row_group(i, columns=names)
            except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
                raise read_error(store, src.path, e, "corrupt Parquet data") from e
            yield _normalised(table, plans, where, src.file_id, offset)
            offset += table.num_rows


def _normalised(table: pa.Table, plans: list[Any], where: str, file_id: int, first_row: int) -> pa.Table:
    n = table.num_rows
    cols = {}
    for p in plans:
        cols[p.name] = (pa.nulls(n, p.target) if p.source is None
                        else normalise_column(table.column(p.name), p, where))
    window = table.column("window_start")
    cols["window_ns"] = normalise_time(window.combine_chunks(), "window_start", where)[1].cast(pa.int64())
    cols["file_id"] = pa.array(np.full(n, file_id, dtype=np.int32))
    cols["row_no"] = pa.array(np.arange(first_row, first_row + n, dtype=np.int64))
    return pa.table(cols, schema=STREAM_SCHEMA)


def read_stream(store: Store, sources: list[StreamSource]) -> pa.Table:
    """All stream-side rows, normalised to :data:`STREAM_SCHEMA`; values are judged in DuckDB."""
    tables = [stream_rows(store, src)[0] for src in sources]
    return pa.concat_tables(tables) if tables else STREAM_SCHEMA.empty_table()


def by_file(pointers: pa.Table) -> list[tuple[int, pa.Int64Array, pa.StringArray]]:
    """Quarantine pointers (file_id, row_no, reason) grouped by file: (file_id, rows, reasons), files and rows
    in order. Arrow throughout: a day of millions of invalid rows as Python tuples had cost GBs."""
    if pointers.num_rows == 0:
        return []
    order = pointers.sort_by([("file_id", "ascending"), ("row_no", "ascending"), ("reason", "ascending")])
    fids = order.column("file_id").combine_chunks()
    rows = order.column("row_no").combine_chunks().cast(pa.int64())
    reasons = order.column("reason").combine_chunks().cast(pa.string())
    starts = [0, *(pc.indices_nonzero(pc.not_equal(fids.slice(1), fids.slice(0, len(fids) - 1))).to_numpy() + 1)]
    ends = [*starts[1:], len(fids)]
    return [(int(fids[a].as_py()), rows.slice(a, b - a), reasons.slice(a, b - a))
            for a, b in zip(starts, ends, strict=True)]


def stream_quarantine(store: Store, sources: list[StreamSource], pointers: pa.Table) -> pa.Table:
    """The quarantined stream rows: normalised stream columns, reason, source (path relative to STREAM)
    and row, then every other column of the files. Sorted by (source_file, source_row)."""
    if pointers.num_rows == 0:
        return STREAM_HEAD.empty_table()
    parts = []
    for fid, take, reasons in by_file(pointers):
        src = sources[fid]
        norm, full = stream_rows_at(store, src, take)
        cols: dict[str, Any] = {c: norm.column(c) for c in STREAM_CORE}
        cols["reason"] = reasons
        cols["source_file"] = pa.repeat(pa.scalar(src.path, pa.string()), len(take))
        cols["source_row"] = take
        cols.update(keep_extras(full, cols))
        parts.append(pa.table(cols))
    return union_keeping_extras(STREAM_HEAD, parts)

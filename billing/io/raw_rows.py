"""Normalised raw rows: a slice's rows from the files, through Arrow, in the types DuckDB is handed.

Every row handed on has the columns of :data:`billing.schemas.CLICK_SCHEMA`, or the run stopped
with a one-line :class:`BadInputError`. Row groups whose click_id statistics lie outside the
slice are not read. (Local files DuckDB can read itself skip this path: billing.slice.land.)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing.errors import BadInputError
from billing.io.parquet import normalise_column, normalise_time, open_parquet, read_error
from billing.io.raw import ClickRange, SourceFile
from billing.io.storage import Store
from billing.schemas import CLICK_SCHEMA, TS


class ReadFailure:
    """Carries an input error out of a generator that DuckDB consumes."""

    def __init__(self) -> None:
        self.error: BaseException | None = None


def normalise_batch(batch: pa.RecordBatch, src: SourceFile, row_start: int, where: str) -> pa.RecordBatch:
    n = batch.num_rows
    arrays = []
    subs = {"event_time": pa.array(np.zeros(n, dtype=np.int16)), "ingest_time": pa.array(np.zeros(n, dtype=np.int16))}
    for plan in src.plans:
        if plan.source is None:
            arrays.append(pa.nulls(n, plan.target))
        elif pa.types.is_timestamp(plan.target):
            col = batch.column(plan.name)
            floored, subs[plan.name] = normalise_time(
                col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col, plan.name, where)
            arrays.append(floored)
        else:
            arrays.append(normalise_column(batch.column(plan.name), plan, where))
    arrays.append(pa.array(np.full(n, src.file_id, dtype=np.int32)))
    arrays.append(pa.array(np.arange(row_start, row_start + n, dtype=np.int64)))
    arrays += [subs["event_time"], subs["ingest_time"]]
    return pa.RecordBatch.from_arrays(arrays, names=CLICK_SCHEMA.names)


def _range_mask(batch: pa.RecordBatch, rng: ClickRange) -> pa.Array | None:
    if rng.lo is None and rng.hi is None:
        return None
    ids = batch.column(0)
    mask = None
    if rng.lo is not None:
        mask = pc.greater_equal(ids, rng.lo)
    if rng.hi is not None:
        upper = pc.less(ids, rng.hi)
        mask = upper if mask is None else pc.and_(mask, upper)
    if rng.lo is None:  # the first slice also holds null ids
        mask = pc.or_kleene(mask, pc.is_null(ids))
    return pc.fill_null(mask, False)


def click_batches(store: Store, sources: list[SourceFile], rng: ClickRange, failure: ReadFailure,
                  batch_rows: int = 256 * 1024) -> Iterator[pa.RecordBatch]:
    """Normalised rows of ``sources`` whose click_id falls in ``rng``, file after file.

    Row groups whose click_id statistics lie outside ``rng`` are not read. An input
    error is stored in ``failure`` (DuckDB would otherwise re-wrap it) and ends the stream.
    """
    try:
        for src in sources:
            groups = [g for g, (mn, mx, _, nulls) in enumerate(src.row_group_click_ranges)
                      if rng.overlaps(mn, mx, nulls)]
            if not groups:
                continue
            starts = np.concatenate([[0], np.cumsum([r[2] for r in src.row_group_click_ranges])])
            with open_parquet(store, src.path) as pfile:
                yield from _slice_of_file(store, pfile, src, groups, starts, rng, batch_rows)
    except BaseException as e:
        failure.error = e
        raise


def _slice_of_file(store: Store, pfile: pq.ParquetFile, src: SourceFile, groups: list[int], starts: np.ndarray,
                   rng: ClickRange, batch_rows: int) -> Iterator[pa.RecordBatch]:
    where = store.url(src.path)
    needed = [p.name for p in src.plans if p.source is not None]
    for g in groups:
        row_start = int(starts[g])
        try:
            for batch in pfile.iter_batches(batch_size=batch_rows, row_groups=[g], columns=needed):
                out = normalise_batch(batch, src, row_start, where)
                row_start += batch.num_rows
                mask = _range_mask(out, rng)
                if src.ingest_cutoff is not None:
                    cutoff = pa.scalar(src.ingest_cutoff, type=TS)
                    in_time = pc.fill_null(pc.less(out.column(3), cutoff), False)
                    mask = in_time if mask is None else pc.and_(mask, in_time)
                if mask is not None:
                    out = out.filter(mask)
                if out.num_rows:
                    yield out
        except BadInputError:
            raise
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
            raise read_error(store, src.path, e, "corrupt Parquet data") from e


def click_reader(store: Store, sources: list[SourceFile], rng: ClickRange,
                 failure: ReadFailure) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(CLICK_SCHEMA, click_batches(store, sources, rng, failure))


def read_full_rows(store: Store, src: SourceFile, rows: pa.Int64Array) -> pa.Table:
    """Every column of the given rows of one file (for quarantine output)."""
    with open_parquet(store, src.path) as pfile:
        table = pfile.read()
    return table.take(rows)

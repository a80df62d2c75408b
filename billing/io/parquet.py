"""Opening Parquet files and normalising their columns: what raw and stream inputs share.

A file that cannot be opened or decoded stops the run with one line naming it: storage faults
(S3 errors) as :class:`StorageError`, bad bytes as :class:`BadInputError`. Timestamps of any unit
and zone become ``timestamp[us, UTC]``, floored, with the nanoseconds below kept beside them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing.errors import BadInputError, StorageError
from billing.io.storage import Store
from billing.schemas import TS, ColumnPlan


def _is_storage_fault(e: BaseException) -> bool:
    """pyarrow reports S3 trouble as OSError with the AWS error in the text; bad bytes are ArrowInvalid."""
    text = str(e)
    return isinstance(e, OSError) and not isinstance(e, pa.ArrowInvalid) and (
        "AWS Error" in text or "curlCode" in text or "When reading" in text or "When getting" in text)


def read_error(store: Store, path: str, e: BaseException, what: str) -> BadInputError:
    if _is_storage_fault(e):
        return StorageError(f"cannot read {store.url(path)}: {first_line(e)}")
    return BadInputError(f"{store.url(path)}: {what} ({first_line(e)})")


def open_parquet(store: Store, path: str) -> pq.ParquetFile:
    """A Parquet reader over ``path``; close it (``with``) to release the handle."""
    try:
        return pq.ParquetFile(store.open_input(path))
    except StorageError:
        raise
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise read_error(store, path, e, "not a readable Parquet file") from e


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def column_stats(pfile: pq.ParquetFile, name: str) -> list[pq.Statistics | None]:
    """Per row group, the written statistics of top-level column ``name`` (None when absent or unwritten)."""
    md = pfile.metadata
    leaf = next((j for j in range(md.num_columns) if md.schema.column(j).path == name), -1)
    return [md.row_group(g).column(leaf).statistics if leaf >= 0 else None for g in range(md.num_row_groups)]


def normalise_column(arr: pa.ChunkedArray | pa.Array, plan: ColumnPlan, where: str) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):  # every value missing: a column of the target type, all null
        return pa.nulls(len(arr), plan.target)
    if pa.types.is_timestamp(plan.target):
        return normalise_time(arr, plan.name, where)[0]
    try:
        return pc.cast(arr, plan.target)
    except pa.ArrowInvalid as e:
        raise BadInputError(f"{where}: column {plan.name!r} does not fit {plan.target}: {first_line(e)}") from e


def normalise_time(arr: pa.Array, name: str, where: str) -> tuple[pa.Array, pa.Array]:
    """A timestamp column of any unit and zone as ``timestamp[us, UTC]`` floored, and the ns below each µs.

    Floored, never rounded or truncated towards zero: a minute or a day never changes (an instant one
    ns before midnight stays before it, also before 1970). The nanoseconds (0..999, 0 where null) keep
    the full precision for what compares instants: the winner's ingest_time, the skew and lateness checks.
    A coarse value that would wrap around as µs (past the year 294,000) stops the run: column ``name`` of
    ``where``, one line.
    """
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), TS), pa.array(np.zeros(len(arr), dtype=np.int16))
    t = arr.type
    if t.tz is None:  # naive means UTC: relabel, values unchanged
        arr = arr.view(pa.timestamp(t.unit, tz="UTC"))
    if t.unit != "ns":  # s, ms and us widen to µs exactly, or not at all (safe: no wrap-around)
        try:
            return pc.cast(arr, TS, safe=True), pa.array(np.zeros(len(arr), dtype=np.int16))
        except pa.ArrowInvalid as e:
            raise BadInputError(f"{where}: column {name!r} does not fit timestamp[us]: {first_line(e)}") from e
    ns = pc.fill_null(arr.view(pa.int64()), 0).to_numpy()
    us, sub = np.divmod(ns, 1000)  # numpy floors
    valid = None if arr.null_count == 0 else pc.is_valid(arr)
    floored = pa.array(us, pa.int64()).view(TS)
    if valid is not None:
        floored = pc.if_else(valid, floored, pa.nulls(len(arr), TS))
    return floored, pa.array(sub.astype(np.int16))


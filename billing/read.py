"""Read stage: find the files of a day's horizon, check their structure, stream normalised rows.

Nothing here interprets values; that is ``sql/validate.sql``'s job. What this stage
guarantees is that every row handed on has the normalised types of
:class:`billing.schemas.RawClick` plus ``file_id`` (index of its file in the sorted
list of horizon files, so comparing ids compares paths) and ``row_no`` (its position
in that file), or that the run stopped with a one-line :class:`BadInputError`.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing.errors import BadInputError, StorageError
from billing.schemas import TS, ColumnPlan, RawClick, StreamWindow, check_structure
from billing.storage import FileInfo, Store

log = logging.getLogger(__name__)

_HOUR_DIR = re.compile(r"hour=([0-9]{1,2})")

#: Columns of the normalised click stream handed to DuckDB, in order.
CLICK_COLUMNS = ("click_id", "ad_id", "event_time", "ingest_time", "cost_micros", "file_id", "row_no",
                 "event_sub_ns", "ingest_sub_ns")
"""Times are floored to µs (``event_time``, ``ingest_time``); ``*_sub_ns`` hold the nanoseconds below (0..999)."""


@dataclass(frozen=True)
class Horizon:
    """Which arrival partitions day D reads (rule 1 of the README)."""

    date: dt.date
    lateness: dt.timedelta

    @property
    def next_day(self) -> dt.date:
        return self.date + dt.timedelta(days=1)

    @property
    def end(self) -> dt.datetime:
        """Arrival instant at which the horizon closes: D+1 00:00 + lateness."""
        return dt.datetime.combine(self.next_day, dt.time(), tzinfo=dt.UTC) + self.lateness

    def reads_hour_of_next_day(self, hour: int) -> bool:
        # An hour partition is read when it starts before the horizon closes.
        return hour * 3600 < self.lateness.total_seconds()


def is_data_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return not (name.startswith("_") or name.startswith("."))


def _data_files(files: list[FileInfo]) -> list[FileInfo]:
    # Hidden and marker files anywhere in the path (_SUCCESS, .crc, _tmp/ folders) are not data.
    return [f for f in files if all(is_data_file(part) for part in f.path.split("/"))]


@dataclass(frozen=True)
class PartitionFile:
    info: FileInfo
    ingest_cutoff: dt.datetime | None = None
    """Set for ``dt=D+1`` files of a ``dt=``-only layout: rows count when ingest_time < cutoff."""


def _hour_of(folder: str) -> int | None:
    """The hour of an ``hour=H`` / ``hour=HH`` partition folder (0..23), else None."""
    m = _HOUR_DIR.fullmatch(folder)
    return int(m.group(1)) if m is not None and int(m.group(1)) < 24 else None


def _partition(store: Store, dt_dir: str) -> tuple[list[tuple[int, FileInfo]], list[FileInfo]]:
    """The data files of one ``dt=`` folder: ``(hour, file)`` of its ``hour=`` folders, and its loose files.

    Anything else in it is unusable input, named: a folder that is not ``hour=0..23`` (``hour=24``,
    ``hour=xx``, ``dt=…``, any other name), or loose files beside ``hour=`` folders (which layout is
    it?). Names starting with ``_`` or ``.`` are not data and are skipped. Decided on file paths,
    so a local lake and the same lake on S3 give the same answer.
    """
    hourly: list[tuple[int, FileInfo]] = []
    loose: list[FileInfo] = []
    for f in _data_files(store.list_files(dt_dir)):
        rest = f.path[len(dt_dir) + 1:]
        if "/" not in rest:
            loose.append(f)
            continue
        folder = rest.split("/", 1)[0]
        hour = _hour_of(folder)
        if hour is None:
            raise BadInputError(f"{store.url(f'{dt_dir}/{folder}')}: not a partition folder "
                                f"(expected hour=0..23 inside {dt_dir})")
        hourly.append((hour, f))
    if hourly and loose:
        raise BadInputError(f"{store.url(loose[0].path)}: a file directly in {dt_dir} beside its hour= folders "
                            f"(one layout per day: dt=D/hour=HH/*.parquet or dt=D/*.parquet)")
    return hourly, loose


def discover_raw(store: Store, horizon: Horizon) -> list[PartitionFile]:
    """The raw files of the horizon, sorted by path. Nothing outside it is listed as input."""
    chosen: list[PartitionFile] = []
    day_dir = f"dt={horizon.date.isoformat()}"
    next_dir = f"dt={horizon.next_day.isoformat()}"
    hourly, loose = _partition(store, day_dir)
    chosen.extend(PartitionFile(f) for _, f in hourly)
    chosen.extend(PartitionFile(f) for f in loose)
    hourly, loose = _partition(store, next_dir)
    chosen.extend(PartitionFile(f) for hour, f in hourly if horizon.reads_hour_of_next_day(hour))
    chosen.extend(PartitionFile(f, ingest_cutoff=horizon.end) for f in loose)
    return sorted(chosen, key=lambda p: p.info.path)


def discover_stream(store: Store, date: dt.date) -> list[FileInfo]:
    return _data_files(store.list_files(f"dt={date.isoformat()}"))


@dataclass
class SourceFile:
    """One input file after its footer was read and its structure checked."""

    file_id: int
    info: FileInfo
    num_rows: int
    plans: list[ColumnPlan]
    columns: list[str]
    ingest_cutoff: dt.datetime | None = None
    row_group_click_ranges: list[tuple[int | None, int | None, int, bool]] = field(default_factory=list)
    """Per row group: (min click_id, max click_id, rows, has_nulls); None when unknown."""
    row_group_ingest_ms: list[tuple[int, int] | None] = field(default_factory=list)
    """Per row group: (min, max) ingest_time in ms since 1970 from its statistics; None when unknown."""

    @property
    def path(self) -> str:
        return self.info.path


def _is_storage_fault(e: BaseException) -> bool:
    """pyarrow reports S3 trouble as OSError with the AWS error in the text; bad bytes are ArrowInvalid."""
    text = str(e)
    return isinstance(e, OSError) and not isinstance(e, pa.ArrowInvalid) and (
        "AWS Error" in text or "curlCode" in text or "When reading" in text or "When getting" in text)


def _read_error(store: Store, path: str, e: BaseException, what: str) -> BadInputError:
    if _is_storage_fault(e):
        return StorageError(f"cannot read {store.url(path)}: {_first_line(e)}")
    return BadInputError(f"{store.url(path)}: {what} ({_first_line(e)})")


def _open_parquet(store: Store, path: str) -> pq.ParquetFile:
    """A Parquet reader over ``path``; close it (``with``) to release the handle."""
    try:
        return pq.ParquetFile(store.open_input(path))
    except StorageError:
        raise
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
        raise _read_error(store, path, e, "not a readable Parquet file") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def inspect_raw(store: Store, files: list[PartitionFile]) -> list[SourceFile]:
    out = []
    checked: dict[pa.Schema, list[ColumnPlan]] = {}  # files of one writer share a schema: check it once
    for i, pf in enumerate(files):
        with _open_parquet(store, pf.info.path) as pfile:
            schema = pfile.schema_arrow
            if schema not in checked:
                checked[schema] = check_structure(RawClick, schema, store.url(pf.info.path))
            plans = checked[schema]
            ranges = _click_ranges(pfile)
            ingest = _ingest_ranges(pfile)
        out.append(SourceFile(i, pf.info, pfile.metadata.num_rows, plans, schema.names, pf.ingest_cutoff, ranges,
                              ingest))
    return out


def column_stats(pfile: pq.ParquetFile, name: str) -> list[pq.Statistics | None]:
    """Per row group, the written statistics of top-level column ``name`` (None when absent or unwritten)."""
    md = pfile.metadata
    leaf = next((j for j in range(md.num_columns) if md.schema.column(j).path == name), -1)
    return [md.row_group(g).column(leaf).statistics if leaf >= 0 else None for g in range(md.num_row_groups)]


def _click_ranges(pfile: pq.ParquetFile) -> list[tuple[int | None, int | None, int, bool]]:
    md = pfile.metadata
    idx = pfile.schema_arrow.get_field_index("click_id")
    integer = idx >= 0 and pa.types.is_integer(pfile.schema_arrow.field(idx).type)
    ranges = []
    for g, stats in enumerate(column_stats(pfile, "click_id")):
        rows = md.row_group(g).num_rows
        if integer and stats is not None and stats.has_min_max:
            ranges.append((int(stats.min), int(stats.max), rows, bool(stats.null_count)))
        else:
            ranges.append((None, None, rows, True))
    return ranges


_MS_PER_UNIT = {"s": 1000, "ms": 1, "us": 1 / 1000, "ns": 1 / 1_000_000}


def _ingest_ranges(pfile: pq.ParquetFile) -> list[tuple[int, int] | None]:
    """Per row group, the ingest_time statistics in ms; only for INT64 timestamps (naive ones read as UTC)."""
    stats_by_group = column_stats(pfile, "ingest_time")
    idx = pfile.schema_arrow.get_field_index("ingest_time")
    if idx < 0 or not pa.types.is_timestamp(pfile.schema_arrow.field(idx).type):
        return [None] * len(stats_by_group)
    per_ms = _MS_PER_UNIT[pfile.schema_arrow.field(idx).type.unit]
    return [(int(st.min_raw * per_ms), int(st.max_raw * per_ms))
            if st is not None and st.has_min_max and st.physical_type == "INT64" else None
            for st in stats_by_group]


@dataclass(frozen=True)
class ClickRange:
    """A half-open slice of click_id space; ``lo=None`` also holds null and non-positive ids."""

    lo: int | None = None
    hi: int | None = None

    def overlaps(self, mn: int | None, mx: int | None, has_nulls: bool) -> bool:
        if mn is None or mx is None:
            return True
        if has_nulls and self.lo is None:
            return True
        return (self.lo is None or mx >= self.lo) and (self.hi is None or mn < self.hi)


class ReadFailure:
    """Carries an input error out of a generator that DuckDB consumes."""

    def __init__(self) -> None:
        self.error: BaseException | None = None


def _normalise_column(arr: pa.ChunkedArray | pa.Array, plan: ColumnPlan, where: str) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_null(arr.type):  # every value missing: a column of the target type, all null
        return pa.nulls(len(arr), plan.target)
    if pa.types.is_timestamp(plan.target):
        return normalise_time(arr)[0]
    try:
        return pc.cast(arr, plan.target)
    except pa.ArrowInvalid as e:
        raise BadInputError(f"{where}: column {plan.name!r} does not fit {plan.target}: {_first_line(e)}") from e


def normalise_time(arr: pa.Array) -> tuple[pa.Array, pa.Array]:
    """A timestamp column of any unit and zone as ``timestamp[us, UTC]`` floored, and the ns below each µs.

    Floored, never rounded or truncated towards zero: a minute or a day never changes (an instant one
    ns before midnight stays before it, also before 1970). The nanoseconds (0..999, 0 where null) keep
    the full precision for what compares instants: the winner's ingest_time, the skew and lateness checks.
    """
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), TS), pa.array(np.zeros(len(arr), dtype=np.int16))
    t = arr.type
    if t.tz is None:  # naive means UTC: relabel, values unchanged
        arr = arr.view(pa.timestamp(t.unit, tz="UTC"))
    if t.unit != "ns":  # s, ms and us widen to µs exactly
        return pc.cast(arr, TS), pa.array(np.zeros(len(arr), dtype=np.int16))
    ns = pc.fill_null(arr.view(pa.int64()), 0).to_numpy()
    us, sub = np.divmod(ns, 1000)  # numpy floors
    valid = None if arr.null_count == 0 else pc.is_valid(arr)
    floored = pa.array(us, pa.int64()).view(TS)
    if valid is not None:
        floored = pc.if_else(valid, floored, pa.nulls(len(arr), TS))
    return floored, pa.array(sub.astype(np.int16))


def normalise_batch(batch: pa.RecordBatch, src: SourceFile, row_start: int, where: str) -> pa.RecordBatch:
    n = batch.num_rows
    arrays = []
    subs = {"event_time": pa.array(np.zeros(n, dtype=np.int16)), "ingest_time": pa.array(np.zeros(n, dtype=np.int16))}
    for plan in src.plans:
        if plan.source is None:
            arrays.append(pa.nulls(n, plan.target))
        elif pa.types.is_timestamp(plan.target):
            col = batch.column(plan.name)
            floored, subs[plan.name] = normalise_time(col.combine_chunks() if isinstance(col, pa.ChunkedArray)
                                                      else col)
            arrays.append(floored)
        else:
            arrays.append(_normalise_column(batch.column(plan.name), plan, where))
    arrays.append(pa.array(np.full(n, src.file_id, dtype=np.int32)))
    arrays.append(pa.array(np.arange(row_start, row_start + n, dtype=np.int64)))
    arrays += [subs["event_time"], subs["ingest_time"]]
    return pa.RecordBatch.from_arrays(arrays, names=list(CLICK_COLUMNS))


CLICK_SCHEMA = pa.schema([
    ("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", TS), ("ingest_time", TS),
    ("cost_micros", pa.int64()), ("file_id", pa.int32()), ("row_no", pa.int64()),
    ("event_sub_ns", pa.int16()), ("ingest_sub_ns", pa.int16()),
])


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
            with _open_parquet(store, src.path) as pfile:
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
            raise _read_error(store, src.path, e, "corrupt Parquet data") from e


def click_reader(store: Store, sources: list[SourceFile], rng: ClickRange,
                 failure: ReadFailure) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(CLICK_SCHEMA, click_batches(store, sources, rng, failure))


def rows_beyond_horizon(store: Store, sources: list[SourceFile]) -> int:
    """Rows of ``dt=D+1`` files (dt-only layout) that arrived after the horizon: not read."""
    total = 0
    for src in sources:
        if src.ingest_cutoff is None:
            continue
        if "ingest_time" not in src.columns:
            total += src.num_rows
            continue
        with _open_parquet(store, src.path) as pfile:
            col = pfile.read(columns=["ingest_time"]).column(0)
        plan = next(p for p in src.plans if p.name == "ingest_time")
        norm = _normalise_column(col, plan, store.url(src.path))
        total += src.num_rows - pc.sum(pc.fill_null(pc.less(norm, pa.scalar(src.ingest_cutoff, type=TS)),
                                                      False).cast(pa.int64())).as_py()
    return total


def read_full_rows(store: Store, src: SourceFile, rows: list[int]) -> pa.Table:
    """Every column of the given rows of one file (for quarantine output)."""
    with _open_parquet(store, src.path) as pfile:
        table = pfile.read()
    return table.take(pa.array(rows, pa.int64()))


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
        with _open_parquet(store, f.path) as pfile:
            check_structure(StreamWindow, pfile.schema_arrow, store.url(f.path))
            out.append(StreamSource(i, f, list(pfile.schema_arrow.names)))
    return out


#: Columns of the normalised stream rows handed to DuckDB, in order. ``window_ns`` is the part of
#: window_start below the microsecond it is floored to (0..999, non-zero only for ns sources), which the
#: normalised ``timestamp[us]`` cannot hold but alignment is judged on (sql/stream_validate.sql).
STREAM_SCHEMA = pa.schema([
    ("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()), ("spend_micros", pa.int64()),
    ("window_ns", pa.int64()), ("file_id", pa.int32()), ("row_no", pa.int64()),
])


def stream_rows(store: Store, src: StreamSource, *, every_column: bool = False) -> tuple[pa.Table, pa.Table]:
    """One stream file: its rows normalised to :data:`STREAM_SCHEMA`, and the columns read as written
    (the stream columns, or with ``every_column`` every column of the file)."""
    where = store.url(src.path)
    with _open_parquet(store, src.path) as pfile:
        plans = check_structure(StreamWindow, pfile.schema_arrow, where)  # checked again: it is read now
        try:
            table = pfile.read(columns=None if every_column else [p.name for p in plans if p.source is not None])
        except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as e:
            raise _read_error(store, src.path, e, "corrupt Parquet data") from e
    n = table.num_rows
    cols = {}
    for p in plans:
        if p.source is not None and pa.types.is_timestamp(p.source) and p.source.unit in ("s", "ms"):
            _check_fits_us(table.column(p.name), p.name, where)
        cols[p.name] = (pa.nulls(n, p.target) if p.source is None
                        else _normalise_column(table.column(p.name), p, where))
    window = table.column("window_start")
    cols["window_ns"] = normalise_time(window.combine_chunks())[1].cast(pa.int64())
    cols["file_id"] = pa.array(np.full(n, src.file_id, dtype=np.int32))
    cols["row_no"] = pa.array(np.arange(n, dtype=np.int64))
    return pa.table(cols, schema=STREAM_SCHEMA), table


def _check_fits_us(col: pa.ChunkedArray, name: str, where: str) -> None:
    """A coarse timestamp that would wrap around as µs (past the year 294,000) stops the run."""
    try:
        pc.cast(col, pa.timestamp("us", tz=col.type.tz), safe=True)
    except pa.ArrowInvalid as e:
        raise BadInputError(f"{where}: column {name!r} does not fit timestamp[us]: {_first_line(e)}") from e


def read_stream(store: Store, sources: list[StreamSource]) -> pa.Table:
    """All stream-side rows, normalised to :data:`STREAM_SCHEMA`; values are judged in DuckDB."""
    tables = [stream_rows(store, src)[0] for src in sources]
    return pa.concat_tables(tables) if tables else STREAM_SCHEMA.empty_table()

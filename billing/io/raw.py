"""Raw click files of a day's horizon: which files (rule 1), and their structure and statistics.

Nothing here interprets values; that is ``sql/macros/validate.sql``'s job. Each horizon file is opened
once: its schema is checked against :class:`billing.schemas.RawClick` and its row groups'
click_id and ingest_time statistics are kept for planning slices and pruning reads. The rows
themselves are read by :mod:`billing.io.raw_rows`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing.errors import BadInputError
from billing.io.parquet import column_stats, normalise_column, open_parquet
from billing.io.storage import FileInfo, Store
from billing.schemas import TS, ColumnPlan, RawClick, check_structure

_HOUR_DIR = re.compile(r"hour=([0-9]{1,2})")


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


def data_files(files: list[FileInfo]) -> list[FileInfo]:
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
    for f in data_files(store.list_files(dt_dir)):
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


def inspect_raw(store: Store, files: list[PartitionFile]) -> list[SourceFile]:
    out = []
    checked: dict[pa.Schema, list[ColumnPlan]] = {}  # files of one writer share a schema: check it once
    for i, pf in enumerate(files):
        with open_parquet(store, pf.info.path) as pfile:
            schema = pfile.schema_arrow
            if schema not in checked:
                checked[schema] = check_structure(RawClick, schema, store.url(pf.info.path))
            plans = checked[schema]
            ranges = _click_ranges(pfile)
            ingest = _ingest_ranges(pfile)
        out.append(SourceFile(i, pf.info, pfile.metadata.num_rows, plans, schema.names, pf.ingest_cutoff, ranges,
                              ingest))
    return out


def _click_ranges(pfile: pq.ParquetFile) -> list[tuple[int | None, int | None, int, bool]]:
    md = pfile.metadata
    idx = pfile.schema_arrow.get_field_index("click_id")
    integer = idx >= 0 and pa.types.is_integer(pfile.schema_arrow.field(idx).type)
    ranges: list[tuple[int | None, int | None, int, bool]] = []
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


def rows_beyond_horizon(store: Store, sources: list[SourceFile]) -> int:
    """Rows of ``dt=D+1`` files (dt-only layout) that arrived after the horizon: not read."""
    total = 0
    for src in sources:
        if src.ingest_cutoff is None:
            continue
        if "ingest_time" not in src.columns:
            total += src.num_rows
            continue
        with open_parquet(store, src.path) as pfile:
            col = pfile.read(columns=["ingest_time"]).column(0)
        plan = next(p for p in src.plans if p.name == "ingest_time")
        norm = normalise_column(col, plan, store.url(src.path))
        before = pc.sum(pc.fill_null(pc.less(norm, pa.scalar(src.ingest_cutoff, type=TS)), False).cast(pa.int64()))
        total += src.num_rows - (before.as_py() or 0)  # the sum of no rows is null
    return total

"""Landing a slice: its raw rows as DuckDB table ``clicks``, each with its verdict (``sql/macros/validate.sql``).

Local files are read by DuckDB's own Parquet reader when their types allow (through symbolic
links, so any file name is read literally); anything else goes through the Arrow path
(:mod:`billing.io.raw_rows`). When the slices would decode the lake many times over, rows are
set aside by slice first (:mod:`billing.slice.setaside`): each slice then reads only the row groups
that arrived around its range, plus its own set-aside rows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

import duckdb
import pyarrow as pa

from billing import sql
from billing.config import SNOWFLAKE_TIME_SHIFT, ReconcileConfig
from billing.io.raw import ClickRange, SourceFile
from billing.io.raw_rows import ReadFailure, click_reader
from billing.io.storage import LocalStore, Store

log = logging.getLogger(__name__)

def _skew_us(cfg: ReconcileConfig) -> int | None:
    return None if cfg.max_id_skew is None else int(cfg.max_id_skew.total_seconds() * 1_000_000)


#: A row arriving further than this from the time in its click_id is a straggler (is_straggler in
#: sql/macros/validate.sql). Clicks normally arrive within seconds; late copies and replays take minutes to hours.
STRAGGLER_LEAD_US = 60_000_000


@dataclass(frozen=True)
class Direct:
    """What a slice reads when rows were set aside for it (billing.slice.setaside)."""

    files: list[SourceFile]
    """The raw files it reads directly (the other files' rows in its range are all set aside)."""
    core: bool
    """Whether it reads them without their stragglers (set aside), by arrival-time bounds."""
    aside: list[Path]
    """Its set-aside files: local Parquet files of landed rows."""


def land_clicks(con: duckdb.DuckDBPyConnection, store: Store, sources: list[SourceFile], rng: ClickRange,
                cfg: ReconcileConfig, direct: Direct | None = None) -> None:
    """Materialise one slice's rows as table ``clicks`` with a ``reason`` column (NULL = valid).

    Local files are read by DuckDB itself when their types allow; anything else, and any file
    DuckDB's reader trips on, goes through the Arrow path, which names the file at fault.
    With ``direct``, only its files are read from the lake (in core mode only where arrival times
    can hold the range), and the rest of the range's rows come from its set-aside files.
    """
    files, read_rng = sources, rng
    if direct is not None:
        # no direct file: an empty, well-typed table from the first file (no click_id is in [1, 1))
        files, read_rng = (direct.files, rng) if direct.files else (sources[:1], ClickRange(1, 1))
    core = direct is not None and direct.core
    if isinstance(store, LocalStore) and native_readable(files):
        try:
            land_native(con, store, files, read_rng, cfg, part="core" if core else "all")
            _add_aside(con, rng, direct)
            return
        except duckdb.Error as e:
            if core:  # the stragglers were set aside by this very reader: no other path reads the same rows
                raise
            log.warning("DuckDB's Parquet reader failed (%s); reading through Arrow instead",
                        str(e).strip().splitlines()[0][:200])
    failure = ReadFailure()
    con.register("click_source", click_reader(store, files, read_rng, failure))
    try:
        sql.run(con, "read", epoch_ms=cfg.snowflake_epoch_ms, max_skew_us=_skew_us(cfg))
    except Exception:
        if failure.error is not None:
            raise failure.error from None
        raise
    finally:
        con.unregister("click_source")
    _add_aside(con, rng, direct)


def _add_aside(con: duckdb.DuckDBPyConnection, rng: ClickRange, direct: Direct | None) -> None:
    if direct is None or not direct.aside:
        return
    with literal_files([str(p) for p in direct.aside]) as paths:
        sql.run(con, "read_stragglers", text=sql.render("read_stragglers", range=_range_choice(rng)),
                stragglers=paths, lo=rng.lo, hi=rng.hi)


def native_readable(sources: list[SourceFile]) -> bool:
    """Signed integers and timestamps only: what DuckDB's reader converts exactly as the Arrow path does."""
    for src in sources:
        for plan in src.plans:
            if plan.source is None:
                continue
            t = plan.source
            if not (pa.types.is_timestamp(t) or (pa.types.is_integer(t) and pa.types.is_signed_integer(t))):
                return False
    return True


def _range_choice(rng: ClickRange) -> str:
    return ("all" if rng.lo is None and rng.hi is None else "from" if rng.hi is None
            else "below" if rng.lo is None else "between")


#: The largest click_id; its Snowflake time bounds the arrival of a range open above.
MAX_CLICK_ID = (1 << 63) - 1


def land_native(con: duckdb.DuckDBPyConnection, store: LocalStore, sources: list[SourceFile], rng: ClickRange,
                cfg: ReconcileConfig, part: str = "all") -> None:
    """Table ``clicks`` from DuckDB's Parquet reader: the range's rows of ``part`` (all, core, stragglers)."""
    chosen = [s for s in sources if any(rng.overlaps(mn, mx, nulls) for mn, mx, _, nulls in s.row_group_click_ranges)]
    if not chosen:
        chosen = sources[:1]  # an empty slice still needs a well-typed table; the range filter empties it
    has = {name: any(name in s.columns for s in chosen) for name in ("ingest_time", "cost_micros")}
    # DuckDB's file_index is the position in the list it is given, not the file_id
    cut = [i for i, s in enumerate(chosen) if s.ingest_cutoff is not None]
    event_unit, ingest_unit = (_time_unit(chosen, name) for name in ("event_time", "ingest_time"))
    text = sql.render("read_native", event_us=event_unit, event_sub=event_unit,
                      ingest_us=ingest_unit if has["ingest_time"] else "absent",
                      ingest_sub=ingest_unit if has["ingest_time"] else "absent",
                      cost="present" if has["cost_micros"] else "absent", range=_range_choice(rng),
                      cutoff="some" if cut else "none", part=part, prune="core" if part == "core" else "all")
    cutoff = next((s.ingest_cutoff for s in chosen if s.ingest_cutoff is not None), None)
    # A core row's arrival is within the lead of its click_id's time: bounds on ingest_time that
    # let DuckDB skip row groups by their statistics (implied by the filter, so they drop no row;
    # a µs wider each side, as DuckDB's cast of nanoseconds to µs rounds).
    first_ms = (max(rng.lo or 1, 1) >> SNOWFLAKE_TIME_SHIFT) + cfg.snowflake_epoch_ms
    last_ms = (((rng.hi - 1) if rng.hi is not None else MAX_CLICK_ID) >> SNOWFLAKE_TIME_SHIFT) + cfg.snowflake_epoch_ms
    params = {"file_ids": [s.file_id for s in chosen],
              "epoch_ms": cfg.snowflake_epoch_ms, "max_skew_us": _skew_us(cfg), "lo": rng.lo, "hi": rng.hi,
              "cutoff_files": cut, "cutoff_us": None if cutoff is None else epoch_us(cutoff),
              "lead_us": STRAGGLER_LEAD_US,
              "arrival_lo_us": first_ms * 1000 - STRAGGLER_LEAD_US - 1,
              "arrival_hi_us": last_ms * 1000 + STRAGGLER_LEAD_US + 1}
    with literal_files([store.url(s.path) for s in chosen]) as files:
        sql.run(con, "read_native", text=text, files=files, **params)


def _time_unit(sources: list[SourceFile], name: str) -> str:
    """"ns" when a file holds column ``name`` in nanoseconds (read floored, with the ns kept), else "us"."""
    return "ns" if any(p.name == name and p.source is not None and pa.types.is_timestamp(p.source)
                       and p.source.unit == "ns" for s in sources for p in s.plans) else "us"


def epoch_us(t: dt.datetime) -> int:
    """``t`` (zoned) as whole µs since 1970, exactly (no float on the way)."""
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


#: Characters DuckDB's file readers treat as glob syntax or as a path separator in a name they are given.
_NOT_LITERAL = re.compile(r"[*?\[\]{}\\]")


def literal_path(path: str) -> bool:
    """Whether DuckDB reads ``path`` as the one file it names (no glob character, no backslash)."""
    return _NOT_LITERAL.search(path) is None


@contextlib.contextmanager
def literal_files(paths: list[str]) -> Iterator[list[str]]:
    """Names under which DuckDB reads exactly ``paths``, whatever characters they hold.

    DuckDB expands glob syntax in every file name it is given (``p[1].parquet`` reads ``p1.parquet``,
    ``q*.parquet`` every ``q…``; a backslash is a separator to it), and has no escape that covers them
    all. So it is handed symbolic links ``f<i>.parquet`` to the real files, in a private folder removed
    afterwards (the statement has read them by then). Position ``i`` in the list is all DuckDB reports
    (``file_index``); paths, and with them tie-breaks, stay the real ones.
    """
    with tempfile.TemporaryDirectory(prefix="billing-files-") as folder:
        if not literal_path(folder):
            raise duckdb.IOException(f"temporary folder {folder!r} holds glob characters")  # → the Arrow path
        links = []
        for i, target in enumerate(paths):
            link = os.path.join(folder, f"f{i}.parquet")
            os.symlink(target, link)
            links.append(link)
        yield links


def stragglers_apply(store: Store, sources: list[SourceFile]) -> TypeGuard[LocalStore]:
    """Whether a day can set its stragglers aside: local files DuckDB reads, each with an ingest_time."""
    return (isinstance(store, LocalStore) and bool(sources) and native_readable(sources)
            and all("ingest_time" in s.columns for s in sources))

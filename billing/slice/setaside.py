"""Setting rows aside by slice, so that the slices between them decode each raw row about once.

A slice reads every row group whose statistics overlap its range. Late copies stretch row groups'
click_id ranges, and files written out of click_id order (many producers) or in row groups larger
than a slice span many slices: read directly, the day would be decoded many times over. So before
the slices, one pass (split into parts by file, each part anywhere) lands:

- from files the slices read **directly**, only their stragglers (``core`` mode: local files that
  DuckDB reads and that have ``ingest_time``; the slices read the rest of them with arrival-time
  bounds that DuckDB prunes row groups by), or nothing (``all`` mode: the slices read whole ranges);
- every row of the other files, the **shuffled** ones: those whose row groups the most slices would
  decode, as few as keep the direct reads within :data:`DECODE_BUDGET` times the day's rows.

It writes them partitioned by slice (``part-PPPP/k=K/*.parquet``); slice K reads its folders only.
Which files are direct, and the parts, follow from the plan's Parquet statistics alone, so every
process that holds the plan computes the same layout.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from billing import engine, sql
from billing.config import SNOWFLAKE_TIME_SHIFT, ReconcileConfig
from billing.io.raw import ClickRange, SourceFile
from billing.io.storage import Store
from billing.slice import land
from billing.slice import plan as slice_plan

log = logging.getLogger(__name__)

#: The slices' direct reads may decode this many times the day's rows between them: the files whose row
#: groups would be decoded most often are shuffled until the rest fit (their stragglers, read twice, on top).
DECODE_BUDGET = 1.1
#: Set rows aside when the slices would otherwise decode more than this many times the day's rows:
#: for a day spread over machines (each decode is bytes fetched from object storage) …
DISTRIBUTED_FROM_AMPLIFICATION = 1.2


@dataclasses.dataclass(frozen=True)
class SetAside:
    """How a day's rows are split between direct reads and the set-aside pass."""

    mode: str
    """"core": direct files are read without their stragglers, which are set aside; "all": read whole."""
    direct: frozenset[int]
    """file_ids the slices read directly."""
    parts: list[list[int]]
    """file_ids each part of the set-aside pass lands (direct files too in core mode: their stragglers)."""

    def direct_sources(self, sources: list[SourceFile]) -> list[SourceFile]:
        return [s for s in sources if s.file_id in self.direct]


def _arrival_bounds_us(rng: ClickRange, epoch_ms: int) -> tuple[int, int]:
    """The arrival times (µs) a core row of ``rng`` can have: land.land_native's pruning bounds."""
    first_ms = (max(rng.lo or 1, 1) >> SNOWFLAKE_TIME_SHIFT) + epoch_ms
    last_ms = (((rng.hi - 1) if rng.hi is not None else land.MAX_CLICK_ID) >> SNOWFLAKE_TIME_SHIFT) + epoch_ms
    return first_ms * 1000 - land.STRAGGLER_LEAD_US - 1, last_ms * 1000 + land.STRAGGLER_LEAD_US + 1


def file_decode(src: SourceFile, rng: ClickRange, mode: str, epoch_ms: int) -> int:
    """Rows of ``src`` a slice of ``rng`` decodes: those of the row groups its statistics cannot rule out.

    The click_id range always prunes; in core mode the arrival-time bounds prune too (DuckDB skips a
    row group whose ingest_time statistics lie outside them).
    """
    lo_us, hi_us = _arrival_bounds_us(rng, epoch_ms)
    ingest = src.row_group_ingest_ms or [None] * len(src.row_group_click_ranges)
    n = 0
    for (mn, mx, cnt, nulls), arrival in zip(src.row_group_click_ranges, ingest, strict=True):
        if not rng.overlaps(mn, mx, nulls):
            continue
        if mode == "core" and arrival is not None and (arrival[1] * 1000 + 999 < lo_us or arrival[0] * 1000 > hi_us):
            continue
        n += cnt
    return n


def arrival_bounds(ranges: list[ClickRange], epoch_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Each range's arrival bounds (µs, as :func:`_arrival_bounds_us`), as two ascending arrays."""
    both = [_arrival_bounds_us(r, epoch_ms) for r in ranges]
    return np.array([b[0] for b in both], dtype=np.int64), np.array([b[1] for b in both], dtype=np.int64)


def plan_set_aside(cfg: ReconcileConfig, store: Store, sources: list[SourceFile], ranges: list[ClickRange],
                   from_amplification: float) -> SetAside | None:
    """The layout, or None when the slices reading the lake directly decode at most ``from_amplification``×."""
    total = sum(s.num_rows for s in sources)
    if len(ranges) < 2 or not total:
        return None
    if slice_plan.rows_decoded(sources, ranges) <= from_amplification * total:
        return None
    mode = "core" if land.stragglers_apply(store, sources) else "all"
    arrival = arrival_bounds(ranges, cfg.snowflake_epoch_ms) if mode == "core" else None
    extra = {s.file_id: sum(cnt * n for (_, _, cnt, _), n in zip(
        s.row_group_click_ranges, slice_plan.slices_reading(s, ranges, arrival), strict=True)) - s.num_rows
        for s in sources}
    # Shuffle the files that waste the most decoding per row until the rest stays within budget.
    over = sum(extra.values()) - (DECODE_BUDGET - 1) * total
    shuffled = set()
    for s in sorted(sources, key=lambda s: (-extra[s.file_id] / max(s.num_rows, 1), s.file_id)):
        if over <= 0 or extra[s.file_id] <= 0:
            break
        shuffled.add(s.file_id)
        over -= extra[s.file_id]
    direct = frozenset(s.file_id for s in sources if s.file_id not in shuffled)
    landed = [s for s in sources if mode == "core" or s.file_id not in direct]
    budget = slice_plan.rows_per_slice(cfg.memory_limit)
    parts: list[list[int]] = []
    rows = 0
    for s in landed:
        weight = s.num_rows if s.file_id not in direct else s.num_rows // 10  # direct: only its stragglers stay
        if not parts or rows + weight > budget:
            parts.append([])
            rows = 0
        parts[-1].append(s.file_id)
        rows += weight
    return SetAside(mode, direct, parts)


def set_aside_part(cfg: ReconcileConfig, store: Store, sources: list[SourceFile], ranges: list[ClickRange],
                   aside: SetAside, p: int, folder: Path, temp_dir: str | None = None) -> dict[int, list[Path]]:
    """Land part ``p``'s rows and write them by slice under ``folder``; return each slice's files.

    ``folder`` is replaced, so a retried part writes the same files again.
    """
    by_id = {s.file_id: s for s in sources}
    mine = [by_id[i] for i in aside.parts[p]]
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=temp_dir)
    try:
        landed = False
        for group, part in (([s for s in mine if s.file_id in aside.direct], "stragglers"),
                            ([s for s in mine if s.file_id not in aside.direct], "all")):
            if not group:
                continue
            if landed:  # the stragglers (few) wait aside while the shuffled files are landed, then join them
                con.execute("ALTER TABLE clicks RENAME TO landed_before")
            if part == "stragglers":
                assert land.stragglers_apply(store, sources)
                land.land_native(con, store, group, ClickRange(), cfg, part="stragglers")
            else:
                land.land_clicks(con, store, group, ClickRange(), cfg)
            if landed:
                con.execute("INSERT INTO clicks FROM landed_before")
                con.execute("DROP TABLE landed_before")
            landed = True
        folder.parent.mkdir(parents=True, exist_ok=True)
        sql.run(con, "set_aside_out", bounds=[r.lo for r in ranges[1:]], folder=str(folder))
    finally:
        con.close()
    files: dict[int, list[Path]] = {}
    for sub in sorted(folder.glob("k=*")):
        files[int(sub.name[2:])] = sorted(sub.glob("*.parquet"))
    return files

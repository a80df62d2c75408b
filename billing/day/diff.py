"""The day's diff: authoritative windows against the stream side's, with each flagged key's cause and money.

In ``sql/day/``: ``batch_windows.sql`` puts the slices' windows together, ``stream_rows.sql`` judges every
sink row (``sql/macros/stream_validate.sql``), ``stream_windows.sql`` sums the valid rows of the day per key,
``drift.sql`` joins both sides, ``attribute.sql`` explains each flagged key, ``drift_money.sql`` prices it
(table ``drift_priced``), ``day_drift.sql`` shows it as drift.parquet's and totals.parquet's rows (views
``day_drift``, ``day_totals``). The day's keys stay in the caller's DuckDB session (spilled to disk past the
memory limit): the summary is computed there, and the outputs and the report read them from there, a batch
at a time (billing.day.outputs, billing.report), never the whole day in Python or Arrow memory.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from billing import engine, schemas, sql
from billing.config import ReconcileConfig
from billing.day.merge import ALL_TIME, Span, day_shared_windows, facts_relation
from billing.errors import BadInputError
from billing.io.inputs import Inputs
from billing.schemas import STREAM_REASONS, STREAM_SCHEMA
from billing.slice.partial import SlicePartial
from billing.slice.totals import day_bounds

DRIFT_COLUMNS = tuple(schemas.arrow_schema(schemas.Drift).names)


@dataclass
class DiffResult:
    """The day's diff; its keys are the views ``day_drift`` and ``day_totals`` of the session it ran in."""

    stream_counts: dict[str, Any]
    """The ``stream`` block of summary.json."""
    summary: dict[str, Any]
    """The ``drift`` block of summary.json."""
    stream_rows_in_day: int
    """Valid stream rows of day D, counted from its windows (for the stream ledger's balance check)."""
    stream_quarantine: pa.Table
    """The invalid stream rows: file_id, row_no, reason, in (source_file, source_row) order."""


def day_session(cfg: ReconcileConfig, work: Path) -> duckdb.DuckDBPyConnection:
    """The DuckDB session of a day's stages after its slices (the caller closes it)."""
    return engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=str(work))


def diff_day(cfg: ReconcileConfig, inputs: Inputs, merged: SlicePartial,
             con: duckdb.DuckDBPyConnection) -> DiffResult:
    """The merged slices against the stream side, in ``con`` (:func:`day_session`), which keeps the day's keys."""
    # The stream rows are read inside diff(), a piece at a time (load_stream): nothing here holds them.
    result = diff(con, cfg, facts_relation(con, merged), inputs.stream.pieces, has_cost=inputs.has_cost,
                  stream_has_spend=inputs.stream.has_spend, shared=day_shared_windows(merged))
    result.stream_counts.update(inputs.stream.summary_fields())
    return result


def diff(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig, facts: duckdb.DuckDBPyRelation | pa.Table,
         stream: Callable[[], Iterable[pa.Table]], *, has_cost: bool, stream_has_spend: bool,
         shared: list[Span] | None = None) -> DiffResult:
    """``stream`` gives the stream rows in pieces (called once, by :func:`load_stream`); ``shared``: the window_start
    intervals where several slices' facts can hold the same window (billing.day.merge.shared_windows); None
    sums every window."""
    start, end = day_bounds(cfg.date)
    shared = [ALL_TIME] if shared is None else shared
    con.register("batch_facts", facts)
    del facts
    try:
        load_stream(con, cfg, stream)
        sql.run(con, "shared_spans", shared_lo=[lo for lo, _ in shared], shared_hi=[hi for _, hi in shared])
        sql.run(con, "batch_windows")
        sql.run(con, "stream_rows")
        sql.run(con, "stream_windows", day_start=start, day_end=end)
        for r in sql.fetch_dicts(con, "stream_overflow"):
            raise BadInputError(f"stream rows of ad {r['ad_id']} in window {r['window_start']:%Y-%m-%d %H:%M} UTC "
                                f"sum to {r['clicks']} clicks and {r['spend_micros'] or 'no'} spend micros: "
                                f"more than int64 holds")
        (counts,) = sql.fetch_dicts(con, "stream_counts", day_start=start, day_end=end)
        reasons = {r["reason"]: int(r["n"]) for r in sql.fetch_dicts(con, "stream_invalid_by_reason")}
        stream_quarantine = sql.table(con, "stream_quarantine_rows")
        con.execute("DROP VIEW stream_rows")
        con.execute("DROP TABLE stream_source")
        rel = relative_tolerance(cfg.tolerance_rel)
        sql.run(con, "drift", tolerance_abs=cfg.tolerance_abs, rel_num=rel.numerator, rel_den=rel.denominator)
        # Each key-sized table is dropped once the next is built: a day has millions of keys, and
        # holding all of them at once set the run's peak memory. So did sorting the drift while the
        # tables it comes from were still held.
        con.execute("DROP TABLE stream_windows")
        con.execute("DROP VIEW batch_windows")
        con.execute("DROP TABLE shared_spans")
        con.unregister("batch_facts")
        pair_shifts(con)
        sql.run(con, "attribute")
        sql.run(con, "drift_money", stream_has_spend=stream_has_spend)
        con.execute("DROP VIEW attributed")
        con.unregister("shift_shares")
        con.execute("DROP TABLE drift")
        for r in sql.fetch_dicts(con, "money_overflow"):
            raise BadInputError(f"money at risk of ad {r['ad_id']} in window {r['window_start']:%Y-%m-%d %H:%M} UTC is "
                                f"{r['money_at_risk_micros']} micros: more than int64 holds")
        sql.run(con, "day_drift", text=sql.render("day_drift", totals_spend="present" if has_cost else "absent"))
        block = _drift_block(con)
    finally:
        con.unregister("batch_facts")  # a no-op when already let go of
    stream_counts = {
        "rows_read": int(counts["rows_read"]),
        "rows_invalid": int(counts["rows_invalid"]),
        "invalid_by_reason": {r: reasons[r] for r in STREAM_REASONS if r in reasons},
        "duplicate_keys": int(counts["duplicate_keys"]),
        "rows_out_of_day": int(counts["rows_out_of_day"]),
        "clicks": int(counts["clicks"]),
    }
    return DiffResult(stream_counts, block, int(counts["rows_in_day"]), stream_quarantine)


def load_stream(con: duckdb.DuckDBPyConnection, cfg: ReconcileConfig, pieces: Callable[[], Iterable[pa.Table]]) -> None:
    """Table ``stream_source``: the stream rows, copied into DuckDB a piece at a time (a file's row group;
    sql/day/stream_source.sql, sql/day/stream_append.sql), so Arrow never holds a day's sink rows whole.

    Past its share DuckDB spills the table to disk. Held whole in Arrow through the diff, the 100M-row
    long-tail day's 80M sink rows (~3.5 GB) had left DuckDB 190 MB at --memory-limit 2GB, and it ran out of
    memory. Meanwhile DuckDB's share shrinks by what each piece holds.
    """
    con.register("stream_arrow", STREAM_SCHEMA.empty_table())
    try:
        sql.run(con, "stream_source")
        for piece in pieces():
            con.register("stream_arrow", piece)
            engine.set_memory(con, cfg.memory_limit, held=piece.nbytes)
            sql.run(con, "stream_append")
            del piece
    finally:
        con.unregister("stream_arrow")
    # Arrow's allocator keeps freed memory until its next allocation, and none comes while DuckDB diffs.
    pa.default_memory_pool().release_unused()
    engine.set_memory(con, cfg.memory_limit)


def pair_shifts(con: duckdb.DuckDBPyConnection) -> None:
    """Register ``shift_shares``: per flagged key, how much of its delta adjacent flagged minutes of the same ad
    offset with the opposite sign (a window boundary shift), each minute's delta used once in all.

    Minutes are paired in order along each run of adjacent minutes whose deltas alternate in sign: a
    minute first offsets what its earlier neighbour left over, then its later neighbour takes the rest.
    So +1, -1, +1 is one shift of 1 and a +1 the shift does not explain (replay_overcount).
    """
    rows = sql.table(con, "shift_candidates")
    ads, starts, deltas = (rows.column(c).to_pylist() for c in ("ad_id", "window_start", "delta"))
    shares = [0] * len(deltas)
    left = 0  # what the previous minute of the run has not offset yet
    for i, delta in enumerate(deltas):
        run_on = (i > 0 and ads[i] == ads[i - 1] and starts[i] - starts[i - 1] == _MINUTE
                  and (delta > 0) != (deltas[i - 1] > 0))
        matched = min(left, abs(delta)) if run_on else 0
        if matched:
            shares[i - 1] += matched
            shares[i] += matched
        left = abs(delta) - matched
    con.register("shift_shares", pa.table({"ad_id": rows.column("ad_id"), "window_start": rows.column("window_start"),
                                           "shift_share": pa.array(shares, pa.int64())}))


_MINUTE = dt.timedelta(minutes=1)


#: A relative tolerance at or above this flags nothing (|delta| < 2**63 <= it x batch_clicks for any batch click),
#: so larger ones are clamped to it and the exact comparison stays inside 128-bit integers.
_REL_CEILING = Fraction(10**19)


def relative_tolerance(rel: float) -> Fraction:
    """``--tolerance-rel`` as the exact fraction its decimal text says (0.29 is 29/100, not the binary float
    just below it), so the flag rule compares integers: |delta| x den > num x batch_clicks."""
    return min(Fraction(repr(rel)), _REL_CEILING)


def drift_summary(con: duckdb.DuckDBPyConnection, drift: pa.Table) -> dict[str, Any]:
    """The ``drift`` block of summary.json of a drift table (registered as ``day_drift`` meanwhile)."""
    con.register("day_drift", drift)
    try:
        return _drift_block(con)
    finally:
        con.unregister("day_drift")


def _drift_block(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The ``drift`` block of summary.json, computed in SQL over ``day_drift``."""
    (t,) = sql.fetch_dicts(con, "drift_summary")
    by_status: dict[str, int] = {}
    by_cause: dict[str, dict[str, int]] = {}
    for r in sql.fetch_dicts(con, "drift_by"):
        if r["kind"] == "status":
            by_status[r["name"]] = int(r["keys"])
        else:
            by_cause[r["name"]] = {"keys": int(r["keys"]), "clicks": int(r["clicks"])}
    priced = t["priced_keys"] > 0
    return {
        "keys": t["keys"],
        "flagged": t["flagged"],
        "by_status": by_status,
        "net_delta_clicks": t["net_delta_clicks"],
        "abs_delta_clicks": t["abs_delta_clicks"],
        "by_cause": by_cause,
        "unexplained": {"keys": t["unexplained_keys"], "clicks": t["unexplained_clicks"]},
        "money": {k: (t[k] if priced else None)
                  for k in ("net_at_risk_micros", "abs_at_risk_micros", "flagged_abs_at_risk_micros")},
    }

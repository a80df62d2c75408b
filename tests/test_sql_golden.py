"""Each SQL file on a tiny input with its expected output, run in the engine's own session."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import engine, sql
from billing.config import SNOWFLAKE_EPOCH_MS
from billing.day.diff import pair_shifts
from billing.day.merge import ALL_TIME
from billing.slice import dedup
from tests.lake import at, cid


@pytest.fixture
def con():
    c = engine.connect(memory_limit=1536 << 20, threads=1)
    yield c
    c.close()


def reason(con, click_id, ad_id, event_time, cost, skew_us=300_000_000, event_ns=0):
    """event_time (a datetime, µs) plus event_ns nanoseconds (0..999) below its µs."""
    return con.execute(
        "SELECT invalid_reason($c::BIGINT, $a::BIGINT, epoch_us($e::TIMESTAMPTZ), $n::SMALLINT, $k::BIGINT, $ep, $s)",
        {"c": click_id, "a": ad_id, "e": event_time, "n": event_ns, "k": cost, "ep": SNOWFLAKE_EPOCH_MS,
         "s": skew_us},
    ).fetchone()[0]


def test_validate_sql_rules_in_order(con) -> None:
    t = at(10)
    good = cid(t)
    assert reason(con, good, 1, t, 5) is None
    assert reason(con, good, 1, t, None) is None
    assert reason(con, None, None, None, -1) == "null_click_id"
    assert reason(con, good, None, None, -1) == "null_ad_id"
    assert reason(con, good, 1, None, -1) == "null_event_time"
    assert reason(con, 0, 1, t, -1) == "nonpositive_click_id"
    assert reason(con, good, 1, t, -1) == "negative_cost"
    assert reason(con, good, 1, t + dt.timedelta(minutes=5), 0) is None
    assert reason(con, good, 1, t + dt.timedelta(minutes=5, microseconds=1), 0) == "id_time_mismatch"
    assert reason(con, good, 1, t + dt.timedelta(minutes=5), 0, event_ns=1) == "id_time_mismatch"  # 1 ns over
    assert reason(con, good, 1, t - dt.timedelta(minutes=5), 0, event_ns=0) is None  # exactly the skew below
    assert reason(con, good, 1, t - dt.timedelta(minutes=5, microseconds=1), 0, event_ns=999) == "id_time_mismatch"
    assert reason(con, good, 1, t - dt.timedelta(minutes=6), 0) == "id_time_mismatch"
    assert reason(con, good, 1, t + dt.timedelta(days=3), 0, skew_us=None) is None


def land(con, rows):
    """rows: (click_id, ad_id, event_time, ingest_time, cost, file_id, row_no, reason) -> table clicks."""
    ts = pa.timestamp("us", tz="UTC")
    con.register("src", pa.table({
        "click_id": pa.array([r[0] for r in rows], pa.int64()),
        "ad_id": pa.array([r[1] for r in rows], pa.int64()),
        "event_time": pa.array([r[2] for r in rows], ts),
        "ingest_time": pa.array([r[3] for r in rows], ts),
        "cost_micros": pa.array([r[4] for r in rows], pa.int64()),
        "file_id": pa.array([r[5] for r in rows], pa.int32()),
        "row_no": pa.array([r[6] for r in rows], pa.int64()),
        "reason": pa.array([r[7] for r in rows], pa.string()),
    }))
    con.execute("CREATE TEMP TABLE clicks AS SELECT click_id, ad_id, epoch_us(event_time) AS event_us, "
                "0::SMALLINT AS event_sub_ns, epoch_us(ingest_time) AS ingest_us, 0::SMALLINT AS ingest_sub_ns, "
                "cost_micros, row_pos(file_id, row_no) AS pos, reason FROM src")


def test_dedup_sql_winner_copies_conflict(con) -> None:
    t = at(10)
    land(con, [
        (7, 1, t, at(10, 0, 5), 10, 0, 0, None),
        (7, 2, t, at(10, 0, 4), 20, 1, 0, None),  # earliest ingest: wins
        (7, 1, t, None, 30, 0, 1, None),
        (7, 9, t, at(10, 0, 1), 40, 0, 2, "negative_cost"),  # invalid: ignored
        (8, 1, t, None, 1, 1, 5, None),
        (8, 1, t, None, 2, 1, 3, None),  # both null ingest: lower row wins
        (9, 1, t, at(10), 3, 2, 0, None),
        (9, 1, at(10, 0, 30), at(10), 4, 1, 9, None),  # same ingest: lower file id wins; same minute
    ])
    dedup.pick_winners(con)  # sql/dedup.sql over the repeated ids
    got = con.execute("SELECT click_id, ad_id, cost_micros, won_ad_id FROM copies WHERE copy_rank = 1 "
                      "ORDER BY 1").fetchall()
    assert got == [(7, 2, 20, 2), (8, 1, 2, 1), (9, 1, 4, 1)]
    ranks = con.execute("SELECT click_id, cost_micros, copy_rank, won_ad_id FROM copies ORDER BY 1, 3").fetchall()
    assert ranks == [(7, 20, 1, 2), (7, 10, 2, 2), (7, 30, 3, 2), (8, 2, 1, 1), (8, 1, 2, 1), (9, 4, 1, 1),
                     (9, 3, 2, 1)]
    assert sql.table(con, "conflicts").column("click_id").to_pylist() == [7]


@settings(max_examples=40, deadline=None)
@given(ids=st.lists(st.integers(-3, 40), max_size=300), invalid=st.sets(st.integers(0, 299)))
def test_repeated_ids_are_the_ids_of_two_or_more_valid_rows(ids, invalid) -> None:
    """Checked against a count of the rows in Python, whatever their order and validity."""
    con = engine.connect(memory_limit=1536 << 20, threads=1)
    try:
        t = at(10)
        rows = [(i, 1, t, t, 0, 0, n, "null_ad_id" if n in invalid else None) for n, i in enumerate(ids)]
        land(con, rows)
        counts = Counter(i for n, i in enumerate(ids) if n not in invalid)
        got = dedup.repeated(dedup.valid_ids(con)).tolist()
        assert got == sorted(i for i, k in counts.items() if k > 1)
    finally:
        con.close()


def test_totals_sql_day_membership_and_facts(con) -> None:
    land(con, [
        (1, 5, at(0), at(0, 20), 10, 0, 0, None),  # late for the stream (20 min)
        (1, 5, at(0), at(0, 30), 10, 0, 1, None),
        (2, 5, at(0, 0, 59), at(0, 1), 5, 0, 2, None),
        (3, 5, at(-0.001), at(0), 7, 0, 3, None),  # out of day
        (4, 6, at(24), at(24), 7, 0, 4, None),  # out of day
        (5, 6, at(1), at(1), -7, 0, 5, "negative_cost"),
    ])
    dedup.pick_winners(con)  # sql/dedup.sql over the repeated ids
    first = int(at(0).timestamp()) // 60
    sql.run(con, "own_windows", stream_lateness_us=600_000_000)
    sql.run(con, "all_windows", day_start_minute=first, day_end_minute=first + 1440, stream_lateness_us=600_000_000)
    got = [tuple(r.values()) for r in sql.table(con, "window_facts").to_pylist()]
    assert got == [(5, at(0), 2, 15, 1, 1)]
    (ledger,) = sql.fetch_dicts(con, "ledger")
    assert ledger == {"rows_read": 6, "rows_invalid": 1, "rows_valid": 5, "duplicates_removed": 1,
                      "conflicting_click_ids": 0, "clicks_out_of_day": 2, "billable_clicks": 2,
                      "billable_spend_micros": 15}



def test_totals_sql_losers_leave_their_own_window(con) -> None:
    """A loser's cost, lateness and click leave its own window; a window of losers only vanishes."""
    land(con, [
        (1, 5, at(1), at(1, 0, 1), None, 0, 0, None),  # winner, no cost
        (1, 6, at(2), at(3), 40, 0, 1, None),  # loser (conflict) in ad 6's minute 02:00, late, with a cost
        (2, 6, at(2), at(2, 0, 1), None, 0, 2, None),  # a single click there, no cost
        (3, 7, at(4), at(4, 0, 2), 9, 0, 3, None),  # winner with a cost
        (3, 7, at(4), at(4, 0, 5), 9, 0, 4, None),  # loser, same window
        (1, 8, at(5), at(5, 0, 9), 3, 0, 5, None),  # loser alone in ad 8's minute 05:00
    ])
    dedup.pick_winners(con)  # sql/dedup.sql over the repeated ids
    first = int(at(0).timestamp()) // 60
    sql.run(con, "own_windows", stream_lateness_us=600_000_000)
    sql.run(con, "all_windows", day_start_minute=first, day_end_minute=first + 1440, stream_lateness_us=600_000_000)
    got = [tuple(r.values()) for r in sql.table(con, "window_facts").to_pylist()]
    # (ad, window, clicks, spend, duplicate_copies, late_clicks); spend NULL where no winner has a cost
    assert sorted(got) == [(5, at(1), 1, None, 2, 0), (6, at(2), 1, None, 0, 0), (7, at(4), 1, 9, 1, 0)]

def _spend_overflow(con, rows) -> list[dict]:
    land(con, rows)
    dedup.pick_winners(con)
    first = int(at(0).timestamp()) // 60
    sql.run(con, "own_windows", stream_lateness_us=600_000_000)
    sql.run(con, "all_windows", day_start_minute=first, day_end_minute=first + 1440, stream_lateness_us=600_000_000)
    return sql.fetch_dicts(con, "spend_overflow")


BIG = 2**62  # two of these make 2**63, one more than int64 holds


def test_spend_overflow_sql_names_the_first_window(con) -> None:
    got = _spend_overflow(con, [
        (1, 9, at(3), at(3), BIG, 0, 0, None),
        (2, 9, at(3, 0, 30), at(3, 1), BIG, 0, 1, None),  # ad 9 at 03:00: 2**63
        (3, 4, at(5), at(5), BIG, 0, 2, None),
        (4, 4, at(5), at(5), BIG, 0, 3, None),  # ad 4 at 05:00: 2**63, first by ad_id
        (5, 4, at(25), at(25), BIG, 0, 4, None),
        (6, 4, at(25), at(25), BIG, 0, 5, None),  # out of day: not billed here, not checked
    ])
    assert got == [{"ad_id": 4, "window_start": at(5), "window_spend_micros": str(2**63),
                    "total_spend_micros": str(2**64)}]


def test_spend_overflow_sql_day_total_and_copies_removed_by_dedup(con) -> None:
    # each window fits, the day does not: (2**62 - 1) * 2 + 2**62 > 2**63 - 1
    day = _spend_overflow(con, [(1, 1, at(1), at(1), BIG - 1, 0, 0, None), (2, 1, at(2), at(2), BIG - 1, 0, 1, None),
                                (3, 2, at(1), at(1), BIG, 0, 2, None)])
    assert day == [{"ad_id": None, "window_start": None, "window_spend_micros": None,
                    "total_spend_micros": str(3 * BIG - 2)}]
    fresh = engine.connect(memory_limit=1536 << 20, threads=1)
    try:  # two copies of one click: their own window holds 2**63 before dedup, the winner's 2**62 after
        fits = _spend_overflow(fresh, [(1, 1, at(1), at(1), BIG, 0, 0, None),
                                       (1, 1, at(1), at(1, 0, 5), BIG, 0, 1, None)])
        assert fits == []
        assert [tuple(r.values())[:4] for r in sql.table(fresh, "window_facts").to_pylist()] == [(1, at(1), 1, BIG)]
    finally:
        fresh.close()


def drift_inputs(con, batch, stream):
    ts = pa.timestamp("us", tz="UTC")
    con.register("bw", pa.table({
        "ad_id": pa.array([b[0] for b in batch], pa.int64()),
        "window_start": pa.array([b[1] for b in batch], ts),
        "clicks": pa.array([b[2] for b in batch], pa.int64()),
        "spend_micros": pa.array([b[3] for b in batch], pa.int64()),
        "duplicate_copies": pa.array([b[4] for b in batch], pa.int64()),
        "late_clicks": pa.array([b[5] for b in batch], pa.int64()),
    }))
    con.execute("CREATE TEMP TABLE batch_windows AS SELECT * FROM bw")
    con.register("ss", pa.table({
        "ad_id": pa.array([s[0] for s in stream], pa.int64()),
        "window_start": pa.array([s[1] for s in stream], ts),
        "clicks": pa.array([s[2] for s in stream], pa.int64()),
        "spend_micros": pa.array([s[3] for s in stream], pa.int64()),
        "sink_rows": pa.array([s[4] for s in stream], pa.int64()),
        "extra_row_clicks": pa.array([s[5] for s in stream], pa.int64()),
    }))
    con.execute("CREATE TEMP TABLE stream_windows AS SELECT * FROM ss")


def causes(con, batch, stream, tol_abs=0):
    drift_inputs(con, batch, stream)
    sql.run(con, "drift", tolerance_abs=tol_abs, rel_num=0, rel_den=1)
    pair_shifts(con)
    sql.run(con, "attribute")
    return {(r[0], r[1].hour * 60 + r[1].minute): (r[2], r[3]) for r in con.execute(
        "SELECT ad_id, window_start, cause, explained_clicks FROM attributed").fetchall()}


M = [at(10, m) for m in range(10)]


def test_attribute_sql_each_rule(con) -> None:
    batch = [  # ad, window, clicks, spend, duplicate_copies, late_clicks
        (1, M[0], 10, 0, 3, 0),  # stream +3 = the 3 extra raw copies -> raw_duplicates_counted
        (2, M[0], 10, 0, 0, 4),  # stream -4 = 4 late clicks -> late_beyond_stream_watermark
        (3, M[0], 10, 0, 0, 0),  # two sink rows adding 10 -> sink_duplicate_rows
        (4, M[0], 10, 0, 0, 0), (4, M[1], 10, 0, 0, 0),  # -2 / +2 -> window_boundary_shift both
        (5, M[0], 10, 0, 1, 0),  # +5 with one copy -> partial: raw_duplicates_counted explains 1
        (6, M[0], 10, 0, 0, 0),  # +2, nothing else -> replay_overcount
        (7, M[0], 10, 0, 0, 0),  # -2 -> lost_events
        (8, M[0], 10, 0, 0, 0),  # absent from stream -> missing_window
        (9, M[5], 10, 0, 0, 0),  # matches: no cause
    ]
    stream = [  # ad, window, clicks, spend, sink_rows, extra_row_clicks
        (1, M[0], 13, None, 1, 0), (2, M[0], 6, None, 1, 0), (3, M[0], 20, None, 2, 10),
        (4, M[0], 8, None, 1, 0), (4, M[1], 12, None, 1, 0), (5, M[0], 15, None, 1, 0),
        (6, M[0], 12, None, 1, 0), (7, M[0], 8, None, 1, 0), (9, M[5], 10, None, 1, 0),
        (10, M[3], 4, None, 1, 0),  # no batch clicks -> phantom_window
    ]
    assert causes(con, batch, stream) == {
        (1, 600): ("raw_duplicates_counted", 3),
        (2, 600): ("late_beyond_stream_watermark", 4),
        (3, 600): ("sink_duplicate_rows", 10),
        (4, 600): ("window_boundary_shift", 2), (4, 601): ("window_boundary_shift", 2),
        (5, 600): ("raw_duplicates_counted", 1),
        (6, 600): ("replay_overcount", 2),
        (7, 600): ("lost_events", 2),
        (8, 600): ("missing_window", 10),
        (9, 605): (None, 0),
        (10, 603): ("phantom_window", 4),
    }


def test_attribute_sql_boundary_shift_onto_a_window_of_one_side(con) -> None:
    """A shift whose other minute exists on one side only is still a shift, on both minutes."""
    batch = [(7, M[0], 1, 0, 0, 0),  # the click at 10:00:59 ...
             (8, M[2], 2, 0, 0, 0)]  # ... and one the stream cut into the minute before
    stream = [(7, M[0], 0, None, 1, 0), (7, M[1], 1, None, 1, 0),  # ... counted by the stream at 10:01
              (8, M[1], 2, None, 1, 0)]
    assert causes(con, batch, stream) == {
        (7, 600): ("window_boundary_shift", 1), (7, 601): ("window_boundary_shift", 1),
        (8, 601): ("window_boundary_shift", 2), (8, 602): ("window_boundary_shift", 2),
    }


def test_attribute_sql_a_minute_offsets_its_neighbours_once_in_all(con) -> None:
    """+1, -1, +1: the -1 offsets one +1, not both; the other +1 is a replay. -2 between two +1: both offset."""
    batch = [(1, M[m], 2, 0, 0, 0) for m in range(3)] + [(2, M[m], 2, 0, 0, 0) for m in range(3)] + [
        (3, M[m], 2, 0, 0, 0) for m in range(3)]
    stream = [(1, M[0], 3, None, 1, 0), (1, M[1], 1, None, 1, 0), (1, M[2], 3, None, 1, 0),
              (2, M[0], 3, None, 1, 0), (2, M[1], 0, None, 1, 0), (2, M[2], 3, None, 1, 0),
              (3, M[0], 1, None, 1, 0), (3, M[1], 3, None, 1, 0), (3, M[2], 3, None, 1, 0)]
    assert causes(con, batch, stream) == {
        (1, 600): ("window_boundary_shift", 1), (1, 601): ("window_boundary_shift", 1),
        (1, 602): ("replay_overcount", 1),
        (2, 600): ("window_boundary_shift", 1), (2, 601): ("window_boundary_shift", 2),
        (2, 602): ("window_boundary_shift", 1),
        (3, 600): ("window_boundary_shift", 1), (3, 601): ("window_boundary_shift", 1),
        (3, 602): ("replay_overcount", 1),
    }


def flagged_at(con, batch_clicks: int, stream_clicks: int, rel: float, tol_abs: int = 0) -> bool:
    from billing.day.diff import relative_tolerance

    drift_inputs(con, [(1, M[0], batch_clicks, 0, 0, 0)], [(1, M[0], stream_clicks, None, 1, 0)])
    r = relative_tolerance(rel)
    sql.run(con, "drift", tolerance_abs=tol_abs, rel_num=r.numerator, rel_den=r.denominator)
    ((flag,),) = con.execute("SELECT flagged FROM drift").fetchall()
    con.execute("DROP TABLE drift; DROP TABLE batch_windows; DROP TABLE stream_windows")
    return flag


def test_drift_sql_relative_tolerance_is_exact(con) -> None:
    # 0.29 x 100 is 29 exactly (28.999999999999996 in binary floating point): a delta of 29 is within it
    assert not flagged_at(con, 100, 129, 0.29)
    assert flagged_at(con, 100, 130, 0.29)
    assert not flagged_at(con, 100, 71, 0.29)  # under by 29
    assert flagged_at(con, 3, 4, 0.1)  # 1 > 0.3
    assert not flagged_at(con, 10, 11, 0.1)  # 1 = 0.1 x 10: not beyond it
    assert not flagged_at(con, 10, 13, 0.1, tol_abs=3)  # the absolute tolerance wins
    assert not flagged_at(con, 7, 2**62, 1e300)  # a huge tolerance flags nothing, and does not overflow
    assert flagged_at(con, 0, 1, 5.0)  # no batch clicks: only the absolute tolerance counts


def test_attribute_sql_order_when_several_explain(con) -> None:
    # +2 that equals both the raw copies and the extra sink rows: rule 1 comes first.
    batch = [(1, M[0], 5, 0, 2, 0)]
    stream = [(1, M[0], 7, None, 2, 2)]
    assert causes(con, batch, stream) == {(1, 600): ("raw_duplicates_counted", 2)}


def test_attribute_sql_shift_needs_both_flagged(con) -> None:
    batch = [(1, M[0], 100, 0, 0, 0), (1, M[1], 100, 0, 0, 0)]
    stream = [(1, M[0], 97, None, 1, 0), (1, M[1], 102, None, 1, 0)]
    # tolerance 2: -3 is flagged, +2 is not -> no shift; the -3 is lost_events
    assert causes(con, batch, stream, tol_abs=2) == {(1, 600): ("lost_events", 3), (1, 601): (None, 0)}


@pytest.mark.parametrize(("n", "d"), [(5, 2), (7, 2), (-5, 2), (-7, 2), (1, 3), (2, 3), (-2, 3), (0, 9),
                                      (10**18, 7), (-(10**18) - 1, 2), (25, 10), (35, 10), (15, 10)])
def test_money_sql_half_even_is_exact(con, n: int, d: int) -> None:
    got = con.execute("SELECT div_half_even($n::HUGEINT, $d::BIGINT)::HUGEINT", {"n": n, "d": d}).fetchone()[0]
    assert got == round(Fraction(n, d))


def test_drift_money_sql(con) -> None:
    drift_inputs(con, [(1, M[0], 3, 1_000_001, 0, 0), (1, M[1], 1, 10, 0, 0), (2, M[0], 4, None, 0, 0)],
                 [(1, M[0], 5, None, 1, 0), (1, M[2], 2, None, 1, 0), (2, M[0], 5, None, 1, 0)])
    sql.run(con, "drift", tolerance_abs=0, rel_num=0, rel_den=1)
    pair_shifts(con)
    sql.run(con, "attribute")
    sql.run(con, "drift_money", stream_has_spend=False)
    sql.run(con, "day_drift", text=sql.render("day_drift", totals_spend="present"))
    out = sql.table(con, "drift_sorted")
    keys = list(zip(out.column("ad_id").to_pylist(), out.column("window_start").to_pylist(), strict=True))
    assert keys == sorted(keys)  # in key order, as drift.parquet is published
    got = {(a, w.minute): m for (a, w), m in zip(keys, out.column("money_at_risk_micros").to_pylist(), strict=True)}
    assert got == {
        (1, 0): round(Fraction(2 * 1_000_001, 3)),  # 666,667.33 -> 666,667
        (1, 1): -10,  # missing in stream: the whole window's spend
        (1, 2): round(Fraction(2 * 1_000_011, 4)),  # phantom: the ad's day average price
        (2, 0): None,  # no price known
    }


def test_drift_money_sql_uses_stream_spend_when_present(con) -> None:
    drift_inputs(con, [(1, M[0], 3, 300, 0, 0), (1, M[1], 2, 200, 0, 0)],
                 [(1, M[0], 4, 450, 1, 0), (1, M[3], 1, 99, 1, 0)])
    sql.run(con, "drift", tolerance_abs=0, rel_num=0, rel_den=1)
    pair_shifts(con)
    sql.run(con, "attribute")
    sql.run(con, "drift_money", stream_has_spend=True)
    sql.run(con, "day_drift", text=sql.render("day_drift", totals_spend="present"))
    out = sql.table(con, "drift_sorted")
    got = {w.minute: m for w, m in zip(out.column("window_start").to_pylist(),
                                       out.column("money_at_risk_micros").to_pylist(), strict=True)}
    assert got == {0: 150, 1: -200, 3: 99}


def stream_reason(con, ad_id, window_start, clicks, spend, window_ns=0):
    return con.execute(
        "SELECT stream_invalid_reason($a::BIGINT, $w::TIMESTAMPTZ, $c::BIGINT, $s::BIGINT, $n::BIGINT)",
        {"a": ad_id, "w": window_start, "c": clicks, "s": spend, "n": window_ns}).fetchone()[0]


def test_stream_validate_sql_rules_in_order(con) -> None:
    t = at(10, 5)
    assert stream_reason(con, 1, t, 3, 5) is None
    assert stream_reason(con, 1, t, 0, None) is None  # zero clicks and no spend are valid
    assert stream_reason(con, None, None, None, -1, 1) == "null_ad_id"
    assert stream_reason(con, 1, None, None, -1, 1) == "null_window_start"
    assert stream_reason(con, 1, t, None, -1, 1) == "null_clicks"
    assert stream_reason(con, 1, t, -1, -1, 1) == "negative_clicks"
    assert stream_reason(con, 1, t, 1, -1, 1) == "negative_spend"
    assert stream_reason(con, 1, t, 1, 0, 1) == "unaligned_window"  # 1 ns past the minute
    assert stream_reason(con, 1, t, 1, 0, -1) == "unaligned_window"  # 1 ns before it (before 1970)
    assert stream_reason(con, 1, t + dt.timedelta(microseconds=1), 1, 0) == "unaligned_window"
    assert stream_reason(con, 1, t + dt.timedelta(seconds=59), 1, 0) == "unaligned_window"
    assert stream_reason(con, 1, dt.datetime(1969, 12, 31, 23, 59, tzinfo=dt.UTC), 1, 0) is None
    assert stream_reason(con, 1, dt.datetime(1969, 12, 31, 23, 59, 30, tzinfo=dt.UTC), 1, 0) == "unaligned_window"


def test_stream_windows_sql_marks_a_key_past_int64_and_overflow_names_it(con) -> None:
    """Sums are stored as BIGINT: a key whose clicks or spend pass int64 is marked, its sums left NULL, and
    sql/day/stream_overflow.sql sums that key again to name it; a key that fits is untouched."""
    ts = pa.timestamp("us", tz="UTC")
    top = 2**63 - 1
    rows = [(1, at(10), 5, 7), (7, at(10, 5), 1, None), (7, at(10, 5), top, None),  # clicks pass int64
            (8, at(11), 1, top), (8, at(11), 1, 1),  # spend passes int64
            (9, at(12), 1, top), (9, at(12), 1, None)]  # would pass, but the key's spend is unknown: fits
    con.register("stream_source", pa.table({
        "ad_id": pa.array([r[0] for r in rows], pa.int64()), "window_start": pa.array([r[1] for r in rows], ts),
        "clicks": pa.array([r[2] for r in rows], pa.int64()),
        "spend_micros": pa.array([r[3] for r in rows], pa.int64()),
        "window_ns": pa.array([0] * len(rows), pa.int64()), "file_id": pa.array([0] * len(rows), pa.int32()),
        "row_no": pa.array(range(len(rows)), pa.int64())}))
    sql.run(con, "stream_rows")
    sql.run(con, "stream_windows", day_start=at(0), day_end=at(24))
    got = sorted(con.execute("SELECT ad_id, clicks, spend_micros, sink_rows, extra_row_clicks, overflows "
                             "FROM stream_windows").fetchall())
    assert got == [(1, 5, 7, 1, 0, False), (7, None, None, 2, 1, True), (8, 2, None, 2, 1, True),
                   (9, 2, None, 2, 1, False)]
    assert sql.fetch_dicts(con, "stream_overflow") == [
        {"ad_id": 7, "window_start": at(10, 5), "clicks": str(top + 1), "spend_micros": None}]
    con.execute("DELETE FROM stream_windows WHERE ad_id = 7")
    assert sql.fetch_dicts(con, "stream_overflow") == [
        {"ad_id": 8, "window_start": at(11), "clicks": "2", "spend_micros": str(top + 1)}]
    con.execute("DELETE FROM stream_windows WHERE ad_id = 8")
    assert sql.fetch_dicts(con, "stream_overflow") == []


def test_stream_sql_rows_windows_counts_and_quarantine(con) -> None:
    ts = pa.timestamp("us", tz="UTC")
    rows = [  # ad, window, clicks, spend, window_ns, file_id, row_no
        (1, at(10), 2, 20, 0, 0, 0),
        (1, at(10), 3, None, 0, 1, 0),  # same key, no spend: the key's spend is unknown
        (2, at(10), 1, 5, 0, 0, 1),
        (2, at(10), 4, 7, 0, 0, 2),  # same key, every row with spend: 12
        (None, at(10), 1, 1, 0, 1, 3),  # null_ad_id
        (3, at(10, 0, 30), 1, 1, 0, 1, 1),  # unaligned_window
        (3, at(10), 1, 1, 500, 0, 3),  # unaligned_window (below the microsecond)
        (3, at(24), 9, 1, 0, 0, 4),  # valid, out of day
        (3, at(-1), -1, 1, 0, 0, 5),  # negative_clicks (invalid before out of day)
    ]
    con.register("stream_source", pa.table({
        "ad_id": pa.array([r[0] for r in rows], pa.int64()),
        "window_start": pa.array([r[1] for r in rows], ts),
        "clicks": pa.array([r[2] for r in rows], pa.int64()),
        "spend_micros": pa.array([r[3] for r in rows], pa.int64()),
        "window_ns": pa.array([r[4] for r in rows], pa.int64()),
        "file_id": pa.array([r[5] for r in rows], pa.int32()),
        "row_no": pa.array([r[6] for r in rows], pa.int64()),
    }))
    sql.run(con, "stream_rows")
    sql.run(con, "stream_windows", day_start=at(0), day_end=at(24))
    got = sorted(con.execute("SELECT ad_id, window_start, clicks, spend_micros, sink_rows, extra_row_clicks "
                             "FROM stream_windows").fetchall())
    assert got == [(1, at(10), 5, None, 2, 2), (2, at(10), 5, 12, 2, 1)]
    (counts,) = sql.fetch_dicts(con, "stream_counts", day_start=at(0), day_end=at(24))
    assert counts == {"rows_read": 9, "rows_invalid": 4, "duplicate_keys": 2, "rows_out_of_day": 1, "clicks": 10,
                      "rows_in_day": 4}
    assert sql.fetch_dicts(con, "stream_invalid_by_reason") == [
        {"reason": "negative_clicks", "n": 1}, {"reason": "null_ad_id", "n": 1}, {"reason": "unaligned_window", "n": 2}]
    assert sql.table(con, "stream_quarantine_rows").to_pylist() == [
        {"file_id": 0, "row_no": 3, "reason": "unaligned_window"},
        {"file_id": 0, "row_no": 5, "reason": "negative_clicks"},
        {"file_id": 1, "row_no": 1, "reason": "unaligned_window"},
        {"file_id": 1, "row_no": 3, "reason": "null_ad_id"},
    ]


def _sql_call_graph(names: set[str]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Over billing/**/*.py: per sql/ file the functions whose code names it (a name at module level:
    every function of that module, e.g. engine.connect loading the macro files), and per function
    the names it calls."""
    import ast

    runners: dict[str, set[str]] = {n: set() for n in names}
    calls: dict[str, set[str]] = {}
    for path in Path(sql.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = [f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)]
        inside = {id(c) for f in functions for c in ast.walk(f)}
        for f in functions:
            for c in ast.walk(f):
                if isinstance(c, ast.Constant) and c.value in names:
                    runners[c.value].add(f.name)
                elif isinstance(c, ast.Call):
                    callee = c.func.attr if isinstance(c.func, ast.Attribute) else getattr(c.func, "id", None)
                    calls.setdefault(f.name, set()).add(str(callee))
        for c in ast.walk(tree):
            if isinstance(c, ast.Constant) and c.value in names and id(c) not in inside:
                runners[c.value].update(f.name for f in functions)
    return runners, calls


def test_no_sql_file_without_a_test() -> None:
    """Every file in sql/ (the folder, listed) is named by a test, or run by billing code a test calls."""
    import re

    names = set(sql.files())
    assert len(names) >= 20  # the folder was found and listed
    tests_text = "\n".join(p.read_text(encoding="utf-8") for p in Path(__file__).parent.glob("test_*.py"))
    runners, calls = _sql_call_graph(names)
    reached = {f for f in calls if re.search(rf"\b{re.escape(f)}\(", tests_text)}
    todo = list(reached)
    while todo:  # billing functions the tests reach, directly or through other billing functions
        for g in calls.get(todo.pop(), ()):
            if g in calls and g not in reached:
                reached.add(g)
                todo.append(g)
    untested = sorted(n for n in names
                      if not re.search(rf"[\"']{re.escape(n)}[\"']", tests_text) and not runners[n] & reached)
    assert untested == [], f"sql/ files that no test names or reaches: {untested}"

def test_drift_summary_sql(con) -> None:
    from billing.day.diff import drift_summary

    drift = con.sql("""SELECT * FROM (VALUES
        (1, 3, 'stream_over', true, 'replay_overcount', 300::BIGINT, 3),
        (2, -4, 'stream_under', true, 'raw_duplicates_counted', -400::BIGINT, 1),
        (3, 0, 'match', false, NULL, 0::BIGINT, 0),
        (4, 1, 'stream_over', false, NULL, NULL::BIGINT, 0),
        (5, -2, 'missing_in_stream', true, 'missing_window', -20::BIGINT, 2)
      ) AS t(ad_id, delta, status, flagged, cause, money_at_risk_micros, explained_clicks)""").to_arrow_table()
    assert drift_summary(con, drift) == {
        "keys": 5, "flagged": 3,
        "by_status": {"match": 1, "missing_in_stream": 1, "stream_over": 2, "stream_under": 1},
        "net_delta_clicks": -2, "abs_delta_clicks": 10,
        "by_cause": {"missing_window": {"keys": 1, "clicks": 2}, "raw_duplicates_counted": {"keys": 1, "clicks": 1},
                     "replay_overcount": {"keys": 1, "clicks": 3}},
        "unexplained": {"keys": 1, "clicks": 3},
        "money": {"net_at_risk_micros": -120, "abs_at_risk_micros": 720, "flagged_abs_at_risk_micros": 720},
    }


def facts(rows):
    """rows: (ad_id, minute of at(10), clicks, spend, duplicate_copies, late_clicks) -> a facts table."""
    names = ("ad_id", "window_start", "clicks", "spend_micros", "duplicate_copies", "late_clicks")
    cols = list(zip(*rows, strict=True)) if rows else [()] * 6
    return pa.table({n: pa.array(list(c) if n != "window_start" else [at(10, m) for m in c],
                                 pa.timestamp("us", tz="UTC") if n == "window_start" else pa.int64())
                     for n, c in zip(names, cols, strict=True)})


def batch_windows(con, parts, shared):
    con.register("batch_facts", pa.concat_tables([facts(p) for p in parts]))
    sql.run(con, "shared_spans", shared_lo=[lo for lo, _ in shared], shared_hi=[hi for _, hi in shared])
    sql.run(con, "batch_windows")
    return sorted((a, w.minute, c, sp, d, late) for a, w, c, sp, d, late in con.execute(
        "SELECT * FROM batch_windows").fetchall())


def test_batch_windows_sql_sums_only_where_slices_overlap(con) -> None:
    from billing.day.merge import shared_windows

    parts = [
        [(1, 0, 2, 10, 0, 0), (1, 4, 1, None, 1, 0), (2, 4, 3, 5, 0, 1)],  # minutes 0..4
        [(1, 4, 5, 1, 0, 2), (2, 5, 1, None, 0, 0), (1, 6, 1, 7, 0, 0)],  # minutes 4..6: shares minute 4
        [(1, 9, 4, 4, 2, 0)],  # minute 9: shares nothing
    ]
    spans = [(at(10, min(r[1] for r in p)), at(10, max(r[1] for r in p))) for p in parts]
    shared = shared_windows(spans)
    assert shared == [(at(10, 4), at(10, 4))]
    expected = [(1, 0, 2, 10, 0, 0), (1, 4, 6, 1, 1, 2), (1, 6, 1, 7, 0, 0), (1, 9, 4, 4, 2, 0),
                (2, 4, 3, 5, 0, 1), (2, 5, 1, None, 0, 0)]  # spend: NULL + 1 = 1, as a sum over winners
    assert batch_windows(con, parts, shared) == expected
    # Summing every window (no statistics, or facts held in memory) gives the same windows.
    assert batch_windows(con, parts, [ALL_TIME]) == expected
    # Declaring nothing shared where slices do overlap would leave a window twice: the intervals matter.
    assert len(batch_windows(con, parts, [])) == len(expected) + 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 20)), max_size=8))
def test_shared_windows_are_exactly_the_minutes_two_spans_hold(spans) -> None:
    from billing.day.merge import shared_windows

    spans = [(at(10, a), at(10, a + n)) for a, n in spans]
    got = shared_windows(spans)

    def minutes(lo, hi):
        return range((lo - at(10)) // dt.timedelta(minutes=1), (hi - at(10)) // dt.timedelta(minutes=1) + 1)

    by_minute = Counter(m for lo, hi in spans for m in minutes(lo, hi))
    assert {m for lo, hi in got for m in minutes(lo, hi)} == {m for m, k in by_minute.items() if k > 1}
    assert all(a[1] < b[0] for a, b in pairwise(got)), "disjoint and in order"


@pytest.mark.parametrize("rng", [(None, None), (None, "mid"), ("mid", None)])
def test_read_native_sql_lands_what_the_arrow_path_lands(tmp_path, monkeypatch, caplog, rng) -> None:
    """land_clicks through DuckDB's reader and through the Arrow path give the same clicks table: units
    (nanoseconds included, either side of a µs), zones, nulls, invalid rows, the dt-only cutoff."""
    from billing.config import ReconcileConfig
    from billing.io.raw import ClickRange, Horizon, discover_raw, inspect_raw
    from billing.io.storage import LocalStore
    from billing.slice import land
    from tests.lake import click, write_raw

    raw = tmp_path / "raw"
    ms_naive = pa.schema([("click_id", pa.int64()), ("ad_id", pa.int32()), ("event_time", pa.timestamp("ms")),
                          ("ingest_time", pa.timestamp("ns"))])
    rows = [{k: (v.replace(tzinfo=None) if hasattr(v, "tzinfo") else v) for k, v in click(at(10, i), seq=i).items()
             if k in ms_naive.names} for i in range(5)]
    rows.append({"click_id": None, "ad_id": 3, "event_time": None, "ingest_time": None})
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", rows, ms_naive)
    base = int(at(10, 30).timestamp()) * 10**9
    offsets = (-1, 0, 1, 999, 1000, -1001)  # ns either side of a µs
    ns_ids = [cid(at(10, 30), 40 + k) for k in range(len(offsets))]
    pq.write_table(pa.table({
        "click_id": pa.array(ns_ids, pa.int64()), "ad_id": pa.array([4] * len(offsets), pa.int64()),
        "event_time": pa.array([base + d for d in offsets], pa.timestamp("ns", "UTC")),
        "ingest_time": pa.array([base + 10**9 + d for d in offsets], pa.timestamp("ns", "UTC")),
        "cost_micros": pa.array([5] * len(offsets), pa.int64())}), raw / "dt=2026-11-26/hour=10/n.parquet")
    write_raw(raw, "dt=2026-11-26/hour=11/b.parquet",
              [click(at(11, i), seq=i, cost=-i, extra="x") for i in range(5)])
    write_raw(raw, "dt=2026-11-27/c.parquet", [click(at(23, 59), seq=9, ingest=at(25)),
                                               click(at(23, 58), seq=8, ingest=at(27))])
    store = LocalStore(raw)
    sources = inspect_raw(store, discover_raw(store, Horizon(dt.date(2026, 11, 26), dt.timedelta(hours=2))))
    mid = cid(at(10, 3), 3)
    cr = ClickRange(*(mid if x == "mid" else None for x in rng))
    cfg = ReconcileConfig(date=dt.date(2026, 11, 26), raw=str(raw), stream="", out="")
    assert land.native_readable(sources)
    q = "SELECT * FROM clicks ORDER BY pos"
    con = engine.connect(memory_limit=1536 << 20, threads=1)
    land.land_clicks(con, store, sources, cr, cfg)
    native = con.execute(q).fetchall()
    con.close()
    assert "reading through Arrow" not in caplog.text  # DuckDB's reader did land it
    monkeypatch.setattr(land, "native_readable", lambda sources: False)
    con = engine.connect(memory_limit=1536 << 20, threads=1)
    land.land_clicks(con, store, sources, cr, cfg)
    arrow = con.execute(q).fetchall()
    con.close()
    assert native == arrow
    cols = ["click_id", "ad_id", "event_us", "event_sub_ns", "ingest_us", "ingest_sub_ns", "cost_micros", "pos",
            "reason"]
    got = {r[0]: dict(zip(cols, r, strict=True)) for r in native if r[0] is not None}
    if rng != (None, "mid"):  # the ns file lies above mid: floored µs and the ns below, whatever the sign
        for i, d in zip(ns_ids, offsets, strict=True):
            r = got[i]
            assert (r["event_us"] * 1000 + r["event_sub_ns"], r["ingest_us"] * 1000 + r["ingest_sub_ns"]) == (
                base + d, base + 10**9 + d)
            assert 0 <= r["event_sub_ns"] < 1000
        assert sum(r["reason"] == "negative_cost" for r in got.values()) == 4  # cost -1..-4; cost 0 is fine
        assert cid(at(23, 59), 9) in got and cid(at(23, 58), 8) not in got  # dt-only cutoff
    else:
        assert all(r["click_id"] < mid for r in got.values()) and len(got) == 3


def test_arrived_late_is_exact_to_the_ns(con) -> None:
    """ingest - event > lateness, on floored µs plus the ns below each (sql/validate.sql)."""
    def late(i_us, i_ns, e_us, e_ns, lateness_us=10):
        return con.execute("SELECT arrived_late($a::BIGINT, $b::SMALLINT, $c::BIGINT, $d::SMALLINT, $l::BIGINT)",
                           {"a": i_us, "b": i_ns, "c": e_us, "d": e_ns, "l": lateness_us}).fetchone()[0]

    for i_us, i_ns, e_us, e_ns in [(110, 0, 100, 0), (110, 1, 100, 0), (110, 0, 100, 1), (111, 0, 100, 999),
                                   (110, 999, 100, 999), (109, 999, 100, 0), (-90, 5, -100, 4), (-90, 4, -100, 5)]:
        exact = (i_us * 1000 + i_ns) - (e_us * 1000 + e_ns) > 10 * 1000  # reckoned in whole ns
        assert late(i_us, i_ns, e_us, e_ns) is exact, (i_us, i_ns, e_us, e_ns)


def test_set_aside_out_partitions_rows_by_slice(con, tmp_path: Path) -> None:
    """Slice k holds [bounds[k-1], bounds[k]); slice 0 also null and non-positive ids (sql/slice/set_aside_out.sql)."""
    con.execute("CREATE TEMP TABLE clicks AS SELECT * FROM (VALUES (NULL::BIGINT, 'n'), (-3, 'neg'), (0, 'zero'), "
                "(9, 'a'), (10, 'b'), (19, 'c'), (20, 'd'), (99, 'e')) t(click_id, tag)")
    sql.run(con, "set_aside_out", bounds=[10, 20], folder=str(tmp_path / "out"))
    got = {int(d.name[2:]): sorted(r["tag"] for r in pq.read_table(next(d.glob("*.parquet"))).to_pylist())
           for d in (tmp_path / "out").iterdir()}
    assert got == {0: ["a", "n", "neg", "zero"], 1: ["b", "c"], 2: ["d", "e"]}
    assert pq.read_schema(next((tmp_path / "out" / "k=1").glob("*.parquet"))).names == ["click_id", "tag"]

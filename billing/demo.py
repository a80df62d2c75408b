"""A realistic demo lake with the faults billing exists for, and the truth it planted.

The generator models clicks as events, writes them to a raw log the way an ingest
tier would (arrival-partitioned, with double fires, replays, conflicts, late and
invalid rows, mixed timestamp units and a schema that grows over the day), and
writes the stream job's sink as the stream would have counted them, with faults
planted window by window. The truth (``truth/``) comes from this module's own
bookkeeping in plain Python: it never runs the pipeline's SQL, so tests that compare
the two compare independent derivations.

The truth is for the default configuration: lateness 2h, max id skew 5m,
tolerances 0, stream allowed lateness 10m.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing.config import SNOWFLAKE_EPOCH_MS, SNOWFLAKE_TIME_SHIFT

MIN = 60_000
HOUR = 3_600_000
DAY = 86_400_000
LATENESS = 2 * HOUR
STREAM_LATENESS = 10 * MIN
MAX_SKEW = 5 * MIN


@dataclass
class Row:
    click_id: int | None
    ad_id: int | None
    event_ms: int | None
    ingest_ms: int | None  # as written; None for a row whose ingest tier lost the time
    cost: int | None
    arrival_ms: int  # when it really arrived: decides its partition
    reason: str | None = None  # planted validation verdict
    file: str = ""
    pos: int = 0


@dataclass(frozen=True)
class _Valid:
    """A row that passed validation: its id, ad, event time and cost are all set."""

    click_id: int
    ad_id: int
    event_ms: int
    ingest_ms: int | None
    cost: int
    file: str
    pos: int


def _valid(r: Row) -> _Valid:
    assert r.click_id is not None and r.ad_id is not None and r.event_ms is not None and r.cost is not None, r
    return _Valid(r.click_id, r.ad_id, r.event_ms, r.ingest_ms, r.cost, r.file, r.pos)


@dataclass
class Truth:
    ledger: dict[str, Any]
    stream: dict[str, Any]
    totals: dict[tuple[int, int], tuple[int, int]]  # (ad, window_ms) -> (clicks, spend)
    drift: dict[tuple[int, int], dict[str, Any]]
    planted: dict[str, int] = field(default_factory=dict)


def _ms(d: dt.date) -> int:
    return int(dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)


def snowflake(event_ms: int, worker: int, seq: int, epoch_ms: int = SNOWFLAKE_EPOCH_MS) -> int:
    return ((event_ms - epoch_ms) << SNOWFLAKE_TIME_SHIFT) | ((worker & 1023) << 12) | (seq & 4095)


def generate(out: Path, date: dt.date, *, rows: int = 100_000, seed: int = 1, layout: str = "hour",
             ads: int = 60) -> Truth:
    """Write ``out/raw``, ``out/stream`` and ``out/truth`` for day ``date``; return the truth."""
    if layout not in ("hour", "day"):
        raise ValueError("layout is 'hour' or 'day'")
    rnd = random.Random(seed)
    d0 = _ms(date)
    weights = [1 / (k ** 1.1) for k in range(1, ads + 1)]
    ad_ids = [1000 + k for k in range(ads)]
    cpc = {a: rnd.randrange(50_000, 2_000_000, 1000) for a in ad_ids}
    hour_weights = [0.4, 0.3, 0.25, 0.2, 0.2, 0.3, 0.5, 0.8, 1, 1.1, 1.2, 1.2,
                    1.3, 1.2, 1.1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.4, 1.1, 0.8, 0.6]

    raw: list[Row] = []
    planted: Counter[str] = Counter()
    n_events = int(rows * 0.93)
    for i in range(n_events):
        u = rnd.random()
        if u < 0.02:  # late hours of D-1
            ev = d0 - rnd.randrange(0, 3 * HOUR)
        elif u < 0.04:  # first hours of D+1
            ev = d0 + DAY + rnd.randrange(0, 2 * HOUR)
        else:
            h = rnd.choices(range(24), hour_weights)[0]
            ev = d0 + h * HOUR + rnd.randrange(0, HOUR)
        ad = rnd.choices(ad_ids, weights)[0]
        cost = cpc[ad] + rnd.randrange(-cpc[ad] // 10, cpc[ad] // 10 + 1)
        v = rnd.random()
        if v < 0.93:
            delay = int(rnd.lognormvariate(7, 1))  # ~1 s, a few seconds at most
        elif v < 0.965:
            delay = rnd.randrange(11 * MIN, 100 * MIN)  # beyond the stream watermark
        else:
            delay = rnd.randrange(2 * HOUR, 6 * HOUR)  # beyond the batch horizon near midnight
        cid = snowflake(ev, (i // 4096) % 1023, i % 4096)
        arrival = ev + delay
        ingest = None if rnd.random() < 0.003 else arrival
        if ingest is None:
            planted["null_ingest_time"] += 1
        raw.append(Row(cid, ad, ev, ingest, cost, arrival))
        w = rnd.random()
        if w < 0.02:  # capture-edge double fire: same content, same or next millisecond
            lag = 0 if rnd.random() < 0.3 else rnd.randrange(1, 40)
            raw.append(Row(cid, ad, ev, None if ingest is None else ingest + lag, cost, arrival + lag))
            planted["double_fire"] += 1
        elif w < 0.035:  # replay after a crash, minutes to hours later, another file
            lag = rnd.randrange(5 * MIN, 3 * HOUR)
            raw.append(Row(cid, ad, ev, None if rnd.random() < 0.1 else arrival + lag, cost, arrival + lag))
            planted["replay"] += 1
        elif w < 0.038:  # conflicting copy: another ad, or another minute
            lag = rnd.randrange(1000, 30 * MIN)
            if rnd.random() < 0.5:
                other = rnd.choice([a for a in ad_ids if a != ad])
                raw.append(Row(cid, other, ev, arrival + lag, cost, arrival + lag))
            else:
                raw.append(Row(cid, ad, ev + rnd.randrange(MIN, 2 * MIN), arrival + lag, cost, arrival + lag))
            planted["conflict"] += 1

    # Invalid rows, each with the verdict rule 2 must give it (first failing rule wins).
    for seq in range(1, max(12, rows // 170) + 1):
        ev = d0 + rnd.randrange(0, DAY - HOUR)
        arrival = ev + rnd.randrange(100, 5000)
        ad = rnd.choice(ad_ids)
        cid = snowflake(ev, 1023, seq)
        kind = rnd.choice(["null_click_id", "null_ad_id", "null_event_time", "nonpositive_click_id",
                           "negative_cost", "id_time_mismatch", "multi_a", "multi_b"])
        r = Row(cid, ad, ev, arrival, cpc[ad], arrival)
        if kind == "null_click_id":
            r.click_id = None
        elif kind == "null_ad_id":
            r.ad_id = None
        elif kind == "null_event_time":
            r.event_ms = None
        elif kind == "nonpositive_click_id":
            r.click_id = -rnd.randrange(0, 10**12)
        elif kind == "negative_cost":
            r.cost = -rnd.randrange(1, 10**6)
        elif kind == "id_time_mismatch":
            r.event_ms = ev + rnd.choice([-1, 1]) * rnd.randrange(MAX_SKEW + 1000, HOUR)
        elif kind == "multi_a":  # negative cost and a skewed time: negative_cost is checked first
            r.cost, r.event_ms = -5, ev + 2 * HOUR
            kind = "negative_cost"
        else:  # a null ad_id and a non-positive id: null_ad_id is checked first
            r.ad_id, r.click_id = None, 0
            kind = "null_ad_id"
        r.reason = kind
        raw.append(r)

    files = _write_raw(out / "raw", raw, date, layout, rnd)
    truth = _truth(raw, date, layout, d0, ad_ids, rnd, out / "stream", planted)
    _write_truth(out / "truth", truth, date, files)
    return truth


# --- the raw log ---------------------------------------------------------------------------------

def _partition(arrival: int, layout: str) -> str:
    t = dt.datetime.fromtimestamp(arrival / 1000, tz=dt.UTC)
    return f"dt={t.date().isoformat()}" + (f"/hour={t.hour:02d}" if layout == "hour" else "")


def _write_raw(root: Path, raw: list[Row], date: dt.date, layout: str, rnd: random.Random) -> list[str]:
    by_part: dict[str, list[Row]] = defaultdict(list)
    for r in sorted(raw, key=lambda r: r.arrival_ms):
        by_part[_partition(r.arrival_ms, layout)].append(r)
    written = []
    for part, rows in sorted(by_part.items()):
        hour = int(part.rsplit("=", 1)[1]) if layout == "hour" else int(part[-2:]) % 24
        n_files = 1 + (len(rows) > 200) + (len(rows) > 2000)
        size = -(-len(rows) // n_files)
        folder = root / part
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(n_files):
            chunk = rows[k * size:(k + 1) * size]
            if not chunk:
                continue
            name = f"{part}/part-{k:04d}.parquet"
            for pos, r in enumerate(chunk):
                r.file, r.pos = name, pos
            pq.write_table(_raw_table(chunk, hour), root / name, row_group_size=max(64, len(chunk) // 3 + 1))
            written.append(name)
        (folder / "_SUCCESS").write_bytes(b"")
        (folder / ".part-0000.parquet.crc").write_bytes(b"\x00crc")
    return written


def _raw_table(rows: list[Row], hour: int) -> pa.Table:
    unit = ("ms", "us", "ns")[hour % 3]
    tz = "UTC" if hour % 2 == 0 else None  # naive means UTC
    scale = {"ms": 1, "us": 1000, "ns": 1_000_000}[unit]
    ts = pa.timestamp(unit, tz=tz)
    cols: dict[str, pa.Array] = {
        "click_id": pa.array([r.click_id for r in rows], pa.int64()),
        "ad_id": pa.array([r.ad_id for r in rows], pa.int32() if hour == 7 else pa.int64()),
        "event_time": pa.array([None if r.event_ms is None else r.event_ms * scale for r in rows], pa.int64()).cast(ts),
        "ingest_time": pa.array([None if r.ingest_ms is None else r.ingest_ms * scale for r in rows],
                                pa.int64()).cast(ts),
        "cost_micros": pa.array([r.cost for r in rows], pa.int64()),
    }
    if hour >= 8:  # schema evolution: columns added over the day
        cols["user_agent"] = pa.array([f"agent/{(r.pos * 7) % 5}" for r in rows])
    if hour >= 16:
        cols["country"] = pa.array([("DE", "US", "FR", "BR")[r.pos % 4] for r in rows])
    names = list(cols)
    if hour == 5:
        names.reverse()
    return pa.table({n: cols[n] for n in names})


# --- the truth and the stream side ---------------------------------------------------------------

def _read_by_batch(r: Row, date: dt.date, layout: str, d0: int) -> bool:
    day = dt.datetime.fromtimestamp(r.arrival_ms / 1000, tz=dt.UTC).date()
    if day == date:
        return True
    if day != date + dt.timedelta(days=1):
        return False
    if layout == "hour":
        return (r.arrival_ms - d0 - DAY) // HOUR * HOUR < LATENESS
    return r.ingest_ms is not None and r.ingest_ms < d0 + DAY + LATENESS


def _window(ms: int) -> int:
    return ms - ms % MIN


def _half_even(num: int, den: int) -> int:
    return round(Fraction(num, den))  # Python rounds Fractions half to even


def _truth(raw: list[Row], date: dt.date, layout: str, d0: int, ad_ids: list[int], rnd: random.Random,
           stream_root: Path, planted: Counter[str]) -> Truth:
    read = [r for r in raw if _read_by_batch(r, date, layout, d0)]
    invalid = Counter(r.reason for r in read if r.reason)
    valid = [_valid(r) for r in read if not r.reason]
    copies: dict[int, list[_Valid]] = defaultdict(list)
    for r in valid:
        copies[r.click_id].append(r)
    inf = float("inf")
    winners = {cid: min(cs, key=lambda r: (inf if r.ingest_ms is None else r.ingest_ms, r.file, r.pos))
               for cid, cs in copies.items()}
    conflicts = sum(1 for cs in copies.values()
                    if len({r.ad_id for r in cs}) > 1 or len({_window(r.event_ms) for r in cs}) > 1)
    in_day = {cid: w for cid, w in winners.items() if d0 <= w.event_ms < d0 + DAY}
    totals: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    dups: Counter[tuple[int, int]] = Counter()
    late: Counter[tuple[int, int]] = Counter()
    conflict_windows: set[tuple[int, int]] = set()
    for cid, w in in_day.items():
        key = (w.ad_id, _window(w.event_ms))
        totals[key][0] += 1
        totals[key][1] += w.cost
        dups[key] += len(copies[cid]) - 1
        if w.ingest_ms is not None and w.ingest_ms - w.event_ms > STREAM_LATENESS:
            late[key] += 1
        if len({(r.ad_id, _window(r.event_ms)) for r in copies[cid]}) > 1:
            conflict_windows.add(key)

    ledger = {
        "rows_read": len(read),
        "rows_invalid": sum(invalid.values()),
        "invalid_by_reason": dict(sorted(invalid.items())),
        "rows_valid": len(valid),
        "duplicates_removed": len(valid) - len(winners),
        "conflicting_click_ids": conflicts,
        "clicks_out_of_day": len(winners) - len(in_day),
        "billable_clicks": len(in_day),
        "billable_spend_micros": sum(w.cost for w in in_day.values()),
    }

    # The stream counted every in-day click once, in its window, unless it came later than its watermark.
    stream = {k: v[0] - late[k] for k, v in totals.items()}
    cause: dict[tuple[int, int], str] = {}
    for k in totals:
        if late[k]:
            cause[k] = "late_beyond_stream_watermark" if stream[k] > 0 else "missing_window"

    def flagged_near(k: tuple[int, int]) -> bool:
        return any((k[0], k[1] + s * MIN) in cause for s in (-1, 1))

    def clean(k: tuple[int, int], min_clicks: int = 2) -> bool:
        return (k in totals and totals[k][0] >= min_clicks and k not in cause and not dups[k]
                and k not in conflict_windows and not flagged_near(k))

    keys = sorted(totals)
    rnd.shuffle(keys)
    quota = max(3, len(totals) // 2500)
    extra_sink_rows: list[tuple[int, int, int]] = []
    for k in keys:  # raw duplicates counted: windows that hold extra copies, nothing else
        if planted["dup_counted"] >= quota:
            break
        if dups[k] and k not in cause and k not in conflict_windows and not flagged_near(k) and not late[k]:
            stream[k] += dups[k]
            cause[k] = "raw_duplicates_counted"
            planted["dup_counted"] += 1
    for name in ("sink_duplicate_rows", "replay_overcount", "lost_events", "missing_window"):
        for k in keys:
            if planted[name] >= quota:
                break
            if not clean(k):
                continue
            c = totals[k][0]
            if name == "sink_duplicate_rows":
                extra = c if rnd.random() < 0.5 else rnd.randrange(1, c)
                extra_sink_rows.append((k[0], k[1], extra))
                stream[k] += extra
            elif name == "replay_overcount":
                stream[k] += rnd.randrange(1, 4)
            elif name == "lost_events":
                stream[k] -= rnd.randrange(1, c)
            else:
                stream[k] = 0
            cause[k] = name
            planted[name] += 1
    for k in keys:  # a window cut on another clock: x clicks moved into the next minute
        if planted["window_boundary_shift"] >= quota:
            break
        nxt = (k[0], k[1] + MIN)
        if not (clean(k) and clean(nxt, 1)):
            continue
        if any((k[0], k[1] + s * MIN) in cause for s in (-1, 2)):
            continue
        x = rnd.randrange(1, totals[k][0])
        stream[k] -= x
        stream[nxt] += x
        cause[k] = cause[nxt] = "window_boundary_shift"
        planted["window_boundary_shift"] += 1
    phantoms = 0
    for _ in range(10_000):  # stream rows for windows without a billed click
        if phantoms >= quota:
            break
        k = (rnd.choice(ad_ids), d0 + rnd.randrange(0, DAY // MIN) * MIN)
        if k in totals or k in cause or flagged_near(k):
            continue
        stream[k] = rnd.randrange(1, 6)
        cause[k] = "phantom_window"
        phantoms += 1
    planted["phantom_window"] = phantoms

    # The sink's files: one row per non-empty window, re-emitted rows, and rows of other days.
    sink_base = {k: c for k, c in sorted(stream.items()) if c > 0}
    for a, win, extra in extra_sink_rows:
        sink_base[(a, win)] -= extra
    out_of_day = [(ad_ids[0], d0 - MIN, 3), (ad_ids[1], d0 + DAY, 2), (ad_ids[2], d0 + DAY + 5 * MIN, 1)]
    _write_stream(stream_root, date, sorted(sink_base.items()), extra_sink_rows, out_of_day)

    ad_price: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for (a, _), (c, s) in totals.items():
        ad_price[a][0] += c
        ad_price[a][1] += s
    drift: dict[tuple[int, int], dict[str, Any]] = {}
    for k in sorted(set(totals) | {k for k, c in stream.items() if c > 0}):
        b, s = totals[k][0] if k in totals else 0, stream.get(k, 0)
        delta = s - b
        money: int | None
        status = ("missing_in_stream" if s == 0 and k in totals else "missing_in_batch" if k not in totals
                  else "stream_over" if delta > 0 else "stream_under" if delta < 0 else "match")
        if k in totals:
            money = _half_even(delta * totals[k][1], b)
        else:
            c, sp = ad_price.get(k[0], (0, 0))
            money = _half_even(delta * sp, c) if c else None
        drift[k] = {"batch_clicks": b, "stream_clicks": s, "delta": delta, "status": status,
                    "flagged": status != "match", "cause": cause.get(k) if status != "match" else None,
                    "money_at_risk_micros": money}
    in_day_stream = sum(c for c in stream.values() if c > 0)
    stream_counts = {
        "rows_read": len(sink_base) + len(extra_sink_rows) + len(out_of_day),
        "rows_invalid": 0,
        "invalid_by_reason": {},
        "duplicate_keys": len(extra_sink_rows),
        "rows_out_of_day": len(out_of_day),
        "clicks": in_day_stream,
    }
    return Truth(ledger, stream_counts, {k: (v[0], v[1]) for k, v in totals.items()}, drift, dict(planted))


def _write_stream(root: Path, date: dt.date, rows: list[tuple[tuple[int, int], int]],
                  extra: list[tuple[int, int, int]], out_of_day: list[tuple[int, int, int]]) -> None:
    folder = root / f"dt={date.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    ts = pa.timestamp("ms", tz="UTC")

    def table(items: list[tuple[int, int, int]]) -> pa.Table:
        return pa.table({
            "ad_id": pa.array([a for a, _, _ in items], pa.int64()),
            "window_start": pa.array([w for _, w, _ in items], pa.int64()).cast(ts),
            "clicks": pa.array([c for _, _, c in items], pa.int64()),
        })

    pq.write_table(table([(a, w, c) for (a, w), c in rows if c > 0] + out_of_day), folder / "part-0000.parquet")
    pq.write_table(table(extra), folder / "part-0001.parquet")  # re-emitted after a sink crash
    (folder / "_SUCCESS").write_bytes(b"")


def _write_truth(root: Path, truth: Truth, date: dt.date, files: list[str]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    ts = pa.timestamp("us", tz="UTC")
    tk = sorted(truth.totals)
    pq.write_table(pa.table({
        "ad_id": pa.array([a for a, _ in tk], pa.int64()),
        "window_start": pa.array([w * 1000 for _, w in tk], pa.int64()).cast(ts),
        "clicks": pa.array([truth.totals[k][0] for k in tk], pa.int64()),
        "spend_micros": pa.array([truth.totals[k][1] for k in tk], pa.int64()),
    }), root / "totals.parquet")
    dk = sorted(truth.drift)
    pq.write_table(pa.table({
        "ad_id": pa.array([a for a, _ in dk], pa.int64()),
        "window_start": pa.array([w * 1000 for _, w in dk], pa.int64()).cast(ts),
        **{c: pa.array([truth.drift[k][c] for k in dk])
           for c in ("batch_clicks", "stream_clicks", "delta", "status", "flagged", "cause", "money_at_risk_micros")},
    }), root / "drift.parquet")
    by_cause: dict[str, dict[str, int]] = {}
    for v in truth.drift.values():
        if v["cause"]:
            c = by_cause.setdefault(v["cause"], {"keys": 0, "clicks": 0})
            c["keys"] += 1
            c["clicks"] += abs(v["delta"])
    doc = {
        "date": date.isoformat(),
        "config": {"lateness": "2h", "max_id_skew": "5m", "tolerance_abs": 0, "tolerance_rel": 0,
                   "stream_allowed_lateness": "10m"},
        "ledger": truth.ledger,
        "stream": truth.stream,
        "drift": {"keys": len(truth.drift), "flagged": sum(v["flagged"] for v in truth.drift.values()),
                  "by_cause": dict(sorted(by_cause.items()))},
        "expected_exit_code": 3 if any(v["flagged"] for v in truth.drift.values()) else 0,
        "planted": truth.planted,
        "raw_files_written": len(files),
    }
    (root / "truth.json").write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")

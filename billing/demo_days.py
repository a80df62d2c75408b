"""A demo lake of several consecutive days (``billing demo --days N``), with the truth of each day.

:mod:`billing.demo` plants every fault of one day in depth; a month needs many days whose truth stays
exact across day boundaries, so this generator keeps each day simple and independent: every click of
day D has its event time in D and arrives seconds later (so near midnight in ``dt=D+1/hour=00``, inside
D's horizon, where the next day counts it out of its day), 2% of clicks are written twice (a double fire
the batch removes), and the stream side counts the clicks of each (ad, minute) with drift planted window
by window: with probability ``drift`` (ten times that on a spike day) a window loses a click or counts
one too many. The truth (``truth/dt=D.json``: per ad billable clicks and spend, the planted drift) comes
from this module's bookkeeping in plain Python, never from the pipeline's SQL.

:func:`add_late_file` restates a day: a file of new clicks arriving late in D, with their truth per ad.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing.config import SNOWFLAKE_EPOCH_MS, SNOWFLAKE_TIME_SHIFT

MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
ADS = 40
#: Relative click volume per hour of day (UTC).
HOUR_WEIGHTS = [0.4, 0.3, 0.25, 0.2, 0.2, 0.3, 0.5, 0.8, 1, 1.1, 1.2, 1.2,
                1.3, 1.2, 1.1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.4, 1.1, 0.8, 0.6]
RAW_SCHEMA = pa.schema([("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", pa.timestamp("ms", "UTC")),
                        ("ingest_time", pa.timestamp("ms", "UTC")), ("cost_micros", pa.int64())])
STREAM_SCHEMA = pa.schema([("ad_id", pa.int64()), ("window_start", pa.timestamp("us", "UTC")),
                           ("clicks", pa.int64())])

PerAd = dict[int, tuple[int, int]]


def _ms(d: dt.date) -> int:
    return int(dt.datetime.combine(d, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)


def _snowflake(event_ms: int, worker: int, seq: int) -> int:
    return ((event_ms - SNOWFLAKE_EPOCH_MS) << SNOWFLAKE_TIME_SHIFT) | (worker << 12) | seq


def _prices(seed: int) -> dict[int, int]:
    rnd = random.Random(f"prices-{seed}")
    return {2000 + k: rnd.randrange(50_000, 2_000_000, 1000) for k in range(ADS)}


def _write_raw(root: Path, rows: list[tuple[int, int, int, int, int]], name: str) -> list[str]:
    """rows: (click_id, ad_id, event_ms, arrival_ms, cost), written by arrival partition, in arrival order."""
    parts: dict[str, list[tuple[int, int, int, int, int]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r[3], r[0])):
        t = dt.datetime.fromtimestamp(r[3] / 1000, dt.UTC)
        parts[f"dt={t.date().isoformat()}/hour={t.hour:02d}"].append(r)
    written = []
    for part, rs in sorted(parts.items()):
        folder = root / part
        folder.mkdir(parents=True, exist_ok=True)
        cols = list(zip(*rs, strict=True))
        table = pa.table([pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.int64()),
                          pa.array(cols[2], pa.int64()).cast(pa.timestamp("ms", "UTC")),
                          pa.array(cols[3], pa.int64()).cast(pa.timestamp("ms", "UTC")),
                          pa.array(cols[4], pa.int64())], schema=RAW_SCHEMA)
        pq.write_table(table, folder / f"{name}.parquet")
        written.append(f"{part}/{name}.parquet")
    return written


def generate_day(out: Path, date: dt.date, *, rows: int, seed: int, drift: float) -> dict[str, Any]:
    """One day of the lake: raw clicks, the stream's windows with drift planted, and the day's truth."""
    rnd = random.Random(f"{seed}-{date.isoformat()}")
    prices = _prices(seed)
    ads = sorted(prices)
    weights = [1 / (k ** 1.1) for k in range(1, ADS + 1)]
    d0 = _ms(date)
    raw: list[tuple[int, int, int, int, int]] = []
    windows: dict[tuple[int, int], int] = defaultdict(int)
    truth: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    n = int(rows * rnd.uniform(0.9, 1.1))
    for j in range(n):
        ev = d0 + rnd.choices(range(24), HOUR_WEIGHTS)[0] * HOUR + rnd.randrange(HOUR)
        ad = rnd.choices(ads, weights)[0]
        cost = prices[ad] + rnd.randrange(-prices[ad] // 10, prices[ad] // 10 + 1)
        cid = _snowflake(ev, (j // 4096) % 1023, j % 4096)
        arrival = ev + rnd.randrange(100, 20_000)
        raw.append((cid, ad, ev, arrival, cost))
        if rnd.random() < 0.02:  # double fire: the same click again, milliseconds later
            raw.append((cid, ad, ev, arrival + rnd.randrange(1, 40), cost))
        windows[(ad, ev - ev % MIN)] += 1
        truth[ad][0] += 1
        truth[ad][1] += cost
    files = _write_raw(out / "raw", raw, f"part-{date.strftime('%Y%m%d')}")
    stream, abs_drift = [], 0
    for (ad, w), clicks in sorted(windows.items()):
        c = clicks
        if rnd.random() < drift:
            c = clicks - 1 if rnd.random() < 0.5 else clicks + 1
            abs_drift += 1
        stream.append((ad, w * 1000, c))
    folder = out / "stream" / f"dt={date.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    cols = list(zip(*stream, strict=True))
    pq.write_table(pa.table([pa.array(cols[0], pa.int64()), pa.array(cols[1], pa.int64()).cast(STREAM_SCHEMA[1].type),
                             pa.array(cols[2], pa.int64())], schema=STREAM_SCHEMA), folder / "part-0.parquet")
    day = {"date": date.isoformat(), "ads": {str(a): list(v) for a, v in sorted(truth.items())},
           "billable_clicks": sum(v[0] for v in truth.values()),
           "billable_spend_micros": sum(v[1] for v in truth.values()),
           "planted_drift_windows": abs_drift, "abs_delta_clicks": abs_drift, "drift_probability": drift,
           "raw_rows": len(raw), "raw_files": files}
    (out / "truth").mkdir(parents=True, exist_ok=True)
    (out / "truth" / f"dt={date.isoformat()}.json").write_text(json.dumps(day, indent=2, allow_nan=False) + "\n")
    return day


def generate_days(out: Path, first: dt.date, days: int, *, rows: int = 4000, seed: int = 1, drift: float = 0.01,
                  spike_days: tuple[dt.date, ...] = (), spike_factor: float = 10.0) -> list[dict[str, Any]]:
    """``days`` consecutive days from ``first``; on each of ``spike_days`` the drift is ``spike_factor`` times."""
    return [generate_day(out, d, rows=rows, seed=seed, drift=drift * (spike_factor if d in spike_days else 1))
            for d in (first + dt.timedelta(days=k) for k in range(days))]


def truth_per_ad(out: Path, date: dt.date) -> PerAd:
    """The planted truth of a day (late files added to it included), per ad: (clicks, spend)."""
    data = json.loads((out / "truth" / f"dt={date.isoformat()}.json").read_text())
    ads = {int(a): (c, s) for a, (c, s) in data["ads"].items()}
    for late in data.get("late_files", []):
        for a, (c, s) in late["ads"].items():
            c0, s0 = ads.get(int(a), (0, 0))
            ads[int(a)] = (c0 + c, s0 + s)
    return ads


def add_late_file(out: Path, date: dt.date, clicks: dict[int, int], *, seed: int = 1) -> PerAd:
    """Late data for a day already reconciled: new clicks of ``date`` (``clicks`` per ad) in a new raw file
    arriving in its last hour. Returns what they add per ad, and records it in the day's truth."""
    rnd = random.Random(f"late-{seed}-{date.isoformat()}-{sorted(clicks.items())}")
    prices = _prices(seed)
    truth_file = out / "truth" / f"dt={date.isoformat()}.json"
    data = json.loads(truth_file.read_text())
    k = len(data.get("late_files", []))
    d0 = _ms(date)
    rows, added = [], {}
    j = 0
    for ad, n in sorted(clicks.items()):
        spend = 0
        for _ in range(n):
            ev = d0 + 22 * HOUR + rnd.randrange(HOUR)
            cost = prices.get(ad, 500_000)
            arrival = d0 + 23 * HOUR + rnd.randrange(HOUR // 2)
            rows.append((_snowflake(ev, 1023, 4000 - 100 * k - j % 100), ad, ev, arrival, cost))
            spend += cost
            j += 1
        added[ad] = (n, spend)
    _write_raw(out / "raw", rows, f"late-{k}")
    data.setdefault("late_files", []).append({"ads": {str(a): list(v) for a, v in added.items()}})
    truth_file.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    return added

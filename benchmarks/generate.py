"""Days at benchmark scale, in named shapes, generated with numpy in hour-sized pieces.

``dense`` (the original day): 10,000 Zipf-skewed ads, Snowflake click ids from the event time, ~2%
duplicate copies (capture double fires and replays, arriving later), arrival-partitioned by hour as
an ingest tier writes them (rows of a file roughly in arrival order), plus the stream side's sink with
a little planted drift. The other shapes change one thing each (:data:`SHAPES`):

- ``longtail``: 1,000,000 ads with a cubic popularity (ad = floor(ads x u^3)): ~1.1-1.2 clicks per window
- ``disorder``: the dense day, but each file's rows shuffled (neither click_id nor ingest_time order)
- ``noingest``: the dense day without the ingest_time column (the winner is the first by file and row)
- ``dupheavy``: 20% duplicate copies, each arriving up to 2 h after the original

Reproducible (seeded) and cached: a folder with ``_DONE`` is reused.

    python -m benchmarks.generate --rows 100000000 --shape longtail --out benchmarks/data/longtail-100M
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from billing.config import SNOWFLAKE_EPOCH_MS

DATE = dt.date(2026, 11, 26)
ADS = 10_000
HOUR_MS = 3_600_000
DUP_RATE = 0.02
ROW_GROUP = 1 << 20
TS = pa.timestamp("ms", tz="UTC")


def _d0() -> int:
    return int(dt.datetime.combine(DATE, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)


@dataclass(frozen=True)
class Shape:
    ads: int = ADS
    cubic: bool = False  # popularity: ad = floor(ads x u^3) instead of Zipf(1.25)
    dup_rate: float = DUP_RATE
    late_dups_ms: int = 0  # > 0: every copy arrives uniformly up to this late (else the dense mixture)
    shuffled: bool = False  # each file's rows in random order
    ingest: bool = True  # write the ingest_time column


SHAPES = {
    "dense": Shape(),
    "longtail": Shape(ads=1_000_000, cubic=True),
    "disorder": Shape(shuffled=True),
    "noingest": Shape(ingest=False),
    "dupheavy": Shape(dup_rate=0.20, late_dups_ms=2 * HOUR_MS),
}


def generate(out: Path, rows: int, seed: int = 42, shape: str = "dense") -> dict:
    done = out / "_DONE"
    if done.exists():
        return json.loads(done.read_text())
    sh = SHAPES[shape]
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    d0 = _d0()
    weights = np.array([0.4, 0.3, 0.25, 0.2, 0.2, 0.3, 0.5, 0.8, 1, 1.1, 1.2, 1.2,
                        1.3, 1.2, 1.1, 1.1, 1.2, 1.3, 1.4, 1.5, 1.4, 1.1, 0.8, 0.6])
    unique_total = int(rows / (1 + sh.dup_rate))
    per_hour = np.floor(unique_total * weights / weights.sum()).astype(np.int64)
    per_hour[-1] += unique_total - per_hour.sum()
    cpc = rng.integers(50_000, 2_000_000, sh.ads)
    # true clicks per (ad, minute) key for the stream side, hour by hour (an hour's keys are its own)
    key_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    carry: list[pa.Table] = []
    raw = out / "raw"
    files = 0
    for hour in range(26):
        pieces = carry
        carry = []
        if hour < 24:
            n = int(per_hour[hour])
            ev = np.sort(d0 + hour * HOUR_MS + rng.integers(0, HOUR_MS, n))
            # per-millisecond sequence numbers make (ms, seq) unique: a valid Snowflake id
            starts = np.r_[0, np.flatnonzero(np.diff(ev)) + 1]
            seq = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
            worker = rng.integers(0, 1024, n)
            cid = ((ev - SNOWFLAKE_EPOCH_MS) << 22) | (worker << 12) | (seq & 4095)
            if sh.cubic:
                ad = np.minimum((rng.random(n) ** 3 * sh.ads).astype(np.int64), sh.ads - 1)
            else:
                ad = np.minimum(rng.zipf(1.25, n) - 1, sh.ads - 1)
            delay = rng.lognormal(6.5, 1.2, n).astype(np.int64)
            ingest = ev + delay
            hour_keys, hour_counts = np.unique(ad * 1440 + (ev - d0) // 60_000, return_counts=True)
            key_parts.append(hour_keys)
            count_parts.append(hour_counts)
            cost = cpc[ad] + rng.integers(-1000, 1000, n)
            k = int(n * sh.dup_rate)
            pick = rng.choice(n, k, replace=False)
            if sh.late_dups_ms:
                lag = rng.integers(0, sh.late_dups_ms, k)
            else:
                lag = np.where(rng.random(k) < 0.7, rng.integers(0, 50, k), rng.integers(60_000, 3 * HOUR_MS, k))
            table = pa.table({
                "click_id": np.concatenate([cid, cid[pick]]),
                "ad_id": np.concatenate([ad, ad[pick]]),
                "event_time": pa.array(np.concatenate([ev, ev[pick]]), pa.int64()).cast(TS),
                "ingest_time": pa.array(np.concatenate([ingest, ingest[pick] + lag]), pa.int64()).cast(TS),
                "cost_micros": np.concatenate([cost, cost[pick]]),
            })
            pieces.append(table)
        if not pieces:
            continue
        t = pa.concat_tables(pieces)
        arrival_hour = ((t.column("ingest_time").cast(pa.int64()).to_numpy() - d0) // HOUR_MS)
        here = arrival_hour <= hour
        carry = [t.filter(pa.array(~here))] if (~here).any() and hour < 25 else []
        t = t.filter(pa.array(here))
        t = t.sort_by("ingest_time")
        if sh.shuffled:
            t = t.take(pa.array(rng.permutation(t.num_rows)))
        if not sh.ingest:
            t = t.drop_columns(["ingest_time"])
        day = DATE if hour < 24 else DATE + dt.timedelta(days=1)
        folder = raw / f"dt={day.isoformat()}" / f"hour={hour % 24:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        n_files = max(1, -(-t.num_rows // 8_000_000))
        size = -(-t.num_rows // n_files)
        for i in range(n_files):
            pq.write_table(t.slice(i * size, size), folder / f"part-{i:04d}.parquet", row_group_size=ROW_GROUP,
                           compression="snappy")
            files += 1
    # the stream side: the true counts, with a little drift
    # the hours' keys are disjoint (a key's minute is in one hour) and each hour's are sorted
    order = np.argsort(np.concatenate(key_parts), kind="stable")
    keys = np.concatenate(key_parts)[order]
    clicks = np.concatenate(count_parts)[order]
    drift_idx = rng.choice(len(keys), max(1, len(keys) // 1000), replace=False)
    clicks[drift_idx] += rng.integers(-1, 3, len(drift_idx))
    keep = clicks > 0
    sfolder = out / "stream" / f"dt={DATE.isoformat()}"
    sfolder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "ad_id": (keys[keep] // 1440).astype(np.int64),
        "window_start": pa.array(d0 + (keys[keep] % 1440) * 60_000, pa.int64()).cast(TS),
        "clicks": clicks[keep].astype(np.int64),
    }), sfolder / "part-0000.parquet")
    meta = {"shape": shape, "rows_requested": rows, "unique_clicks": int(unique_total), "windows": len(keys),
            "raw_files": files,
            "raw_bytes": sum(p.stat().st_size for p in raw.rglob("*.parquet")),
            "seconds": round(time.monotonic() - started, 1), "date": DATE.isoformat()}
    done.write_text(json.dumps(meta))
    return meta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=100_000_000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="dense")
    a = ap.parse_args()
    print(json.dumps(generate(a.out, a.rows, a.seed, a.shape)))


if __name__ == "__main__":
    main()

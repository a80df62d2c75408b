"""Read time of one day's stream side: PostgreSQL sink table (ADBC) vs one Parquet file (pyarrow).

    python -m benchmarks.pg_stream [--rows 1000000] [--uri postgresql://postgres@127.0.0.1:5432/test]

Writes ROWS (ad, minute) aggregates of one day to one Parquet file, loads the same rows into a table of a
fresh schema (dropped afterwards) and times, best of 3: ``pq.read_table`` of the file, billing's file path
(``billing.io.stream.read_stream``: footer, structure check, normalisation) and ``billing.io.postgres_read.read_day``
(snapshot, type check, bound day filter, normalisation, sort and SHA-256).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import adbc_driver_postgresql.dbapi as pg
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from billing.io.postgres import StreamDatabase
from billing.io.postgres_load import load_stream_table
from billing.io.postgres_read import read_day
from billing.io.storage import open_store
from billing.io.stream import discover_stream, inspect_stream, read_stream

DATE = dt.date(2026, 11, 26)


def best(fn: Callable[[], Any], n: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--uri", default="postgresql://postgres@127.0.0.1:5432/test")
    a = ap.parse_args()
    rng = np.random.default_rng(13)
    n = a.rows
    day0 = int(dt.datetime.combine(DATE, dt.time(), tzinfo=dt.UTC).timestamp() * 1_000_000)
    minutes = np.arange(n, dtype=np.int64) % 1440
    table = pa.table({
        "ad_id": pa.array(np.arange(n, dtype=np.int64) // 1440 + 1),
        "window_start": pa.array(day0 + minutes * 60_000_000).cast(pa.timestamp("us", tz="UTC")),
        "clicks": pa.array(rng.integers(1, 50, n)),
        "spend_micros": pa.array(rng.integers(1_000, 5_000_000, n)),
    })
    schema = f"bench13_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / f"dt={DATE.isoformat()}"
        folder.mkdir()
        pq.write_table(table, folder / "part-0.parquet")
        uri = f"{a.uri}?table={schema}.sink"
        try:
            t = time.perf_counter()
            load_stream_table(uri, tmp, DATE, mode="upsert")
            load_s = time.perf_counter() - t
            with pg.connect(a.uri, autocommit=True) as c, c.cursor() as cur:
                cur.execute(f'ANALYZE "{schema}".sink')
            store = open_store(tmp)
            pq_s, _ = best(lambda: pq.read_table(folder / "part-0.parquet"))
            br_s, _ = best(lambda: read_stream(store, inspect_stream(store, discover_stream(store, DATE))))
            db = StreamDatabase.parse(uri)
            pg_s, got = best(lambda: read_day(db, DATE))
            assert got.rows_read == n
        finally:
            with pg.connect(a.uri, autocommit=True) as c, c.cursor() as cur:
                cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    print(f"rows {n:,}; load into PostgreSQL (upsert, COPY + INSERT ON CONFLICT) {load_s:.2f} s")
    for name, s in [("Parquet, pq.read_table", pq_s), ("Parquet, billing read_stream", br_s),
                    ("PostgreSQL, read_day", pg_s)]:
        print(f"{name:32s} {s:7.3f} s  {n / s:13,.0f} rows/s")


if __name__ == "__main__":
    main()

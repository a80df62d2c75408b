"""Cost of publishing one day's totals as a Delta table partition and exporting them to PostgreSQL.

    python -m benchmarks.tables [--rows 5600000] [--uri postgresql://postgres@127.0.0.1:5432/test]

Generates ROWS synthetic totals (ad_id int64, window_start timestamp[us, UTC], clicks int64, spend_micros
int64; sorted like totals.parquet), then times: ``billing.io.delta.replace_day`` into a fresh local table
(the first replace creates it), a second replace of the same day (a restatement: the old files are
removed in the same commit), ``day_version``; ``billing.io.invoicing.export_day`` into a fresh schema
(dropped afterwards): the first export, an unchanged re-export, and a restatement (DELETE + COPY).
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
import uuid
from pathlib import Path

import adbc_driver_postgresql.dbapi as pg
import numpy as np
import pyarrow as pa

from billing.io.delta import replace_day
from billing.io.delta_read import day_version
from billing.io.invoicing import export_day

DATE = dt.date(2026, 11, 26)


def synthetic_totals(rows: int, seed: int = 1) -> pa.Table:
    """``rows`` distinct (ad, minute) keys of one day, sorted by (ad_id, window_start)."""
    rng = np.random.default_rng(seed)
    ads = -(-rows // 1440)
    ad_id = np.repeat(np.arange(1, ads + 1, dtype=np.int64), 1440)[:rows]
    start = int(dt.datetime.combine(DATE, dt.time(), tzinfo=dt.UTC).timestamp() * 1_000_000)
    minute = np.tile(np.arange(1440, dtype=np.int64), ads)[:rows]
    clicks = rng.integers(1, 50, rows, dtype=np.int64)
    return pa.table({
        "ad_id": ad_id,
        "window_start": pa.array(start + minute * 60_000_000, pa.timestamp("us", tz="UTC")),
        "clicks": clicks,
        "spend_micros": clicks * rng.integers(10_000, 2_000_000, rows, dtype=np.int64),
    })


def timed(label: str, fn):  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    out = fn()
    print(f"{label:<48} {time.perf_counter() - t:8.2f} s")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=5_600_000)
    ap.add_argument("--uri", default="postgresql://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    totals = timed(f"generate {args.rows:,} rows", lambda: synthetic_totals(args.rows))
    print(f"{'':<48} {totals.nbytes / 1e6:8.1f} MB in Arrow")
    sha = "ab" * 32
    with tempfile.TemporaryDirectory() as tmp:
        uri = str(Path(tmp) / "totals")
        timed("delta replace_day (creates the table)", lambda: replace_day(
            uri, DATE, totals, metadata={"billing_version": "1", "manifest_sha256": sha}))
        timed("delta replace_day (restatement)", lambda: replace_day(
            uri, DATE, totals, metadata={"billing_version": "2", "manifest_sha256": sha}))
        timed("delta day_version", lambda: day_version(uri, DATE))
        size = sum(p.stat().st_size for p in Path(uri).rglob("*.parquet") if "date=" in str(p))
        print(f"{'':<48} {size / 1e6:8.1f} MB of Parquet (two versions)")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    with pg.connect(args.uri, autocommit=True) as c, c.cursor() as cur:
        cur.execute(f'CREATE SCHEMA "{schema}"')
    target = f"{args.uri}?table={schema}.billing_totals"
    try:
        timed("export_day (first export, creates the tables)", lambda: export_day(
            target, DATE, totals, version=1, manifest_sha256=sha))
        timed("export_day (same version again: unchanged)", lambda: export_day(
            target, DATE, totals, version=1, manifest_sha256=sha))
        timed("export_day (restatement: DELETE + COPY)", lambda: export_day(
            target, DATE, totals, version=2, manifest_sha256="cd" * 32))
    finally:
        with pg.connect(args.uri, autocommit=True) as c, c.cursor() as cur:
            cur.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()

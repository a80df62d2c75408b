"""The workloads the benchmark compares, each run in a process of its own:

    python -m benchmarks.workloads {scan|duckdb|polars|diff} DATA OUT_DIR

``billing`` itself is run through its console script by ``benchmarks.run``.
Every workload reads the same files: the horizon of the day (dt=D, and dt=D+1 hours 00-01).
"""

from __future__ import annotations

import sys
from pathlib import Path

DATE, NEXT = "2026-11-26", "2026-11-27"


def horizon_files(data: Path) -> list[str]:
    files = sorted(str(p) for p in (data / "raw" / f"dt={DATE}").rglob("*.parquet"))
    for hour in ("00", "01"):
        files += sorted(str(p) for p in (data / "raw" / f"dt={NEXT}" / f"hour={hour}").glob("*.parquet"))
    return files


def stream_files(data: Path) -> list[str]:
    return sorted(str(p) for p in (data / "stream" / f"dt={DATE}").rglob("*.parquet"))


def scan(files: list[str], out: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SELECT count(*), sum(click_id), sum(ad_id), max(event_time) FROM read_parquet($f)",
                {"f": files}).fetchall()


def naive_duckdb(files: list[str], out: Path) -> None:
    """What a user would write: one query, GROUP BY click_id, then GROUP BY ad, minute."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
        COPY (
          SELECT ad_id, time_bucket(INTERVAL 1 MINUTE, event_time) AS window_start, count(*) AS clicks
          FROM (SELECT click_id, any_value(ad_id) AS ad_id, any_value(event_time) AS event_time
                FROM read_parquet($f) GROUP BY click_id)
          GROUP BY ALL ORDER BY ALL
        ) TO '{out / "totals.parquet"}' (FORMAT parquet)""", {"f": files})


def naive_reconcile(files: list[str], out: Path, stream: list[str]) -> None:
    """The least any reconciliation must do, as one DuckDB query: the naive dedup + count of
    :func:`naive_duckdb`, plus the stream side summed per key, both sides joined on every key of the union,
    and the delta written in key order (drift.parquet; no causes, money, quarantine, report or tables).
    It shows what reading and joining the stream side costs before billing adds anything of its own."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"""
        COPY (
          WITH batch AS (
            SELECT ad_id, time_bucket(INTERVAL 1 MINUTE, event_time) AS window_start, count(*) AS clicks
            FROM (SELECT click_id, any_value(ad_id) AS ad_id, any_value(event_time) AS event_time
                  FROM read_parquet($f) GROUP BY click_id)
            GROUP BY ALL),
          stream AS (SELECT ad_id, window_start, sum(clicks) AS clicks FROM read_parquet($s) GROUP BY ALL)
          SELECT ad_id, window_start, coalesce(b.clicks, 0) AS batch_clicks, coalesce(s.clicks, 0) AS stream_clicks,
                 coalesce(s.clicks, 0) - coalesce(b.clicks, 0) AS delta
          FROM batch AS b FULL OUTER JOIN stream AS s USING (ad_id, window_start)
          ORDER BY ad_id, window_start
        ) TO '{out / "drift.parquet"}' (FORMAT parquet)""", {"f": files, "s": stream})


def naive_polars(files: list[str], out: Path) -> None:
    import polars as pl

    lf = (pl.scan_parquet(files)
          .group_by("click_id").agg(pl.col("ad_id").first(), pl.col("event_time").first())
          .group_by("ad_id", pl.col("event_time").dt.truncate("1m").alias("window_start"))
          .agg(pl.len().alias("clicks"))
          .sort("ad_id", "window_start"))
    lf.collect(engine="streaming").write_parquet(out / "totals.parquet")


WORKLOADS = {"scan": scan, "duckdb": naive_duckdb, "polars": naive_polars}

if __name__ == "__main__":
    name, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    if name == "diff":
        naive_reconcile(horizon_files(data), out, stream_files(data))
    else:
        WORKLOADS[name](horizon_files(data), out)

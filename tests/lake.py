"""Helpers that hand-build tiny lakes for rule-by-rule tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing.config import ReconcileConfig
from billing.demo import snowflake

D = dt.date(2026, 11, 26)
T0 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def at(hours: float = 0, minutes: float = 0, seconds: float = 0, day: int = 0) -> dt.datetime:
    return T0 + dt.timedelta(days=day, hours=hours, minutes=minutes, seconds=seconds)


def cid(t: dt.datetime, seq: int = 0, worker: int = 1) -> int:
    return snowflake(int(t.timestamp() * 1000), worker, seq)


def click(t: dt.datetime, ad: int = 1, seq: int = 0, ingest: dt.datetime | str | None = "auto",
          cost: int | None = 1_000, **extra: Any) -> dict[str, Any]:
    row = {"click_id": cid(t, seq), "ad_id": ad, "event_time": t,
           "ingest_time": t + dt.timedelta(seconds=1) if ingest == "auto" else ingest, "cost_micros": cost}
    row.update(extra)
    return row


RAW_SCHEMA = pa.schema([("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", pa.timestamp("us", tz="UTC")),
                        ("ingest_time", pa.timestamp("us", tz="UTC")), ("cost_micros", pa.int64())])


def write_raw(root: Path, rel: str, rows: list[dict[str, Any]], schema: pa.Schema | None = None) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if schema is None:
        schema = RAW_SCHEMA
        extras = [k for r in rows for k in r if k not in schema.names]
        for k in dict.fromkeys(extras):
            schema = schema.append(pa.field(k, pa.string()))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def write_stream(root: Path, rows: list[tuple[int, dt.datetime, int]], name: str = "part-0.parquet",
                 date: dt.date = D, spend: list[int | None] | None = None) -> Path:
    path = root / f"dt={date.isoformat()}" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    cols: dict[str, pa.Array] = {
        "ad_id": pa.array([r[0] for r in rows], pa.int64()),
        "window_start": pa.array([r[1] for r in rows], pa.timestamp("us", tz="UTC")),
        "clicks": pa.array([r[2] for r in rows], pa.int64()),
    }
    if spend is not None:
        cols["spend_micros"] = pa.array(spend, pa.int64())
    pq.write_table(pa.table(cols), path)
    return path


def config(tmp: Path, **kw: Any) -> ReconcileConfig:
    base = {"date": D, "raw": str(tmp / "raw"), "stream": str(tmp / "stream"), "out": str(tmp / "out"),
            "memory_limit": 1536 << 20, "threads": 2}
    base.update(kw)
    return ReconcileConfig(**base)


def minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)

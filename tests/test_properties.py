"""Property: dedup is order-independent. Shuffling rows within and across files, and renaming
files, never changes a total, as long as a click's copies either agree or arrive at distinct times
(the only case where position decides the winner is a tie, and ties are broken by position)."""

from __future__ import annotations

import datetime as dt
import random
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing.run.local import reconcile
from tests.lake import at, cid, config, write_raw, write_stream

pytestmark = pytest.mark.slow

copy_strategy = st.tuples(
    st.integers(0, 3),  # ad
    st.integers(0, 2),  # minute offset of the copy's event time (conflicts across windows)
    st.integers(0, 10_000),  # ingest offset in ms
    st.booleans(),  # null ingest
)
click_strategy = st.lists(st.tuples(st.integers(0, 30), copy_strategy), min_size=1, max_size=60)


def rows_from(spec: list[tuple[int, tuple[int, int, int, bool]]]) -> list[dict]:
    rows, seen_ingest = [], set()
    for seq, (ad, mshift, ing_ms, null_ing) in spec:
        base = at(10, seq)
        ingest = None if null_ing else base + dt.timedelta(milliseconds=ing_ms)
        key = (seq, None if ingest is None else ing_ms)
        if key in seen_ingest:  # same click, same arrival: make the copy identical (a true tie)
            continue
        seen_ingest.add(key)
        rows.append({"click_id": cid(base, seq), "ad_id": ad, "event_time": base + dt.timedelta(minutes=mshift),
                     "ingest_time": ingest, "cost_micros": 100 + ad})
    # all null-ingest copies of one click must agree, since they tie on time
    first_null: dict[int, dict] = {}
    for r in rows:
        if r["ingest_time"] is None:
            first_null.setdefault(r["click_id"], r)
            r.update(ad_id=first_null[r["click_id"]]["ad_id"], event_time=first_null[r["click_id"]]["event_time"])
    return rows


def totals_of(rows: list[dict], layout_seed: int, root: Path) -> list[dict]:
    rnd = random.Random(layout_seed)
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    n_files = rnd.randint(1, 4)
    raw = root / "raw"
    names = rnd.sample(range(1000), n_files)
    size = -(-len(shuffled) // n_files)
    for i in range(n_files):
        chunk = shuffled[i * size:(i + 1) * size]
        if chunk:
            write_raw(raw, f"dt=2026-11-26/hour={rnd.randint(0, 23):02d}/f{names[i]}.parquet", chunk)
    write_stream(root / "stream", [])
    result = reconcile(config(root, threads=1, memory_limit=1536 << 20))
    return pq.read_table(Path(result.commit.url) / "totals.parquet").to_pylist()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=click_strategy, seed_a=st.integers(0, 10**6), seed_b=st.integers(0, 10**6))
def test_shuffling_rows_and_files_never_changes_a_total(spec, seed_a: int, seed_b: int) -> None:
    rows = rows_from(spec)
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        ta = totals_of(rows, seed_a, Path(a))
        tb = totals_of(rows, seed_b, Path(b))
    assert ta == tb
    assert sum(r["clicks"] for r in ta) == len({r["click_id"] for r in rows})

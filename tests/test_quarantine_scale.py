"""Days with millions of quarantined rows: the quarantine is assembled in Arrow, never as Python rows.

An outsider's trial: 2.4M invalid raw rows took a run to 2.6 GiB at --memory-limit 1.5GiB (the report turned the
whole quarantine into Python dicts to pick two examples per reason; the pointers were grouped as Python tuples;
pandera converted the stream quarantine and conflicts whole). Each replacement is checked here against the
plain-Python way it replaced, on inputs shaped to catch the order.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billing import contracts, schemas
from billing.errors import OutputContractError
from billing.io import stream as stream_io
from billing.io.storage import LocalStore
from billing.report.page import _quarantine_examples


def test_by_file_groups_pointers_as_the_python_grouping_did() -> None:
    rnd = random.Random(7)
    triples = [(rnd.randrange(5), rnd.randrange(10_000), rnd.choice(["b", "a", "c"])) for _ in range(3000)]
    pointers = pa.table({"file_id": pa.array([t[0] for t in triples], pa.int32()),
                         "row_no": pa.array([t[1] for t in triples], pa.int64()),
                         "reason": pa.array([t[2] for t in triples], pa.string())})
    grouped: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for fid, row, reason in triples:
        grouped[fid].append((row, reason))
    expected = [(fid, sorted(grouped[fid])) for fid in sorted(grouped)]
    got = [(fid, list(zip(rows.to_pylist(), reasons.to_pylist(), strict=True)))
           for fid, rows, reasons in stream_io.by_file(pointers)]
    assert got == expected
    assert stream_io.by_file(pointers.slice(0, 0)) == []


def test_quarantine_examples_are_the_first_two_rows_of_each_reason_in_table_order() -> None:
    rnd = random.Random(3)
    n = 500
    reasons = [rnd.choice(["null_ad_id", "negative_cost", "id_time_mismatch"]) for _ in range(n)]
    table = pa.table({"click_id": pa.array(range(n), pa.int64()), "reason": reasons,
                      "source_file": ["f.parquet"] * n, "source_row": pa.array(range(n), pa.int64())})
    seen: dict[str, int] = defaultdict(int)
    expected = []
    for r in table.to_pylist():  # the old way: every row as Python, the first two per reason kept
        if seen[r["reason"]] < 2:
            seen[r["reason"]] += 1
            expected.append([r["reason"], f"f.parquet row {r['source_row']}"])
    got = [row[:2] for row in _quarantine_examples(table).rows]
    assert got == expected and len(got) == 6


def test_quarantined_stream_rows_read_in_batches_are_those_of_the_whole_file(tmp_path: Path, monkeypatch) -> None:
    n = 10_000
    rng = np.random.default_rng(1)
    t0 = np.datetime64("2026-11-26T00:00", "us")
    table = pa.table({"ad_id": pa.array(rng.integers(1, 50, n), pa.int64()),
                      "window_start": pa.array(t0 + rng.integers(0, 1440, n).astype("timedelta64[m]")),
                      "clicks": pa.array(rng.integers(-3, 9, n), pa.int64()),
                      "note": pa.array([f"n{i}" for i in range(n)])})
    (tmp_path / "dt=2026-11-26").mkdir()
    pq.write_table(table, tmp_path / "dt=2026-11-26" / "s.parquet", row_group_size=3000)
    store = LocalStore(tmp_path)
    src = stream_io.inspect_stream(store, stream_io.discover_stream(store, dt.date(2026, 11, 26)))[0]
    monkeypatch.setattr(stream_io, "QUARANTINE_BATCH", 777)  # many batches, rows taken from some, not others
    rows = pa.array(sorted(rng.choice(n, 1234, replace=False).tolist()), pa.int64())
    norm, full = stream_io.stream_rows_at(store, src, rows)
    whole_norm = stream_io.stream_rows(store, src)[0]  # the whole file normalised, as the diff reads it
    whole_full = pq.read_table(tmp_path / "dt=2026-11-26" / "s.parquet")
    assert norm.equals(whole_norm.take(rows)) and full.equals(whole_full.take(rows))
    assert all(c.num_chunks == 1 for c in norm.columns + full.columns)  # chunks decide Parquet pages


def test_check_output_takes_the_quick_path_and_hands_a_broken_table_to_pandera(monkeypatch) -> None:
    calls = []
    real = schemas.StreamQuarantine.validate
    monkeypatch.setattr(schemas.StreamQuarantine, "validate", lambda *a, **k: calls.append(1) or real(*a, **k))
    good = schemas.arrow_schema(schemas.StreamQuarantine).empty_table()
    cols = {f.name: pa.array([None], f.type) for f in good.schema}
    cols.update(reason=pa.array([schemas.STREAM_REASONS[0]]), source_file=pa.array(["s.parquet"]),
                source_row=pa.array([0], pa.int64()))
    row = pa.table({f.name: cols[f.name].cast(f.type) for f in good.schema})
    extra = row.append_column("note", pa.array(["kept"]))  # a stream file's other column, after the model's
    contracts.check_output(schemas.StreamQuarantine, extra, "stream_quarantine.parquet")
    assert calls == []  # passed the quick check: pandera never saw it
    bad = extra.set_column(extra.schema.get_field_index("reason"), "reason", pa.array(["gremlins"]))
    with pytest.raises(OutputContractError, match=r"stream_quarantine\.parquet breaks its output contract"):
        contracts.check_output(schemas.StreamQuarantine, bad, "stream_quarantine.parquet")
    assert calls == [1]

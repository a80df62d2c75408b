"""The stream side on inputs we did not make (issue 10): partial spend, unreadable files, bad rows.

Every expected value is reckoned here in plain Python from the rows written, never from the pipeline.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.errors import LedgerError
from billing.run.local import reconcile
from tests.lake import D, at, click, config, write_raw, write_stream

TS = pa.timestamp("us", tz="UTC")
PART = f"dt={D.isoformat()}"


def write_stream_table(root: Path, name: str, cols: dict[str, pa.Array]) -> Path:
    path = root / PART / name
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path)
    return path


def invoke(tmp: Path, *extra: str, stream: str | None = None, out: str | None = None):
    args = ["reconcile", "--date", D.isoformat(), "--raw", str(tmp / "raw"), "--stream", stream or str(tmp / "stream"),
            "--out", out or str(tmp / "out"), *extra]
    return CliRunner().invoke(cli, args)


def published_nothing(out: Path) -> bool:
    day = out / PART
    return not day.exists() or not any(day.iterdir())


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("billing: ")]
    assert errors == [lines[-1]] and lines[-1].startswith("billing: error: "), stderr
    assert "Traceback" not in stderr
    return lines[-1]


def drift_rows(vdir: Path) -> dict[tuple[int, dt.datetime], dict[str, Any]]:
    return {(r["ad_id"], r["window_start"]): r for r in pq.read_table(vdir / "drift.parquet").to_pylist()}


# --- case 3: stream spend present in only some files ---------------------------------------------

def test_stream_spend_known_only_when_every_row_of_the_key_carries_it(tmp_path: Path) -> None:
    w5, w6, w7 = at(10, 5), at(10, 6), at(10, 7)
    raw = [click(at(10, 5, 1), ad=7, seq=1, cost=100), click(at(10, 5, 2), ad=7, seq=2, cost=100),
           click(at(10, 6, 1), ad=8, seq=3, cost=100),
           click(at(10, 7, 1), ad=9, seq=4, cost=100), click(at(10, 7, 2), ad=9, seq=5, cost=100),
           click(at(10, 7, 3), ad=9, seq=6, cost=100)]
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", raw)
    stream = tmp_path / "stream"
    # ad 7: one row with spend, one row in a file without spend_micros
    # ad 8: every row carries spend -> the stream's own spend is used
    # ad 9: a null spend value in a file that has the column -> unknown
    write_stream(stream, [(7, w5, 1), (8, w6, 1), (9, w7, 1), (9, w7, 1)], name="a.parquet",
                 spend=[100, 300, 50, None])
    write_stream(stream, [(7, w5, 1)], name="b.parquet")
    result = reconcile(config(tmp_path))
    d = drift_rows(Path(result.commit.url))
    # ad 7: 2 vs 2 clicks, spend unknown -> priced as without stream spend: delta 0 x price = 0
    assert (d[(7, w5)]["stream_clicks"], d[(7, w5)]["stream_spend_micros"], d[(7, w5)]["money_at_risk_micros"]) == (
        2, None, 0)
    # ad 8: stream's own spend 300 minus batch 100
    assert (d[(8, w6)]["stream_spend_micros"], d[(8, w6)]["money_at_risk_micros"]) == (300, 200)
    # ad 9: stream 2, batch 3 clicks at 100 each -> -1 x 300 / 3
    assert (d[(9, w7)]["stream_spend_micros"], d[(9, w7)]["money_at_risk_micros"]) == (None, -100)


# --- case 4: unreadable stream files --------------------------------------------------------------

def good_lake(tmp: Path) -> None:
    write_raw(tmp / "raw", "dt=2026-11-26/hour=10/good.parquet", [click(at(10), seq=i) for i in range(5)])
    write_stream(tmp / "stream", [(1, at(10), 5)], spend=[5_000])


def _not_parquet(p: Path) -> None:
    p.with_name("notes.parquet").write_text("ad_id,window_start,clicks\n1,2,3\n")


def _empty(p: Path) -> None:
    p.with_name("notes.parquet").write_bytes(b"")


def _truncated(p: Path) -> None:
    q = p.with_name("notes.parquet")
    write_stream(p.parent.parent, [(2, at(11, m), 1) for m in range(50)], name="notes.parquet", spend=[1] * 50)
    q.write_bytes(q.read_bytes()[: q.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_not_parquet, _empty, _truncated], ids=["text", "zero-bytes", "truncated"])
def test_unreadable_stream_file_exits_2_naming_it(tmp_path: Path, damage) -> None:
    good_lake(tmp_path)
    damage(tmp_path / "stream" / PART / "part-0.parquet")
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    line = one_error_line(r.stderr)
    assert f"{PART}/notes.parquet: not a readable Parquet file" in line
    assert published_nothing(tmp_path / "out")


def test_unreadable_stream_file_on_s3_exits_2_naming_it(s3, tmp_path: Path) -> None:
    good_lake(tmp_path)
    (tmp_path / "stream" / PART / "a0.parquet").write_bytes(b"")  # listed before the good file
    raw = s3.upload_tree(tmp_path / "raw", "raw")
    stream = s3.upload_tree(tmp_path / "stream", "stream")
    args = ["reconcile", "--date", D.isoformat(), "--raw", raw, "--stream", stream,
            "--out", f"s3://{s3.bucket}/out", "--s3-endpoint", s3.endpoint]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert f"{stream}/{PART}/a0.parquet: not a readable Parquet file" in one_error_line(r.stderr)
    assert s3.keys("out/") == []


def test_unreadable_stream_file_stops_plan_and_merge(tmp_path: Path) -> None:
    good_lake(tmp_path)
    common = ["--date", D.isoformat(), "--raw", str(tmp_path / "raw"), "--stream", str(tmp_path / "stream"),
              "--out", str(tmp_path / "out")]
    r = CliRunner().invoke(cli, ["plan", *common, "--slices", "1"])
    assert r.exit_code == 0, r.output
    plan_uri = r.stdout.strip().splitlines()[-1]
    assert CliRunner().invoke(cli, ["run-slice", "--plan", plan_uri, "--slice", "0"]).exit_code == 0
    # The stream file goes bad after planning, with the same size and an mtime the plan does not check.
    p = tmp_path / "stream" / PART / "part-0.parquet"
    p.write_bytes(b"\0" * p.stat().st_size)
    r = CliRunner().invoke(cli, ["merge", "--plan", plan_uri])
    assert r.exit_code == 2, r.output
    assert f"{PART}/part-0.parquet: not a readable Parquet file" in one_error_line(r.stderr)
    assert not (tmp_path / "out" / PART / "_current.json").exists()


# --- case 5: bad stream rows are quarantined ------------------------------------------------------

REASONS = ("null_ad_id", "null_window_start", "null_clicks", "negative_clicks", "negative_spend", "unaligned_window")


def expected_reason(ad: int | None, ws_ns: int | None, clicks: int | None, spend: int | None) -> str | None:
    """The README's stream rules in plain Python (first failing rule wins); ws_ns: ns since 1970."""
    if ad is None:
        return "null_ad_id"
    if ws_ns is None:
        return "null_window_start"
    if clicks is None:
        return "null_clicks"
    if clicks < 0:
        return "negative_clicks"
    if spend is not None and spend < 0:
        return "negative_spend"
    if ws_ns % 60_000_000_000:
        return "unaligned_window"
    return None


def ns(t: dt.datetime) -> int:
    return int(t.timestamp()) * 1_000_000_000 + t.microsecond * 1000


# file a: us timestamps, int64, with spend and an extra string column
A_ROWS = [  # ad, window_start ns, clicks, spend, note
    (1, ns(at(10)), 2, 200, "ok"),
    (None, ns(at(10)), 1, 10, "no ad"),
    (1, None, 1, 10, "no window"),
    (1, ns(at(10, 1)), None, 10, "no clicks"),
    (1, ns(at(10, 1)), -3, 10, "negative clicks"),
    (1, ns(at(10, 1)), 3, -10, "negative spend"),
    (1, ns(at(10, 1, 30)), 3, 10, "half a minute"),
    (None, None, -1, -1, "everything wrong"),  # first rule wins: null_ad_id
    (1, ns(at(-1)), 4, 10, "yesterday"),  # valid, out of day
    (1, ns(at(24)), 4, 10, "tomorrow"),  # valid, out of day
]
# file b: ns timestamps, int32 ad_id, uint16 clicks, no spend column, the extra column as an integer
B_ROWS = [  # ad, window_start ns, clicks, note
    (1, ns(at(10)), 1, 7),
    (2, ns(at(10, 5)) + 1, 5, 8),  # floors onto 10:05 but is not a whole minute
    (2, ns(at(10, 6)), 1, 9),
]


def bad_rows_lake(tmp: Path) -> None:
    write_raw(tmp / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(at(10, 0, s), ad=1, seq=s, cost=100) for s in range(3)]
              + [click(at(10, 6, 1), ad=2, seq=9, cost=100)])
    stream = tmp / "stream"
    write_stream_table(stream, "a.parquet", {
        "ad_id": pa.array([r[0] for r in A_ROWS], pa.int64()),
        "window_start": pa.array([r[1] for r in A_ROWS], pa.int64()).cast(pa.timestamp("ns", tz="UTC"))
        .cast(TS),
        "clicks": pa.array([r[2] for r in A_ROWS], pa.int64()),
        "spend_micros": pa.array([r[3] for r in A_ROWS], pa.int64()),
        "note": pa.array([r[4] for r in A_ROWS], pa.string()),
    })
    write_stream_table(stream, "b.parquet", {
        "ad_id": pa.array([r[0] for r in B_ROWS], pa.int32()),
        "window_start": pa.array([r[1] for r in B_ROWS], pa.int64()).cast(pa.timestamp("ns")),  # naive = UTC
        "clicks": pa.array([r[2] for r in B_ROWS], pa.uint16()),
        "note": pa.array([r[3] for r in B_ROWS], pa.int64()),
    })


def reckon() -> dict[str, Any]:
    """Summary.stream, the quarantine rows and the in-day stream clicks per key, in plain Python."""
    day_lo, day_hi = ns(at(0)), ns(at(24))
    rows = [("a.parquet", i, ad, ws, c, sp, note) for i, (ad, ws, c, sp, note)
            in enumerate(A_ROWS)]
    rows += [("b.parquet", i, ad, ws, c, None, note) for i, (ad, ws, c, note) in enumerate(B_ROWS)]
    by_reason: dict[str, int] = {}
    quarantine = []
    out_of_day = 0
    keys: dict[tuple[int, int], list[int]] = {}
    for f, i, ad, ws, c, sp, note in rows:
        r = expected_reason(ad, ws, c, sp)
        if r:
            by_reason[r] = by_reason.get(r, 0) + 1
            quarantine.append((f, i, r, ad, c, sp, note))
        elif not day_lo <= ws < day_hi:
            out_of_day += 1
        else:
            keys.setdefault((ad, ws), []).append(c)
    return {
        "stream": {"rows_read": len(rows), "rows_invalid": sum(by_reason.values()),
                   "invalid_by_reason": {r: by_reason[r] for r in REASONS if r in by_reason},
                   "duplicate_keys": sum(len(v) > 1 for v in keys.values()), "rows_out_of_day": out_of_day,
                   "clicks": sum(sum(v) for v in keys.values())},
        "quarantine": sorted(quarantine),
        "keys": {k: sum(v) for k, v in keys.items()},
    }


def check_bad_rows_outputs(vdir: Path, summary: dict[str, Any]) -> None:
    want = reckon()
    assert summary["stream"] == want["stream"]
    q = pq.read_table(vdir / "stream_quarantine.parquet")
    assert q.column_names[:7] == ["ad_id", "window_start", "clicks", "spend_micros", "reason", "source_file",
                                  "source_row"]
    assert "note" in q.column_names
    got = [(r["source_file"], r["source_row"], r["reason"], r["ad_id"], r["clicks"], r["spend_micros"],
            r["note"]) for r in q.to_pylist()]
    want_q = [(f"{PART}/{f}", i, r, ad, c, sp, json.dumps(note)) for f, i, r, ad, c, sp, note in want["quarantine"]]
    assert got == want_q  # sorted by (source_file, source_row); conflicting extra types kept as text
    # invalid rows count nowhere else: no phantom or shifted key, stream clicks only from valid in-day rows
    d = drift_rows(vdir)
    stream_keys = {(a, ns(w)): r["stream_clicks"] for (a, w), r in d.items() if r["stream_clicks"]}
    assert stream_keys == want["keys"]
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert "stream_quarantine.parquet" in json.dumps(manifest)


def test_bad_stream_rows_are_quarantined_and_counted_once(tmp_path: Path) -> None:
    bad_rows_lake(tmp_path)
    r = invoke(tmp_path, "--json")
    assert r.exit_code in (0, 3), r.output + r.stderr
    summary = json.loads(r.stdout)
    current = json.loads((tmp_path / "out" / PART / "_current.json").read_text())
    check_bad_rows_outputs(tmp_path / "out" / PART / current["dir"], summary)


def test_bad_stream_rows_on_s3_match_local(s3, tmp_path: Path) -> None:
    bad_rows_lake(tmp_path)
    local = reconcile(config(tmp_path))
    raw = s3.upload_tree(tmp_path / "raw", "raw")
    stream = s3.upload_tree(tmp_path / "stream", "stream")
    remote = reconcile(config(tmp_path, raw=raw, stream=stream, out=f"s3://{s3.bucket}/out",
                              s3_endpoint=s3.endpoint))
    assert remote.summary == local.summary
    key = f"out/{PART}/v=1/stream_quarantine.parquet"
    assert s3.read(key) == (Path(local.commit.url) / "stream_quarantine.parquet").read_bytes()


def test_bad_stream_rows_through_plan_run_slice_merge_equal_reconcile(tmp_path: Path) -> None:
    bad_rows_lake(tmp_path)
    one = reconcile(config(tmp_path, out=str(tmp_path / "one")))
    common = ["--date", D.isoformat(), "--raw", str(tmp_path / "raw"), "--stream", str(tmp_path / "stream"),
              "--out", str(tmp_path / "two")]
    r = CliRunner().invoke(cli, ["plan", *common, "--slices", "2"])
    assert r.exit_code == 0, r.output
    plan_uri = r.stdout.strip().splitlines()[-1]
    assert CliRunner().invoke(cli, ["set-aside", "--plan", plan_uri]).exit_code == 0
    for k in range(2):
        assert CliRunner().invoke(cli, ["run-slice", "--plan", plan_uri, "--slice", str(k)]).exit_code == 0
    r = CliRunner().invoke(cli, ["merge", "--plan", plan_uri])
    assert r.exit_code in (0, 3), r.output
    two = tmp_path / "two" / PART / "v=1"
    for name in ("stream_quarantine.parquet", "summary.json", "drift.parquet"):
        assert (two / name).read_bytes() == (Path(one.commit.url) / name).read_bytes(), name


def test_stream_quarantine_is_deterministic_and_empty_when_none(tmp_path: Path) -> None:
    bad_rows_lake(tmp_path)
    a = reconcile(config(tmp_path, out=str(tmp_path / "a")))
    b = reconcile(config(tmp_path, out=str(tmp_path / "b")))
    name = "stream_quarantine.parquet"
    assert (Path(a.commit.url) / name).read_bytes() == (Path(b.commit.url) / name).read_bytes()
    clean = tmp_path / "clean"
    good_lake(clean)
    c = reconcile(config(clean))
    q = pq.read_table(Path(c.commit.url) / name)
    assert q.num_rows == 0 and q.column_names[:7] == [
        "ad_id", "window_start", "clicks", "spend_micros", "reason", "source_file", "source_row"]
    assert c.summary["stream"]["rows_invalid"] == 0 and c.summary["stream"]["invalid_by_reason"] == {}


def test_stream_optional_without_partition_has_an_empty_stream_quarantine(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    (tmp_path / "stream").mkdir()
    result = reconcile(config(tmp_path, stream_optional=True))
    assert result.summary["stream"] == {"rows_read": 0, "rows_invalid": 0, "invalid_by_reason": {},
                                        "duplicate_keys": 0, "rows_out_of_day": 0, "clicks": 0}
    assert pq.read_table(Path(result.commit.url) / "stream_quarantine.parquet").num_rows == 0


def test_ns_window_on_a_minute_and_seconds_unit_are_valid(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(at(10, 5, 1), ad=3, seq=1), click(at(10, 6, 1), ad=3, seq=2)])
    write_stream_table(tmp_path / "stream", "a.parquet", {
        "ad_id": pa.array([3], pa.uint8()),
        "window_start": pa.array([ns(at(10, 5))], pa.int64()).cast(pa.timestamp("ns", tz="Asia/Kolkata")),
        "clicks": pa.array([1], pa.int8())})
    write_stream_table(tmp_path / "stream", "b.parquet", {
        "ad_id": pa.array([3], pa.int16()),
        "window_start": pa.array([ns(at(10, 6)) // 1_000_000_000], pa.int64()).cast(pa.timestamp("s")),
        "clicks": pa.array([1], pa.uint32())})
    result = reconcile(config(tmp_path))
    assert result.summary["stream"]["rows_invalid"] == 0
    assert result.summary["drift"]["by_status"] == {"match": 2}


def test_stream_timestamp_beyond_microseconds_exits_2_instead_of_wrapping(tmp_path: Path) -> None:
    good_lake(tmp_path)
    write_stream_table(tmp_path / "stream", "far.parquet", {
        "ad_id": pa.array([1], pa.int64()),
        "window_start": pa.array([2**62], pa.int64()).cast(pa.timestamp("ms", tz="UTC")),  # wraps as µs
        "clicks": pa.array([1], pa.int64())})
    r = invoke(tmp_path)
    assert r.exit_code == 2, r.output
    assert f"{PART}/far.parquet: column 'window_start' does not fit timestamp[us]" in one_error_line(r.stderr)
    assert published_nothing(tmp_path / "out")


def test_stream_ledger_that_does_not_balance_is_refused() -> None:
    from billing.ledger import check_stream_balance

    counts = {"rows_read": 10, "rows_invalid": 2, "invalid_by_reason": {"null_clicks": 2}, "duplicate_keys": 0,
              "rows_out_of_day": 3, "clicks": 5}
    check_stream_balance(counts, rows_in_day=5)
    with pytest.raises(LedgerError, match="stream"):
        check_stream_balance(counts, rows_in_day=4)
    with pytest.raises(LedgerError, match="invalid_by_reason"):
        check_stream_balance({**counts, "invalid_by_reason": {"null_clicks": 1}}, rows_in_day=5)


def test_unbalanced_stream_ledger_exits_1_and_publishes_nothing(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    import billing.day.diff as pipeline

    good_lake(tmp_path)
    real = pipeline.diff

    def miscounting(*args: Any, **kw: Any):  # a stream row lost between reading and the windows
        result = real(*args, **kw)
        return dataclasses.replace(result, stream_rows_in_day=result.stream_rows_in_day - 1)

    monkeypatch.setattr(pipeline, "diff", miscounting)
    r = invoke(tmp_path)
    assert r.exit_code == 1, r.output
    assert "the stream ledger does not balance" in r.stderr.strip().splitlines()[-1]
    assert published_nothing(tmp_path / "out")


def test_stream_rows_reach_duckdb_in_pieces_as_they_are_in_the_files(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink file of tiny row groups (2 rows each), gathered into pieces of 3 rows across files, gives the
    rows, row numbers and outputs of the same files read whole."""
    import billing.io.stream_source as stream_source

    bad_rows_lake(tmp_path)
    whole = reconcile(config(tmp_path, out=str(tmp_path / "whole")))
    for f in sorted((tmp_path / "stream").rglob("*.parquet")):
        pq.write_table(pq.read_table(f), f, row_group_size=2)
    assert all(pq.ParquetFile(f).metadata.num_row_groups > 1 for f in (tmp_path / "stream").rglob("*.parquet"))
    monkeypatch.setattr(stream_source, "PIECE_ROWS", 3)
    from billing.io.storage import open_store
    from billing.io.stream import discover_stream, read_stream

    store = open_store(str(tmp_path / "stream"))
    side = stream_source.FileStream(store, discover_stream(store, D))
    pieces = list(side.pieces())
    assert [p.num_rows for p in pieces[:-1]] == [4] * (len(pieces) - 1)  # two row groups reach 3 rows
    assert pa.concat_tables(pieces).equals(read_stream(store, side.sources()))
    small = reconcile(config(tmp_path, out=str(tmp_path / "small")))
    for name in ("stream_quarantine.parquet", "drift.parquet", "totals.parquet", "summary.json"):
        assert (Path(small.commit.url) / name).read_bytes() == (Path(whole.commit.url) / name).read_bytes(), name

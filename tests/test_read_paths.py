"""Inputs we did not make, on every read path: DuckDB's own reader, the Arrow reader, slices, stragglers set
aside, worker processes, plan/run-slice/merge, and S3 (moto's server). Expected values are reckoned here in
plain Python from the rows each test writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.day.outputs import CONTENT_FILES
from billing.run.local import reconcile
from billing.slice import land
from billing.slice import plan as slice_plan
from tests.lake import D, at, cid, click, config, minute, write_raw, write_stream

LOCAL_PATHS = ("native", "arrow", "slices", "stragglers", "workers", "fanout")


def _hashes(vdir: Path) -> dict[str, str]:
    return {name: hashlib.sha256((vdir / name).read_bytes()).hexdigest() for name in CONTENT_FILES}


def run_path(tmp: Path, how: str, monkeypatch: pytest.MonkeyPatch, raw: str | None = None,
             **kw: Any) -> tuple[dict[str, Any], Path]:
    """Reconcile the lake under ``tmp`` one way; return its summary and version folder (local OUT)."""
    out = tmp / f"out-{how}"
    cfg = config(tmp, out=str(out), **({"raw": raw} if raw else {}), **kw)
    with monkeypatch.context() as m:
        if how == "arrow":
            m.setattr(land, "native_readable", lambda sources: False)
        if how in ("slices", "stragglers", "workers"):
            cfg = config(tmp, out=str(out), slices=3, workers=2 if how == "workers" else 1,
                         **({"raw": raw} if raw else {}), **kw)
            m.setattr(slice_plan, "STRAGGLERS_FROM_AMPLIFICATION", 0.0 if how == "stragglers" else float("inf"))
        if how == "fanout":
            args = ["--date", str(D), "--raw", cfg.raw, "--stream", cfg.stream, "--out", str(out),
                    "--lateness", f"{int(cfg.lateness.total_seconds())}s"]
            runner = CliRunner()
            plan = runner.invoke(cli, ["-q", "plan", *args, "--slices", "2"])
            assert plan.exit_code == 0, plan.output
            uri = plan.stdout.strip()
            assert runner.invoke(cli, ["-q", "set-aside", "--plan", uri]).exit_code == 0
            for k in reversed(range(len(json.loads(Path(uri).read_text())["slices"]))):
                r = runner.invoke(cli, ["-q", "run-slice", "--plan", uri, "--slice", str(k)])
                assert r.exit_code == 0, r.output
            r = runner.invoke(cli, ["-q", "merge", "--plan", uri, "--json"])
            assert r.exit_code in (0, 3), r.output
            vdir = out / f"dt={D}" / "v=1"
            return json.loads((vdir / "summary.json").read_text()), vdir
        result = reconcile(cfg)
    return result.summary, Path(result.commit.url)


def every_local_path(tmp: Path, monkeypatch: pytest.MonkeyPatch, **kw: Any) -> tuple[dict[str, Any], Path]:
    """Run every local read path; assert they agree byte for byte; return the first's summary and folder."""
    runs = {how: run_path(tmp, how, monkeypatch, **kw) for how in LOCAL_PATHS}
    first_summary, first_dir = runs["native"]
    for how, (summary, vdir) in runs.items():
        assert summary == first_summary, how
        assert _hashes(vdir) == _hashes(first_dir), how
    return first_summary, first_dir


def totals_of(vdir: Path) -> list[tuple[int, dt.datetime, int]]:
    return [(r["ad_id"], r["window_start"], r["clicks"]) for r in pq.read_table(vdir / "totals.parquet").to_pylist()]


# --- case 1: file names are names, not glob patterns ----------------------------------------------

ODD_NAMES = ["p1", "p[1]", "q*", "qa", "r?", "rb", "s{1,2}", "s1", "t]x", "u,v", "w x", "ü€", "y[!a]", "ya",
             "z\\x", "**"]


def odd_names_lake(tmp: Path) -> dict[int, int]:
    """One click per file, each file named oddly or as what an odd name would match; returns {ad: clicks}."""
    raw = tmp / "raw"
    want: dict[int, int] = {}
    for i, name in enumerate(ODD_NAMES):
        write_raw(raw, f"dt=2026-11-26/hour=10/{name}.parquet", [click(at(10, i), ad=100 + i, seq=i)])
        want[100 + i] = 1
    # the same folder names, odd, as a real partition folder's files (hour=7 spelled with one digit)
    write_raw(raw, "dt=2026-11-26/hour=7/[x].parquet", [click(at(7, 1), ad=200, seq=1)])
    write_raw(raw, "dt=2026-11-26/hour=7/x.parquet", [click(at(7, 2), ad=201, seq=2)])
    want.update({200: 1, 201: 1})
    write_stream(tmp / "stream", [])
    return want


def test_odd_file_names_are_read_literally_on_every_local_path(tmp_path: Path, monkeypatch) -> None:
    want = odd_names_lake(tmp_path)
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    ledger = summary["ledger"]
    assert (ledger["rows_read"], ledger["duplicates_removed"], ledger["billable_clicks"]) == (
        len(want), 0, len(want))
    got: dict[int, int] = {}
    for ad, _, n in totals_of(vdir):
        got[ad] = got.get(ad, 0) + n
    assert got == want


def test_tie_break_between_odd_names_uses_the_real_paths(tmp_path: Path, monkeypatch) -> None:
    """Two copies of one click, same ingest_time: the winner is the file whose real path sorts first."""
    raw = tmp_path / "raw"
    t = at(10, 5)
    write_raw(raw, "dt=2026-11-26/hour=10/a[1].parquet", [click(t, ad=7, seq=3)])
    write_raw(raw, "dt=2026-11-26/hour=10/a1.parquet", [click(t, ad=8, seq=3)])
    write_stream(tmp_path / "stream", [])
    first = min(["dt=2026-11-26/hour=10/a[1].parquet", "dt=2026-11-26/hour=10/a1.parquet"])
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    assert summary["ledger"]["billable_clicks"] == 1 and summary["ledger"]["duplicates_removed"] == 1
    (conflict,) = pq.read_table(vdir / "conflicts.parquet").to_pylist()
    assert conflict["winner_source_file"] == first
    assert totals_of(vdir) == [(8 if first.endswith("a1.parquet") else 7, minute(t), 1)]


@pytest.mark.integration
def test_odd_file_names_local_and_s3_give_the_same_bytes(s3, tmp_path: Path, monkeypatch) -> None:
    odd_names_lake(tmp_path)
    raw = s3.upload_tree(tmp_path / "raw", "clicks")
    local_summary, local_dir = run_path(tmp_path, "native", monkeypatch)
    s3_summary, s3_dir = run_path(tmp_path, "s3", monkeypatch, raw=raw)
    assert s3_summary == local_summary
    assert _hashes(s3_dir) == _hashes(local_dir)


def test_glob_characters_in_the_temporary_folder(tmp_path: Path, monkeypatch) -> None:
    """Our own files (links, stragglers, slices' facts) live in the temporary folder: its name may be odd too."""
    import tempfile

    odd_names_lake(tmp_path)
    tmp_dir = tmp_path / "tmp[1]*"
    tmp_dir.mkdir()
    (tmp_path / "tmp1x").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_dir))
    summary, _ = run_path(tmp_path, "stragglers", monkeypatch)
    assert summary["ledger"]["rows_read"] == len(ODD_NAMES) + 2
    assert summary["ledger"]["billable_clicks"] == len(ODD_NAMES) + 2
    assert os.listdir(tmp_dir) == []


# --- case 10: partition folders ---------------------------------------------------------------------

def _reconcile_cli(tmp: Path, raw: str | None = None) -> Any:
    out = tmp / "out"
    return CliRunner().invoke(cli, ["-q", "reconcile", "--date", str(D), "--raw", raw or str(tmp / "raw"),
                                    "--stream", str(tmp / "stream"), "--out", str(out)])


def _assert_exit_2_naming(r: Any, name: str, tmp: Path) -> None:
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0], r.stderr
    assert not (tmp / "out" / f"dt={D}" / "_current.json").exists()


@pytest.mark.parametrize("day", ["2026-11-26", "2026-11-27"])
@pytest.mark.parametrize("folder", ["hour=24", "hour=xx", "hour=007", "hour=-1", "hour=\u0661", "dt=2026-13-01",
                                    "misc"])
def test_a_folder_that_is_not_a_partition_stops_the_run(tmp_path: Path, day: str, folder: str) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_raw(raw, "dt=2026-11-27/hour=00/a.parquet", [click(at(23, 59), seq=2, ingest=at(24, 30))])
    write_raw(raw, f"dt={day}/{folder}/b.parquet", [click(at(11), seq=3)])
    write_stream(tmp_path / "stream", [])
    _assert_exit_2_naming(_reconcile_cli(tmp_path), f"dt={day}/{folder}", tmp_path)


@pytest.mark.parametrize("day", ["2026-11-26", "2026-11-27"])
def test_a_loose_file_beside_hour_folders_stops_the_run(tmp_path: Path, day: str) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_raw(raw, "dt=2026-11-27/hour=00/a.parquet", [click(at(23, 59), seq=2, ingest=at(24, 30))])
    write_raw(raw, f"dt={day}/loose.parquet", [click(at(11), seq=3)])
    write_stream(tmp_path / "stream", [])
    _assert_exit_2_naming(_reconcile_cli(tmp_path), f"dt={day}/loose.parquet", tmp_path)


def test_one_digit_hours_and_hidden_folders(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=3/a.parquet", [click(at(3), seq=1)])
    write_raw(raw, "dt=2026-11-27/hour=1/a.parquet", [click(at(23, 59), seq=2, ingest=at(25, 30))])
    write_raw(raw, "dt=2026-11-27/hour=2/a.parquet", [click(at(23, 58), seq=3, ingest=at(26, 30))])  # beyond 2h
    (raw / "dt=2026-11-27/_temporary/junk").mkdir(parents=True)
    (raw / "dt=2026-11-27/_temporary/junk/x.parquet").write_bytes(b"half a file")
    (raw / "dt=2026-11-26/.staging").mkdir()
    (raw / "dt=2026-11-26/.staging/y.parquet").write_bytes(b"half a file")
    write_stream(tmp_path / "stream", [])
    summary, _ = every_local_path(tmp_path, monkeypatch)
    assert summary["ledger"]["rows_read"] == 2 and summary["ledger"]["billable_clicks"] == 2


def test_symlinked_partitions_are_read_on_both_days(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    elsewhere = tmp_path / "elsewhere"
    write_raw(elsewhere, "h10/a.parquet", [click(at(10), seq=1), click(at(10, 1), seq=2)])
    write_raw(elsewhere, "h00/a.parquet", [click(at(23, 59), seq=3, ingest=at(24, 30))])
    write_raw(elsewhere, "f/b.parquet", [click(at(11), seq=4)])
    write_raw(raw, "dt=2026-11-26/hour=09/a.parquet", [click(at(9), seq=5)])
    (raw / "dt=2026-11-26/hour=10").symlink_to(elsewhere / "h10", target_is_directory=True)
    (raw / "dt=2026-11-26/hour=11").mkdir()
    (raw / "dt=2026-11-26/hour=11/b.parquet").symlink_to(elsewhere / "f/b.parquet")
    (raw / "dt=2026-11-27").mkdir()
    (raw / "dt=2026-11-27/hour=00").symlink_to(elsewhere / "h00", target_is_directory=True)
    write_stream(tmp_path / "stream", [])
    summary, _ = every_local_path(tmp_path, monkeypatch)
    assert summary["ledger"]["rows_read"] == 5 and summary["ledger"]["billable_clicks"] == 5


@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_broken_symlink_stops_the_run(tmp_path: Path, what: str) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    link = raw / ("dt=2026-11-26/hour=10/gone.parquet" if what == "file" else "dt=2026-11-27/hour=00")
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(tmp_path / "nowhere")
    write_stream(tmp_path / "stream", [])
    _assert_exit_2_naming(_reconcile_cli(tmp_path), link.relative_to(raw).as_posix(), tmp_path)


@pytest.mark.integration
def test_partition_rules_are_the_same_on_s3(s3, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_raw(raw, "dt=2026-11-27/hour=xx/a.parquet", [click(at(23, 59), seq=2, ingest=at(24, 30))])
    write_stream(tmp_path / "stream", [])
    _assert_exit_2_naming(_reconcile_cli(tmp_path, s3.upload_tree(raw, "clicks")), "dt=2026-11-27/hour=xx",
                          tmp_path)


# --- case 11: columns of Arrow type null ----------------------------------------------------------------

def _table(cols: dict[str, Any]) -> Any:
    import pyarrow as pa

    return pa.table(cols)


def test_null_typed_cost_is_a_cost_column_of_nulls(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa

    raw = tmp_path / "raw"
    rows = [click(at(10, i), ad=1, seq=i) for i in range(2)]
    path = raw / "dt=2026-11-26/hour=10/a.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(_table({"click_id": pa.array([r["click_id"] for r in rows], pa.int64()),
                           "ad_id": pa.array([1, 1], pa.int64()),
                           "event_time": pa.array([r["event_time"] for r in rows], pa.timestamp("us", tz="UTC")),
                           "ingest_time": pa.array([r["ingest_time"] for r in rows], pa.timestamp("us", tz="UTC")),
                           "cost_micros": pa.nulls(2)}), path)
    write_raw(raw, "dt=2026-11-26/hour=11/b.parquet", [click(at(11), ad=2, seq=5, cost=500)])
    write_stream(tmp_path / "stream", [])
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    assert summary["ledger"]["billable_clicks"] == 3 and summary["ledger"]["billable_spend_micros"] == 500
    spend = {(r["ad_id"], r["window_start"]): r["spend_micros"]
             for r in pq.read_table(vdir / "totals.parquet").to_pylist()}
    assert spend == {(1, minute(at(10, 0))): 0, (1, minute(at(10, 1))): 0, (2, minute(at(11))): 500}  # README


@pytest.mark.parametrize("column,reason", [("click_id", "null_click_id"), ("ad_id", "null_ad_id"),
                                           ("event_time", "null_event_time"), ("ingest_time", None)])
def test_null_typed_columns_read_as_all_null(tmp_path: Path, monkeypatch, column: str, reason: str | None) -> None:
    import pyarrow as pa

    raw = tmp_path / "raw"
    rows = [click(at(10, i), ad=1, seq=i, cost=100) for i in range(3)]
    cols = {"click_id": pa.array([r["click_id"] for r in rows], pa.int64()),
            "ad_id": pa.array([1, 1, 1], pa.int32()),
            "event_time": pa.array([r["event_time"] for r in rows], pa.timestamp("ms", tz="UTC")),
            "ingest_time": pa.array([r["ingest_time"] for r in rows], pa.timestamp("ns")),
            "cost_micros": pa.array([100, 100, 100], pa.int64())}
    cols[column] = pa.nulls(3)
    path = raw / "dt=2026-11-26/hour=10/a.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(_table(cols), path)
    write_stream(tmp_path / "stream", [])
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    ledger = summary["ledger"]
    if reason is None:  # no arrival time: still valid, billed
        assert (ledger["billable_clicks"], ledger["billable_spend_micros"]) == (3, 300)
    else:  # every row invalid, a cost column exists: spend is 0, not null
        assert ledger["invalid_by_reason"] == {reason: 3}
        assert (ledger["billable_clicks"], ledger["billable_spend_micros"]) == (0, 0)
        assert pq.read_table(vdir / "quarantine.parquet").column("reason").to_pylist() == [reason] * 3


def test_every_row_invalid_with_a_cost_column_bills_zero_spend(tmp_path: Path, monkeypatch) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1, ad_id=None, cost=5)])
    write_stream(tmp_path / "stream", [])
    summary, _ = every_local_path(tmp_path, monkeypatch)
    assert summary["ledger"]["billable_spend_micros"] == 0


# --- case 6: extra columns whose types differ between files ------------------------------------------------

def test_extra_columns_of_conflicting_types_are_kept_as_json_text(tmp_path: Path, monkeypatch) -> None:
    import pyarrow as pa

    raw = tmp_path / "raw"
    bad = [click(at(10, i), seq=i, ad_id=None) for i in range(3)]  # null_ad_id: quarantined

    def write(rel: str, row: dict, meta: pa.Array, note: pa.Array) -> None:
        cols = {k: pa.array([row[k]], t) for k, t in zip(
            ("click_id", "ad_id", "event_time", "ingest_time", "cost_micros"),
            (pa.int64(), pa.int64(), pa.timestamp("us", tz="UTC"), pa.timestamp("us", tz="UTC"), pa.int64()),
            strict=True)}
        path = raw / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_table({**cols, "meta": meta, "note": note}), path)

    write("dt=2026-11-26/hour=10/a.parquet", bad[0], pa.array([{"k": 1, "s": "x"}]), pa.nulls(1))
    write("dt=2026-11-26/hour=10/b.parquet", bad[1], pa.array([7], pa.int64()), pa.array(["hi"]))
    write("dt=2026-11-26/hour=10/c.parquet", bad[2], pa.array(["7"]), pa.array([None], pa.string()))
    write_raw(raw, "dt=2026-11-26/hour=11/ok.parquet", [click(at(11), seq=9)])
    write_stream(tmp_path / "stream", [])
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    assert summary["ledger"]["invalid_by_reason"] == {"null_ad_id": 3} and summary["ledger"]["billable_clicks"] == 1
    q = pq.read_table(vdir / "quarantine.parquet")
    assert q.schema.field("meta").type == pa.string() and q.schema.field("note").type == pa.string()
    assert q.column("meta").to_pylist() == ['{"k": 1, "s": "x"}', "7", '"7"']
    assert [json.loads(v) for v in q.column("meta").to_pylist()] == [{"k": 1, "s": "x"}, 7, "7"]
    assert q.column("note").to_pylist() == [None, "hi", None]  # null-typed agrees with string: kept as is


# --- case 2: sub-microsecond timestamps are floored, never rounded; winners on full precision ----------------

PER_SECOND = {"s": 1, "ms": 10**3, "us": 10**6, "ns": 10**9}


def _epoch_ticks(t: dt.datetime, unit: str) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(seconds=1) * PER_SECOND[unit]


def ticks_lake(tmp: Path) -> dict[tuple[int, dt.datetime], int]:
    """Per unit, clicks one tick either side of a minute and of both midnights; returns the expected totals."""
    import pyarrow as pa

    raw = tmp / "raw"
    want: dict[tuple[int, dt.datetime], int] = {}
    edges = [at(10, 1), at(0), at(24)]  # a minute inside D, D 00:00, D+1 00:00
    for u, unit in enumerate(("s", "ms", "us", "ns")):
        ids, ads, events, ingests = [], [], [], []
        for e, edge in enumerate(edges):
            for side in (-1, 1):
                ticks = _epoch_ticks(edge, unit) + side  # one tick before or after the edge
                ad = 10 * u + 2 * e + (side > 0)
                ids.append(cid(edge, seq=len(ids) + 20 * u))
                ads.append(ad)
                events.append(ticks)
                ingests.append(ticks + PER_SECOND[unit])
                # floor of the instant, reckoned in integers: the minute before the edge, or the edge's minute
                window = edge - dt.timedelta(minutes=1) if side < 0 else edge
                if at(0) <= window < at(24):
                    want[(ad, window)] = want.get((ad, window), 0) + 1
        path = raw / f"dt=2026-11-26/hour=10/{unit}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_table({"click_id": pa.array(ids, pa.int64()), "ad_id": pa.array(ads, pa.int64()),
                               "event_time": pa.array(events, pa.timestamp(unit, tz="UTC")),
                               "ingest_time": pa.array(ingests, pa.timestamp(unit))}), path)
    write_stream(tmp / "stream", [])
    return want


def test_every_unit_is_floored_at_minutes_and_midnights_on_every_path(tmp_path: Path, monkeypatch) -> None:
    want = ticks_lake(tmp_path)
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    assert {(ad, w): n for ad, w, n in totals_of(vdir)} == want
    assert summary["ledger"]["billable_clicks"] == sum(want.values())
    assert summary["ledger"]["clicks_out_of_day"] == 4 * 6 - sum(want.values())


def _copies_lake(tmp: Path) -> int:
    """Two copies of one click whose ingest_times differ by 300 ns within one µs; the earlier copy lies in the
    later path. Returns the ad of the earlier copy: the winner."""
    import pyarrow as pa

    raw = tmp / "raw"
    t = at(10, 5)
    x = _epoch_ticks(t, "ns") + 2 * 10**9  # arrived 2 s later, on a whole µs
    for name, ad, ingest in (("a", 1, x + 400), ("b", 2, x + 100)):
        path = raw / f"dt=2026-11-26/hour=10/{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(_table({"click_id": pa.array([cid(t, 5)], pa.int64()), "ad_id": pa.array([ad], pa.int64()),
                               "event_time": pa.array([_epoch_ticks(t, "ns")], pa.timestamp("ns", tz="UTC")),
                               "ingest_time": pa.array([ingest], pa.timestamp("ns", tz="UTC"))}), path)
    write_stream(tmp / "stream", [])
    return 2


def test_winner_is_decided_on_full_precision_ingest_time(tmp_path: Path, monkeypatch) -> None:
    winner = _copies_lake(tmp_path)
    _, vdir = every_local_path(tmp_path, monkeypatch)
    assert totals_of(vdir) == [(winner, minute(at(10, 5)), 1)]
    (conflict,) = pq.read_table(vdir / "conflicts.parquet").to_pylist()
    assert conflict["winner_ad_id"] == winner and conflict["winner_source_file"].endswith("b.parquet")


@pytest.mark.integration
@pytest.mark.parametrize("lake", ["ticks", "copies"])
def test_sub_microsecond_lakes_give_the_same_bytes_on_s3(s3, tmp_path: Path, monkeypatch, lake: str) -> None:
    ticks_lake(tmp_path) if lake == "ticks" else _copies_lake(tmp_path)
    raw = s3.upload_tree(tmp_path / "raw", "clicks")
    local_summary, local_dir = run_path(tmp_path, "native", monkeypatch)
    s3_summary, s3_dir = run_path(tmp_path, "s3", monkeypatch, raw=raw)
    assert s3_summary == local_summary
    assert _hashes(s3_dir) == _hashes(local_dir)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_normalise_time_floors_before_1970_too(unit: str) -> None:
    import pyarrow as pa

    from billing.io.parquet import normalise_time

    values = [-1001, -1000, -999, -1, 0, 1, 999, 1000, None]
    floored, sub = normalise_time(pa.array(values, pa.timestamp(unit)), "event_time", "f.parquet")
    per_us = {"s": 10**6, "ms": 10**3, "us": 1, "ns": None}[unit]
    for v, f, s in zip(values, floored.cast(pa.int64()).to_pylist(), sub.to_pylist(), strict=True):
        if v is None:
            assert (f, s) == (None, 0)
        elif per_us is None:  # ns: floor division in integers, the remainder kept
            assert (f, s) == (v // 1000, v % 1000)
        else:
            assert (f, s) == (v * per_us, 0)


def test_dt_only_cutoff_is_exact_to_the_ns_on_every_path(tmp_path: Path, monkeypatch) -> None:
    """Rows of dt=D+1 count when ingest_time < D+1 00:00 + lateness: one ns before it counts, the cut does not.
    Several D files beside the D+1 one, so a slice reads a subset of the files (the cut follows the file)."""
    import pyarrow as pa

    raw = tmp_path / "raw"
    for h in range(4):
        write_raw(raw, f"dt=2026-11-26/f{h}.parquet", [click(at(6 * h + i / 60), ad=1, seq=i) for i in range(3)])
    cut_ns = _epoch_ticks(at(26), "ns")
    events = [at(23, 59), at(23, 58), at(23, 57)]
    path = raw / "dt=2026-11-27/late.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(_table({
        "click_id": pa.array([cid(t, 50 + k) for k, t in enumerate(events)], pa.int64()),
        "ad_id": pa.array([2, 3, 4], pa.int64()),
        "event_time": pa.array([_epoch_ticks(t, "ns") for t in events], pa.timestamp("ns", tz="UTC")),
        "ingest_time": pa.array([cut_ns - 1, cut_ns, cut_ns - 1000], pa.timestamp("ns", tz="UTC"))}), path)
    write_stream(tmp_path / "stream", [])
    summary, vdir = every_local_path(tmp_path, monkeypatch)
    assert {ad for ad, _, _ in totals_of(vdir)} == {1, 2, 4}
    assert summary["ledger"]["rows_read"] == 12 + 2 and summary["horizon"]["rows_beyond_horizon"] == 1


def test_a_symlink_loop_stops_the_run(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    (raw / "dt=2026-11-26/hour=10/again").symlink_to(raw / "dt=2026-11-26", target_is_directory=True)
    write_stream(tmp_path / "stream", [])
    _assert_exit_2_naming(_reconcile_cli(tmp_path), "dt=2026-11-26/hour=10/again", tmp_path)

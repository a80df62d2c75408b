"""Each semantic rule of the README on a small hand-built lake, through the whole pipeline."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from billing.run.local import reconcile
from tests.lake import D, at, cid, click, config, minute, write_raw, write_stream


def run(tmp: Path, **kw):
    result = reconcile(config(tmp, **kw))
    vdir = Path(result.commit.url)
    return result, vdir


def totals(vdir: Path) -> list[dict]:
    return pq.read_table(vdir / "totals.parquet").to_pylist()


def drift(vdir: Path) -> dict:
    return {(r["ad_id"], r["window_start"]): r for r in pq.read_table(vdir / "drift.parquet").to_pylist()}


# --- rule 1: the horizon -------------------------------------------------------------------------

def test_horizon_reads_day_and_next_day_hours_below_lateness(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_raw(raw, "dt=2026-11-27/hour=00/a.parquet", [click(at(23, 59), seq=2, ingest=at(24, 30))])
    write_raw(raw, "dt=2026-11-27/hour=01/a.parquet", [click(at(23, 58), seq=3, ingest=at(25, 30))])
    write_raw(raw, "dt=2026-11-27/hour=02/a.parquet", [click(at(23, 57), seq=4, ingest=at(26, 30))])
    write_raw(raw, "dt=2026-11-25/hour=23/a.parquet", [click(at(-0.5), seq=5)])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert result.summary["ledger"]["rows_read"] == 3
    assert result.summary["ledger"]["billable_clicks"] == 3
    manifest = json.loads((vdir / "manifest.json").read_text())
    read = sorted(Path(f["path"]).relative_to(raw).as_posix() for f in manifest["inputs"]["raw"])
    assert read == ["dt=2026-11-26/hour=10/a.parquet", "dt=2026-11-27/hour=00/a.parquet",
                    "dt=2026-11-27/hour=01/a.parquet"]


def test_horizon_follows_lateness_option(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_raw(raw, "dt=2026-11-27/hour=00/a.parquet", [click(at(23, 59), seq=2, ingest=at(24, 30))])
    write_raw(raw, "dt=2026-11-27/hour=02/a.parquet", [click(at(23, 57), seq=4, ingest=at(26, 30))])
    write_stream(tmp_path / "stream", [])
    result, _ = run(tmp_path, lateness=dt.timedelta(hours=3))
    assert result.summary["ledger"]["rows_read"] == 3
    result, _ = run(tmp_path, lateness=dt.timedelta(minutes=30), out=str(tmp_path / "out2"))
    assert result.summary["ledger"]["rows_read"] == 2  # hour 00 starts before 00:30, hour 02 does not


def test_marker_and_hidden_files_are_not_data(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    (raw / "dt=2026-11-26/hour=10/_SUCCESS").write_bytes(b"")
    (raw / "dt=2026-11-26/hour=10/.a.parquet.crc").write_bytes(b"junk")
    (raw / "dt=2026-11-26/_temporary").mkdir()
    (raw / "dt=2026-11-26/_temporary/x.parquet").write_bytes(b"half a file")
    write_stream(tmp_path / "stream", [])
    result, _ = run(tmp_path)
    assert result.summary["ledger"]["rows_read"] == 1


def test_dt_only_layout_cuts_next_day_by_ingest_time(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/a.parquet", [click(at(10), seq=1)])
    write_raw(raw, "dt=2026-11-27/a.parquet", [
        click(at(23, 59), seq=2, ingest=at(25, 59)),  # inside D+1 00:00 + 2h
        click(at(23, 58), seq=3, ingest=at(26, 0)),  # exactly at the cut: outside
        click(at(23, 57), seq=4, ingest=None),  # no arrival time: cannot be placed, outside
    ])
    write_stream(tmp_path / "stream", [])
    result, _ = run(tmp_path)
    assert result.summary["ledger"]["rows_read"] == 2
    assert result.summary["horizon"]["rows_beyond_horizon"] == 2


# --- rule 2: validation --------------------------------------------------------------------------

@pytest.mark.parametrize(("row", "reason"), [
    ({"click_id": None}, "null_click_id"),
    ({"ad_id": None}, "null_ad_id"),
    ({"event_time": None}, "null_event_time"),
    ({"click_id": 0}, "nonpositive_click_id"),
    ({"click_id": -5}, "nonpositive_click_id"),
    ({"cost_micros": -1}, "negative_cost"),
    ({"event_time": at(10, 5, 1)}, "id_time_mismatch"),  # id says 10:00:00
    ({"click_id": None, "ad_id": None, "cost_micros": -1}, "null_click_id"),  # first failing rule wins
    ({"ad_id": None, "click_id": 0}, "null_ad_id"),
    ({"cost_micros": -1, "event_time": at(12)}, "negative_cost"),
])
def test_validation_reason(tmp_path: Path, row: dict, reason: str) -> None:
    bad = {**click(at(10), seq=9), **row}
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1), bad])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    led = result.summary["ledger"]
    assert led["invalid_by_reason"] == {reason: 1}
    assert (led["rows_invalid"], led["rows_valid"], led["billable_clicks"]) == (1, 1, 1)
    q = pq.read_table(vdir / "quarantine.parquet").to_pylist()
    assert [(r["reason"], r["source_file"], r["source_row"]) for r in q] == [
        (reason, "dt=2026-11-26/hour=10/a.parquet", 1)]


def test_skew_boundary_and_off(tmp_path: Path) -> None:
    ok = {**click(at(10), seq=1), "event_time": at(10, 5)}  # exactly 5 minutes: allowed
    bad = {**click(at(10), seq=2), "event_time": at(10, 5, 0.001)}
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [ok, bad])
    write_stream(tmp_path / "stream", [])
    result, _ = run(tmp_path)
    assert result.summary["ledger"]["invalid_by_reason"] == {"id_time_mismatch": 1}
    result, _ = run(tmp_path, max_id_skew=None, out=str(tmp_path / "out-off"))
    assert result.summary["ledger"]["rows_invalid"] == 0


def test_invalid_rows_take_no_part_in_dedup(tmp_path: Path) -> None:
    t = at(10)
    early_invalid = click(t, seq=1, ad=2, ingest=at(10, 0, 0.5), cost=-3)  # earliest copy, but invalid
    valid = click(t, seq=1, ad=1, ingest=at(10, 0, 2))
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [early_invalid, valid])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert totals(vdir) == [{"ad_id": 1, "window_start": minute(t), "clicks": 1, "spend_micros": 1000}]
    assert result.summary["ledger"]["duplicates_removed"] == 0
    assert result.summary["ledger"]["conflicting_click_ids"] == 0


def test_quarantine_keeps_every_column_of_every_file(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=10/a.parquet", [{**click(at(10), seq=1), "click_id": None, "ua": "<b>x</b>"}])
    write_raw(raw, "dt=2026-11-26/hour=11/b.parquet", [{**click(at(11), seq=2), "ad_id": None, "country": "DE"}])
    write_stream(tmp_path / "stream", [])
    _, vdir = run(tmp_path)
    q = pq.read_table(vdir / "quarantine.parquet")
    assert q.column_names[:8] == ["click_id", "ad_id", "event_time", "ingest_time", "cost_micros", "reason",
                                  "source_file", "source_row"]
    rows = q.to_pylist()
    assert [(r["reason"], r.get("ua"), r.get("country")) for r in rows] == [
        ("null_click_id", "<b>x</b>", None), ("null_ad_id", None, "DE")]


# --- rule 3: dedup -------------------------------------------------------------------------------

def test_winner_is_earliest_ingest_nulls_last(tmp_path: Path) -> None:
    t = at(10)
    copies = [
        click(t, seq=1, ad=1, ingest=None),
        click(t, seq=1, ad=2, ingest=at(10, 0, 3)),
        click(t, seq=1, ad=3, ingest=at(10, 0, 2)),  # earliest: wins
    ]
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", copies)
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert [(r["ad_id"], r["clicks"]) for r in totals(vdir)] == [(3, 1)]
    led = result.summary["ledger"]
    assert (led["duplicates_removed"], led["conflicting_click_ids"]) == (2, 1)
    (conflict,) = pq.read_table(vdir / "conflicts.parquet").to_pylist()
    assert conflict["ad_ids"] == [1, 2, 3] and conflict["winner_ad_id"] == 3 and conflict["copies"] == 3
    assert conflict["winner_source_file"] == "dt=2026-11-26/hour=10/a.parquet" and conflict["winner_row"] == 2


def test_ties_break_by_path_then_row(tmp_path: Path) -> None:
    t = at(10)
    ing = at(10, 0, 1)
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/b.parquet", [click(t, seq=1, ad=5, ingest=ing)])
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(t, seq=1, ad=7, ingest=ing), click(t, seq=1, ad=6, ingest=ing)])
    write_stream(tmp_path / "stream", [])
    _, vdir = run(tmp_path)
    assert [r["ad_id"] for r in totals(vdir)] == [7]  # a.parquet row 0
    (conflict,) = pq.read_table(vdir / "conflicts.parquet").to_pylist()
    assert (conflict["winner_source_file"], conflict["winner_row"]) == ("dt=2026-11-26/hour=10/a.parquet", 0)


def test_copies_in_another_minute_conflict(tmp_path: Path) -> None:
    t = at(10)
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [
        click(t, seq=1), {**click(t, seq=1, ingest=at(10, 0, 9)), "event_time": at(10, 1, 30)},
        click(t, seq=2), click(t, seq=2, ingest=at(10, 0, 9)),  # identical copies: no conflict
    ])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert result.summary["ledger"]["conflicting_click_ids"] == 1
    assert result.summary["ledger"]["duplicates_removed"] == 2
    (conflict,) = pq.read_table(vdir / "conflicts.parquet").to_pylist()
    assert conflict["click_id"] == cid(t, 1)
    assert conflict["window_starts"] == [minute(t), minute(at(10, 1))]


# --- rules 4-5: day membership and totals --------------------------------------------------------

def test_out_of_day_winners_are_not_billed(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_raw(raw, "dt=2026-11-26/hour=00/a.parquet", [
        click(at(-0.01), seq=1, ingest=at(0, 5)),  # late click of D-1
        click(at(0), seq=2),  # first instant of D
    ])
    write_raw(raw, "dt=2026-11-27/hour=00/a.parquet", [
        click(at(24), seq=3, ingest=at(24, 0, 1)),  # early click of D+1
        click(at(23, 59, 59.999), seq=4, ingest=at(24, 1)),
    ])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    led = result.summary["ledger"]
    assert (led["billable_clicks"], led["clicks_out_of_day"]) == (2, 2)
    assert [r["window_start"] for r in totals(vdir)] == [at(0), at(23, 59)]


def test_totals_per_ad_minute_and_spend(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [
        click(at(10, 0, 1), seq=1, ad=2, cost=100), click(at(10, 0, 59), seq=2, ad=2, cost=250),
        click(at(10, 1, 0), seq=3, ad=2, cost=7), click(at(10, 0, 30), seq=4, ad=1, cost=None),
    ])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert totals(vdir) == [
        {"ad_id": 1, "window_start": at(10), "clicks": 1, "spend_micros": 0},
        {"ad_id": 2, "window_start": at(10), "clicks": 2, "spend_micros": 350},
        {"ad_id": 2, "window_start": at(10, 1), "clicks": 1, "spend_micros": 7},
    ]
    assert result.summary["ledger"]["billable_spend_micros"] == 357


def test_spend_is_null_without_cost_column(tmp_path: Path) -> None:
    schema = pa.schema([("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", pa.timestamp("ms"))])
    rows = [{k: v for k, v in click(at(10), seq=1).items() if k in schema.names}]
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", rows, schema=schema)
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert totals(vdir) == [{"ad_id": 1, "window_start": at(10), "clicks": 1, "spend_micros": None}]
    assert result.summary["ledger"]["billable_spend_micros"] is None


def test_mixed_units_zones_and_evolving_schema_read_as_one(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    for i, (unit, tz) in enumerate([("ms", None), ("us", "UTC"), ("ns", "America/New_York"), ("s", None)]):
        schema = pa.schema([("event_time", pa.timestamp(unit, tz=tz)), ("ad_id", pa.int32()),
                            ("click_id", pa.int64()), ("ingest_time", pa.timestamp(unit, tz=tz))]
                           + ([("cost_micros", pa.int64()), (f"extra{i}", pa.string())] if i else []))
        row = click(at(10 + i), seq=i)
        row = {k: v for k, v in row.items() if k in schema.names}
        if i:
            row[f"extra{i}"] = "x"
        if tz is None:
            row = {k: (v.replace(tzinfo=None) if isinstance(v, dt.datetime) else v) for k, v in row.items()}
        write_raw(raw, f"dt=2026-11-26/hour={10 + i:02d}/a.parquet", [row], schema=schema)
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    assert [r["window_start"] for r in totals(vdir)] == [at(10), at(11), at(12), at(13)]
    assert result.summary["ledger"]["rows_invalid"] == 0


# --- rules 6-7: stream side and drift ------------------------------------------------------------

def test_stream_rows_out_of_day_ignored_and_sink_duplicates_summed(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_stream(tmp_path / "stream", [(1, at(10), 1), (1, at(-1), 5), (1, at(24), 2)], name="a.parquet")
    write_stream(tmp_path / "stream", [(1, at(10), 1)], name="b.parquet")
    result, vdir = run(tmp_path)
    assert result.summary["stream"] == {"rows_read": 4, "rows_invalid": 0, "invalid_by_reason": {},
                                        "duplicate_keys": 1, "rows_out_of_day": 2, "clicks": 2}
    row = drift(vdir)[(1, at(10))]
    assert (row["stream_clicks"], row["delta"], row["status"]) == (2, 1, "stream_over")


def test_drift_statuses_and_flags(tmp_path: Path) -> None:
    clicks = [click(at(10), seq=i, ad=1) for i in range(3)]  # ad 1 @10:00 -> 3
    clicks += [click(at(11), seq=i, ad=2) for i in range(2)]  # ad 2 @11:00 -> 2
    clicks += [click(at(12), seq=0, ad=3)]  # ad 3 @12:00 -> 1 (stream absent)
    clicks += [click(at(13), seq=0, ad=4)]  # ad 4 @13:00 -> 1 (match)
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", clicks)
    write_stream(tmp_path / "stream", [(1, at(10), 4), (2, at(11), 1), (4, at(13), 1), (5, at(14), 2)])
    result, vdir = run(tmp_path)
    d = drift(vdir)
    got = {k: (r["batch_clicks"], r["stream_clicks"], r["delta"], r["status"], r["flagged"]) for k, r in d.items()}
    assert got == {
        (1, at(10)): (3, 4, 1, "stream_over", True),
        (2, at(11)): (2, 1, -1, "stream_under", True),
        (3, at(12)): (1, 0, -1, "missing_in_stream", True),
        (4, at(13)): (1, 1, 0, "match", False),
        (5, at(14)): (0, 2, 2, "missing_in_batch", True),
    }
    assert list(d) == sorted(d)
    s = result.summary
    assert (s["status"], s["exit_code"]) == ("drift_flagged", 3)
    assert s["drift"]["by_status"] == {"match": 1, "missing_in_batch": 1, "missing_in_stream": 1,
                                       "stream_over": 1, "stream_under": 1}
    assert (s["drift"]["keys"], s["drift"]["flagged"]) == (5, 4)
    assert (s["drift"]["net_delta_clicks"], s["drift"]["abs_delta_clicks"]) == (1, 5)


def test_tolerances(tmp_path: Path) -> None:
    clicks = [click(at(10), seq=i, ad=1) for i in range(100)] + [click(at(11), seq=i, ad=2) for i in range(10)]
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", clicks)
    write_stream(tmp_path / "stream", [(1, at(10), 103), (2, at(11), 12)])
    result, vdir = run(tmp_path, tolerance_abs=2, tolerance_rel=0.025)
    d = drift(vdir)
    # ad 1: |3| > max(2, 2.5) -> flagged; ad 2: |2| > max(2, 0.25) is false -> not flagged
    assert (d[(1, at(10))]["flagged"], d[(2, at(11))]["flagged"]) == (True, False)
    result, vdir = run(tmp_path, tolerance_abs=2, tolerance_rel=0.03, out=str(tmp_path / "o2"))
    assert result.exit_code == 0 and result.summary["status"] == "drift_within_tolerance"


def test_no_drift_is_billable_exit_0(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    result, _ = run(tmp_path)
    assert (result.summary["status"], result.exit_code) == ("billable", 0)


def test_ledger_balances_in_summary(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(at(10), seq=1), click(at(10), seq=1), {**click(at(10), seq=2), "ad_id": None}])
    write_stream(tmp_path / "stream", [])
    result, vdir = run(tmp_path)
    led = json.loads((vdir / "summary.json").read_text())["ledger"]
    assert led["rows_read"] == led["rows_invalid"] + led["rows_valid"] == 3
    assert led["rows_valid"] - led["duplicates_removed"] == led["billable_clicks"] + led["clicks_out_of_day"] == 1
    assert D.isoformat() == result.summary["date"]

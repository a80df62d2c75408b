"""The day-sized outputs leave DuckDB a batch at a time (issue 12): the same bytes as writing each table
whole, the same contract, the same report aggregates and CSVs."""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from billing import contracts, schemas
from billing.day import outputs
from billing.errors import OutputContractError
from billing.report import per_ad, per_hour
from billing.report.csvs import ADS_CSV_COLUMNS, write_ads_csv

T0 = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
CAUSES = [None, "lost_events", "replay_overcount", "window_boundary_shift"]


def drift_table(n: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    delta = rng.integers(-3, 4, n)
    return pa.table({
        "ad_id": np.sort(rng.integers(0, n // 50 + 1, n)),
        "window_start": pa.array([T0 + dt.timedelta(minutes=int(m)) for m in rng.integers(0, 1440, n)],
                                 pa.timestamp("us", tz="UTC")),
        "batch_clicks": rng.integers(0, 5, n),
        "stream_clicks": rng.integers(0, 5, n),
        "delta": delta,
        "status": pa.array(rng.choice(list(schemas.DRIFT_STATUSES), n).tolist(), pa.string()),
        "flagged": pa.array(delta != 0),
        "cause": pa.array([CAUSES[i] for i in rng.integers(0, 4, n)], pa.string()),
        "batch_spend_micros": pa.array(np.where(rng.random(n) < 0.2, None, rng.integers(0, 10**6, n)).tolist(),
                                       pa.int64()),
        "stream_spend_micros": pa.nulls(n, pa.int64()),
        "money_at_risk_micros": rng.integers(-10**6, 10**6, n),
    }).cast(schemas.arrow_schema(schemas.Drift))


@pytest.mark.parametrize("piece", [1 << 10, 777, 5000])
def test_row_groups_written_in_pieces_are_the_bytes_of_the_whole_table(tmp_path: Path, monkeypatch, piece) -> None:
    """Pieces of any size, cut into row groups of ROW_GROUP rows, give write_parquet's bytes for the table
    with the same chunks (several row groups, a short last one, dictionary and NULL columns)."""
    monkeypatch.setattr(outputs, "ROW_GROUP", 1000)
    drift = drift_table(4321)
    whole = pa.Table.from_batches(drift.to_batches(max_chunksize=piece))
    outputs.write_parquet(whole, tmp_path / "whole.parquet", outputs.SORTED_BY["drift.parquet"])
    w = outputs.RowGroupWriter(tmp_path / "drift.parquet", whole.schema, schemas.Drift)
    for batch in whole.to_batches():
        w.add(pa.Table.from_batches([batch]))
    w.close()
    assert (tmp_path / "drift.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


def test_an_empty_table_in_pieces_is_the_empty_file(tmp_path: Path) -> None:
    schema = schemas.arrow_schema(schemas.Totals)
    outputs.write_parquet(schema.empty_table(), tmp_path / "whole.parquet", outputs.SORTED_BY["totals.parquet"])
    w = outputs.RowGroupWriter(tmp_path / "totals.parquet", schema, schemas.Totals)
    w.close()
    assert (tmp_path / "totals.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()


@pytest.mark.parametrize("column, value", [("batch_clicks", -1), ("status", "drifted"), ("cause", "gremlins"),
                                           ("ad_id", None), ("flagged", None)])
def test_the_quick_contract_check_refuses_what_pandera_refuses(tmp_path: Path, column, value) -> None:
    drift = drift_table(50)
    schema = drift.schema
    assert contracts.meets_contract(schemas.Drift, schema, drift)
    i = schema.get_field_index(column)
    values = drift.column(column).to_pylist()
    values[17] = value
    bad = drift.set_column(i, schema.field(i), pa.array(values, schema.field(i).type))
    assert not contracts.meets_contract(schemas.Drift, schema, bad)
    with pytest.raises(OutputContractError):
        contracts.check_output(schemas.Drift, bad, "drift.parquet")
    w = outputs.RowGroupWriter(tmp_path / "drift.parquet", schema, schemas.Drift)
    w.add(bad)
    with pytest.raises(OutputContractError, match=r"drift\.parquet breaks its output contract"):
        w.close()
    w.abort()


def test_a_table_of_another_schema_breaks_the_contract() -> None:
    drift = drift_table(10)
    assert not contracts.meets_contract(schemas.Drift, drift.schema, drift.drop_columns(["cause"]))


def _ads_csv_by_csv_module(ads: list[dict], path: Path, date: str) -> None:
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(ADS_CSV_COLUMNS)
        for a in ads:
            w.writerow([date, *("" if a[c] is None else a[c] for c in ADS_CSV_COLUMNS[1:])])


@pytest.mark.parametrize("cause", ["lost_events", 'a "quoted", cause\r\n'])
def test_ads_csv_from_arrow_is_the_csv_modules_bytes(tmp_path: Path, cause: str) -> None:
    ads = [{"ad_id": i, "billable_clicks": 3 * i, "spend_micros": None if i % 3 else 10 * i, "stream_clicks": i,
            "delta": i - 2 * (i % 2) * i, "money_at_risk_micros": None if i % 5 == 0 else -i,
            "flagged_windows": i % 4, "main_cause": None if i % 2 else cause} for i in range(1, 40)]
    table = pa.Table.from_pylist(ads)
    write_ads_csv(table.to_batches(max_chunksize=16), tmp_path / "arrow.csv", "2026-11-26")
    _ads_csv_by_csv_module(ads, tmp_path / "module.csv", "2026-11-26")
    assert (tmp_path / "arrow.csv").read_bytes() == (tmp_path / "module.csv").read_bytes()


def test_per_ad_and_per_hour_in_sql() -> None:
    """Worked by hand: ad 1's causes tie on |delta| (the first by name wins), ad 2 has no spend and no
    flagged window, ad 3 is in the stream only."""
    w = [T0 + dt.timedelta(hours=h, minutes=m) for h, m in ((0, 1), (0, 2), (5, 0), (5, 1), (23, 59))]
    drift = pa.table({
        "ad_id": [1, 1, 1, 2, 3], "window_start": pa.array(w, pa.timestamp("us", tz="UTC")),
        "batch_clicks": [4, 2, 3, 5, 0], "stream_clicks": [6, 0, 3, 5, 2], "delta": [2, -2, 0, 0, 2],
        "flagged": [True, True, False, False, True],
        "cause": ["replay_overcount", "lost_events", None, None, "phantom_window"],
        "money_at_risk_micros": [20, -20, 0, None, None]})
    totals = pa.table({"ad_id": [1, 1, 1, 2], "clicks": [4, 2, 3, 5], "spend_micros": [40, 20, 30, None]})
    assert per_ad(totals, drift) == [
        {"ad_id": 1, "billable_clicks": 9, "spend_micros": 90, "stream_clicks": 9, "delta": 0,
         "money_at_risk_micros": 0, "flagged_windows": 2, "main_cause": "lost_events"},
        {"ad_id": 2, "billable_clicks": 5, "spend_micros": None, "stream_clicks": 5, "delta": 0,
         "money_at_risk_micros": None, "flagged_windows": 0, "main_cause": None},
        {"ad_id": 3, "billable_clicks": 0, "spend_micros": None, "stream_clicks": 2, "delta": 2,
         "money_at_risk_micros": None, "flagged_windows": 1, "main_cause": "phantom_window"},
    ]
    hours = per_hour(drift)
    assert len(hours) == 24
    assert hours[0] == {"hour": 0, "batch": 6, "stream": 6, "flagged": 2, "abs_delta": 4}
    assert hours[5] == {"hour": 5, "batch": 8, "stream": 8, "flagged": 0, "abs_delta": 0}
    assert hours[23] == {"hour": 23, "batch": 0, "stream": 2, "flagged": 1, "abs_delta": 2}
    assert sum(h["batch"] for h in hours) == 14

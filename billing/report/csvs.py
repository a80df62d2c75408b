"""The two CSV exports beside report.html: UTF-8 with a byte-order mark (Excel then reads UTF-8; LibreOffice
and csv readers skip it), a header row, CRLF line ends, ISO-8601 UTC times, empty cells for NULL."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

import pyarrow as pa

from billing.report.formats import iso

DRIFT_CSV = "drift_flagged.csv"
ADS_CSV = "ads_daily.csv"

DRIFT_CSV_COLUMNS = ("ad_id", "window_start", "batch_clicks", "stream_clicks", "delta", "status", "cause",
                     "batch_spend_micros", "money_at_risk_micros")
ADS_CSV_COLUMNS = ("date", "ad_id", "billable_clicks", "spend_micros", "stream_clicks", "delta", "money_at_risk_micros",
                   "flagged_windows", "main_cause")


def _open_csv(path: Path) -> IO[str]:
    return open(path, "w", newline="", encoding="utf-8-sig")


def write_drift_csv(drift: pa.Table, path: Path) -> None:
    """The flagged windows of the drift table, in its order."""
    flagged = drift.filter(drift.column("flagged")) if drift.num_rows else drift
    with _open_csv(path) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(DRIFT_CSV_COLUMNS)
        for r in flagged.select(list(DRIFT_CSV_COLUMNS)).to_pylist():
            w.writerow(["" if r[c] is None else (iso(r[c]) if c == "window_start" else r[c])
                        for c in DRIFT_CSV_COLUMNS])


def write_ads_csv(ads: list[dict[str, Any]], path: Path, date: str) -> None:
    """Per ad of day ``date`` (the first column, so files of several days can be concatenated)."""
    with _open_csv(path) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(ADS_CSV_COLUMNS)
        for a in ads:
            w.writerow([date, *("" if a[c] is None else a[c] for c in ADS_CSV_COLUMNS[1:])])

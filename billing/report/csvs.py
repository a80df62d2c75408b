"""The two CSV exports beside report.html: UTF-8 with a byte-order mark (Excel then reads UTF-8; LibreOffice
and csv readers skip it), a header row, CRLF line ends, ISO-8601 UTC times, empty cells for NULL."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import IO

import pyarrow as pa
import pyarrow.csv as pa_csv

from billing.report.formats import iso

DRIFT_CSV = "drift_flagged.csv"
ADS_CSV = "ads_daily.csv"

DRIFT_CSV_COLUMNS = ("ad_id", "window_start", "batch_clicks", "stream_clicks", "delta", "status", "cause",
                     "batch_spend_micros", "money_at_risk_micros")
ADS_CSV_COLUMNS = ("date", "ad_id", "billable_clicks", "spend_micros", "stream_clicks", "delta", "money_at_risk_micros",
                   "flagged_windows", "main_cause")


def _open_csv(path: Path) -> IO[str]:
    return open(path, "w", newline="", encoding="utf-8-sig")


def write_drift_csv(flagged: Iterable[pa.RecordBatch], path: Path) -> None:
    """The flagged windows (billing.report.aggregates.flagged_batches), batch by batch, in their order."""
    with _open_csv(path) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(DRIFT_CSV_COLUMNS)
        for batch in flagged:
            for r in batch.select(list(DRIFT_CSV_COLUMNS)).to_pylist():
                w.writerow(["" if r[c] is None else (iso(r[c]) if c == "window_start" else r[c])
                            for c in DRIFT_CSV_COLUMNS])


def write_ads_csv(ads: Iterable[pa.RecordBatch], path: Path, date: str) -> None:
    """Per ad of day ``date`` (the first column, so files of several days can be concatenated), from batches
    with ADS_CSV_COLUMNS[1:] (billing.report.aggregates.ad_batches). Encoded by Arrow's CSV writer (a long
    tail has millions of ads): integers and cause names need no quoting; a batch with text that would
    (a delimiter, quote or line break) is written by the csv module instead, so the bytes are the same."""
    with _open_csv(path) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(ADS_CSV_COLUMNS)
        f.flush()
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none", eol="\r\n")
        for batch in ads:
            if batch.num_rows == 0:
                continue
            table = pa.table([pa.array([date] * batch.num_rows, pa.string()),
                              *(batch.column(c) for c in ADS_CSV_COLUMNS[1:])], names=list(ADS_CSV_COLUMNS))
            sink = pa.BufferOutputStream()
            try:
                pa_csv.write_csv(table, sink, options)
            except pa.ArrowInvalid:  # text that needs quoting: the csv module's own
                for r in table.to_pylist():
                    w.writerow(["" if r[c] is None else r[c] for c in ADS_CSV_COLUMNS])
                continue
            f.write(sink.getvalue().to_pybytes().decode("utf-8"))

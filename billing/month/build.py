"""``billing month``: the month's books as a committed, versioned folder ``OUT/month=YYYY-MM/``.

The folder is versioned exactly like a day's (:class:`billing.day.publish.Day` with the prefix
``month=YYYY-MM``: the same lock, claims, staging and ``_current.json`` commit). Its manifest names
each day version it used and that version's output hashes. The files are deterministic (no clock
in them), so a re-run over the same published days is "unchanged, still version N".
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import socket
import tempfile
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

import billing
from billing.day.publish import Commit, Day
from billing.io.storage import Store
from billing.month.anomalies import AnomalyRule
from billing.month.book import ADS_COLUMNS, DAYS_COLUMNS, Book, build_book, parse_month
from billing.month.page import render_month

MONTH_FILES = ("month.html", "month_ads.csv", "month_days.csv", "month.json")


def month_folder(out: Store, first: dt.date) -> Day:
    return Day(out, first, prefix=f"month={first.strftime('%Y-%m')}")


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    """Like the day CSVs: UTF-8 with a BOM, CRLF, a header, empty cells for missing values."""
    with open(path, "w", newline="", encoding="utf-8-sig") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r[c] is None else str(r[c]).lower() if isinstance(r[c], bool) else r[c]
                        for c in columns])


def stage(book: Book, folder: Path) -> dict[str, Path]:
    paths = {name: folder / name for name in MONTH_FILES}
    paths["month.html"].write_text(render_month(book, billing.__version__), encoding="utf-8")
    _write_csv(paths["month_ads.csv"], ADS_COLUMNS, book.ads)
    _write_csv(paths["month_days.csv"], DAYS_COLUMNS, book.days)
    paths["month.json"].write_text(json.dumps(book.as_json(), indent=2, ensure_ascii=False, allow_nan=False) + "\n",
                                   encoding="utf-8")
    return paths


def build_month(out: Store, month: str, rule: AnomalyRule) -> tuple[Book, Commit]:
    """Build and publish the month (a new version only when a file differs from the current one's)."""
    first = parse_month(month)
    folder = month_folder(out, first)
    run_id = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory(prefix="billing-month-") as tmp, folder.lock(run_id):
        book = build_book(out, first, rule)
        staged = stage(book, Path(tmp))
        manifest = {"month": book.month, "run_id": run_id,
                    "package": {"name": "billing", "version": billing.__version__},
                    "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    "host": socket.gethostname(), "pid": os.getpid(),
                    "days": book.used, "missing_days": book.missing,
                    "anomaly_rule": asdict(rule)}
        commit = folder.publish(staged, manifest, compare=MONTH_FILES)
    return book, commit

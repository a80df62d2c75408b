"""manifest.json of a version: what made it (inputs, config, code), its counts and its restatement.

Run metadata (time, host, pid, run id) lives here and nowhere else, so the data files of two runs
over the same inputs are byte-identical. The publish step adds the version, the previous one and
every output's hash.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import time
from typing import Any

import pyarrow as pa

import billing
from billing.config import ReconcileConfig
from billing.day.restatement import PerAd, per_ad_totals, restatement
from billing.io.inputs import Inputs


def build_manifest(cfg: ReconcileConfig, inputs: Inputs, summary: dict[str, Any], run_id: str,
                   started: float, totals: pa.Table, previous: PerAd | None) -> dict[str, Any]:
    return {
        "date": cfg.date.isoformat(),
        "run_id": run_id,
        "package": {"name": "billing", "version": billing.__version__},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "duration_seconds": round(time.monotonic() - started, 3),
        "config": {"content": cfg.content_settings(), "run": cfg.run_settings()},
        "inputs": inputs.listing(),
        "counts": {"ledger": summary["ledger"], "stream": summary["stream"]},
        "restatement": restatement(previous, per_ad_totals(totals.to_batches())),
    }

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

import billing
from billing.config import ReconcileConfig
from billing.day.restatement import PerAd, restatement
from billing.io.inputs import Inputs


def build_manifest(cfg: ReconcileConfig, inputs: Inputs, summary: dict[str, Any], run_id: str,
                   started: float, after: PerAd | None, previous: PerAd | None) -> dict[str, Any]:
    """``after``: :func:`~billing.day.restatement.per_ad_totals` of this version's totals, needed (and
    computed by the caller) only when there is a ``previous`` version."""
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
        "restatement": None if previous is None else restatement(previous, after or {}),
    }

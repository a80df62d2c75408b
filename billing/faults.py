"""Fault-injection points, for the crash tests only.

``BILLING_FAULT_KILL_AT=<point>`` makes the process kill itself with SIGKILL when it
reaches that point: no cleanup, no ``finally``, exactly like a node dying. Unset (the
only state in production), every point is a no-op.
"""

from __future__ import annotations

import os
import signal

ENV = "BILLING_FAULT_KILL_AT"

POINTS = (
    "after_read",
    "after_dedup",
    "after_diff",
    "mid_write_totals",
    "mid_write_drift",
    "mid_write_quarantine",
    "mid_write_conflicts",
    "mid_write_report",
    "before_manifest",
    "before_commit",
    "after_commit",
)


def point(name: str) -> None:
    assert name in POINTS, name
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

"""Fault-injection points, for the crash and concurrency tests only.

``BILLING_FAULT_KILL_AT=<point>`` makes the process kill itself with SIGKILL when it
reaches that point: no cleanup, no ``finally``, exactly like a node dying.
``BILLING_FAULT_PAUSE_AT=<point>:<seconds>`` makes it sleep there (to hold the day's
lock while another run starts). Unset, as in production, every point is a no-op.
"""

from __future__ import annotations

import os
import signal
import time

ENV = "BILLING_FAULT_KILL_AT"
PAUSE_ENV = "BILLING_FAULT_PAUSE_AT"

POINTS = (
    "after_lock",
    "after_read",
    "mid_stream_read",
    "after_dedup",
    "after_diff",
    "mid_write_totals",
    "mid_write_drift",
    "mid_write_quarantine",
    "mid_write_conflicts",
    "mid_write_summary",
    "mid_write_report",
    "before_manifest",
    "before_commit",
    "after_promote",
    "after_commit",
    "before_tables",
    "mid_tables",
)
#: Points past the version commit (``_current.json`` moved): a kill there leaves the new version current and
#: the Delta tables under OUT/tables/ behind it (before_tables: all of them; mid_tables: totals published,
#: the other tables not), until the next run or ``billing publish-tables`` brings them level.
COMMITTED = ("after_commit", "before_tables", "mid_tables")


def point(name: str) -> None:
    assert name in POINTS, name
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    pause = os.environ.get(PAUSE_ENV, "")
    if pause.startswith(name + ":"):
        time.sleep(float(pause.split(":", 1)[1]))


def armed(name: str) -> bool:
    """True when the kill point ``name`` is armed (lets a writer leave a half-written file first)."""
    return os.environ.get(ENV) == name

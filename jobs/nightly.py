"""Cron entry point: reconcile yesterday (UTC), or the day given, with everything else from
``BILLING_*`` variables or ``BILLING_CONFIG``. Exit codes are billing's: 0, 3 (drift flagged), 2, 1.

    BILLING_CONFIG=/etc/billing.toml python -m jobs.nightly            # yesterday
    BILLING_CONFIG=/etc/billing.toml python -m jobs.nightly 2026-11-26  # a given day
"""

from __future__ import annotations

import datetime as dt
import sys

from billing.cli import main as billing_main


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    day = args[0] if args and not args[0].startswith("-") else None
    rest = args[1:] if day else args
    if day is None:
        day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
    billing_main(["reconcile", "--date", day, *rest])


if __name__ == "__main__":
    main()

"""Entry point for the demo-data generator (the same as ``billing demo``).

    python -m jobs.generate_demo --out ./demo --date 2026-11-26 --rows 100000 --seed 1
"""

from __future__ import annotations

import sys

from billing.cli import main as billing_main


def main() -> None:
    billing_main(["demo", *sys.argv[1:]])


if __name__ == "__main__":
    main()

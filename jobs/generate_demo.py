"""Entry point for the demo-data generator (the same as ``billing demo``).

    python -m jobs.generate_demo --out ./demo --date 2026-11-26 --rows 100000 --seed 1
"""

from __future__ import annotations

import sys

from billing.cli import cli


def main() -> None:
    cli(["demo", *sys.argv[1:]], prog_name="billing")


if __name__ == "__main__":
    main()

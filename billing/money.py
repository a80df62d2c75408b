"""Money is integer micro-units end to end; this module only formats it for people."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def money(micros: int | None, places: int = 2) -> str:
    """``84025861248`` -> ``'84,025.86'`` (half-even at the last shown place); None -> ``'n/a'``."""
    if micros is None:
        return "n/a"
    value = (Decimal(micros) / Decimal(1_000_000)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    return f"{value:,.{places}f}"

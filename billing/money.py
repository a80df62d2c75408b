"""Money is integer micro-units end to end; this module only formats it for people."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal


def money(micros: int | None, places: int = 2) -> str:
    """``84025861248`` -> ``'84,025.86'`` (half-even at the last shown place); None -> ``'n/a'``.

    A negative amount that rounds to zero is shown as ``0.00``, never ``-0.00``.
    """
    if micros is None:
        return "n/a"
    value = (Decimal(micros) / Decimal(1_000_000)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_EVEN)
    if value.is_zero():
        value = abs(value)  # -400 micros shows as 0.00, never -0.00
    return f"{value:,.{places}f}"

"""How the report writes a value: counts with thousands separators, signed deltas, ISO-8601 UTC times,
and raw-row values as strict JSON. Money is :func:`billing.money.money`."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any


def iso(ts: dt.datetime | None) -> str:
    if ts is None:
        return ""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def n(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def signed(value: int | None) -> str:
    return "n/a" if value is None else f"{value:+,}"


def plain(v: Any) -> Any:
    """A raw row's value as something strict JSON holds: times as ISO text, bytes as hex, NaN and inf as text."""
    if isinstance(v, dt.datetime):
        return iso(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # a raw column's NaN or inf, shown as text: the JSON stays strict
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, (list, dict, str, int, float, bool)) or v is None:
        return v
    return str(v)

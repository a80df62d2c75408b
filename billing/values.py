"""The syntaxes of setting values: durations, dates, byte sizes, counts, numbers and flags.

Each parser takes text (command line, environment), a TOML value or an already typed value, and
raises :class:`UsageError` (exit 2, one line) for anything it cannot read exactly: ``1.5`` is not a
count, ``inf`` not an integer, ``20261126`` not a date.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Callable
from typing import Any

from billing.errors import UsageError

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str | int | float | dt.timedelta, *, allow_off: bool = False) -> dt.timedelta | None:
    """``"2h"``, ``"90m"``, ``"5m"``, ``"30s"``, ``"250ms"``; bare numbers are seconds.

    ``"off"`` gives ``None`` where the option allows switching the check off.
    """
    if isinstance(text, dt.timedelta):
        return text
    if isinstance(text, int | float):
        return dt.timedelta(seconds=text)
    if allow_off and text.strip().lower() in {"off", "none", "disabled"}:
        return None
    m = _DURATION.match(text)
    if not m:
        hint = ", or 'off'" if allow_off else ""
        raise UsageError(f"not a duration: {text!r} (use e.g. 2h, 90m, 30s{hint})")
    try:
        return dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])
    except OverflowError:
        raise UsageError(f"duration out of range: {text!r}") from None


def format_duration(value: dt.timedelta | None) -> str:
    if value is None:
        return "off"
    seconds = value.total_seconds()
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_date(text: str | dt.date) -> dt.date:
    """``YYYY-MM-DD`` exactly (surrounding blanks aside)."""
    if isinstance(text, dt.date):
        return text
    try:
        if _DATE.match(text.strip()):
            return dt.date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        pass
    raise UsageError(f"not a date: {text!r} (use YYYY-MM-DD)")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int) -> int:
    """``"4GB"``, ``"512MiB"``, ``"1000000"``."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"not a size: {text!r} (use e.g. 4GB or 1536MiB)")
    unit = m.group(2).lower() if m.group(2) else None
    size = int(float(m.group(1)) * _SIZE_UNITS[unit])
    if size >= 2**63:
        raise UsageError(f"not a size: {text!r} (at most 8EiB)")
    return size


def default_memory_limit() -> int:
    """Half of the machine's physical memory: DuckDB spills to disk beyond it."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return total // 2


def _number(kind: type[int] | type[float], what: str) -> Callable[[Any, str], Any]:
    """A parser of ``kind``: an integer is never taken from a fraction (``1.5``), a float or an infinity."""
    def parse(v: Any, opt: str) -> int | float:
        if isinstance(v, float) and kind is int and not v.is_integer():
            raise UsageError(f"{opt}: not {what}: {v!r}")
        if not isinstance(v, bool) and isinstance(v, int | float | str):
            with contextlib.suppress(ValueError, OverflowError):
                return kind(v)
        raise UsageError(f"{opt}: not {what}: {v!r}")
    return parse


def _count(v: Any, opt: str) -> int:
    """An integer >= 0."""
    if (n := _int(v, opt)) < 0:
        raise UsageError(f"{opt} must be >= 0")
    return n


_int, _float = _number(int, "an integer"), _number(float, "a number")
_TRUE, _FALSE = {"1", "true", "t", "yes", "y", "on"}, {"0", "false", "f", "no", "n", "off"}


def _bool(v: Any, opt: str) -> bool:
    if isinstance(v, bool):
        return v
    if (text := str(v).strip().lower()) not in _TRUE | _FALSE:
        raise UsageError(f"{opt}: not a boolean: {v!r} (use true or false)")
    return text in _TRUE


def _duration(v: Any, opt: str) -> dt.timedelta:
    return parse_duration(v) or dt.timedelta(0)  # None only with allow_off


#: PostgreSQL's largest ``statement_timeout`` (an int of milliseconds, about 24.8 days).
PG_MAX_TIMEOUT_MS = 2_147_483_647


def _statement_timeout(v: Any, opt: str) -> dt.timedelta | None:
    """``off``: the server's setting; ``0``: no timeout (PostgreSQL's 0); else 1ms..PG_MAX_TIMEOUT_MS."""
    d = parse_duration(v, allow_off=True)
    if d is None or d == dt.timedelta(0):
        return d
    if not dt.timedelta(milliseconds=1) <= d <= dt.timedelta(milliseconds=PG_MAX_TIMEOUT_MS):
        raise UsageError(f"{opt} {v}: out of range: from 1ms to {PG_MAX_TIMEOUT_MS}ms (about 24d, PostgreSQL's "
                         f"limit), 0 for no timeout or 'off' for the server's setting")
    return d


def redact_uri(uri: str) -> str:
    """A database URI without its password (user:PASSWORD@ and password=/sslpassword= parameters)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme.lower() not in ("postgresql", "postgres"):
        return uri
    netloc, slash, tail = rest.partition("/")
    user, at, host = netloc.rpartition("@")
    netloc = (user.partition(":")[0] + "@" if at else "") + host
    path, q, query = tail.partition("?")
    kept = [kv for kv in query.split("&") if kv.partition("=")[0] not in ("password", "sslpassword")]
    return f"{scheme}://{netloc}{slash}{path}" + (q + "&".join(kept) if q and any(kept) else "")

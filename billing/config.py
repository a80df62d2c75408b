"""Typed configuration of a reconciliation run.

Values come from, in order of precedence: command line > ``BILLING_*`` environment
variables > a TOML file (``--config``) > the defaults declared here. The CLI
(``billing.cli``) does the layering; this module holds the typed result and the
parsers for the value syntaxes (durations, dates, byte sizes).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from billing.errors import UsageError

#: Twitter's Snowflake epoch (2010-11-04T01:42:54.657Z), in ms since the Unix epoch.
SNOWFLAKE_EPOCH_MS = 1288834974657

#: A Snowflake id holds, above its low 22 bits (worker, sequence), the ms since that epoch it was made at:
#: ``(click_id >> SNOWFLAKE_TIME_SHIFT) + epoch_ms``, in SQL the macro snowflake_ms (sql/macros/packing.sql).
SNOWFLAKE_TIME_SHIFT = 22

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


def parse_date(text: str | dt.date) -> dt.date:
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise UsageError(f"not a date: {text!r} (use YYYY-MM-DD)") from None


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(text: str | int) -> int:
    """``"4GB"``, ``"512MiB"``, ``"1000000"``."""
    if isinstance(text, int):
        return text
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"not a size: {text!r} (use e.g. 4GB or 512MiB)")
    unit = m.group(2).lower() if m.group(2) else None
    return int(float(m.group(1)) * _SIZE_UNITS[unit])


def default_memory_limit() -> int:
    """Half of the machine's physical memory: DuckDB spills to disk beyond it."""
    try:
        import os

        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return total // 2


#: The smallest ``--memory-limit``: DuckDB gets 40% of it (~100 MiB), what its fixed costs and a
#: small day need; below ~16 MB it cannot even read a 20k-row day.
MIN_MEMORY_LIMIT = 256 * 2**20


@dataclass(frozen=True)
class ReconcileConfig:
    """Everything that decides the content of a reconciled day.

    Two runs with equal configs over equal inputs publish byte-identical data files.
    """

    date: dt.date
    """The UTC day D being reconciled."""
    raw: str
    """Root of the raw click log: a local path or ``s3://bucket/prefix``."""
    stream: str
    """Root of the stream-side aggregates (``STREAM/dt=D/*.parquet``)."""
    out: str
    """Root the day's versions are published under (``OUT/dt=D/v=N``)."""
    lateness: dt.timedelta = dt.timedelta(hours=2)
    """How far into D+1 (by arrival) the batch reads clicks of D."""
    max_id_skew: dt.timedelta | None = dt.timedelta(minutes=5)
    """Largest |event_time - time in click_id| accepted; None switches the check off."""
    tolerance_abs: int = 0
    """A drift key is flagged only if |delta| exceeds this many clicks ..."""
    tolerance_rel: float = 0.0
    """... and exceeds this fraction of the key's batch clicks."""
    stream_allowed_lateness: dt.timedelta = dt.timedelta(minutes=10)
    """The stream job's allowed lateness (watermark), used to explain drift."""
    snowflake_epoch_ms: int = SNOWFLAKE_EPOCH_MS
    """Epoch of the Snowflake click ids, in ms since the Unix epoch."""
    allow_empty: bool = False
    """Publish an empty day when there are no raw partitions (otherwise exit 2)."""
    stream_optional: bool = False
    """Reconcile against nothing when the stream partition is missing (otherwise exit 2)."""
    slices: int = 0
    """Click-id slices to dedup separately; 0 picks from the row count."""
    workers: int = 1
    """Processes running slices at once."""
    memory_limit: int = field(default_factory=default_memory_limit)
    """DuckDB memory limit in bytes; it spills to a temp directory beyond it."""
    threads: int = 0
    """DuckDB threads; 0 means one per core."""
    s3_endpoint: str | None = None
    """S3-compatible endpoint URL (else AWS_ENDPOINT_URL, else AWS)."""

    def __post_init__(self) -> None:
        """Refuse values no run can use (exit 2), whichever way the config was built (CLI, plan, code)."""
        if self.tolerance_abs < 0:
            raise UsageError(f"--tolerance-abs must be >= 0, got {self.tolerance_abs}")
        if not (math.isfinite(self.tolerance_rel) and self.tolerance_rel >= 0):
            raise UsageError(f"--tolerance-rel must be a finite number >= 0, got {self.tolerance_rel}")
        if self.memory_limit < MIN_MEMORY_LIMIT:
            raise UsageError(f"--memory-limit {self.memory_limit} bytes is below the minimum of "
                             f"{MIN_MEMORY_LIMIT // 2**20}MiB")
        for name in ("slices", "threads"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name} must be >= 0")
        if self.workers < 1:
            raise UsageError("--workers must be >= 1")
        try:  # the horizon ends at D+1 00:00 + lateness; windows and partitions are named up to D+1
            dt.datetime.combine(self.date, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1) + self.lateness
        except OverflowError:
            raise UsageError(f"--date {self.date.isoformat()} with --lateness {format_duration(self.lateness)}: "
                             f"the horizon would end after {dt.date.max.isoformat()}") from None

    def content_settings(self) -> dict[str, Any]:
        """The settings that decide output content, as recorded in the manifest."""
        return {
            "date": self.date.isoformat(),
            "lateness": format_duration(self.lateness),
            "max_id_skew": format_duration(self.max_id_skew),
            "tolerance_abs": self.tolerance_abs,
            "tolerance_rel": self.tolerance_rel,
            "stream_allowed_lateness": format_duration(self.stream_allowed_lateness),
            "snowflake_epoch_ms": self.snowflake_epoch_ms,
            "allow_empty": self.allow_empty,
            "stream_optional": self.stream_optional,
        }

    def run_settings(self) -> dict[str, Any]:
        """Settings that change how, not what: recorded, but not part of the content."""
        return {
            "raw": self.raw,
            "stream": self.stream,
            "out": self.out,
            "slices": self.slices,
            "workers": self.workers,
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "s3_endpoint": self.s3_endpoint,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReconcileConfig:
        """Inverse of :meth:`as_dict` (plans carry their config this way)."""
        d = dict(d)
        d["date"] = parse_date(d["date"])
        for k in ("lateness", "stream_allowed_lateness"):
            d[k] = parse_duration(d[k])
        d["max_id_skew"] = parse_duration(d["max_id_skew"], allow_off=True)
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["date"] = self.date.isoformat()
        for k in ("lateness", "max_id_skew", "stream_allowed_lateness"):
            d[k] = format_duration(d[k])
        return d

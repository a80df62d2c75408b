"""Typed configuration of a reconciliation run, and where its values come from.

:meth:`ReconcileConfig.load` layers them, in order of precedence: the command line (or any
caller's mapping, e.g. the Airflow DAG's Variables) > ``BILLING_<FIELD>`` environment variables >
a TOML file (keys as the option names, ``-`` or ``_``, at top level or under ``[billing]``) > the
defaults declared on the fields below, each written once. Values given as text are parsed here
(durations, dates, byte sizes, numbers, flags), so a bad value from any layer is one line, exit 2.
The CLI only parses its arguments into the first layer. No other module reads ``BILLING_*``
variables (the fault-injection hooks of :mod:`billing.faults` aside).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from billing.anomaly_settings import ANOMALY_FIELDS, ANOMALY_PARSE, AnomalySettings
from billing.config_file import read_toml
from billing.errors import UsageError
from billing.values import (
    _bool,
    _count,
    _duration,
    _float,
    _int,
    _statement_timeout,
    default_memory_limit,
    format_duration,
    parse_bytes,
    parse_date,
    parse_duration,
    redact_uri,
)

#: Twitter's Snowflake epoch (2010-11-04T01:42:54.657Z), in ms since the Unix epoch.
SNOWFLAKE_EPOCH_MS = 1288834974657
#: ms since that epoch sit above a Snowflake id's low 22 bits: ``(click_id >> 22) + epoch`` (SQL: snowflake_ms).
SNOWFLAKE_TIME_SHIFT = 22
#: Attempts per S3 request, the first included (the default of ``s3_max_attempts``).
S3_MAX_ATTEMPTS = 8
#: A day's lock not renewed for this long is stale (the default of ``lock_ttl``).
LOCK_TTL = dt.timedelta(minutes=2)
#: The first day billing reconciles: its horizon holds only instants after 1970 (see the README, Decisions).
FIRST_DATE = dt.date(1970, 1, 2)
#: The smallest ``--memory-limit`` (README, Scale: Memory): the process's own ~200 MiB, the outputs' row groups
#: being written and DuckDB's sorts of a day's keys (80M keys: 102–150 MiB). At 1.5GiB the 100M-row long-tail
#: day (80.4M windows) peaked at 1,405 MiB; at 1GiB its diff ran out of memory; at 256MiB 1M-row days did.
MIN_MEMORY_LIMIT = 1536 * 2**20


@dataclass(frozen=True)
class ReconcileConfig(AnomalySettings):
    """Everything a reconciliation run needs: what decides the content of the day (:meth:`content_settings`),
    how it runs (:meth:`run_settings`), this process's :data:`LOCAL` settings, and the anomaly rule (inherited).
    Two runs with equal content settings over equal inputs publish byte-identical data files."""

    date: dt.date
    """The UTC day D being reconciled."""
    raw: str
    """Root of the raw click log: a local path or ``s3://bucket/prefix``."""
    stream: str
    """Root of the stream-side aggregates (``STREAM/dt=D/*.parquet``), or their sink table:
    ``postgresql://[user@]host[:port]/dbname?table=SCHEMA.TABLE`` (billing.io.postgres)."""
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
    stream_columns: str | None = None
    """A stream table's column mapping: ``ad_id=COL,window_start=COL,clicks=COL[,spend_micros=COL]``."""
    pg_connect_timeout: dt.timedelta = dt.timedelta(seconds=10)
    """How long connecting to a stream table's server may take."""
    pg_statement_timeout: dt.timedelta | None = None
    """How long reading a stream table may take (the server's ``statement_timeout``); None keeps the server's."""
    s3_endpoint: str | None = None
    """S3-compatible endpoint URL (else AWS_ENDPOINT_URL, else AWS)."""
    s3_max_attempts: int = S3_MAX_ATTEMPTS
    """Attempts per S3 request, the first included, by both S3 clients (values below 1 count as 1)."""
    lock_ttl: dt.timedelta = LOCK_TTL
    """A day's lock not renewed for this long is stale; the heartbeat renews it every quarter of it.
    From the environment: ``BILLING_LOCK_TTL`` (a duration), else the older ``BILLING_LOCK_TTL_HOURS``
    (a number of hours)."""
    tables: bool = True
    """After a commit, bring the Delta tables under ``OUT/tables/`` level with the day's current version."""

    def __post_init__(self) -> None:
        """Refuse values no run can use (exit 2), whichever way the config was built (CLI, plan, code)."""
        super().__post_init__()
        if self.tolerance_abs < 0:
            raise UsageError(f"--tolerance-abs must be >= 0, got {self.tolerance_abs}")
        if not (math.isfinite(self.tolerance_rel) and self.tolerance_rel >= 0):
            raise UsageError(f"--tolerance-rel must be a finite number >= 0, got {self.tolerance_rel}")
        if self.memory_limit < MIN_MEMORY_LIMIT:
            raise UsageError(f"--memory-limit {self.memory_limit} bytes is below the minimum of "
                             f"{MIN_MEMORY_LIMIT / 2**30:g}GiB ({MIN_MEMORY_LIMIT // 2**20}MiB): "
                             "billing's own memory and a day's sorts need it")
        for name in ("slices", "threads"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name} must be >= 0")
        if self.workers < 1:
            raise UsageError("--workers must be >= 1")
        if self.date < FIRST_DATE:
            raise UsageError(f"--date {self.date.isoformat()}: days before {FIRST_DATE.isoformat()} cannot be "
                             f"reconciled (instants before 1970 are not supported)")
        if self.lateness > dt.timedelta(days=1):
            raise UsageError(f"--lateness {format_duration(self.lateness)}: at most 1d (the horizon reads dt=D and "
                             f"dt=D+1 only)")
        if not 0 <= self.snowflake_epoch_ms < 2**63:
            raise UsageError(f"--snowflake-epoch-ms {self.snowflake_epoch_ms}: not an instant in ms since 1970")
        try:  # the horizon ends at D+1 00:00 + lateness; windows and partitions are named up to D+1
            dt.datetime.combine(self.date, dt.time(), tzinfo=dt.UTC) + dt.timedelta(days=1) + self.lateness
        except OverflowError:
            raise UsageError(f"--date {self.date.isoformat()} with --lateness {format_duration(self.lateness)}: "
                             f"the horizon would end after {dt.date.max.isoformat()}") from None

    def content_settings(self) -> dict[str, Any]:
        """The settings that decide output content, as recorded in the manifest."""
        return {"date": self.date.isoformat(), "lateness": format_duration(self.lateness),
                "max_id_skew": format_duration(self.max_id_skew),
                "tolerance_abs": self.tolerance_abs,
                "tolerance_rel": self.tolerance_rel,
                "stream_allowed_lateness": format_duration(self.stream_allowed_lateness),
                "snowflake_epoch_ms": self.snowflake_epoch_ms,
                "allow_empty": self.allow_empty,
                "stream_optional": self.stream_optional}

    def run_settings(self) -> dict[str, Any]:
        """Settings that change how, not what: recorded, but not part of the content."""
        return {
            "raw": self.raw,
            "stream": redact_uri(self.stream),
            "stream_columns": self.stream_columns,
            "pg_connect_timeout": format_duration(self.pg_connect_timeout),
            "pg_statement_timeout": format_duration(self.pg_statement_timeout),
            "out": self.out,
            "slices": self.slices,
            "workers": self.workers,
            "memory_limit": self.memory_limit,
            "threads": self.threads,
            "s3_endpoint": self.s3_endpoint,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReconcileConfig:
        """Inverse of :meth:`as_dict` (plans carry their config this way); local settings take their defaults."""
        d = dict(d)
        d["date"] = parse_date(d["date"])
        for k in ("lateness", "stream_allowed_lateness", "pg_connect_timeout"):  # the last: absent in older plans
            if k in d:
                d[k] = parse_duration(d[k])
        for k in ("max_id_skew", "pg_statement_timeout"):
            if k in d:
                d[k] = parse_duration(d[k], allow_off=True)
        return cls(**d)

    def as_dict(self) -> dict[str, Any]:
        """Every setting but the :data:`LOCAL` ones, as JSON values (a plan carries its config this way)."""
        d = asdict(self)
        for k in LOCAL:
            del d[k]
        d["date"], d["stream"] = self.date.isoformat(), redact_uri(self.stream)  # a plan holds no password
        for k in ("lateness", "max_id_skew", "stream_allowed_lateness", "pg_connect_timeout", "pg_statement_timeout"):
            d[k] = format_duration(d[k])
        return d

    @classmethod
    def load(cls, cli: Mapping[str, Any] | None = None, env: Mapping[str, str] = os.environ,
             file: Path | None = None, *, other_keys: Collection[str] = ()) -> ReconcileConfig:
        """The config from its layers: ``cli`` > ``env`` (``BILLING_<FIELD>``) > ``file`` (TOML) > defaults.

        ``cli`` maps field names to values, typed or as text (``None`` or ``""``: not given).
        ``other_keys``: keys a config file may hold for other purposes (options of other commands):
        allowed and ignored here; any other key that is no field is exit 2 naming it.
        """
        return cls(**cls.layer([f.name for f in fields(cls)], cli=cli, env=env, file=file,
                               other_keys=other_keys))

    @classmethod
    def layer(cls, names: Collection[str], *, cli: Mapping[str, Any] | None = None,
              env: Mapping[str, str] = os.environ, file: Path | None = None,
              other_keys: Collection[str] = ()) -> dict[str, Any]:
        """The typed values of the fields ``names`` only, layered as in :meth:`load`.

        For commands that need a few settings and not a whole run (``billing show`` needs the date,
        OUT and how to reach it; ``billing merge`` the settings of its own process).
        """
        table = read_config_file(file, other_keys) if file is not None else {}
        values: dict[str, Any] = {}
        for name in names:
            f = _FIELDS[name]
            given, label = _given(cli, name), option(name)
            if given is None:
                given, label = _from_env(env, name), env_name(name) if name in ANOMALY_FIELDS else label
            if given is None:
                given, label = _given(table, name), f"{name} in {file}" if name in ANOMALY_FIELDS else label
            if given is not None:  # the anomaly settings have no option: named the way the user gave them
                values[name] = _PARSE[name](given, label)
            elif f.default is not MISSING:
                values[name] = f.default
            elif f.default_factory is not MISSING:
                values[name] = f.default_factory()
            else:
                raise UsageError(f"missing {option(name)}: give it on the command line, as {env_name(name)} "
                                 f"or in the config file")
        return values


#: Settings of the process, not of the day: a plan does not carry them (``billing run-slice`` and
#: ``billing merge`` take their own, from their command line, environment and defaults) and they
#: change neither the content nor how it is computed, so neither plan ids nor manifests record them.
LOCAL = ("s3_max_attempts", "lock_ttl")
_FIELDS = {f.name: f for f in fields(ReconcileConfig)}
#: The names of the config fields (an option or config-file key with such a name is one).
FIELDS = frozenset(_FIELDS)


def option(name: str) -> str:
    """The command-line option of field ``name``: ``--max-id-skew``."""
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    """The environment variable of field ``name``: ``BILLING_MAX_ID_SKEW``."""
    return "BILLING_" + name.upper()


def default_text(name: str) -> str | None:
    """The default of field ``name`` as ``--help`` shows it; None when it has none to show."""
    f = _FIELDS[name]
    if f.default is MISSING or f.default is None or f.default is False:
        return None
    if isinstance(f.default, dt.timedelta):
        return format_duration(f.default)
    return str(f.default)


def is_required(name: str) -> bool:
    f = _FIELDS[name]
    return f.default is MISSING and f.default_factory is MISSING


def _given(layer: Mapping[str, Any] | None, name: str) -> Any:
    """A layer's value for ``name``; None when absent, None or an empty string (as click treats env vars)."""
    v = None if layer is None else layer.get(name)
    return None if v is None or (isinstance(v, str) and not v.strip()) else v


def _from_env(env: Mapping[str, str], name: str) -> Any:
    v = _given(env, env_name(name))
    if v is None and name == "lock_ttl" and (hours := _given(env, "BILLING_LOCK_TTL_HOURS")) is not None:
        try:
            return dt.timedelta(hours=float(hours))
        except (ValueError, OverflowError):
            raise UsageError(f"BILLING_LOCK_TTL_HOURS: not a number of hours: {hours!r}") from None
    return v


def read_config_file(path: Path, other_keys: Collection[str] = ()) -> dict[str, Any]:
    """A TOML config file's values (billing.config_file); keys other than fields and ``other_keys``: exit 2."""
    return read_toml(path, FIELDS | {k.replace("-", "_") for k in other_keys})


#: How each field's value is read when it is given (text from the command line or environment,
#: text or TOML values from a file, or already typed by a caller).
_PARSE: dict[str, Callable[[Any, str], Any]] = {
    "date": lambda v, _: parse_date(v), **dict.fromkeys(("raw", "stream", "out", "s3_endpoint"), lambda v, _: str(v)),
    "max_id_skew": lambda v, _: parse_duration(v, allow_off=True), "stream_columns": lambda v, _: str(v),
    "pg_statement_timeout": _statement_timeout, "pg_connect_timeout": _duration,
    "tolerance_abs": _int, "tolerance_rel": _float,
    **dict.fromkeys(("lateness", "stream_allowed_lateness", "lock_ttl"), _duration), "snowflake_epoch_ms": _int,
    **dict.fromkeys(("allow_empty", "stream_optional", "tables"), _bool), "slices": _count, "threads": _count,
    "workers": lambda v, opt: max(1, _count(v, opt)),  # 0 runs the slices in this process, as 1 does
    "memory_limit": lambda v, _: parse_bytes(v), "s3_max_attempts": _int, **ANOMALY_PARSE,
}

"""Reading what :mod:`billing.io.delta` wrote: which billing version a table holds for a day, and the
commit (with its metadata) that last replaced it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from billing.errors import StorageError
from billing.io.delta import _RESERVED
from billing.io.delta_store import app_id, one_line, open_table, storage_options_for


@dataclass(frozen=True)
class DayCommit:
    """The latest commit that replaced one day, as recorded in the Delta history."""

    date: dt.date
    delta_version: int
    """The table version this commit created."""
    billing_version: int
    manifest_sha256: str
    timestamp_ms: int
    metadata: dict[str, str]
    """Every custom metadata entry of the commit (``billing_version``, ``date``, ``manifest_sha256``...)."""



def _as_commit(date: dt.date, entry: Mapping[str, Any]) -> DayCommit | None:
    if entry.get("date") != date.isoformat() or "billing_version" not in entry:
        return None
    meta = {k: str(v) for k, v in entry.items()
            if k not in _RESERVED and isinstance(v, str | int) and not isinstance(v, bool)}
    try:
        billing_version = int(entry["billing_version"])
    except (TypeError, ValueError):
        return None
    return DayCommit(date=date, delta_version=int(entry["version"]), billing_version=billing_version,
                     manifest_sha256=str(entry.get("manifest_sha256", "")), timestamp_ms=int(entry["timestamp"]),
                     metadata=meta)


def day_commit(table_uri: str, date: dt.date, *, storage_options: Mapping[str, str] | None = None) -> DayCommit | None:
    """The latest commit that replaced ``date``, with its metadata, from the Delta history (newest first,
    read in growing pages of 64, 256... commits). None when the table does not exist, never held the day,
    or that commit's ``commitInfo`` was dropped by Delta's log clean-up (``delta.logRetentionDuration``,
    30 days by default, once a checkpoint covers it).

    Caveat: deltalake 1.6's ``DeltaTable.history`` keeps Python's GIL while it reads the log, so other
    Python threads of the process stall meanwhile (and an S3 server in the same process, like the tests'
    moto server, cannot answer it: call it from another process there). :func:`day_version` does not.
    """
    opts = storage_options_for(table_uri, storage_options)
    dtab = open_table(table_uri, opts)
    if dtab is None:
        return None
    limit = 64
    try:
        while True:
            entries = dtab.history(limit=limit)
            for entry in entries:  # newest first
                found = _as_commit(date, entry)
                if found is not None:
                    return found
            if len(entries) < limit:
                return None
            limit *= 4
    except Exception as e:
        raise StorageError(one_line(table_uri, "reading the history failed", e, opts)) from None


def day_version(table_uri: str, date: dt.date, *, storage_options: Mapping[str, str] | None = None) -> int | None:
    """The billing version the table holds for ``date``, or None (no table, or the day never written).

    Read from the day's Delta application transaction (``billing:dt=D``), which the same commit as the
    commit metadata wrote: it is part of the table's snapshot (every checkpoint keeps it, so it outlives the
    log clean-up that drops old ``commitInfo``), costs no walk through the history, and is read without
    holding the GIL. A caller compares it with the day's current version to skip an unchanged re-run.
    """
    opts = storage_options_for(table_uri, storage_options)
    dtab = open_table(table_uri, opts)
    if dtab is None:
        return None
    try:
        version = dtab.transaction_version(app_id(date))
    except Exception as e:
        raise StorageError(one_line(table_uri, "reading the application transactions failed", e, opts)) from None
    return None if version is None else int(version)

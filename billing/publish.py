"""Publish stage: a day's outputs become a numbered version, committed in one atomic write.

Layout under OUT::

    dt=D/_current.json      {"version": N, "dir": "v=N"}  -- the commit point; readers start here
    dt=D/_lock.json         held while a run for D is in progress
    dt=D/v=N/...            the files of version N; manifest.json is written last

A run stages every output locally, hashes it, and compares with the current
version: identical outputs commit nothing ("unchanged"). Otherwise it uploads the
files into a fresh ``v=N`` (N = one more than any folder present, abandoned ones
included) and then writes ``_current.json``: a single PUT on S3, a rename locally.
A run killed at any point before that write leaves the previous version current.
Each manifest names the version that was current when it committed, so the chain
of manifests from ``_current.json`` backwards is the day's history.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import re
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing import faults
from billing.errors import BadInputError, LockedError
from billing.storage import Store, read_text

log = logging.getLogger(__name__)

CURRENT = "_current.json"
LOCK = "_lock.json"
MANIFEST = "manifest.json"
SUMMARY = "summary.json"
_VERSION_DIR = re.compile(r"^v=(\d+)$")

#: A lock older than this is stale even if its holder cannot be checked (another host).
LOCK_TTL = dt.timedelta(hours=int(os.environ.get("BILLING_LOCK_TTL_HOURS", "6")))


def write_parquet(table: pa.Table, path: Path, sorted_by: tuple[str, ...] = ()) -> None:
    """Fixed writer settings: the same table always gives the same bytes.

    ``sorted_by``: the columns the rows are already sorted by (ascending, nulls last), declared in
    each row group's ``sorting_columns`` so readers can rely on the order without sorting again.
    """
    sorting = pq.SortingColumn.from_ordering(table.schema, [(c, "ascending") for c in sorted_by]) if sorted_by else None
    pq.write_table(
        table, path,
        compression="zstd", compression_level=3,
        use_dictionary=True, write_statistics=True,
        row_group_size=1_000_000, data_page_size=1 << 20,
        version="2.6", store_schema=True, sorting_columns=sorting,
    )


def write_json(obj: Any, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)  # strict JSON: no NaN
    path.write_text(text + "\n", encoding="utf-8")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class Commit:
    version: int
    unchanged: bool
    url: str


class Day:
    """One day's folder under OUT."""

    def __init__(self, out: Store, date: dt.date) -> None:
        self.out = out
        self.date = date
        self.prefix = f"dt={date.isoformat()}"

    def path(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def url(self, *parts: str) -> str:
        return self.out.url(self.path(*parts))

    # --- reading -------------------------------------------------------------------------------
    def current(self) -> dict[str, Any] | None:
        text = read_text(self.out, self.path(CURRENT))
        return None if text is None else json.loads(text)

    def current_version(self) -> int | None:
        cur = self.current()
        return None if cur is None else int(cur["version"])

    def version_dirs(self) -> list[int]:
        found = []
        for name in self.out.list_dirs(self.prefix):
            m = _VERSION_DIR.match(name)
            if m:
                found.append(int(m.group(1)))
        return sorted(found)

    def read_json(self, version: int, name: str) -> dict[str, Any]:
        text = read_text(self.out, self.path(f"v={version}", name))
        if text is None:
            raise BadInputError(f"{self.url(f'v={version}', name)} does not exist")
        return json.loads(text)

    def read_table(self, version: int, name: str) -> pa.Table:
        path = self.path(f"v={version}", name)
        with self.out.open_input(path) as f:
            return pq.read_table(f)

    def iter_batches(self, version: int, name: str, columns: list[str]) -> Iterator[pa.RecordBatch]:
        """A stored table, a million rows at a time (a day's totals need not fit in memory twice)."""
        with self.out.open_input(self.path(f"v={version}", name)) as f:
            yield from pq.ParquetFile(f).iter_batches(batch_size=1 << 20, columns=columns)

    def require_current(self) -> int:
        v = self.current_version()
        if v is None:
            raise BadInputError(f"no committed version for {self.date} under {self.out.uri}")
        return v

    def history(self) -> list[dict[str, Any]]:
        """Committed versions, newest first, following each manifest's ``previous_version``."""
        out = []
        v = self.current_version()
        seen = set()
        while v is not None and v not in seen:
            seen.add(v)
            m = self.read_json(v, MANIFEST)
            out.append(m)
            v = m.get("previous_version")
        return out

    # --- locking -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, run_id: str) -> Iterator[None]:
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "run_id": run_id,
                  "acquired_at": _now().isoformat(), "expires_at": (_now() + LOCK_TTL).isoformat()}
        body = json.dumps(holder, allow_nan=False).encode()
        if not self.out.create_exclusive(self.path(LOCK), body):
            other = self._read_lock()
            if other is not None and other.get("run_id") == run_id:
                pass  # our own create went through and its answer was lost; the retry saw it
            elif other is not None and not _stale(other):
                raise LockedError(
                    f"{self.date} is being reconciled by another run (host {other.get('host')}, "
                    f"pid {other.get('pid')}, run {other.get('run_id')}, since {other.get('acquired_at')}); "
                    f"lock: {self.url(LOCK)}")
            else:
                log.warning("breaking stale lock %s held by %s", self.url(LOCK), other)
                self.out.delete(self.path(LOCK))
                if not self.out.create_exclusive(self.path(LOCK), body):
                    raise LockedError(f"{self.date}: lost the race for {self.url(LOCK)} to another run")
        try:
            yield
        finally:
            mine = self._read_lock()
            if mine is not None and mine.get("run_id") == run_id:
                self.out.delete(self.path(LOCK))

    def _read_lock(self) -> dict[str, Any] | None:
        text = read_text(self.out, self.path(LOCK))
        if text is None:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return {}

    # --- committing ----------------------------------------------------------------------------
    def publish(self, staged: dict[str, Path], manifest: dict[str, Any], *,
                compare: tuple[str, ...]) -> Commit:
        """Commit the staged files as a new version unless they equal the current one's.

        ``compare`` names the files whose hashes decide "unchanged".
        ``manifest`` is completed here (version, previous version, hashes) and written last.
        """
        hashes = {name: sha256_file(p) for name, p in sorted(staged.items())}
        current = self.current_version()
        previous_manifest = self.read_json(current, MANIFEST) if current is not None else None
        if previous_manifest is not None:
            prev_hashes = {k: v["sha256"] for k, v in previous_manifest.get("outputs", {}).items()}
            if all(prev_hashes.get(n) == hashes[n] for n in compare):
                log.info("outputs identical to version %d: unchanged, nothing committed", current)
                return Commit(current, True, self.url(f"v={current}"))
        version = max([0, *self.version_dirs(), current or 0]) + 1
        vdir = f"v={version}"
        for name, local in sorted(staged.items()):
            point = f"mid_write_{name.split('.', 1)[0]}"
            if faults.armed(point):  # die with half the file written where readers could look
                data = local.read_bytes()
                self.out.write_bytes(self.path(vdir, name), data[: len(data) // 2])
                faults.point(point)
            self.out.upload(self.path(vdir, name), local)
        manifest = dict(manifest)
        manifest["version"] = version
        manifest["previous_version"] = current
        manifest["outputs"] = {n: {"sha256": hashes[n], "bytes": staged[n].stat().st_size} for n in sorted(staged)}
        manifest["previous_outputs"] = (
            {k: v["sha256"] for k, v in previous_manifest["outputs"].items()} if previous_manifest else None)
        faults.point("before_manifest")
        self.out.write_bytes(self.path(vdir, MANIFEST), _dumps(manifest))
        faults.point("before_commit")
        self.out.write_bytes(self.path(CURRENT), _dumps({"version": version, "dir": vdir}))
        faults.point("after_commit")
        log.info("committed %s", self.url(vdir))
        return Commit(version, False, self.url(vdir))


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def _stale(lock: dict[str, Any]) -> bool:
    try:
        if dt.datetime.fromisoformat(lock["expires_at"]) < _now():
            return True
    except (KeyError, ValueError):
        return True
    if lock.get("host") == socket.gethostname():
        return not _pid_alive(int(lock.get("pid", -1)))
    return False


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) holds nothing.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def new_run_id() -> str:
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{uuid.uuid4().hex[:8]}"

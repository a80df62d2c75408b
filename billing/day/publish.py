"""Publishing a day: its outputs become a numbered version, committed in one conditional write.

Layout under OUT::

    dt=D/_current.json        {"version": N, "dir": "v=N"}  -- the commit point; readers start here
    dt=D/_lock.json           held while a run for D is in progress, renewed by a heartbeat
    dt=D/_claims/v=N.json     who claimed version number N (created exclusively, never reused)
    dt=D/_staging/v=N-<run>/  a version being written (``_``: Hive-style readers skip it)
    dt=D/v=N/...              the files of committed version N; manifest.json is the last to arrive

A run stages every output locally, hashes it, and compares with the current
version: identical outputs commit nothing ("unchanged"). Otherwise it claims the next
version number, uploads the files under ``_staging/``, promotes them to ``v=N`` (one
rename locally, server-side copies on S3) and then moves ``_current.json``: only if it
still holds what this run read when it took the lock (``If-Match`` on S3, compare and
rename under ``flock`` locally), and only while the lock is still this run's. A run
killed at any point before that write leaves the previous version current; whatever it
left under ``_staging/`` or in a promoted but never committed ``v=N`` is deleted by the
next run that takes the lock (the lock itself: :mod:`billing.day.lock`). Each manifest names the
version that was current when it committed, so the chain of manifests from ``_current.json``
backwards is the day's history.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing import faults
from billing.config import LOCK_TTL
from billing.day.lock import CURRENT, DayLock, now_ms, parse_current
from billing.errors import BadInputError
from billing.io.storage import Store, read_text

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
CLAIMS = "_claims"
STAGING = "_staging"
_VERSION_DIR = re.compile(r"^v=(\d+)$")
_CLAIM = re.compile(r"^v=(\d+)\.json$")

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
    """One day's folder under OUT (or, with ``prefix``, another folder versioned the same way: a month's)."""

    def __init__(self, out: Store, date: dt.date, prefix: str | None = None) -> None:
        self.out = out
        self.date = date
        self.prefix = prefix or f"dt={date.isoformat()}"
        self.held: DayLock | None = None

    def path(self, *parts: str) -> str:
        return "/".join((self.prefix, *parts))

    def url(self, *parts: str) -> str:
        return self.out.url(self.path(*parts))

    # --- reading -------------------------------------------------------------------------------
    def current(self) -> dict[str, Any] | None:
        text = read_text(self.out, self.path(CURRENT))
        return None if text is None else parse_current(text, self.url(CURRENT))

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
    def lock(self, run_id: str, ttl: dt.timedelta = LOCK_TTL, command: str | None = None) -> Iterator[DayLock]:
        """Hold the day's lock (renewed by a heartbeat; stale if not renewed for ``ttl``, the config's
        ``lock_ttl``) until the block ends; :meth:`publish` needs it. ``command`` (reconcile, the default for a
        day; merge; publish-tables; month, a month's) is written in the lock: a run that finds it taken says
        what holds it."""
        held = DayLock(self, run_id, ttl, command)
        held.acquire()
        self.held = held
        try:
            self._clear_uncommitted(held)
            yield held
        finally:
            self.held = None
            held.release()

    def _committed(self, current: int | None) -> tuple[set[int], bool]:
        """Versions on the manifest chain from ``current``, and whether the chain reached its start."""
        seen: set[int] = set()
        v = current
        while v is not None and v not in seen:
            text = read_text(self.out, self.path(f"v={v}", MANIFEST))
            if text is None:
                return seen, False
            seen.add(v)
            v = json.loads(text).get("previous_version")
        return seen, True

    def _clear_uncommitted(self, held: DayLock) -> None:
        """Delete what runs that never committed left behind: staging folders and promoted ``v=N``.

        Only the lock holder does this, so nothing it deletes belongs to a live run that still
        holds the lock. A ``v=N`` below the current version is deleted only when the chain of
        manifests proves it is not part of the day's history.
        """
        current = held.base_version
        committed, complete = self._committed(current)
        for n in self.version_dirs():
            if n in committed or (not complete and current is not None and n < current):
                continue
            log.warning("deleting %s: a version that was never committed", self.url(f"v={n}"))
            # its number stays taken (folders left by older code have no claim yet)
            self.out.create_exclusive(self.path(CLAIMS, f"v={n}.json"), _dumps({"version": n, "run_id": None}))
            self.out.delete_tree(self.path(f"v={n}"))
        for name in self.out.list_dirs(self.path(STAGING)):
            log.info("deleting %s: left by a run that did not finish", self.url(STAGING, name))
            self.out.delete_tree(self.path(STAGING, name))

    # --- committing ----------------------------------------------------------------------------
    def _claim(self, run_id: str, above: int) -> int:
        """The next version number, claimed exclusively: two runs never write into the same ``v=N``."""
        taken = [int(m.group(1)) for f in self.out.list_files(self.path(CLAIMS))
                 if (m := _CLAIM.match(f.path.rsplit("/", 1)[-1]))]
        n = max([above, *taken, *self.version_dirs()]) + 1
        body = _dumps({"version": n, "run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
                       "claimed_at": now_ms().isoformat()})
        while not self.out.create_exclusive(self.path(CLAIMS, f"v={n}.json"), body):
            n += 1
        return n

    def publish(self, staged: dict[str, Path], manifest: dict[str, Any], *,
                compare: tuple[str, ...]) -> Commit:
        """Commit the staged files as a new version unless they equal the current one's.

        ``compare`` names the files whose hashes decide "unchanged". ``manifest`` is completed
        here (version, previous version, hashes) and arrives last. The caller holds :meth:`lock`.
        """
        held = self.held
        if held is None:
            raise RuntimeError("publish() needs the day's lock")
        hashes = {name: sha256_file(p) for name, p in sorted(staged.items())}
        current = held.base_version
        previous_manifest = self.read_json(current, MANIFEST) if current is not None else None
        if current is not None and previous_manifest is not None:
            prev_hashes = {k: v["sha256"] for k, v in previous_manifest.get("outputs", {}).items()}
            if all(prev_hashes.get(n) == hashes[n] for n in compare):
                log.info("outputs identical to version %d: unchanged, nothing committed", current)
                return Commit(current, True, self.url(f"v={current}"))
        held.check_commit()
        version = self._claim(held.run_id, current or 0)
        vdir, staging = f"v={version}", self.path(STAGING, f"v={version}-{held.run_id}")
        for name, local in sorted(staged.items()):
            point = f"mid_write_{name.split('.', 1)[0]}"
            if faults.armed(point):  # die with half the file written
                data = local.read_bytes()
                self.out.write_bytes(f"{staging}/{name}", data[: len(data) // 2])
                faults.point(point)
            self.out.upload(f"{staging}/{name}", local)
        manifest = dict(manifest)
        manifest["version"] = version
        manifest["previous_version"] = current
        manifest["outputs"] = {n: {"sha256": hashes[n], "bytes": staged[n].stat().st_size} for n in sorted(staged)}
        manifest["previous_outputs"] = (
            {k: v["sha256"] for k, v in previous_manifest["outputs"].items()} if previous_manifest else None)
        faults.point("before_manifest")
        self.out.write_bytes(f"{staging}/{MANIFEST}", _dumps(manifest))
        faults.point("before_commit")
        held.check_commit()
        self.out.promote(staging, self.path(vdir), [*sorted(staged), MANIFEST])
        faults.point("after_promote")
        held.commit(self.path(CURRENT), _dumps({"version": version, "dir": vdir}), version)
        faults.point("after_commit")
        log.info("committed %s", self.url(vdir))
        return Commit(version, False, self.url(vdir))


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")



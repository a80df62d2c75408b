"""Publish stage: a day's outputs become a numbered version, committed in one conditional write.

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
next run that takes the lock. Each manifest names the version that was current when it
committed, so the chain of manifests from ``_current.json`` backwards is the day's history.
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
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing import faults
from billing.config import LOCK_TTL
from billing.errors import BadInputError, LockedError, StorageError
from billing.storage import Store, read_text

log = logging.getLogger(__name__)

CURRENT = "_current.json"
LOCK = "_lock.json"
MANIFEST = "manifest.json"
CLAIMS = "_claims"
STAGING = "_staging"
_VERSION_DIR = re.compile(r"^v=(\d+)$")
_CLAIM = re.compile(r"^v=(\d+)\.json$")



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
        self.held: DayLock | None = None

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
    def lock(self, run_id: str, ttl: dt.timedelta = LOCK_TTL) -> Iterator[DayLock]:
        """Hold the day's lock (renewed by a heartbeat; stale if not renewed for ``ttl``, the config's
        ``lock_ttl``) until the block ends; :meth:`publish` needs it."""
        held = DayLock(self, run_id, ttl)
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
                       "claimed_at": _now().isoformat()})
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
        if previous_manifest is not None:
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


class DayLock:
    """A held day lock: a heartbeat thread renews it; the commit is fenced by it.

    The lock file names its holder and an ``expires_at`` one TTL ahead; the heartbeat rewrites
    it every quarter TTL with a conditional write that succeeds only while the file is still
    the one this run last wrote. When it is not (another run found it expired and took it
    over), or renewals keep failing past the TTL, the lock is lost and the run stops before
    its commit. ``base`` is ``_current.json`` as read right after the lock was taken: the
    commit moves it only from exactly that state.
    """

    def __init__(self, day: Day, run_id: str, ttl: dt.timedelta) -> None:
        self.day = day
        self.run_id = run_id
        self.ttl = ttl
        self.tag: str | None = None
        self.base_tag: str | None = None
        self.base_version: int | None = None
        self._lost: str | None = None
        self._beats = 0
        self._renewed = time.monotonic()
        self._mutex = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def _path(self) -> str:
        return self.day.path(LOCK)

    def _body(self) -> bytes:
        now = _now()
        self._beats += 1
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id,
                           "acquired_at": self._acquired_at, "renewed_at": now.isoformat(),
                           "expires_at": (now + self.ttl).isoformat(), "beat": self._beats}, allow_nan=False).encode()

    def acquire(self) -> None:
        store, url = self.day.out, self.day.url(LOCK)
        self._acquired_at = _now().isoformat()
        body = self._body()
        tag = store.write_if(self._path, body, None)
        if tag is None:
            found = store.read_tagged(self._path)
            other = _parse_lock(found[0]) if found else None
            if found is None:  # released between our create and our read: one more try
                tag = store.write_if(self._path, body, None)
            elif other is not None and other.get("run_id") == self.run_id:
                tag = found[1]  # our own create went through and its answer was lost; the retry saw it
            elif other is not None and not _stale(other):
                raise LockedError(
                    f"{self.day.date} is being reconciled by another run (host {other.get('host')}, "
                    f"pid {other.get('pid')}, run {other.get('run_id')}, since {other.get('acquired_at')}, "
                    f"lock renewed until {other.get('expires_at')}); lock: {url}")
            else:
                log.warning("breaking stale lock %s held by %s", url, other)
                tag = store.write_if(self._path, body, found[1])  # only one breaker can win
            if tag is None:
                raise LockedError(f"{self.day.date}: lost the race for {url} to another run")
        self.tag = tag
        self._renewed = time.monotonic()
        base = store.read_tagged(self.day.path(CURRENT))
        if base is not None:
            self.base_tag = base[1]
            self.base_version = int(json.loads(base[0])["version"])
        self._thread = threading.Thread(target=self._heartbeat, name=f"billing-lock-{self.run_id}", daemon=True)
        self._thread.start()

    def _heartbeat(self) -> None:
        interval = min(max(self.ttl.total_seconds() / 4, 0.2), 60.0)
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LockedError:
                return  # lost: check_commit() reports it
            except StorageError as e:
                if time.monotonic() - self._renewed > self.ttl.total_seconds():
                    self._lost = f"could not renew it for longer than its TTL ({e})"
                    return
                log.warning("could not renew the day's lock, will retry: %s", e)

    def renew(self) -> None:
        """Extend the lock by one TTL, if it is still ours; otherwise mark it lost and raise."""
        with self._mutex:
            if self._lost is None:
                tag = self.day.out.write_if(self._path, self._body(), self.tag)
                if tag is not None:
                    self.tag, self._renewed = tag, time.monotonic()
                    return
                found = self.day.out.read_tagged(self._path)
                other = _parse_lock(found[0]) if found else None
                self._lost = ("it was released" if other is None else
                              f"run {other.get('run_id')} (host {other.get('host')}, pid {other.get('pid')}) "
                              f"took it over")
            raise LockedError(self._lost_message())

    def _lost_message(self) -> str:
        text = read_text(self.day.out, self.day.path(CURRENT))
        now = None if text is None else int(json.loads(text)["version"])
        meanwhile = (f"; another run committed version {now} meanwhile" if now != self.base_version else "")
        return (f"{self.day.date}: this run lost the day's lock ({self._lost}){meanwhile}; "
                f"nothing published (lock: {self.day.url(LOCK)})")

    def check_commit(self) -> None:
        """Right before a commit step: the lock is still ours (renewed now) and nobody committed since."""
        self.renew()
        found = self.day.out.read_tagged(self.day.path(CURRENT))
        if (found[1] if found else None) != self.base_tag:
            now = int(json.loads(found[0])["version"]) if found else None
            raise LockedError(f"{self.day.date}: another run committed version {now} meanwhile "
                              f"(this run started from version {self.base_version}); nothing published")

    def commit(self, path: str, body: bytes, version: int) -> None:
        """Move ``_current.json`` to ``version``: only from the state read at lock time, only while locked."""
        vdir = self.day.path(f"v={version}")
        try:
            self.check_commit()
            if self.day.out.write_if(path, body, self.base_tag) is None:
                self.check_commit()  # raises, naming what happened
                raise LockedError(f"{self.day.date}: {self.day.url(CURRENT)} changed under this run; "
                                  f"nothing published")
        except LockedError:
            self.day.out.delete_tree(vdir)  # it never became a version
            raise

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._mutex:
            if self._lost is not None:
                return
            found = self.day.out.read_tagged(self._path)
            if found is not None and found[1] == self.tag:
                self.day.out.delete(self._path)


def _parse_lock(data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _now() -> dt.datetime:
    """Lock times keep milliseconds: a TTL may be a second or two."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _stale(lock: dict[str, Any]) -> bool:
    try:
        if dt.datetime.fromisoformat(lock["expires_at"]) <= _now():  # a TTL of 0 expires at once
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

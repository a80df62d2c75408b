"""The day's lock: one run at a time per day, renewed by a heartbeat, and the fence of its commit.

``OUT/dt=D/_lock.json`` names its holder and an ``expires_at`` one TTL ahead. A lock past its
expiry, or held by a dead process on this host, is stale and taken over with a conditional write.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

from billing.errors import BadInputError, LockedError, StorageError
from billing.io.storage import read_text

if TYPE_CHECKING:  # a type only: billing.day.publish imports this module
    from billing.day.publish import Day

log = logging.getLogger(__name__)

CURRENT = "_current.json"
LOCK = "_lock.json"
#: What a lock's holder is doing, by its ``command`` (a lock without one, from an older billing: "locked").
BUSY = {"reconcile": "being reconciled", "merge": "being reconciled", "publish-tables": "having its tables published",
        "month": "being built"}
ACQUIRE_ATTEMPTS = 5  # reads and conditional writes of the lock before a run gives up


def parse_current(data: bytes | str, url: str) -> dict[str, Any]:
    """The content of a day's ``_current.json``: ``{"version": N, "dir": "v=N"}``, or exit 2 naming the file."""
    try:
        cur = json.loads(data)
        if isinstance(cur, dict) and isinstance(cur.get("version"), int) and cur.get("dir") == f"v={cur['version']}":
            return cur
    except (ValueError, UnicodeDecodeError):
        pass
    raise BadInputError(f"{url} is not a version pointer (expected {{\"version\": N, \"dir\": \"v=N\"}}): "
                        f"it was changed by hand or by another program")


class DayLock:
    """A held day lock: a heartbeat thread renews it; the commit is fenced by it.

    The lock file names its holder and an ``expires_at`` one TTL ahead; the heartbeat rewrites
    it every quarter TTL with a conditional write that succeeds only while the file is still
    the one this run last wrote. When it is not (another run found it expired and took it
    over), or renewals keep failing past the TTL, the lock is lost and the run stops before
    its commit. ``base`` is ``_current.json`` as read right after the lock was taken: the
    commit moves it only from exactly that state.
    """

    def __init__(self, day: Day, run_id: str, ttl: dt.timedelta, command: str | None = None) -> None:
        self.day = day
        self.run_id = run_id
        # what the holder does, named in the lock for whoever finds it taken (a month's folder: its build)
        self.command = command or ("month" if day.prefix.startswith("month=") else "reconcile")
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
        now = now_ms()
        self._beats += 1
        return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "run_id": self.run_id,
                           "command": self.command,
                           "acquired_at": self._acquired_at, "renewed_at": now.isoformat(),
                           "expires_at": (now + self.ttl).isoformat(), "beat": self._beats}, allow_nan=False).encode()

    def _what(self) -> str:
        """What the lock guards, for people: ``2026-11-01`` or ``the month 2026-11``."""
        prefix = self.day.prefix
        return f"the month {prefix.removeprefix('month=')}" if prefix.startswith("month=") else str(self.day.date)

    def acquire(self) -> None:
        """Take the lock: create it, or take over a stale one; a live holder's lock stops the run.

        Every write is conditional, so a write that fails means the file changed between our read
        and our write: released, taken by a breaker, or renewed by its holder. The lock is then read
        again and judged again (a holder that renewed is live again, unless its TTL is 0), a few
        times before the run gives up.
        """
        store, url = self.day.out, self.day.url(LOCK)
        self._acquired_at = now_ms().isoformat()
        body = self._body()
        tag = store.write_if(self._path, body, None)
        for _ in range(ACQUIRE_ATTEMPTS):
            if tag is not None:
                break
            found = store.read_tagged(self._path)
            other = _parse_lock(found[0]) if found else None
            if found is None:  # released between our write and our read
                tag = store.write_if(self._path, body, None)
            elif other is not None and other.get("run_id") == self.run_id:
                tag = found[1]  # our own create went through and its answer was lost; the retry saw it
            elif other is not None and not _stale(other):
                busy = f"{self._what()} is {BUSY.get(str(other.get('command')), 'locked')}"
                raise LockedError(
                    f"{busy} by another run (host {other.get('host')}, "
                    f"pid {other.get('pid')}, run {other.get('run_id')}, since {other.get('acquired_at')}, "
                    f"lock renewed until {other.get('expires_at')}); lock: {url}")
            else:
                log.warning("breaking stale lock %s held by %s", url, other)
                tag = store.write_if(self._path, body, found[1])  # only one breaker can win
        if tag is None:
            raise LockedError(f"{self._what()}: lost the race for {url} to another run "
                              f"({ACQUIRE_ATTEMPTS} attempts, the lock changed under each)")
        self.tag = tag
        self._renewed = time.monotonic()
        base = store.read_tagged(self.day.path(CURRENT))
        if base is not None:
            self.base_tag = base[1]
            self.base_version = int(parse_current(base[0], self.day.url(CURRENT))["version"])
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
        now = None if text is None else int(parse_current(text, self.day.url(CURRENT))["version"])
        meanwhile = (f"; another run committed version {now} meanwhile" if now != self.base_version else "")
        return (f"{self.day.date}: this run lost the day's lock ({self._lost}){meanwhile}; "
                f"nothing published (lock: {self.day.url(LOCK)})")

    def check_commit(self) -> None:
        """Right before a commit step: the lock is still ours (renewed now) and nobody committed since."""
        self.renew()
        found = self.day.out.read_tagged(self.day.path(CURRENT))
        if (found[1] if found else None) != self.base_tag:
            now = int(parse_current(found[0], self.day.url(CURRENT))["version"]) if found else None
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


def now_ms() -> dt.datetime:
    """Lock times keep milliseconds: a TTL may be a second or two."""
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _stale(lock: dict[str, Any]) -> bool:
    try:
        if dt.datetime.fromisoformat(lock["expires_at"]) <= now_ms():  # a TTL of 0 expires at once
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

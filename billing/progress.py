"""Progress a person can watch, on stderr: a live bar on a terminal, plain log lines elsewhere.

Stages report through one small API, whatever prints it::

    with progress.stage("diff"):                            # a stage with no count
        ...
    with progress.stage("slices", total=rows, unit="rows") as t:
        t.advance(n, "slice 3/10: 1,234 rows in 2.1s")       # counted; the line is for plain logs

Modes (chosen once per process by :func:`configure`; the ``billing`` command does it from ``-q``
and whether stderr is a terminal):

- ``lines`` (the default, e.g. cron or Airflow logs): one INFO log line per ``advance`` that has a
  line, one when a stage ends with its duration, and one every :data:`HEARTBEAT_SECONDS` while a
  stage runs, so no stage is silent for longer;
- ``bar``: a rich progress bar per stage (stage, done/total, rate, elapsed, ETA) on stderr; the
  plain lines are not printed;
- ``quiet``: nothing (``-q``); warnings still reach the log.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("billing.progress")

#: In plain-line mode, a running stage says so this often (seconds).
HEARTBEAT_SECONDS = 10.0

_mode = "lines"
_bar: Any = None  # the rich Progress while a stage shows on the terminal


def configure(*, quiet: bool = False, terminal: bool | None = None) -> str:
    """Pick the mode: quiet, a bar when ``terminal`` (default: stderr is a TTY), else plain lines."""
    global _mode
    if terminal is None:
        terminal = sys.stderr.isatty()
    _mode = "quiet" if quiet else "bar" if terminal else "lines"
    return _mode


def mode() -> str:
    return _mode


class Tracker:
    """One running stage: counts what is done, reports it in the process's mode."""

    def __init__(self, name: str, total: int | None, unit: str) -> None:
        self.name, self.total, self.unit = name, total, unit
        self.done = 0
        self.started = time.monotonic()
        self.last_said = self.started
        self._task: Any = None

    def advance(self, n: int = 0, line: str | None = None) -> None:
        """``n`` more units done; ``line`` is logged as is in plain-line mode."""
        self.done += n
        if _mode == "bar" and _bar is not None and self._task is not None:
            _bar.update(self._task, completed=self.done)
        elif _mode == "lines" and line:
            log.info("%s", line)
            self.last_said = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _rate(t: Tracker) -> str:
    secs = t.elapsed()
    return f"{t.done / secs:,.0f} {t.unit}/s" if t.done and secs > 0 else ""


def _heartbeat(t: Tracker, stop: threading.Event) -> None:
    while not stop.wait(min(1.0, HEARTBEAT_SECONDS / 4)):
        if time.monotonic() - t.last_said >= HEARTBEAT_SECONDS:
            of = f" of {t.total:,}" if t.total else ""
            done = f", {t.done:,}{of} {t.unit} done" if t.done else ""
            rate = _rate(t)
            log.info("%s: running for %.0fs%s%s", t.name, t.elapsed(), done, f" ({rate})" if rate else "")
            t.last_said = time.monotonic()


def _new_bar() -> Any:
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.fields[count]}"), TextColumn("{task.fields[rate]}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    console=Console(stderr=True), transient=False, refresh_per_second=4)


@contextlib.contextmanager
def stage(name: str, total: int | None = None, unit: str = "rows") -> Iterator[Tracker]:
    """Report stage ``name`` while its body runs (see the module docstring)."""
    global _bar
    t = Tracker(name, total, unit)
    if _mode == "quiet":
        yield t
        return
    if _mode == "bar":
        own = _bar is None
        if own:
            _bar = _new_bar()
            _bar.start()
        t._task = _bar.add_task(name, total=total, count="", rate="")
        stop = threading.Event()
        ticker = threading.Thread(target=_tick, args=(t, stop), daemon=True)
        ticker.start()
        try:
            yield t
        finally:
            stop.set()
            ticker.join()
            _bar.update(t._task, completed=total if total is not None else 1, total=total or 1,
                        **_fields(t))
            if own:
                _bar.stop()
                _bar = None
        return
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(t, stop), daemon=True)
    beat.start()
    ok = False
    try:
        yield t
        ok = True
    finally:
        stop.set()
        beat.join()
        done = f", {t.done:,} {t.unit}" if t.done else ""
        log.info("%s %s in %.1fs%s", name, "done" if ok else "stopped", t.elapsed(), done)


def _fields(t: Tracker) -> dict[str, str]:
    of = f"/{t.total:,}" if t.total else ""
    return {"count": f"{t.done:,}{of} {t.unit}" if t.done or t.total else "", "rate": _rate(t)}


def _tick(t: Tracker, stop: threading.Event) -> None:
    while not stop.wait(0.25):
        if _bar is not None:
            _bar.update(t._task, **_fields(t))

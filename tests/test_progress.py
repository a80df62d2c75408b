"""Progress on stderr: plain lines per slice and per stage in logs, a live bar on a terminal, nothing with -q."""

from __future__ import annotations

import logging
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from billing import progress
from tests.conftest import DEMO_DATE

ROOT = Path(__file__).resolve().parent.parent


def reconcile_args(lake: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "billing", "reconcile", "--date", str(DEMO_DATE), "--raw", str(lake / "raw"),
            "--stream", str(lake / "stream"), "--out", str(out), "--slices", "3"]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color", "COLUMNS": "120"}


@pytest.mark.slow
def test_plain_lines_per_slice_and_stage_in_a_log_and_none_with_q(demo_lake: Path, tmp_path: Path) -> None:
    r = subprocess.run(reconcile_args(demo_lake, tmp_path / "out"), capture_output=True, text=True, env=env())
    assert r.returncode == 3, r.stderr
    lines = r.stderr.splitlines()
    for k in (1, 2, 3):
        assert sum(f"slice {k}/3: " in line and " rows in range, " in line for line in lines) == 1, r.stderr
    for name in ("slices", "diff", "outputs", "write outputs and report", "publish"):
        assert sum(f" billing INFO {name} done in " in line for line in lines) == 1, (name, r.stderr)
    assert "\x1b[" not in r.stderr and "━" not in r.stderr  # no bar, no terminal codes in a log
    quiet = subprocess.run([sys.executable, "-m", "billing", "-q",
                            *reconcile_args(demo_lake, tmp_path / "q")[3:]], capture_output=True, text=True, env=env())
    assert quiet.returncode == 3 and quiet.stderr == "", quiet.stderr


@pytest.mark.slow
def test_a_terminal_sees_a_live_bar(demo_lake: Path, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: rich's bar with the stage, the rows done and the time left."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(reconcile_args(demo_lake, tmp_path / "out"), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=env())
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, seen.decode(errors="replace")[-2000:]
    text = seen.decode(errors="replace")
    assert "━" in text and "\x1b[" in text  # a bar drawn with terminal codes
    for what in ("slices", "diff", "publish", "ETA", "rows"):
        assert what in text, (what, text[-3000:])
    assert " billing INFO slice 1/3" not in text  # the bar replaces the per-slice log lines
    assert b"published as version 1" in out  # results still go to stdout, apart from progress


def test_a_long_stage_is_never_silent_in_a_log(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(progress, "_mode", "lines")
    monkeypatch.setattr(progress, "HEARTBEAT_SECONDS", 0.4)
    with caplog.at_level(logging.INFO, logger="billing.progress"), progress.stage("diff", total=100,
                                                                                   unit="windows") as t:
        t.advance(40)
        time.sleep(1.1)
    beats = [r.getMessage() for r in caplog.records if "running for" in r.getMessage()]
    assert len(beats) >= 2 and beats[0].startswith("diff: running for ") and "40 of 100 windows done" in beats[0]
    assert caplog.records[-1].getMessage().startswith("diff done in 1.")


def test_quiet_says_nothing_and_a_failed_stage_says_it_stopped(monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="billing.progress"):
        monkeypatch.setattr(progress, "_mode", "quiet")
        with progress.stage("diff") as t:
            t.advance(5, "a line")
        assert caplog.records == []
        monkeypatch.setattr(progress, "_mode", "lines")
        with pytest.raises(ZeroDivisionError), progress.stage("outputs"):
            _ = 1 / 0
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["outputs stopped"]


def test_configure_picks_the_mode() -> None:
    try:
        assert progress.configure(quiet=True, terminal=True) == "quiet"
        assert progress.configure(terminal=True) == "bar"
        assert progress.configure(terminal=False) == "lines"
    finally:
        progress.configure(terminal=False)

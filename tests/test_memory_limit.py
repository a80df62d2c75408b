"""--memory-limit holds for the whole process at its documented minimum, on days of millions of windows.

At the earlier minimum (256MiB) a 1M-row generated day ran out of memory writing its outputs (an outsider's
finding): the process's own ~200 MiB and a row group being written were not in the budget.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from billing.config import MIN_MEMORY_LIMIT


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["longtail", "dense"])
def test_a_day_of_millions_of_windows_stays_under_the_minimum_limit(tmp_path: Path, shape: str) -> None:
    from benchmarks.generate import generate

    lake = tmp_path / "lake"
    made = generate(lake, 2_400_000, shape=shape)  # longtail: ~2.3M windows, 3 row groups of drift.parquet
    out = tmp_path / "out"
    limit = str(MIN_MEMORY_LIMIT)  # the documented minimum, whatever it is
    log = tmp_path / "stderr.log"
    with log.open("w") as err:
        child = subprocess.Popen([sys.executable, "-m", "billing", "reconcile", "--date", made["date"],
                                  "--raw", str(lake / "raw"), "--stream", str(lake / "stream"), "--out", str(out),
                                  "--memory-limit", limit, "--no-tables"], stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own resource usage
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode in (0, 3), log.read_text()
    peak = usage.ru_maxrss * 1024
    assert peak < MIN_MEMORY_LIMIT, f"peak RSS {peak / 2**20:.0f} MiB over the {MIN_MEMORY_LIMIT / 2**20:.0f} MiB limit"
    version = out / f"dt={made['date']}" / json.loads((out / f"dt={made['date']}" / "_current.json").read_text())["dir"]
    assert pq.read_metadata(version / "totals.parquet").num_rows == made["windows"]


def test_below_the_minimum_the_run_is_refused_before_it_reads(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "billing", "reconcile", "--date", "2026-11-26",
                          "--raw", str(tmp_path / "nothing"), "--stream", str(tmp_path / "nothing"),
                          "--out", str(tmp_path / "out"), "--memory-limit", "1535MiB"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"billing: error: --memory-limit {1535 * 2**20} bytes is below the minimum of 1.5GiB (1536MiB): "
        "billing's own memory and a day's sorts need it")
    assert not (tmp_path / "out").exists()

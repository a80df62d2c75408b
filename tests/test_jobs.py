from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.lake import at, click, write_raw, write_stream

ROOT = Path(__file__).resolve().parents[1]


def test_nightly_job_runs_a_given_day_with_env_config(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    env = {"PATH": "/usr/bin:/bin", "BILLING_RAW": str(tmp_path / "raw"), "BILLING_STREAM": str(tmp_path / "stream"),
           "BILLING_OUT": str(tmp_path / "out"), "BILLING_MEMORY_LIMIT": "1536MiB"}
    r = subprocess.run([sys.executable, "-m", "jobs.nightly", "2026-11-26"], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "billable (exit 0), published as version 1" in r.stdout
    assert "committed" in r.stderr  # progress is logged on stderr


def test_generate_demo_job(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "jobs.generate_demo", "--out", str(tmp_path / "d"), "--date",
                        "2026-11-26", "--rows", "2000"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d/truth/truth.json").exists() and (tmp_path / "d/stream/dt=2026-11-26").is_dir()

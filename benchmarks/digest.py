"""Digest of every output billing publishes, on every path: the proof that a refactor changed nothing.

    python -m benchmarks.digest OUT.json    # then compare two such files (e.g. before and after a change)

For demo seeds 1, 2 and 3 it reconciles the day through the CLI (a subprocess, so any code layout
works): in one process, with ``--slices 5``, with ``--workers 2 --slices 3``, and through
plan / set-aside / run-slice / merge; it records the SHA-256 of every file of the committed version except
manifest.json (which holds run metadata: time, host, run id) and each run's exit code.

The lakes are made in one fixed folder (``DIGEST_DIR``, default /tmp/billing-digest, emptied first)
with every file's modification time pinned, because report.html lists each input's location and
version (mtime locally): the same code then gives the same digest on every run and every machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

DATE = "2026-11-26"
PINNED_MTIME_NS = 1_764_115_200 * 10**9  # 2025-11-26 00:00 UTC
PATHS = {"one": [], "slices5": ["--slices", "5"], "workers2": ["--workers", "2", "--slices", "3"]}


def billing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billing", "-q", *args], capture_output=True, text=True)


def version_digest(out: Path) -> dict[str, str]:
    cur = json.loads((out / f"dt={DATE}" / "_current.json").read_text())
    folder = out / f"dt={DATE}" / cur["dir"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            if p.name != "manifest.json"}


def main(target: str) -> None:
    result: dict[str, object] = {}
    tmp = Path(os.environ.get("DIGEST_DIR", "/tmp/billing-digest"))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for seed in (1, 2, 3):
        lake = Path(tmp) / f"lake{seed}"
        r = billing("demo", "--out", str(lake), "--date", DATE, "--rows", "20000", "--seed", str(seed))
        assert r.returncode == 0, r.stderr
        for f in lake.rglob("*"):
            if f.is_file():
                os.utime(f, ns=(PINNED_MTIME_NS, PINNED_MTIME_NS))
        common = ["--date", DATE, "--raw", str(lake / "raw"), "--stream", str(lake / "stream")]
        for name, extra in PATHS.items():
            out = Path(tmp) / f"out{seed}-{name}"
            r = billing("reconcile", *common, "--out", str(out), *extra)
            result[f"seed{seed}/{name}"] = {"exit": r.returncode, "files": version_digest(out)}
        out = Path(tmp) / f"out{seed}-distributed"
        r = billing("plan", *common, "--out", str(out), "--slices", "4")
        assert r.returncode == 0, r.stderr
        plan = r.stdout.strip()
        if billing("set-aside", "--help").returncode == 0:  # rows set aside by slice first, where the code has it
            s = billing("set-aside", "--plan", plan)
            assert s.returncode == 0, s.stderr
        for k in range(4):
            s = billing("run-slice", "--plan", plan, "--slice", str(k))
            assert s.returncode == 0, s.stderr
        r = billing("merge", "--plan", plan)
        result[f"seed{seed}/distributed"] = {"exit": r.returncode, "files": version_digest(out)}
    Path(target).write_text(json.dumps(result, indent=2, sort_keys=True, allow_nan=False) + "\n")
    for seed in (1, 2, 3):
        runs = [result[f"seed{seed}/{name}"] for name in (*PATHS, "distributed")]
        print(f"seed {seed}: {len(runs)} paths, {'identical' if all(r == runs[0] for r in runs) else 'DIFFERENT'}")
    print(f"digests in {target}")


if __name__ == "__main__":
    main(sys.argv[1])

"""``make bench``: billing against what a user would otherwise write, side by side, in one run.

Generates (or reuses) a day of BENCH_ROWS raw rows (default 100M), then runs, alternating,
BENCH_REPEATS times each: (a) a bare scan of the needed columns, (b) the naive one-query DuckDB
dedup + count, (c) the same in Polars (streaming), (d) ``billing reconcile``. Each run is a fresh
process; wall time is measured around it and peak RSS by sampling the RSS of its whole process
tree every 20 ms. Prints medians (min-max), rows/s, peak RSS and the ratios, checks that (b), (c)
and (d) give the same totals, and writes everything as JSON to benchmarks/results/.

    BENCH_ROWS=10000000 BENCH_REPEATS=3 make bench
    BENCH_ONLY=billing BENCH_ARGS="--memory-limit 4GB" make bench
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pyarrow.parquet as pq

from benchmarks.generate import generate
from benchmarks.workloads import horizon_files

HERE = Path(__file__).resolve().parent
ROWS = int(os.environ.get("BENCH_ROWS", "100000000"))
REPEATS = int(os.environ.get("BENCH_REPEATS", "3"))
ONLY = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
BILLING_ARGS = os.environ.get("BENCH_ARGS", "").split()
NAMES = {"scan": "(a) bare scan", "duckdb": "(b) naive DuckDB", "polars": "(c) naive Polars",
         "billing": "(d) billing reconcile"}


def measure(cmd: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
        except psutil.Error:
            pass
        time.sleep(0.02)
    seconds = time.monotonic() - started
    err = proc.stderr.read() if proc.stderr else ""
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"{cmd} failed with {proc.returncode}: {err[-2000:]}")
    return seconds, peak


def command(name: str, data: Path, out: Path) -> list[str]:
    if name == "billing":
        exe = str(Path(sys.executable).parent / "billing")
        return [exe, "-q", "reconcile", "--date", "2026-11-26", "--raw", str(data / "raw"),
                "--stream", str(data / "stream"), "--out", str(out), *BILLING_ARGS]
    return [sys.executable, "-m", "benchmarks.workloads", name, str(data), str(out)]


def totals_of(name: str, out: Path) -> list[tuple]:
    if name == "billing":
        cur = json.loads((out / "dt=2026-11-26" / "_current.json").read_text())
        path = out / "dt=2026-11-26" / cur["dir"] / "totals.parquet"
    else:
        path = out / "totals.parquet"
    t = pq.read_table(path, columns=["ad_id", "window_start", "clicks"])
    return [pc.sum(t.column("clicks")).as_py(), t.num_rows,
            pc.sum(pc.multiply(t.column("ad_id"), t.column("clicks"))).as_py()]


def main() -> None:
    data = HERE / "data" / f"r{ROWS}"
    meta = generate(data, ROWS)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in horizon_files(data))
    workloads = ONLY or ["scan", "duckdb", "polars", "billing"]
    results: dict[str, list[tuple[float, int]]] = {w: [] for w in workloads}
    fingerprints: dict[str, list] = {}
    scratch = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    print(f"day of {rows:,} raw rows in the horizon ({meta['raw_bytes'] / 1e9:.2f} GB Parquet, "
          f"{meta['raw_files']} files); {REPEATS} runs each, alternating", flush=True)
    try:
        for r in range(REPEATS):
            for w in workloads:
                out = scratch / f"{w}-{r}"
                seconds, peak = measure(command(w, data, out))
                results[w].append((seconds, peak))
                print(f"  run {r + 1} {NAMES[w]:<24} {seconds:8.2f} s  {peak / 2**30:6.2f} GiB", flush=True)
                if w != "scan" and w not in fingerprints:
                    fingerprints[w] = totals_of(w, out)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = {}
    for w, runs in results.items():
        times = sorted(s for s, _ in runs)
        table[w] = {"median_s": statistics.median(times), "min_s": times[0], "max_s": times[-1],
                    "rows_per_s": rows / statistics.median(times), "peak_rss_gib": max(p for _, p in runs) / 2**30}
    print(f"\n{'workload':<24} {'median s':>9} {'min':>7} {'max':>7} {'rows/s':>14} {'peak RSS GiB':>13}")
    for w, t in table.items():
        print(f"{NAMES[w]:<24} {t['median_s']:9.2f} {t['min_s']:7.2f} {t['max_s']:7.2f} "
              f"{t['rows_per_s']:14,.0f} {t['peak_rss_gib']:13.2f}")
    ratios = {}
    if "billing" in table:
        for base in ("duckdb", "polars", "scan"):
            if base in table:
                ratios[f"time d/{base}"] = table["billing"]["median_s"] / table[base]["median_s"]
                ratios[f"peak RSS d/{base}"] = table["billing"]["peak_rss_gib"] / table[base]["peak_rss_gib"]
    for k, v in ratios.items():
        print(f"  {k:<20} {v:6.2f}")
    same = len({json.dumps(v) for v in fingerprints.values()}) <= 1
    print(f"totals identical across {', '.join(fingerprints)}: {same} {next(iter(fingerprints.values()), '')}")
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"bench-{ROWS}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({"rows": rows, "data": meta, "repeats": REPEATS, "billing_args": BILLING_ARGS,
                                "table": table, "ratios": ratios, "totals_fingerprints": fingerprints,
                                "totals_identical": same}, indent=2))
    print(f"wrote {path}")
    if not same:
        sys.exit("totals differ between workloads")


if __name__ == "__main__":
    main()

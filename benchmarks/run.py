"""``make bench``: billing against what a user would otherwise write, side by side, per day shape.

For each shape of BENCH_SHAPES (default ``dense``; any of benchmarks.generate.SHAPES, comma-separated,
or ``all``) it generates (or reuses) a day of BENCH_ROWS raw rows (default 100M) under
BENCH_DATA/<shape>-<rows> (default benchmarks/data, e.g. ``longtail-100M``), then runs, alternating,
BENCH_REPEAT times each (BENCH_REPEATS is read too): (a) a bare scan of billing's columns, (b) the naive
one-query DuckDB dedup + count, (c) the same in Polars (streaming), (f) the naive one-query DuckDB diff
((b) plus the stream side summed per key, the full outer join and the delta written in key order: the
least any reconciliation does), (d) ``billing reconcile`` with BENCH_ARGS. Each run is a fresh process;
wall time is measured around it and peak RSS by sampling the RSS of its whole process tree every 20 ms.
Prints medians (min-max), rows/s, peak RSS, the ratios, the day's windows and billing's µs per window
after the slices (from its log line), checks that (b), (c), (f) and (d) give the same totals, and writes
everything as JSON to benchmarks/results/.

BENCH_BASE=/path/to/another/checkout adds (e): ``billing reconcile`` run from that checkout's code (before →
after figures in one invocation).

    BENCH_SHAPES=longtail BENCH_ROWS=10000000 BENCH_REPEAT=3 make bench
    BENCH_ONLY=billing BENCH_ARGS="--memory-limit 2GB" make bench
"""

from __future__ import annotations

import json
import os
import re
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

from benchmarks.generate import SHAPES, generate
from benchmarks.workloads import horizon_files

HERE = Path(__file__).resolve().parent
ROWS = int(os.environ.get("BENCH_ROWS", "100000000"))
REPEATS = int(os.environ.get("BENCH_REPEAT", os.environ.get("BENCH_REPEATS", "3")))
_SHAPES = os.environ.get("BENCH_SHAPES", "dense")
RUN_SHAPES = list(SHAPES) if _SHAPES == "all" else [s for s in _SHAPES.split(",") if s]
DATA = Path(os.environ.get("BENCH_DATA", HERE / "data"))
ONLY = [w for w in os.environ.get("BENCH_ONLY", "").split(",") if w]
BILLING_ARGS = os.environ.get("BENCH_ARGS", "").split()
BASE = os.environ.get("BENCH_BASE", "")
NAMES = {"scan": "(a) bare scan", "duckdb": "(b) naive DuckDB", "polars": "(c) naive Polars",
         "billing": "(d) billing reconcile", "base": "(e) billing at BASE", "diff": "(f) naive DuckDB diff"}
#: billing.run.stages logs this once the day's part after the slices is done
AFTER_SLICES = re.compile(r"after the slices: ([0-9.]+)s for ([0-9]+) windows")


def after_slices_from_log(err: str) -> float | None:
    """Seconds from the last slice's log line to the publish line (HH:MM:SS stamps): for a billing that does
    not log its time after the slices."""
    stamps = {kind: line[:8] for line in err.splitlines()
              if (kind := "slice" if " billing INFO slice " in line else
                  "published" if " billing INFO published " in line else "")}
    if "slice" not in stamps or "published" not in stamps:
        return None
    a, b = (sum(int(x) * f for x, f in zip(stamps[k].split(":"), (3600, 60, 1), strict=True))
            for k in ("slice", "published"))
    return float((b - a) % 86400)


def rows_label(rows: int) -> str:
    return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else str(rows)


def measure(cmd: list[str], err_path: Path, env: dict[str, str] | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS of the process tree, and what the process wrote to stderr."""
    started = time.monotonic()
    with open(err_path, "w") as err:
        proc = psutil.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
        peak = 0
        while proc.poll() is None:
            try:
                procs = [proc, *proc.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.02)
    seconds = time.monotonic() - started
    text = err_path.read_text(errors="replace")
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"{cmd} failed with {proc.returncode}: {text[-2000:]}")
    return seconds, peak, text


def command(name: str, data: Path, out: Path) -> list[str]:
    if name in ("billing", "base"):
        exe = str(Path(sys.executable).parent / "billing")
        return [exe, "reconcile", "--date", "2026-11-26", "--raw", str(data / "raw"),
                "--stream", str(data / "stream"), "--out", str(out), *BILLING_ARGS]
    return [sys.executable, "-m", "benchmarks.workloads", name, str(data), str(out)]


def totals_of(name: str, out: Path) -> list:
    if name in ("billing", "base"):
        cur = json.loads((out / "dt=2026-11-26" / "_current.json").read_text())
        t = pq.read_table(out / "dt=2026-11-26" / cur["dir"] / "totals.parquet",
                          columns=["ad_id", "window_start", "clicks"])
    elif name == "diff":  # its drift.parquet's keys with batch clicks are the totals
        t = pq.read_table(out / "drift.parquet", columns=["ad_id", "window_start", "batch_clicks"],
                          filters=[("batch_clicks", ">", 0)]).rename_columns(["ad_id", "window_start", "clicks"])
    else:
        t = pq.read_table(out / "totals.parquet", columns=["ad_id", "window_start", "clicks"])
    return [pc.sum(t.column("clicks")).as_py(), t.num_rows,
            pc.sum(pc.multiply(t.column("ad_id"), t.column("clicks"))).as_py()]


def bench_shape(shape: str) -> dict:
    data = DATA / f"{shape}-{rows_label(ROWS)}"
    meta = generate(data, ROWS, shape=shape)
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in horizon_files(data))
    workloads = ONLY or ["scan", "duckdb", "polars", "diff", "billing", *(["base"] if BASE else [])]
    results: dict[str, list[tuple[float, int]]] = {w: [] for w in workloads}
    after: list[tuple[float, int]] = []
    base_after: list[float] = []
    fingerprints: dict[str, list] = {}
    scratch = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    print(f"\n== {shape}: {rows:,} raw rows in the horizon ({meta['raw_bytes'] / 1e9:.2f} GB Parquet, "
          f"{meta['raw_files']} files, {meta.get('windows', 0):,} windows); {REPEATS} runs each, alternating",
          flush=True)
    try:
        for r in range(REPEATS):
            for w in workloads:
                out = scratch / f"{w}-{r}"
                env = {**os.environ, "PYTHONPATH": BASE} if w == "base" else None
                seconds, peak, err = measure(command(w, data, out), scratch / "stderr.txt", env)
                results[w].append((seconds, peak))
                line = f"  run {r + 1} {NAMES[w]:<24} {seconds:8.2f} s  {peak / 2**30:6.2f} GiB"
                if w == "billing" and (m := AFTER_SLICES.search(err)):
                    after.append((float(m.group(1)), int(m.group(2))))
                    line += f"  (after the slices {after[-1][0]:.1f} s, {after[-1][1]:,} windows)"
                elif w == "base" and (secs := after_slices_from_log(err)) is not None:
                    base_after.append(secs)
                    line += f"  (after the slices ~{secs:.0f} s, from its log's clock)"
                print(line, flush=True)
                if w != "scan" and w not in fingerprints:
                    fingerprints[w] = totals_of(w, out)
                shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    table = {}
    for w, runs in results.items():
        times = sorted(s for s, _ in runs)
        table[w] = {"median_s": statistics.median(times), "min_s": times[0], "max_s": times[-1],
                    "rows_per_s": rows / statistics.median(times),
                    "peak_rss_gib": statistics.median(p for _, p in runs) / 2**30,
                    "max_peak_rss_gib": max(p for _, p in runs) / 2**30}
    print(f"{'workload':<24} {'median s':>9} {'min':>7} {'max':>7} {'rows/s':>14} {'RSS GiB med':>12} {'max':>6}")
    for w, t in table.items():
        print(f"{NAMES[w]:<24} {t['median_s']:9.2f} {t['min_s']:7.2f} {t['max_s']:7.2f} "
              f"{t['rows_per_s']:14,.0f} {t['peak_rss_gib']:12.2f} {t['max_peak_rss_gib']:6.2f}")
    ratios = {}
    if "billing" in table:
        for base in ("duckdb", "polars", "scan", "base", "diff"):
            if base in table:
                ratios[f"time d/{base}"] = table["billing"]["median_s"] / table[base]["median_s"]
                ratios[f"peak RSS d/{base}"] = table["billing"]["peak_rss_gib"] / table[base]["peak_rss_gib"]
    for k, v in ratios.items():
        print(f"  {k:<20} {v:6.2f}")
    after_slices = None
    if after:
        secs = statistics.median(s for s, _ in after)
        after_slices = {"median_s": secs, "windows": after[0][1], "us_per_window": secs * 1e6 / max(1, after[0][1])}
        print(f"  after the slices: {secs:.2f} s for {after[0][1]:,} windows = "
              f"{after_slices['us_per_window']:.2f} µs per window")
    if base_after:
        after_slices = {**(after_slices or {}), "base_median_s": statistics.median(base_after)}
        print(f"  after the slices at BASE: ~{statistics.median(base_after):.0f} s (whole seconds of its log)")
    same = len({json.dumps(v) for v in fingerprints.values()}) <= 1
    print(f"totals identical across {', '.join(fingerprints)}: {same} {next(iter(fingerprints.values()), '')}")
    return {"shape": shape, "rows": rows, "data": meta, "repeats": REPEATS, "billing_args": BILLING_ARGS,
            "table": table, "ratios": ratios, "after_slices": after_slices,
            "totals_fingerprints": fingerprints, "totals_identical": same}


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args:  # settings are environment variables: any argument (--help too) prints how to use it
        print(__doc__.strip())
        sys.exit(0 if args[0] in ("-h", "--help") else f"unexpected argument(s) {' '.join(args)}: "
                 "the benchmark is set with BENCH_* environment variables")
    wrong = [w for w in ONLY if w not in NAMES]
    if wrong:
        sys.exit(f"unknown workload(s) {', '.join(wrong)} in BENCH_ONLY: choose from {', '.join(NAMES)}")
    unknown = [s for s in RUN_SHAPES if s not in SHAPES]
    if unknown:
        sys.exit(f"unknown shape(s) {', '.join(unknown)}: choose from {', '.join(SHAPES)} or 'all'")
    reports = [bench_shape(s) for s in RUN_SHAPES]
    (HERE / "results").mkdir(exist_ok=True)
    path = HERE / "results" / f"bench-{'-'.join(RUN_SHAPES)}-{ROWS}-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(reports, indent=2))
    print(f"wrote {path}")
    if not all(r["totals_identical"] for r in reports):
        sys.exit("totals differ between workloads")


if __name__ == "__main__":
    main()

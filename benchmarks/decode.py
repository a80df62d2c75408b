"""Decode amplification and per-slice cost of the distributed path: plan → set-aside → run-slice × N → merge.

Each step runs in a fresh process (``--step``), as machines would run them; the slices of one step
run one after another in that process (the functions called in a loop, saving N process start-ups),
or in W processes at once with ``--workers W`` (standing in for W machines). Prints and writes JSON:
wall time and peak RSS of each step, per-slice rows/s and seconds, and the manifest's "scale".

    python -m benchmarks.decode --lake benchmarks/data/dense-100M --slices 10 100 1000 --out /tmp/x
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

DATE = "2026-11-26"


def _step(args: argparse.Namespace) -> dict[str, Any]:
    from billing.config import ReconcileConfig
    from billing.run import distributed

    started = time.monotonic()
    out: dict[str, Any] = {}
    if args.step == "plan":
        cfg = ReconcileConfig.load(cli={"date": DATE, "raw": f"{args.lake}/raw", "stream": f"{args.lake}/stream",
                                        "out": args.out, "slices": str(args.n), "memory_limit": args.memory_limit})
        plan, uri, parts = distributed.plan_day(cfg)
        out = {"uri": uri, "parts": parts, "slices": len(plan.ranges)}
    elif args.step == "set-aside" and args.every > 1:  # parts first, first + every, ... (one of W machines)
        mine = range(args.first, args.n, args.every)
        out = {"parts_run": sum(distributed.set_aside_planned(args.uri, p) for p in mine)}
    elif args.step == "set-aside":
        out = {"parts_run": distributed.set_aside_planned(args.uri, args.part)}
    elif args.step == "slices":
        for k in range(args.first, args.n, args.every):
            distributed.run_planned_slice(args.uri, k)
    elif args.step == "merge":
        out = {"exit_code": distributed.merge_plan(args.uri).exit_code}
    out["seconds"] = round(time.monotonic() - started, 2)
    out["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3)
    return out


def _run(step: str, *extra: str) -> dict[str, Any]:
    r = subprocess.run([sys.executable, "-m", "benchmarks.decode", "--step", step, *extra],
                       capture_output=True, text=True, check=False)
    if r.returncode not in (0, 3):
        raise SystemExit(f"{step} failed ({r.returncode}): {r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _spread(step: str, uri: str, n: int, workers: int) -> list[dict[str, Any]]:
    """Items 0..n-1 of a step (slices, set-aside parts) in W processes at once, worker w taking w, w + W, ..."""
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.decode", "--step", step, "--uri", uri,
                               "--n", str(n), "--first", str(w), "--every", str(workers)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for w in range(workers)]
    return [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]


def measure(lake: str, n: int, out: str, memory_limit: str, workers: int) -> dict[str, Any]:
    res: dict[str, Any] = {"slices_requested": n, "workers": workers, "memory_limit": memory_limit}
    res["plan"] = _run("plan", "--lake", lake, "--n", str(n), "--out", out, "--memory-limit", memory_limit)
    uri = res["plan"]["uri"]
    if workers == 1 or not res["plan"]["parts"]:
        res["set_aside"] = _run("set-aside", "--uri", uri)
    else:  # the parts spread over the W workers, as the DAG's mapped set-aside tasks would be
        started = time.monotonic()
        res["set_aside_workers"] = _spread("set-aside", uri, res["plan"]["parts"], workers)
        res["set_aside"] = {"seconds": round(time.monotonic() - started, 2),
                            "peak_rss_gib": max(w["peak_rss_gib"] for w in res["set_aside_workers"])}
    started = time.monotonic()
    res["slices"] = _spread("slices", uri, res["plan"]["slices"], workers)
    res["slices_wall_seconds"] = round(time.monotonic() - started, 2)
    res["merge"] = _run("merge", "--uri", uri)
    work = Path(uri).parent
    stats = [json.loads(p.read_text()) for p in sorted(work.glob("slice-*/slice.json"))]
    manifest = json.loads((Path(out) / f"dt={DATE}" / "v=1" / "manifest.json").read_text())
    secs = sorted(s["seconds"] for s in stats)
    res["per_slice"] = {"median_seconds": secs[len(secs) // 2], "max_seconds": secs[-1],
                        "median_rows_in_range": sorted(s["rows_in_range"] for s in stats)[len(stats) // 2],
                        "rows_per_second": round(sum(s["rows_in_range"] for s in stats) / sum(secs))}
    res["scale"] = manifest["scale"]
    res["bytes_set_aside"] = sum(f.stat().st_size for f in (work / "set-aside").rglob("*.parquet"))
    res["bytes_slice_results"] = sum(f.stat().st_size for f in work.glob("slice-*/*"))
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--step")
    ap.add_argument("--lake")
    ap.add_argument("--out")
    ap.add_argument("--uri")
    ap.add_argument("--n", type=int)
    ap.add_argument("--part", type=int, default=None)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--every", type=int, default=1)
    ap.add_argument("--memory-limit", default="4GB")
    ap.add_argument("--slices", type=int, nargs="*", default=[10, 100, 1000])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--results", default="benchmarks/results/decode.json")
    args = ap.parse_args()
    if args.step:
        print(json.dumps(_step(args)))
        return
    results = []
    for n in args.slices:
        out = f"{args.out}/n{n}-w{args.workers}"
        res = measure(args.lake, n, out, args.memory_limit, args.workers)
        results.append(res)
        print(json.dumps(res), flush=True)
        if not os.environ.get("DECODE_KEEP"):
            subprocess.run(["rm", "-rf", out], check=False)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

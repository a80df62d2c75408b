"""The nightly reconciliation, stage after stage: read → validate → dedup → totals → diff → publish."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

import billing
from billing import engine, faults, read, report, schemas, slices, stream_quarantine, validate
from billing.config import LOCK_TTL, S3_MAX_ATTEMPTS, ReconcileConfig
from billing.diff import DiffResult, diff
from billing.errors import BadInputError, UsageError
from billing.ledger import check_stream_balance
from billing.publish import Commit, Day, new_run_id, write_json, write_parquet
from billing.storage import FileInfo, Store, contains, open_store

log = logging.getLogger(__name__)

FACTS_SCHEMA = pa.schema([
    ("ad_id", pa.int64()), ("window_start", schemas.TS), ("clicks", pa.int64()),
    ("spend_micros", pa.int64()), ("duplicate_copies", pa.int64()), ("late_clicks", pa.int64()),
])

#: The data files; with the report and CSVs they make up a version (the manifest aside).
CONTENT_FILES = ("totals.parquet", "drift.parquet", "quarantine.parquet", "conflicts.parquet", "summary.json",
                 "stream_quarantine.parquet")
OUTPUT_FILES = (*CONTENT_FILES, "report.html", "drift_flagged.csv", "ads_daily.csv")
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

#: The order of each Parquet output's rows, declared in its metadata (``sorting_columns``).
SORTED_BY = {"totals.parquet": ("ad_id", "window_start"), "drift.parquet": ("ad_id", "window_start"),
             "quarantine.parquet": ("source_file", "source_row"), "conflicts.parquet": ("click_id",),
             "stream_quarantine.parquet": ("source_file", "source_row")}


@dataclass
class RunResult:
    summary: dict[str, Any]
    commit: Commit
    exit_code: int


@dataclass
class Inputs:
    raw: Store
    stream: Store
    out: Store
    sources: list[read.SourceFile]
    stream_files: list[FileInfo]
    rows_beyond_horizon: int
    stream_sources: list[read.StreamSource] | None = None

    def stream_side(self) -> list[read.StreamSource]:
        """The stream files, opened (checked) and their structure checked once; sorted by path."""
        if self.stream_sources is None:
            self.stream_sources = read.inspect_stream(self.stream, self.stream_files)
        return self.stream_sources

    @property
    def total_rows(self) -> int:
        """Raw rows in the horizon, from the files' footers."""
        return sum(s.num_rows for s in self.sources)


def open_inputs(cfg: ReconcileConfig) -> tuple[Inputs, list[read.PartitionFile]]:
    raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    stream = open_store(cfg.stream, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    out = open_store(cfg.out, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    check_disjoint(raw, stream, out)
    raw.check_readable()
    stream.check_readable()
    horizon = read.Horizon(cfg.date, cfg.lateness)
    files = read.discover_raw(raw, horizon)
    if not any(f.info.path.startswith(f"dt={cfg.date.isoformat()}/") for f in files) and not cfg.allow_empty:
        raise BadInputError(f"no raw partition dt={cfg.date} under {raw.uri} "
                            f"(use --allow-empty to publish an empty day)")
    sources = read.inspect_raw(raw, files)
    stream_files = read.discover_stream(stream, cfg.date)
    if not stream_files and not cfg.stream_optional:
        raise BadInputError(f"no stream partition dt={cfg.date} under {stream.uri} "
                            f"(use --stream-optional to reconcile against nothing)")
    inputs = Inputs(raw, stream, out, sources, stream_files, read.rows_beyond_horizon(raw, sources))
    inputs.stream_side()  # an unreadable stream file stops the run before the day is deduplicated
    return inputs, files


def check_disjoint(raw: Store, stream: Store, out: Store) -> None:
    """Refuse roots that are equal or nested (exit 2): outputs would become inputs, or one input
    would be read as the other. Locations are compared after normalising (see storage.contains)."""
    roots = {"--raw": raw, "--stream": stream, "--out": out}
    for a, b in (("--out", "--raw"), ("--out", "--stream"), ("--raw", "--out"), ("--stream", "--out"),
                 ("--stream", "--raw"), ("--raw", "--stream")):
        sa, sb = roots[a], roots[b]
        if contains(sb, sa):
            how = "is the same location as" if contains(sa, sb) else "lies inside"
            why = ("outputs would become inputs" if "--out" in (a, b)
                   else "one input would be read as the other")
            raise UsageError(f"{a} {sa.uri} {how} {b} {sb.uri}: {why}")


@dataclass(frozen=True)
class Plan:
    """How a day is split: its config, the exact input files, and the click_id ranges of its slices.

    Its id is a hash of its content, so planning the same inputs twice gives the same id, and a
    retried slice writes over its own partial results.
    """

    cfg: ReconcileConfig
    raw_files: list[read.PartitionFile]
    stream_files: list[FileInfo]
    ranges: list[read.ClickRange]

    def to_json(self) -> dict[str, Any]:
        return {
            "config": self.cfg.as_dict(),
            "raw_files": [{"path": f.info.path, "bytes": f.info.size, "version": f.info.version_tag,
                           "ingest_cutoff": None if f.ingest_cutoff is None else f.ingest_cutoff.isoformat()}
                          for f in self.raw_files],
            "stream_files": [{"path": f.path, "bytes": f.size, "version": f.version_tag} for f in self.stream_files],
            "slices": [{"lo": r.lo, "hi": r.hi} for r in self.ranges],
        }

    @property
    def plan_id(self) -> str:
        body = json.dumps({**self.to_json(), "config": self.cfg.content_settings()}, sort_keys=True, allow_nan=False)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        return cls(
            cfg=ReconcileConfig.from_dict(d["config"]),
            raw_files=[read.PartitionFile(FileInfo(f["path"], f["bytes"], f["version"]),
                                          None if f["ingest_cutoff"] is None
                                          else dt.datetime.fromisoformat(f["ingest_cutoff"]))
                       for f in d["raw_files"]],
            stream_files=[FileInfo(f["path"], f["bytes"], f["version"]) for f in d["stream_files"]],
            ranges=[read.ClickRange(r["lo"], r["hi"]) for r in d["slices"]],
        )


def make_plan(cfg: ReconcileConfig, inputs: Inputs, raw_files: list[read.PartitionFile]) -> Plan:
    total_rows = inputs.total_rows
    n = cfg.slices or slices.auto_slice_count(total_rows, cfg.memory_limit)
    ranges = slices.plan_ranges(inputs.sources, n, cfg.snowflake_epoch_ms)
    if total_rows:
        log.info("plan: %d slice(s) of %d rows; they decode %.1fx the rows (row groups read by several slices)",
                 len(ranges), total_rows, slices.rows_decoded(inputs.sources, ranges) / total_rows)
    return Plan(cfg, raw_files, inputs.stream_files, ranges)


def _run_slice_job(args: tuple[ReconcileConfig, list[read.SourceFile], read.ClickRange, str, Path | None]) -> str:
    cfg, sources, rng, folder, stragglers = args
    store = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    slices.run_slice(cfg, store, sources, rng, temp_dir=folder, stragglers=stragglers).save(Path(folder))
    return folder


def _set_aside_stragglers(cfg: ReconcileConfig, inputs: Inputs, ranges: list[read.ClickRange],
                          work: Path) -> Path | None:
    """The stragglers file when the slices would otherwise decode the lake many times over, else None."""
    total_rows = inputs.total_rows
    if len(ranges) < 2 or not validate.stragglers_apply(inputs.raw, inputs.sources):
        return None
    amplification = slices.rows_decoded(inputs.sources, ranges) / total_rows
    if amplification < slices.STRAGGLERS_FROM_AMPLIFICATION:
        return None
    started = time.monotonic()
    path = work / "stragglers.parquet"
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=str(work))
    try:
        n = validate.set_aside_stragglers(con, inputs.raw, inputs.sources, cfg, path)  # type: ignore[arg-type]
    except duckdb.Error as e:  # the slices fall back to reading every row group, through Arrow if need be
        log.warning("could not set the stragglers aside (%s); slices read the lake directly",
                    str(e).strip().splitlines()[0][:200])
        return None
    finally:
        con.close()
    log.info("set aside %d stragglers (%.2f%% of %d rows) in %.1fs: slices would otherwise decode %.1fx the rows",
             n, 100 * n / total_rows, total_rows, time.monotonic() - started, amplification)
    return path


def dedup_day(cfg: ReconcileConfig, inputs: Inputs, ranges: list[read.ClickRange], work: Path) -> slices.SlicePartial:
    log.info("reading %d raw files, %d rows, in %d slice(s)", len(inputs.sources), inputs.total_rows, len(ranges))
    if not inputs.sources:
        return slices.empty_partial(FACTS_SCHEMA)
    stragglers = _set_aside_stragglers(cfg, inputs, ranges, work)
    if cfg.workers > 1 and len(ranges) > 1:
        jobs = [(cfg, inputs.sources, rng, str(work / f"slice-{i:04d}"), stragglers) for i, rng in enumerate(ranges)]
        with ProcessPoolExecutor(max_workers=cfg.workers) as pool:
            folders = list(pool.map(_run_slice_job, jobs))
        partials = [slices.SlicePartial.load(Path(f)) for f in folders]
    else:
        # Each slice's partial is written in a thread while the next slice is read (Arrow lets go of the GIL).
        with ThreadPoolExecutor(max_workers=1) as writer:
            saved = [writer.submit(slices.run_slice(cfg, inputs.raw, inputs.sources, rng, temp_dir=str(work),
                                                    stragglers=stragglers).save, work / f"slice-{i:04d}")
                     for i, rng in enumerate(ranges)]
            partials = [s.result() for s in saved]
    return slices.merge(partials)


def reconcile(cfg: ReconcileConfig) -> RunResult:
    """The whole day in this process (slices in ``cfg.workers`` processes), published atomically."""
    started = time.monotonic()
    run_id = new_run_id()
    inputs, raw_files = open_inputs(cfg)
    day = Day(inputs.out, cfg.date)
    with day.lock(run_id, cfg.lock_ttl), tempfile.TemporaryDirectory(prefix="billing-") as tmp:
        faults.point("after_lock")
        plan = make_plan(cfg, inputs, raw_files)
        merged = dedup_day(cfg, inputs, plan.ranges, Path(tmp))
        result = finish(cfg, inputs, day, merged, run_id, started, Path(tmp))
    return result


def finish(cfg: ReconcileConfig, inputs: Inputs, day: Day, merged: slices.SlicePartial, run_id: str,
           started: float, work: Path) -> RunResult:
    """Diff the merged slices against the stream side, stage every output, publish (caller holds the lock)."""
    spend = merged.ledger.billable_spend_micros
    if spend is not None and not INT64_MIN <= spend <= INT64_MAX:  # each slice fits; their sum may not
        raise BadInputError(f"{cfg.date}: billable spend sums to {spend} micros, more than int64 holds "
                            f"(cost_micros too large?)")
    has_cost = any("cost_micros" in s.columns for s in inputs.sources)
    stream_has_spend = any(s.has_spend for s in inputs.stream_side())
    con = engine.connect(memory_limit=cfg.memory_limit, threads=cfg.threads, temp_dir=str(work))
    try:
        # The stream table is not bound to a name here: diff() lets go of it once DuckDB has loaded it.
        result = diff(con, cfg, _window_facts(con, merged), read.read_stream(inputs.stream, inputs.stream_side()),
                      has_cost=has_cost, stream_has_spend=stream_has_spend,
                      shared=slices.day_shared_windows(merged))
    finally:
        con.close()
    faults.point("after_diff")
    staged, summary = build_outputs(cfg, inputs, merged, result, work / "out")
    previous = _previous_per_ad(day)
    manifest = build_manifest(cfg, inputs, summary, run_id, started, result.totals, previous)
    commit = day.publish(staged, manifest, compare=OUTPUT_FILES)
    log.info("%s %s in %.1fs: %s", "unchanged" if commit.unchanged else "published", commit.url,
             time.monotonic() - started, summary["status"])
    return RunResult(summary, commit, summary["exit_code"])


def _window_facts(con: duckdb.DuckDBPyConnection, merged: slices.SlicePartial) -> duckdb.DuckDBPyRelation:
    """The day's window facts as a relation, read from the slices' saved files."""
    if not merged.facts_files:
        return con.from_arrow(FACTS_SCHEMA.empty_table())
    return con.read_parquet([str(f) for f in merged.facts_files])


# --- scale-out: plan, run-slice, merge (each a separate process, possibly on another machine) ----

WORK = "_work"


def plan_day(cfg: ReconcileConfig) -> tuple[Plan, str]:
    """Write the day's plan under OUT/dt=D/_work/<plan id>/plan.json; return it and its URI."""
    inputs, raw_files = open_inputs(cfg)
    plan = make_plan(cfg, inputs, raw_files)
    day = Day(inputs.out, cfg.date)
    path = day.path(WORK, plan.plan_id, "plan.json")
    inputs.out.write_bytes(path, (json.dumps(plan.to_json(), indent=2, allow_nan=False) + "\n").encode())
    log.info("planned %d slice(s) of %d raw files: %s", len(plan.ranges), len(raw_files), inputs.out.url(path))
    return plan, inputs.out.url(path)


def load_plan(uri: str, *, s3_endpoint: str | None = None, s3_max_attempts: int = S3_MAX_ATTEMPTS,
              lock_ttl: dt.timedelta = LOCK_TTL) -> tuple[Plan, Store, str]:
    """The plan at ``uri`` (…/dt=D/_work/<id>/plan.json), its OUT store and its work prefix there.

    The plan carries the day's config but not this process's settings (``config.LOCAL``): its config
    gets the ones given here (from this process's command line, environment and defaults).
    """
    parent, _, name = uri.rstrip("/").rpartition("/")
    store = open_store(parent, endpoint=s3_endpoint, max_attempts=s3_max_attempts)
    data = store.read_bytes(name)
    if data is None:
        raise BadInputError(f"no plan at {uri}")
    plan = Plan.from_json(json.loads(data))
    plan = replace(plan, cfg=replace(plan.cfg, s3_max_attempts=s3_max_attempts, lock_ttl=lock_ttl))
    out = open_store(plan.cfg.out, endpoint=s3_endpoint or plan.cfg.s3_endpoint, max_attempts=s3_max_attempts)
    return plan, out, Day(out, plan.cfg.date).path(WORK, plan.plan_id)


def _planned_inputs(plan: Plan) -> Inputs:
    """The plan's inputs, re-opened; refuses if a raw file changed since it was planned."""
    cfg = plan.cfg
    raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    stream = open_store(cfg.stream, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    out = open_store(cfg.out, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    check_disjoint(raw, stream, out)
    planned = {p.info.path for p in plan.raw_files}
    partitions = sorted({path.split("/", 1)[0] for path in planned})  # dt=D and dt=D+1, not the whole lake
    now = {f.path: f for part in partitions for f in raw.list_files(part) if f.path in planned}
    for f in plan.raw_files:
        seen = now.get(f.info.path)
        if seen is None or (seen.size, seen.version_tag) != (f.info.size, f.info.version_tag):
            raise BadInputError(f"{raw.url(f.info.path)} changed or vanished since the plan was made: plan again")
    sources = read.inspect_raw(raw, plan.raw_files)
    return Inputs(raw, stream, out, sources, plan.stream_files, read.rows_beyond_horizon(raw, sources))


def run_planned_slice(uri: str, k: int, *, s3_endpoint: str | None = None,
                      s3_max_attempts: int = S3_MAX_ATTEMPTS) -> str:
    """Dedup and total slice ``k`` of a plan; write its partial results where a retry overwrites them."""
    plan, out, work = load_plan(uri, s3_endpoint=s3_endpoint, s3_max_attempts=s3_max_attempts)
    if not 0 <= k < len(plan.ranges):
        raise UsageError(f"--slice {k}: the plan has slices 0..{len(plan.ranges) - 1}")
    inputs = _planned_inputs(plan)
    with tempfile.TemporaryDirectory(prefix="billing-slice-") as tmp:
        partial = slices.run_slice(plan.cfg, inputs.raw, inputs.sources, plan.ranges[k], temp_dir=tmp)
        partial.save(Path(tmp) / "p")
        for name in slices.PARTIAL_FILES:
            out.upload(f"{work}/slice-{k:04d}/{name}", Path(tmp) / "p" / name)
    return out.url(f"{work}/slice-{k:04d}")


def merge_plan(uri: str, *, s3_endpoint: str | None = None, s3_max_attempts: int = S3_MAX_ATTEMPTS,
               lock_ttl: dt.timedelta = LOCK_TTL) -> RunResult:
    """Sum every slice's partials, diff against the stream side, publish the day atomically."""
    started = time.monotonic()
    plan, out, work = load_plan(uri, s3_endpoint=s3_endpoint, s3_max_attempts=s3_max_attempts, lock_ttl=lock_ttl)
    missing = [k for k in range(len(plan.ranges)) if not out.exists(f"{work}/slice-{k:04d}/ledger.json")]
    if missing:
        raise BadInputError(f"slices {missing} of plan {plan.plan_id} have no results yet: run them first")
    inputs = _planned_inputs(plan)
    run_id = new_run_id()
    day = Day(out, plan.cfg.date)
    with day.lock(run_id, plan.cfg.lock_ttl), tempfile.TemporaryDirectory(prefix="billing-merge-") as tmp:
        partials = []
        for k in range(len(plan.ranges)):
            folder = Path(tmp) / f"slice-{k:04d}"
            folder.mkdir()
            for name in slices.PARTIAL_FILES:
                (folder / name).write_bytes(out.read_bytes(f"{work}/slice-{k:04d}/{name}") or b"")
            partials.append(slices.SlicePartial.load(folder))
        return finish(plan.cfg, inputs, day, slices.merge(partials) if partials else slices.empty_partial(
            FACTS_SCHEMA), run_id, started, Path(tmp))


def verdict(drift: dict[str, Any]) -> tuple[str, int]:
    if drift["flagged"]:
        return "drift_flagged", 3
    if drift["abs_delta_clicks"] or any(k != "match" for k in drift["by_status"]):
        return "drift_within_tolerance", 0
    return "billable", 0


def build_outputs(cfg: ReconcileConfig, inputs: Inputs, merged: slices.SlicePartial, result: DiffResult,
                  folder: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """Stage every output file locally, checked against its contract; return paths and summary."""
    folder.mkdir(parents=True, exist_ok=True)
    totals = result.totals.cast(schemas.arrow_schema(schemas.Totals))
    drift = result.drift.cast(schemas.arrow_schema(schemas.Drift))
    quarantine = _quarantine(inputs, merged)
    conflicts = _conflicts(inputs, merged.conflicts)
    schemas.check_output(schemas.Totals, totals, "totals.parquet")
    schemas.check_output(schemas.Drift, drift, "drift.parquet")
    schemas.check_output(schemas.Conflict, conflicts, "conflicts.parquet")
    stream_q = stream_quarantine.assemble(inputs.stream, inputs.stream_side(), result.stream_quarantine)
    schemas.check_output(schemas.StreamQuarantine, stream_q, "stream_quarantine.parquet")

    ledger = merged.ledger
    # With a cost column anywhere, spend is a number: 0 when no winner has a cost (none valid, all null).
    ledger.billable_spend_micros = (ledger.billable_spend_micros or 0) if any(
        "cost_micros" in s.columns for s in inputs.sources) else None
    totals_clicks = pc.sum(totals.column("clicks")).as_py() or 0
    totals_spend = pc.sum(totals.column("spend_micros")).as_py()
    ledger.check_balance(totals_clicks=totals_clicks, totals_spend=totals_spend)
    check_stream_balance(result.stream_counts, rows_in_day=result.stream_rows_in_day)

    drift_block = result.summary
    status, code = verdict(drift_block)
    summary = {
        "date": cfg.date.isoformat(),
        "status": status,
        "exit_code": code,
        "ledger": ledger.as_dict(),
        "stream": result.stream_counts,
        "drift": drift_block,
        "horizon": {
            "raw_files": len(inputs.sources),
            "stream_files": len(inputs.stream_files),
            "rows_beyond_horizon": inputs.rows_beyond_horizon,
        },
    }
    staged = {
        "totals.parquet": folder / "totals.parquet",
        "drift.parquet": folder / "drift.parquet",
        "quarantine.parquet": folder / "quarantine.parquet",
        "conflicts.parquet": folder / "conflicts.parquet",
        "summary.json": folder / "summary.json",
        "stream_quarantine.parquet": folder / "stream_quarantine.parquet",
    }
    # The two day-sized files are encoded in threads (Arrow releases the GIL) while the report renders.
    with ThreadPoolExecutor(max_workers=2) as pool:
        writes = [pool.submit(write_parquet, table, staged[name], SORTED_BY[name])
                  for name, table in (("totals.parquet", totals), ("drift.parquet", drift))]
        for name, table in (("quarantine.parquet", quarantine), ("conflicts.parquet", conflicts),
                            ("stream_quarantine.parquet", stream_q)):
            write_parquet(table, staged[name], SORTED_BY[name])
        write_json(summary, staged["summary.json"])
        staged.update(report.render_all(folder, summary=summary, drift=drift, totals=totals,
                                        quarantine=quarantine, conflicts=conflicts,
                                        inputs=_input_listing(inputs), code_version=billing.__version__))
        for w in writes:
            w.result()  # re-raises a failed write
    return staged, summary


def _quarantine(inputs: Inputs, merged: slices.SlicePartial) -> pa.Table:
    return validate.assemble_quarantine(inputs.raw, inputs.sources, merged.quarantine_pointers)


def _conflicts(inputs: Inputs, table: pa.Table) -> pa.Table:
    schema = schemas.arrow_schema(schemas.Conflict)
    if table.num_rows == 0:
        return schema.empty_table()
    paths = [inputs.sources[i].path for i in table.column("winner_file_id").to_pylist()]
    out = table.drop_columns(["winner_file_id"]).append_column("winner_source_file", pa.array(paths, pa.string()))
    out = out.select(schema.names).cast(schema)
    return out.sort_by([("click_id", "ascending")])


def _input_listing(inputs: Inputs) -> dict[str, list[dict[str, Any]]]:
    return {
        "raw": [{"path": inputs.raw.url(s.path), "bytes": s.info.size, "version": s.info.version_tag,
                 "rows": s.num_rows} for s in inputs.sources],
        "stream": [{"path": inputs.stream.url(f.path), "bytes": f.size, "version": f.version_tag}
                   for f in inputs.stream_files],
    }


PerAd = dict[int, tuple[int, int | None]]
TOTALS_PER_AD = ["ad_id", "clicks", "spend_micros"]


def per_ad_totals(batches: Iterable[pa.RecordBatch]) -> PerAd:
    """Per ad: (clicks, spend) summed batch by batch; spend None when no window of the ad has one."""
    out: PerAd = {}
    for batch in batches:
        if batch.num_rows == 0:
            continue
        g = pa.Table.from_batches([batch]).group_by("ad_id").aggregate([("clicks", "sum"), ("spend_micros", "sum")])
        for ad, c, sp in zip(g.column("ad_id").to_pylist(), g.column("clicks_sum").to_pylist(),
                             g.column("spend_micros_sum").to_pylist(), strict=True):
            clicks, spend = out.get(ad, (0, None))
            out[ad] = (clicks + c, spend if sp is None else sp if spend is None else spend + sp)
    return out


def _previous_per_ad(day: Day) -> PerAd | None:
    v = day.current_version()
    return None if v is None else per_ad_totals(day.iter_batches(v, "totals.parquet", TOTALS_PER_AD))


def restatement(before: PerAd | None, after: PerAd) -> list[dict[str, Any]] | None:
    """Per ad whose clicks or spend changed: before → after (None for a first version)."""
    if before is None:
        return None
    changes = []
    for ad in sorted(set(before) | set(after)):
        cb, sb = before.get(ad, (0, 0))
        ca, sa = after.get(ad, (0, 0))
        if (cb, sb) != (ca, sa):
            changes.append({"ad_id": ad, "clicks_before": cb, "clicks_after": ca,
                            "spend_micros_before": sb, "spend_micros_after": sa})
    return changes


def build_manifest(cfg: ReconcileConfig, inputs: Inputs, summary: dict[str, Any], run_id: str,
                   started: float, totals: pa.Table, previous: PerAd | None) -> dict[str, Any]:
    return {
        "date": cfg.date.isoformat(),
        "run_id": run_id,
        "package": {"name": "billing", "version": billing.__version__},
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "duration_seconds": round(time.monotonic() - started, 3),
        "config": {"content": cfg.content_settings(), "run": cfg.run_settings()},
        "inputs": _input_listing(inputs),
        "counts": {"ledger": summary["ledger"], "stream": summary["stream"]},
        "restatement": restatement(previous, per_ad_totals(totals.to_batches())),
    }

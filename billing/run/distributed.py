"""A day spread over machines: ``plan`` writes the slices' ranges, ``set-aside`` sets rows aside by
slice (each part anywhere), ``run-slice`` runs one slice anywhere, ``merge`` puts them together and
publishes like ``reconcile`` (same lock, same versions).

Each is a separate process, possibly on another machine; they meet under ``OUT/dt=D/_work/<plan id>/``:
``plan.json``, ``set-aside/part-PPPP/k=K/*.parquet`` with ``set-aside/part-PPPP.json`` (written last,
naming its files), and ``slice-KKKK/``. Whether rows are set aside, and the parts, follow from the
plan (billing.slice.setaside): a day whose slices would decode at most
:data:`~billing.slice.setaside.DISTRIBUTED_FROM_AMPLIFICATION` times its rows sets nothing aside.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from billing import progress
from billing.config import LOCK_TTL, S3_MAX_ATTEMPTS, ReconcileConfig, redact_uri
from billing.day.lock import new_run_id
from billing.day.merge import merge
from billing.day.publish import Day
from billing.errors import BadInputError, UsageError
from billing.io.inputs import Inputs
from billing.io.raw import ClickRange, PartitionFile
from billing.io.storage import FileInfo, Store, open_store
from billing.io.stream_source import FileStream
from billing.run.inputs import open_inputs, planned_inputs
from billing.run.stages import RunResult, aside_stats, finish, scale_of
from billing.slice.land import Direct
from billing.slice.partial import PARTIAL_FILES, SlicePartial, empty_partial
from billing.slice.plan import slice_ranges
from billing.slice.run import run_slice
from billing.slice.setaside import DISTRIBUTED_FROM_AMPLIFICATION, SetAside, plan_set_aside, set_aside_part

log = logging.getLogger(__name__)

WORK = "_work"
#: Under a plan's work folder: the set-aside parts' files and markers.
ASIDE = "set-aside"


@dataclass(frozen=True)
class Plan:
    """How a day is split: its config, the exact input files, and the click_id ranges of its slices.

    Its id is a hash of its content, so planning the same inputs twice gives the same id, and a
    retried slice writes over its own partial results.
    """

    cfg: ReconcileConfig
    raw_files: list[PartitionFile]
    stream_files: list[FileInfo]
    ranges: list[ClickRange]

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
        # --memory-limit is no content setting, but it shapes the set-aside layout (parts of at most a slice's
        # worth of rows under it): a plan of other parts must not take the part files of this one as its own.
        body = json.dumps({**self.to_json(), "config": self.cfg.content_settings(),
                           "memory_limit": self.cfg.memory_limit}, sort_keys=True, allow_nan=False)
        return hashlib.sha256(body.encode()).hexdigest()[:16]

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Plan:
        return cls(
            cfg=ReconcileConfig.from_dict(d["config"]),
            raw_files=[PartitionFile(FileInfo(f["path"], f["bytes"], f["version"]),
                                     None if f["ingest_cutoff"] is None
                                     else dt.datetime.fromisoformat(f["ingest_cutoff"]))
                       for f in d["raw_files"]],
            stream_files=[FileInfo(f["path"], f["bytes"], f["version"]) for f in d["stream_files"]],
            ranges=[ClickRange(r["lo"], r["hi"]) for r in d["slices"]],
        )

    def inputs(self) -> Inputs:
        """The plan's inputs, re-opened; refuses if a raw file changed since it was planned."""
        return planned_inputs(self.cfg, self.raw_files, self.stream_files)


def set_aside_of(plan: Plan, inputs: Inputs) -> SetAside | None:
    """How the plan's rows are set aside (the same in every process that holds the plan), or None."""
    return plan_set_aside(plan.cfg, inputs.raw, inputs.sources, plan.ranges, DISTRIBUTED_FROM_AMPLIFICATION)


def make_plan(cfg: ReconcileConfig, inputs: Inputs, raw_files: list[PartitionFile]) -> Plan:
    stream_files = inputs.stream.files if isinstance(inputs.stream, FileStream) else []
    return Plan(cfg, raw_files, stream_files, slice_ranges(cfg, inputs.sources))


def plan_day(cfg: ReconcileConfig) -> tuple[Plan, str, int]:
    """Write the day's plan under OUT/dt=D/_work/<plan id>/plan.json; return it, its URI and its set-aside parts."""
    inputs, raw_files = open_inputs(cfg)
    plan = make_plan(cfg, inputs, raw_files)
    day = Day(inputs.out, cfg.date)
    path = day.path(WORK, plan.plan_id, "plan.json")
    inputs.out.write_bytes(path, (json.dumps(plan.to_json(), indent=2, allow_nan=False) + "\n").encode())
    aside = set_aside_of(plan, inputs)
    parts = 0 if aside is None else len(aside.parts)
    log.info("planned %d slice(s) of %d raw files, %d set-aside part(s): %s", len(plan.ranges), len(raw_files),
             parts, inputs.out.url(path))
    return plan, inputs.out.url(path), parts


def load_plan(uri: str, *, s3_endpoint: str | None = None, s3_max_attempts: int = S3_MAX_ATTEMPTS,
              lock_ttl: dt.timedelta = LOCK_TTL, stream: str | None = None) -> tuple[Plan, Store, str]:
    """The plan at ``uri`` (…/dt=D/_work/<id>/plan.json), its OUT store and its work prefix there.

    The plan carries the day's config but not this process's settings (``config.LOCAL``): its config
    gets the ones given here (from this process's command line, environment and defaults). A plan holds a
    database stream's URI without its password: ``stream`` is that URI with it (e.g. from an Airflow
    Connection); it must name the plan's source. Without it libpq looks in PGPASSWORD and ~/.pgpass.
    """
    parent, _, name = uri.rstrip("/").rpartition("/")
    store = open_store(parent, endpoint=s3_endpoint, max_attempts=s3_max_attempts)
    data = store.read_bytes(name)
    if data is None:
        raise BadInputError(f"no plan at {uri}")
    plan = Plan.from_json(json.loads(data))
    plan = replace(plan, cfg=replace(plan.cfg, s3_max_attempts=s3_max_attempts, lock_ttl=lock_ttl))
    if stream is not None:
        if redact_uri(stream) != plan.cfg.stream:
            raise UsageError(f"the stream {redact_uri(stream)} is not the plan's ({plan.cfg.stream})")
        plan = replace(plan, cfg=replace(plan.cfg, stream=stream))
    out = open_store(plan.cfg.out, endpoint=s3_endpoint or plan.cfg.s3_endpoint, max_attempts=s3_max_attempts)
    return plan, out, Day(out, plan.cfg.date).path(WORK, plan.plan_id)


def set_aside_planned(uri: str, part: int | None = None, *, s3_endpoint: str | None = None,
                      s3_max_attempts: int = S3_MAX_ATTEMPTS) -> int:
    """Set part ``part`` (every part when None) of a plan's rows aside by slice; return how many parts ran.

    Idempotent: a retried part writes its files again, then its ``part-PPPP.json`` (which names them).
    """
    plan, out, work = load_plan(uri, s3_endpoint=s3_endpoint, s3_max_attempts=s3_max_attempts)
    inputs = plan.inputs()
    aside = set_aside_of(plan, inputs)
    n = 0 if aside is None else len(aside.parts)
    if part is not None and not 0 <= part < max(n, 1):
        raise UsageError(f"--part {part}: the plan has set-aside parts 0..{n - 1}" if n
                         else f"--part {part}: the plan sets nothing aside (it has no parts)")
    if aside is None:
        log.info("plan %s sets nothing aside: its slices decode at most %.1fx the rows reading the lake directly",
                 plan.plan_id, DISTRIBUTED_FROM_AMPLIFICATION)
        return 0
    todo = range(n) if part is None else [part]
    for p in todo:
        started = time.monotonic()
        ids = set(aside.parts[p])
        rows = sum(s.num_rows for s in inputs.sources if s.file_id in ids)
        with tempfile.TemporaryDirectory(prefix="billing-aside-") as tmp, progress.stage(f"set aside part {p}"):
            folder = Path(tmp) / "part"
            files = set_aside_part(plan.cfg, inputs.raw, inputs.sources, plan.ranges, aside, p, folder, temp_dir=tmp)
            names: dict[str, list[str]] = {}
            written = 0
            for k, paths in files.items():
                for f in paths:
                    name = f.relative_to(folder).as_posix()
                    out.upload(f"{work}/{ASIDE}/part-{p:04d}/{name}", f)
                    names.setdefault(str(k), []).append(name)
                    written += pq.ParquetFile(f).metadata.num_rows
        marker = {"part": p, "files": names, "rows_decoded": rows, "rows_set_aside": written,
                  "seconds": round(time.monotonic() - started, 3)}
        out.write_bytes(f"{work}/{ASIDE}/part-{p:04d}.json", (json.dumps(marker, sort_keys=True) + "\n").encode())
        log.info("set aside part %d (of parts 0..%d) of plan %s: %s rows read, %s set aside, %.1fs", p, n - 1,
                 plan.plan_id, f"{rows:,}", f"{written:,}", marker["seconds"])
    return len(todo)


def _markers(plan: Plan, out: Store, work: str, aside: SetAside, uri: str) -> list[dict[str, Any]]:
    """Every set-aside part's marker; exit 2 naming the parts that have not run."""
    found = [out.read_bytes(f"{work}/{ASIDE}/part-{p:04d}.json") for p in range(len(aside.parts))]
    missing = [p for p, m in enumerate(found) if m is None]
    if missing:
        raise BadInputError(f"set-aside parts {missing} of plan {plan.plan_id} have not run: run them first "
                            f"(billing set-aside --plan {uri})")
    return [json.loads(m) for m in found if m is not None]


def run_planned_slice(uri: str, k: int, *, s3_endpoint: str | None = None,
                      s3_max_attempts: int = S3_MAX_ATTEMPTS) -> str:
    """Dedup and total slice ``k`` of a plan; write its partial results where a retry overwrites them."""
    plan, out, work = load_plan(uri, s3_endpoint=s3_endpoint, s3_max_attempts=s3_max_attempts)
    if not 0 <= k < len(plan.ranges):
        raise UsageError(f"--slice {k}: the plan has slices 0..{len(plan.ranges) - 1}")
    inputs = plan.inputs()
    aside = set_aside_of(plan, inputs)
    markers = [] if aside is None else _markers(plan, out, work, aside, uri)
    with tempfile.TemporaryDirectory(prefix="billing-slice-") as tmp:
        direct = None
        if aside is not None:
            local = []
            for m in markers:
                for name in m["files"].get(str(k), []):
                    dest = Path(tmp) / "aside" / f"part-{m['part']:04d}" / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(out.read_bytes(f"{work}/{ASIDE}/part-{m['part']:04d}/{name}") or b"")
                    local.append(dest)
            direct = Direct(aside.direct_sources(inputs.sources), aside.mode == "core", local)
        partial = run_slice(plan.cfg, inputs.raw, inputs.sources, plan.ranges[k], temp_dir=tmp, direct=direct,
                            folder=Path(tmp) / "p")
        partial.save(Path(tmp) / "p")
        for name in PARTIAL_FILES:
            out.upload(f"{work}/slice-{k:04d}/{name}", Path(tmp) / "p" / name)
    st = partial.stats
    log.info("slice %d (of slices 0..%d) of plan %s: %s rows in range, %s decoded, %s billable, %.1fs", k,
             len(plan.ranges) - 1, plan.plan_id, f"{st['rows_in_range']:,}", f"{st['rows_decoded']:,}",
             f"{partial.ledger.billable_clicks:,}", st["seconds"])
    return out.url(f"{work}/slice-{k:04d}")


def merge_plan(uri: str, *, s3_endpoint: str | None = None, s3_max_attempts: int = S3_MAX_ATTEMPTS,
               lock_ttl: dt.timedelta = LOCK_TTL, stream: str | None = None) -> RunResult:
    """Sum every slice's partials, diff against the stream side (a database stream is read here, ``stream``
    as in :func:`load_plan`), publish the day atomically."""
    started = time.monotonic()
    plan, out, work = load_plan(uri, s3_endpoint=s3_endpoint, s3_max_attempts=s3_max_attempts, lock_ttl=lock_ttl,
                                stream=stream)
    missing = [k for k in range(len(plan.ranges)) if not out.exists(f"{work}/slice-{k:04d}/ledger.json")]
    if missing:
        raise BadInputError(f"slices {missing} of plan {plan.plan_id} have no results yet: run them first")
    inputs = plan.inputs()
    aside = set_aside_of(plan, inputs)
    markers = [] if aside is None else _markers(plan, out, work, aside, uri)
    run_id = new_run_id()
    day = Day(out, plan.cfg.date)
    with day.lock(run_id, plan.cfg.lock_ttl, "merge"), tempfile.TemporaryDirectory(prefix="billing-merge-") as tmp:
        with progress.stage("merge", total=len(plan.ranges), unit="slices") as bar:
            merged, partials = _load_and_merge(plan, out, work, Path(tmp), bar)
        stats = None if aside is None else aside_stats(
            aside, len(inputs.sources), sum(m["rows_decoded"] for m in markers),
            sum(m["rows_set_aside"] for m in markers))
        return finish(plan.cfg, inputs, day, merged, run_id, started, Path(tmp),
                      scale_of(partials, merged.ledger.rows_read, stats))


def _load_and_merge(plan: Plan, out: Store, work: str, tmp: Path,
                    bar: progress.Tracker) -> tuple[SlicePartial, list[SlicePartial]]:
    """Every slice's partial results, fetched into ``tmp``; their sum, and the partials."""
    partials = []
    for k in range(len(plan.ranges)):
        folder = tmp / f"slice-{k:04d}"
        folder.mkdir()
        for name in PARTIAL_FILES:
            data = out.read_bytes(f"{work}/slice-{k:04d}/{name}")
            if data is not None:
                (folder / name).write_bytes(data)
        partials.append(SlicePartial.load(folder))
        bar.advance(1)
    return (merge(partials) if partials else empty_partial()), partials

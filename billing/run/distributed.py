"""A day spread over machines: ``plan`` writes the slices' ranges, ``run-slice`` runs one anywhere,
``merge`` puts them together and publishes like ``reconcile`` (same lock, same versions).

Each is a separate process, possibly on another machine; they meet under ``OUT/dt=D/_work/<plan id>/``.
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
from billing.run.stages import RunResult, finish
from billing.slice.partial import PARTIAL_FILES, SlicePartial, empty_partial
from billing.slice.plan import slice_ranges
from billing.slice.run import run_slice

log = logging.getLogger(__name__)

WORK = "_work"


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
        body = json.dumps({**self.to_json(), "config": self.cfg.content_settings()}, sort_keys=True, allow_nan=False)
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


def make_plan(cfg: ReconcileConfig, inputs: Inputs, raw_files: list[PartitionFile]) -> Plan:
    stream_files = inputs.stream.files if isinstance(inputs.stream, FileStream) else []
    return Plan(cfg, raw_files, stream_files, slice_ranges(cfg, inputs.sources))


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


def run_planned_slice(uri: str, k: int, *, s3_endpoint: str | None = None,
                      s3_max_attempts: int = S3_MAX_ATTEMPTS) -> str:
    """Dedup and total slice ``k`` of a plan; write its partial results where a retry overwrites them."""
    plan, out, work = load_plan(uri, s3_endpoint=s3_endpoint, s3_max_attempts=s3_max_attempts)
    if not 0 <= k < len(plan.ranges):
        raise UsageError(f"--slice {k}: the plan has slices 0..{len(plan.ranges) - 1}")
    inputs = plan.inputs()
    with tempfile.TemporaryDirectory(prefix="billing-slice-") as tmp:
        partial = run_slice(plan.cfg, inputs.raw, inputs.sources, plan.ranges[k], temp_dir=tmp)
        partial.save(Path(tmp) / "p")
        for name in PARTIAL_FILES:
            out.upload(f"{work}/slice-{k:04d}/{name}", Path(tmp) / "p" / name)
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
    run_id = new_run_id()
    day = Day(out, plan.cfg.date)
    with day.lock(run_id, plan.cfg.lock_ttl), tempfile.TemporaryDirectory(prefix="billing-merge-") as tmp:
        partials = []
        for k in range(len(plan.ranges)):
            folder = Path(tmp) / f"slice-{k:04d}"
            folder.mkdir()
            for name in PARTIAL_FILES:
                (folder / name).write_bytes(out.read_bytes(f"{work}/slice-{k:04d}/{name}") or b"")
            partials.append(SlicePartial.load(folder))
        merged = merge(partials) if partials else empty_partial()
        return finish(plan.cfg, inputs, day, merged, run_id, started, Path(tmp))

"""Opening the inputs of a day: the three locations checked, the horizon's files found and opened.

Everything that makes a day unusable as input (overlapping locations, no raw or stream partition,
a file that is not readable Parquet, a planned file that changed) stops the run here, with exit 2,
before any row is deduplicated.
"""

from __future__ import annotations

from billing.config import ReconcileConfig
from billing.errors import BadInputError, UsageError
from billing.io.inputs import Inputs
from billing.io.raw import Horizon, PartitionFile, discover_raw, inspect_raw, rows_beyond_horizon
from billing.io.storage import FileInfo, Store, contains, open_store
from billing.io.stream import discover_stream


def open_inputs(cfg: ReconcileConfig) -> tuple[Inputs, list[PartitionFile]]:
    raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    stream = open_store(cfg.stream, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    out = open_store(cfg.out, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    check_disjoint(raw, stream, out)
    raw.check_readable()
    stream.check_readable()
    horizon = Horizon(cfg.date, cfg.lateness)
    files = discover_raw(raw, horizon)
    if not any(f.info.path.startswith(f"dt={cfg.date.isoformat()}/") for f in files) and not cfg.allow_empty:
        raise BadInputError(f"no raw partition dt={cfg.date} under {raw.uri} "
                            f"(use --allow-empty to publish an empty day)")
    sources = inspect_raw(raw, files)
    stream_files = discover_stream(stream, cfg.date)
    if not stream_files and not cfg.stream_optional:
        raise BadInputError(f"no stream partition dt={cfg.date} under {stream.uri} "
                            f"(use --stream-optional to reconcile against nothing)")
    inputs = Inputs(raw, stream, out, sources, stream_files, rows_beyond_horizon(raw, sources))
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


def planned_inputs(cfg: ReconcileConfig, raw_files: list[PartitionFile], stream_files: list[FileInfo]) -> Inputs:
    """A plan's inputs, re-opened; refuses if a raw file changed since it was planned."""
    raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    stream = open_store(cfg.stream, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    out = open_store(cfg.out, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    check_disjoint(raw, stream, out)
    planned = {p.info.path for p in raw_files}
    partitions = sorted({path.split("/", 1)[0] for path in planned})  # dt=D and dt=D+1, not the whole lake
    now = {f.path: f for part in partitions for f in raw.list_files(part) if f.path in planned}
    for f in raw_files:
        seen = now.get(f.info.path)
        if seen is None or (seen.size, seen.version_tag) != (f.info.size, f.info.version_tag):
            raise BadInputError(f"{raw.url(f.info.path)} changed or vanished since the plan was made: plan again")
    sources = inspect_raw(raw, raw_files)
    return Inputs(raw, stream, out, sources, stream_files, rows_beyond_horizon(raw, sources))


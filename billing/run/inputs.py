"""Opening the inputs of a day: the locations checked, the horizon's files found and opened, the stream side
(files, or a database table: billing.io.stream_source) checked.

Everything that makes a day unusable as input (overlapping locations, no raw or stream partition,
a file that is not readable Parquet, a planned file that changed) stops the run here, with exit 2,
before any row is deduplicated.
"""

from __future__ import annotations

from billing.config import ReconcileConfig
from billing.errors import BadInputError, UsageError
from billing.io.inputs import Inputs
from billing.io.postgres import StreamDatabase
from billing.io.raw import Horizon, PartitionFile, discover_raw, inspect_raw, rows_beyond_horizon
from billing.io.storage import FileInfo, Store, contains, open_store
from billing.io.stream import discover_stream
from billing.io.stream_source import DatabaseStream, FileStream, StreamSide, is_database


def open_inputs(cfg: ReconcileConfig) -> tuple[Inputs, list[PartitionFile]]:
    raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    stream = _stream_store(cfg)
    out = open_store(cfg.out, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    check_disjoint(raw, stream, out)
    raw.check_readable()
    if stream is not None:
        stream.check_readable()
    horizon = Horizon(cfg.date, cfg.lateness)
    files = discover_raw(raw, horizon)
    if not any(f.info.path.startswith(f"dt={cfg.date.isoformat()}/") for f in files) and not cfg.allow_empty:
        raise BadInputError(f"no raw partition dt={cfg.date} under {raw.uri} "
                            f"(use --allow-empty to publish an empty day)")
    sources = inspect_raw(raw, files)
    side: StreamSide
    if stream is None:
        side = database_stream(cfg)
    else:
        stream_files = discover_stream(stream, cfg.date)
        if not stream_files and not cfg.stream_optional:
            raise BadInputError(f"no stream partition dt={cfg.date} under {stream.uri} "
                                f"(use --stream-optional to reconcile against nothing)")
        side = FileStream(stream, stream_files)
    side.check()  # an unusable stream side stops the run before the day is deduplicated
    return Inputs(raw, side, out, sources, rows_beyond_horizon(raw, sources)), files


def _stream_store(cfg: ReconcileConfig) -> Store | None:
    """The stream files' store; None when ``--stream`` names a database table."""
    if is_database(cfg.stream):
        return None
    return open_store(cfg.stream, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)


def database_stream(cfg: ReconcileConfig) -> DatabaseStream:
    """The stream side in a database table (read later, by the step that diffs)."""
    statement = cfg.pg_statement_timeout
    return DatabaseStream(StreamDatabase.parse(cfg.stream, cfg.stream_columns), cfg.date,
                          connect_timeout_s=cfg.pg_connect_timeout.total_seconds(),
                          statement_timeout_s=None if statement is None else statement.total_seconds())


def check_disjoint(raw: Store, stream: Store | None, out: Store) -> None:
    """Refuse roots that are equal or nested (exit 2): outputs would become inputs, or one input
    would be read as the other. Locations are compared after normalising (see storage.contains).
    A stream side in a database (``stream`` None) is no location here."""
    roots = {"--raw": raw, "--stream": stream, "--out": out}
    for a, b in (("--out", "--raw"), ("--out", "--stream"), ("--raw", "--out"), ("--stream", "--out"),
                 ("--stream", "--raw"), ("--raw", "--stream")):
        sa, sb = roots[a], roots[b]
        if sa is None or sb is None:
            continue
        if contains(sb, sa):
            how = "is the same location as" if contains(sa, sb) else "lies inside"
            why = ("outputs would become inputs" if "--out" in (a, b)
                   else "one input would be read as the other")
            raise UsageError(f"{a} {sa.uri} {how} {b} {sb.uri}: {why}")


def planned_inputs(cfg: ReconcileConfig, raw_files: list[PartitionFile], stream_files: list[FileInfo]) -> Inputs:
    """A plan's inputs, re-opened; refuses if a raw file changed since it was planned. A database stream
    side is read by the step that diffs (merge), with this machine's credentials (PGPASSWORD, ~/.pgpass):
    the plan holds its URI without the password."""
    raw = open_store(cfg.raw, endpoint=cfg.s3_endpoint, max_attempts=cfg.s3_max_attempts)
    stream = _stream_store(cfg)
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
    side = database_stream(cfg) if stream is None else FileStream(stream, stream_files)
    return Inputs(raw, side, out, sources, rows_beyond_horizon(raw, sources))


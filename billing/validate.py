"""Validate stage: every raw row gets a verdict in DuckDB (``sql/validate.sql``).

Invalid rows are quarantined with their reason and source file; they are never
counted and take no part in dedup. Only pointers (file, row) travel through the
pipeline; the quarantine output re-reads the full rows, every column included.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from billing import sql
from billing.config import ReconcileConfig
from billing.read import SourceFile, read_full_rows
from billing.schemas import TS
from billing.storage import Store

CORE = ("click_id", "ad_id", "event_time", "ingest_time", "cost_micros")


def land_clicks(con: duckdb.DuckDBPyConnection, source: pa.RecordBatchReader, cfg: ReconcileConfig) -> None:
    """Materialise one slice's rows as table ``clicks`` with a ``reason`` column (NULL = valid)."""
    skew = None if cfg.max_id_skew is None else int(cfg.max_id_skew.total_seconds() * 1_000_000)
    con.register("click_source", source)
    try:
        sql.run(con, "read", epoch_ms=cfg.snowflake_epoch_ms, max_skew_us=skew)
    finally:
        con.unregister("click_source")


def invalid_by_reason(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {r["reason"]: int(r["n"]) for r in sql.fetch_dicts(con, "invalid_by_reason")}


def quarantine_pointers(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return sql.table(con, "quarantine_rows")


QUARANTINE_HEAD = pa.schema([
    ("click_id", pa.int64()), ("ad_id", pa.int64()), ("event_time", TS), ("ingest_time", TS),
    ("cost_micros", pa.int64()), ("reason", pa.string()), ("source_file", pa.string()), ("source_row", pa.int64()),
])


def assemble_quarantine(store: Store, sources: list[SourceFile], pointers: pa.Table) -> pa.Table:
    """The full quarantined rows: normalised core columns, reason, source, then every other column.

    Extra columns keep their type; where files disagree on an extra column's type it is
    written as text. Sorted by (source_file, source_row).
    """
    from billing.read import normalise_batch

    if pointers.num_rows == 0:
        return QUARANTINE_HEAD.empty_table()
    by_file: dict[int, list[tuple[int, str]]] = {}
    for fid, row, reason in zip(*(pointers.column(c).to_pylist() for c in ("file_id", "row_no", "reason")),
                                strict=True):
        by_file.setdefault(fid, []).append((row, reason))
    parts = []
    for fid in sorted(by_file):
        src = sources[fid]
        rows = sorted(by_file[fid])
        full = read_full_rows(store, src, [r for r, _ in rows])
        core_batch = full.select([p.name for p in src.plans if p.source is not None]).combine_chunks()
        norm = normalise_batch(
            core_batch.to_batches()[0] if core_batch.num_rows else pa.RecordBatch.from_pylist([]),
            src, 0, store.url(src.path))
        cols: dict[str, pa.Array] = {c: norm.column(c) for c in CORE}
        cols["reason"] = pa.array([r for _, r in rows], pa.string())
        cols["source_file"] = pa.array([src.path] * len(rows), pa.string())
        cols["source_row"] = pa.array([r for r, _ in rows], pa.int64())
        for name in full.column_names:
            if name not in cols:
                cols[name] = full.column(name).combine_chunks()
        parts.append(pa.table(cols))
    return _union(parts)


def _union(parts: list[pa.Table]) -> pa.Table:
    head = list(QUARANTINE_HEAD.names)
    extra_types: dict[str, set[pa.DataType]] = {}
    for t in parts:
        for f in t.schema:
            if f.name not in head:
                extra_types.setdefault(f.name, set()).add(f.type)
    extras = sorted(extra_types)
    fields = list(QUARANTINE_HEAD) + [
        pa.field(n, next(iter(extra_types[n])) if len(extra_types[n]) == 1 else pa.string()) for n in extras]
    schema = pa.schema(fields)
    aligned = []
    for t in parts:
        cols = []
        for f in schema:
            if f.name in t.column_names:
                col = t.column(f.name)
                cols.append(col if col.type.equals(f.type) else col.cast(f.type))
            else:
                cols.append(pa.nulls(t.num_rows, f.type))
        aligned.append(pa.Table.from_arrays(cols, schema=schema))
    return pa.concat_tables(aligned)

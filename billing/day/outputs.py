"""The day's outputs: each table checked against its contract, both ledgers balanced, the summary and
its verdict; then written with fixed settings, so the same tables always give the same bytes.

The two day-sized files, drift.parquet and totals.parquet, are written from the diff's DuckDB session in one
pass over the day's sorted keys, a row group at a time (:class:`RowGroupWriter`: the same bytes as writing each
table whole, checked against its contract piece by piece), so a day's windows are never all held in memory.
The report is rendered by the run layer (billing.run.stages): :func:`write_outputs` takes it as a callable.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing import schemas, sql
from billing.config import ReconcileConfig
from billing.contracts import check_output
from billing.day.diff import DiffResult
from billing.day.quarantine import assemble_quarantine
from billing.io.inputs import Inputs
from billing.ledger import check_stream_balance
from billing.slice.partial import SlicePartial

#: The data files; with the report and CSVs they make up a version (the manifest aside).
CONTENT_FILES = ("totals.parquet", "drift.parquet", "quarantine.parquet", "conflicts.parquet", "summary.json",
                 "stream_quarantine.parquet")
#: Every file of a version but the manifest: the data files, then the report and its CSVs.
OUTPUT_FILES = (*CONTENT_FILES, "report.html", "drift_flagged.csv", "ads_daily.csv")

#: The order of each Parquet output's rows, declared in its metadata (``sorting_columns``).
SORTED_BY = {"totals.parquet": ("ad_id", "window_start"), "drift.parquet": ("ad_id", "window_start"),
             "quarantine.parquet": ("source_file", "source_row"), "conflicts.parquet": ("click_id",),
             "stream_quarantine.parquet": ("source_file", "source_row")}


#: Rows per row group of every Parquet output.
ROW_GROUP = 1_000_000


@dataclass
class Outputs:
    """A day's small output tables, checked, and its summary (summary.json); drift.parquet's and
    totals.parquet's rows are ``day_drift`` and ``day_totals`` in the diff's session."""

    quarantine: pa.Table
    conflicts: pa.Table
    stream_quarantine: pa.Table
    summary: dict[str, Any]
    has_cost: bool
    """Whether the raw log has a cost column: totals.parquet's spend is then 0 for none, else NULL."""

    def let_go(self) -> None:
        """Drop the tables once written (the summary stays): a day's quarantine can be millions of rows, and the
        publish and the Delta tables that follow read the written files."""
        self.quarantine = self.quarantine.schema.empty_table()
        self.conflicts = self.conflicts.schema.empty_table()
        self.stream_quarantine = self.stream_quarantine.schema.empty_table()
        pa.default_memory_pool().release_unused()


def verdict(drift: dict[str, Any]) -> tuple[str, int]:
    if drift["flagged"]:
        return "drift_flagged", 3
    if drift["abs_delta_clicks"] or any(k != "match" for k in drift["by_status"]):
        return "drift_within_tolerance", 0
    return "billable", 0


def build_outputs(cfg: ReconcileConfig, inputs: Inputs, merged: SlicePartial, result: DiffResult,
                  con: duckdb.DuckDBPyConnection) -> Outputs:
    """Every small output table, checked against its contract, and the summary; raises before anything is
    written when a table breaks its contract or a ledger does not balance (totals.parquet's and drift.parquet's
    contracts are checked as they are written, before anything is published)."""
    quarantine = assemble_quarantine(inputs.raw, inputs.sources, merged.quarantine_pointers)
    conflicts = conflicts_output(inputs, merged.conflicts)
    check_output(schemas.Conflict, conflicts, "conflicts.parquet")
    stream_q = inputs.stream.quarantine(result.stream_quarantine)
    check_output(schemas.StreamQuarantine, stream_q, "stream_quarantine.parquet")

    ledger = merged.ledger
    # With a cost column anywhere, spend is a number: 0 when no winner has a cost (none valid, all null).
    ledger.billable_spend_micros = (ledger.billable_spend_micros or 0) if inputs.has_cost else None
    (sums,) = sql.fetch_dicts(con, "totals_sums")
    ledger.check_balance(totals_clicks=int(sums["clicks"]), totals_spend=sums["spend_micros"])
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
            "stream_files": inputs.stream.file_count,
            "rows_beyond_horizon": inputs.rows_beyond_horizon,
        },
    }
    return Outputs(quarantine, conflicts, stream_q, summary, inputs.has_cost)


def write_outputs(outputs: Outputs, folder: Path, con: duckdb.DuckDBPyConnection, *,
                  alongside: Callable[[], dict[str, Path]]) -> dict[str, Path]:
    """Write every data file into ``folder``; return name -> path, with what ``alongside`` wrote (the report).

    drift.parquet and totals.parquet come from ``day_drift`` in ``con``, sorted once by DuckDB (spilling past
    its memory limit) and read a batch at a time; each row group is encoded in a thread while the next is read.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged = {name: folder / name for name in ("totals.parquet", "drift.parquet", "quarantine.parquet",
                                               "conflicts.parquet", "summary.json", "stream_quarantine.parquet")}
    write_day_tables(con, staged["drift.parquet"], staged["totals.parquet"], has_cost=outputs.has_cost)
    for name, table in (("quarantine.parquet", outputs.quarantine), ("conflicts.parquet", outputs.conflicts),
                        ("stream_quarantine.parquet", outputs.stream_quarantine)):
        write_parquet(table, staged[name], SORTED_BY[name])
    write_json(outputs.summary, staged["summary.json"])
    staged.update(alongside())
    return staged


def write_day_tables(con: duckdb.DuckDBPyConnection, drift_path: Path, totals_path: Path, *, has_cost: bool) -> None:
    """drift.parquet and totals.parquet in one pass over the day's keys in order (sql/day/drift_sorted.sql):
    totals.parquet's rows are the keys with batch clicks (sql/day/day_drift.sql's ``day_totals``)."""
    drift_schema = schemas.arrow_schema(schemas.Drift)
    totals_schema = schemas.arrow_schema(schemas.Totals)

    def one_spend_chunk(group: pa.Table) -> pa.Table:
        # The spend column in one chunk per row group, as the whole day's table had it (pc.fill_null and
        # pa.nulls give one array): chunk edges decide where the encoder cuts pages, so the bytes depend on them.
        spend = group.column(3).combine_chunks() if has_cost else pa.nulls(group.num_rows, pa.int64())
        return group.set_column(3, totals_schema.field(3), spend)

    # One thread, one row group at a time: encoding drift's and totals' row groups in threads of their own
    # while the next batch was read held ~150 MiB more (longtail 10M: +460 vs +306 MiB) and saved no
    # measurable time.
    drift_out = RowGroupWriter(drift_path, drift_schema, schemas.Drift)
    totals_out = RowGroupWriter(totals_path, totals_schema, schemas.Totals, finish=one_spend_chunk)
    try:
        for batch in sql.reader(con, "drift_sorted"):
            drift_out.add(pa.Table.from_batches([batch.select(drift_schema.names)]).cast(drift_schema))
            keys = batch.filter(pc.greater(batch.column("batch_clicks"), 0))
            spend = keys.column("batch_spend_micros")
            totals_out.add(pa.table({"ad_id": keys.column("ad_id"), "window_start": keys.column("window_start"),
                                     "clicks": keys.column("batch_clicks"),
                                     "spend_micros": pc.fill_null(spend, 0) if has_cost else spend},
                                    ).cast(totals_schema))
            del batch, keys, spend
        drift_out.close()
        totals_out.close()
    finally:
        drift_out.abort()
        totals_out.abort()


class RowGroupWriter:
    """A Parquet output arriving in pieces, written a row group (:data:`ROW_GROUP` rows) at a time: the bytes
    :func:`write_parquet` gives the whole table with the same chunks (each row group is a slice of the pieces),
    each row group checked against ``model`` first."""

    def __init__(self, path: Path, schema: pa.Schema, model: Any,
                 finish: Callable[[pa.Table], pa.Table] | None = None) -> None:
        self.path, self.schema, self.model, self.finish = path, schema, model, finish
        self.pieces: list[pa.Table] = []
        self.rows = 0
        self.writer: pq.ParquetWriter | None = None

    def add(self, piece: pa.Table) -> None:
        self.pieces.append(piece)
        self.rows += piece.num_rows
        while self.rows >= ROW_GROUP:
            self._flush(ROW_GROUP)

    def close(self) -> None:
        if self.rows or self.writer is None:
            self._flush(self.rows)
        self.abort()

    def abort(self) -> None:
        """Close the file as it stands (after a failure: a no-op once closed)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pieces) if self.pieces else self.schema.empty_table()
        group, rest = table.slice(0, n), table.slice(n)
        self.pieces, self.rows = ([rest] if rest.num_rows else []), rest.num_rows
        if self.finish is not None:
            group = self.finish(group)
        check_output(self.model, group, self.path.name)
        if self.writer is None:
            settings = writer_settings(self.schema, SORTED_BY[self.path.name])
            self.writer = pq.ParquetWriter(self.path, self.schema, **settings)
        self.writer.write_table(group, row_group_size=ROW_GROUP)


def conflicts_output(inputs: Inputs, table: pa.Table) -> pa.Table:
    """conflicts.parquet: the slices' conflicts with the winner's file named, sorted by click_id."""
    schema = schemas.arrow_schema(schemas.Conflict)
    if table.num_rows == 0:
        return schema.empty_table()
    paths = [inputs.sources[i].path for i in table.column("winner_file_id").to_pylist()]
    out = table.drop_columns(["winner_file_id"]).append_column("winner_source_file", pa.array(paths, pa.string()))
    out = out.select(schema.names).cast(schema)
    return out.sort_by([("click_id", "ascending")])


def write_parquet(table: pa.Table, path: Path, sorted_by: tuple[str, ...] = ()) -> None:
    """Fixed writer settings: the same table always gives the same bytes.

    ``sorted_by``: the columns the rows are already sorted by (ascending, nulls last), declared in
    each row group's ``sorting_columns`` so readers can rely on the order without sorting again.
    """
    pq.write_table(table, path, row_group_size=ROW_GROUP, **writer_settings(table.schema, sorted_by))


def writer_settings(schema: pa.Schema, sorted_by: tuple[str, ...] = ()) -> dict[str, Any]:
    """The Parquet writer's fixed settings (:func:`write_parquet`, :class:`RowGroupWriter`)."""
    sorting = pq.SortingColumn.from_ordering(schema, [(c, "ascending") for c in sorted_by]) if sorted_by else None
    return {"compression": "zstd", "compression_level": 3, "use_dictionary": True, "write_statistics": True,
            "data_page_size": 1 << 20, "version": "2.6", "store_schema": True, "sorting_columns": sorting}


def write_json(obj: Any, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)  # strict JSON: no NaN
    path.write_text(text + "\n", encoding="utf-8")

"""The day's outputs: each table checked against its contract, both ledgers balanced, the summary and
its verdict; then written with fixed settings, so the same tables always give the same bytes.

The report is rendered by the run layer (billing.run.stages) while the day-sized files encode:
:func:`write_outputs` takes it as a callable and runs it alongside.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from billing import schemas
from billing.config import ReconcileConfig
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


@dataclass
class Outputs:
    """A day's output tables, checked, and its summary (summary.json)."""

    totals: pa.Table
    drift: pa.Table
    quarantine: pa.Table
    conflicts: pa.Table
    stream_quarantine: pa.Table
    summary: dict[str, Any]


def verdict(drift: dict[str, Any]) -> tuple[str, int]:
    if drift["flagged"]:
        return "drift_flagged", 3
    if drift["abs_delta_clicks"] or any(k != "match" for k in drift["by_status"]):
        return "drift_within_tolerance", 0
    return "billable", 0


def build_outputs(cfg: ReconcileConfig, inputs: Inputs, merged: SlicePartial, result: DiffResult) -> Outputs:
    """Every output table, checked against its contract, and the summary; raises before anything is written
    when a table breaks its contract or a ledger does not balance."""
    totals = result.totals.cast(schemas.arrow_schema(schemas.Totals))
    drift = result.drift.cast(schemas.arrow_schema(schemas.Drift))
    quarantine = assemble_quarantine(inputs.raw, inputs.sources, merged.quarantine_pointers)
    conflicts = conflicts_output(inputs, merged.conflicts)
    schemas.check_output(schemas.Totals, totals, "totals.parquet")
    schemas.check_output(schemas.Drift, drift, "drift.parquet")
    schemas.check_output(schemas.Conflict, conflicts, "conflicts.parquet")
    stream_q = inputs.stream.quarantine(result.stream_quarantine)
    schemas.check_output(schemas.StreamQuarantine, stream_q, "stream_quarantine.parquet")

    ledger = merged.ledger
    # With a cost column anywhere, spend is a number: 0 when no winner has a cost (none valid, all null).
    ledger.billable_spend_micros = (ledger.billable_spend_micros or 0) if inputs.has_cost else None
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
            "stream_files": inputs.stream.file_count,
            "rows_beyond_horizon": inputs.rows_beyond_horizon,
        },
    }
    return Outputs(totals, drift, quarantine, conflicts, stream_q, summary)


def write_outputs(outputs: Outputs, folder: Path, *, alongside: Callable[[], dict[str, Path]]) -> dict[str, Path]:
    """Write every data file into ``folder``; return name -> path, with what ``alongside`` wrote (the report).

    The two day-sized files are encoded in threads (Arrow releases the GIL) while ``alongside`` runs.
    """
    folder.mkdir(parents=True, exist_ok=True)
    staged = {name: folder / name for name in ("totals.parquet", "drift.parquet", "quarantine.parquet",
                                               "conflicts.parquet", "summary.json", "stream_quarantine.parquet")}
    with ThreadPoolExecutor(max_workers=2) as pool:
        writes = [pool.submit(write_parquet, table, staged[name], SORTED_BY[name])
                  for name, table in (("totals.parquet", outputs.totals), ("drift.parquet", outputs.drift))]
        for name, table in (("quarantine.parquet", outputs.quarantine), ("conflicts.parquet", outputs.conflicts),
                            ("stream_quarantine.parquet", outputs.stream_quarantine)):
            write_parquet(table, staged[name], SORTED_BY[name])
        write_json(outputs.summary, staged["summary.json"])
        staged.update(alongside())
        for w in writes:
            w.result()  # re-raises a failed write
    return staged


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
    sorting = pq.SortingColumn.from_ordering(table.schema, [(c, "ascending") for c in sorted_by]) if sorted_by else None
    pq.write_table(
        table, path,
        compression="zstd", compression_level=3,
        use_dictionary=True, write_statistics=True,
        row_group_size=1_000_000, data_page_size=1 << 20,
        version="2.6", store_schema=True, sorting_columns=sorting,
    )


def write_json(obj: Any, path: Path) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False, allow_nan=False)  # strict JSON: no NaN
    path.write_text(text + "\n", encoding="utf-8")

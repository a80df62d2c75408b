"""Report stage: the page finance reads, and the CSV exports.

``report.html`` is one self-contained file: inline CSS, inline SVG charts written here, a few lines
of inline script to sort tables, and nothing fetched at view time. The same inputs render the same
bytes (no clock, no random ids), so the report is reproducible like every other output.

- :mod:`~billing.report.aggregates`: per ad and per hour sums of the day's tables, in DuckDB
- :mod:`~billing.report.page`: what the page shows, as plain data (figures, tables' cells)
- :mod:`~billing.report.charts`: the SVG charts
- :mod:`~billing.report.render`: the Jinja2 environment (autoescape on) and ``templates/``
- :mod:`~billing.report.csvs`: drift_flagged.csv and ads_daily.csv
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from billing.report import aggregates
from billing.report.aggregates import per_ad, per_hour
from billing.report.charts import chart_causes, chart_hours, nice_ticks
from billing.report.csvs import ADS_CSV, DRIFT_CSV, write_ads_csv, write_drift_csv
from billing.report.page import CAUSE_TEXT, VERDICTS
from billing.report.render import render_html

if TYPE_CHECKING:
    from billing.day.publish import Day

__all__ = ["ADS_CSV", "CAUSE_TEXT", "DRIFT_CSV", "RENDERED", "REPORT", "VERDICTS", "chart_causes", "chart_hours",
           "nice_ticks", "per_ad", "per_hour", "render_all", "render_html", "rerender"]

REPORT = "report.html"


def render_all(folder: Path, *, con: duckdb.DuckDBPyConnection, summary: dict[str, Any],
               quarantine: pa.Table, conflicts: pa.Table, inputs: dict[str, Any],
               code_version: str) -> dict[str, Path]:
    """Write report.html, drift_flagged.csv and ads_daily.csv into ``folder``, from the day's ``day_drift``
    and ``day_totals`` in the DuckDB session ``con`` (billing.report.aggregates)."""
    paths = {REPORT: folder / REPORT, DRIFT_CSV: folder / DRIFT_CSV, ADS_CSV: folder / ADS_CSV}
    write_drift_csv(aggregates.flagged_batches(con), paths[DRIFT_CSV])
    aggregates.build_ads(con)
    try:
        write_ads_csv(aggregates.ad_batches(con), paths[ADS_CSV], summary["date"])
        top = aggregates.top_ads(con)
    finally:
        con.execute("DROP TABLE IF EXISTS report_ads")
    page = render_html(summary=summary, hours=aggregates.hours(con), ads=top, quarantine=quarantine,
                       conflicts=conflicts, inputs=inputs, code_version=code_version)
    paths[REPORT].write_text(page, encoding="utf-8")
    return paths


# --- re-rendering a stored version -------------------------------------------------------------

#: Where ``billing report`` writes: outside every ``v=N`` (a committed version is immutable), and
#: under a name starting with ``_``, so readers of ``dt=*/v=*/`` never see it.
RENDERED = "_rendered"


def rerender(day: Day) -> str:
    """Render the current version's report and CSVs again from its stored outputs (no recompute).

    They go to ``dt=D/_rendered/v=N/``, never into ``v=N`` itself: the files there keep the
    hashes their manifest records. Rendering twice writes the same bytes to the same place.
    """
    import billing

    version = day.require_current()
    summary = day.read_json(version, "summary.json")
    manifest = day.read_json(version, "manifest.json")
    tables = {name: day.read_table(version, f"{name}.parquet")
              for name in ("totals", "drift", "quarantine", "conflicts")}
    con = aggregates.session(tables["drift"], tables["totals"])
    with tempfile.TemporaryDirectory(prefix="billing-report-") as tmp:
        try:
            paths = render_all(Path(tmp), con=con, summary=summary, quarantine=tables["quarantine"],
                               conflicts=tables["conflicts"], inputs=manifest.get("inputs", {}),
                               code_version=manifest.get("package", {}).get("version", billing.__version__))
        finally:
            con.close()
        for name, path in sorted(paths.items()):
            day.out.upload(day.path(RENDERED, f"v={version}", name), path)
    return day.url(RENDERED, f"v={version}", REPORT)

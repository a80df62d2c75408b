"""What report.html shows, as plain data: the verdict, the key figures, and every table's cells as the
text the page prints (counts, money and times already formatted). The wording around them, headings
and sentences, lives in ``templates/report.html.j2``; escaping happens there, when the page is rendered."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from markupsafe import Markup

from billing.money import money
from billing.report.aggregates import TOP_ADS
from billing.report.charts import chart_causes, chart_hours
from billing.report.csvs import ADS_CSV, DRIFT_CSV
from billing.report.formats import iso, n, plain, signed

VERDICTS = {
    "billable": ("Billable", "Batch and stream agree on every window.", "ok"),
    "drift_within_tolerance": ("Billable: drift within tolerance",
                               "The stream side drifted, but no window beyond the configured tolerance.", "warn"),
    "drift_flagged": ("Drift flagged",
                      "Bill from the batch totals below; the stream side is off in the flagged windows.", "bad"),
    "failed": ("Run failed", "No complete result for this day: nothing was published.", "bad"),
}
CAUSE_TEXT = {
    "raw_duplicates_counted": "stream counted raw duplicate copies (no dedup at the capture edge)",
    "late_beyond_stream_watermark": "stream dropped clicks later than its watermark",
    "sink_duplicate_rows": "stream sink emitted the window twice",
    "window_boundary_shift": "stream cut minutes on another clock",
    "replay_overcount": "stream replayed events after a crash (at-least-once)",
    "lost_events": "stream lost events",
    "missing_window": "window absent from the stream",
    "phantom_window": "stream window with no billable click",
}
#: Raw or stream files listed by name (the rest are in the manifest); TOP_ADS: rows of the top-ads tables.
RAW_FILES_SHOWN, STREAM_FILES_SHOWN = 10, 5


@dataclass(frozen=True)
class Figure:
    label: str
    value: str
    note: str = ""


@dataclass(frozen=True)
class Table:
    """Cells as printed. Columns in ``numeric`` align right; ``sort_values`` (the shape of ``rows``; None
    sorts by the text) give the inline sorter numbers to sort by; ``total`` is a closing row in bold."""

    headers: list[str]
    rows: list[list[Any]]
    numeric: frozenset[int] = frozenset()
    cls: str = "sortable"
    sort_values: list[list[Any]] | None = None
    id: str = ""
    total: list[str] | None = None


@dataclass(frozen=True)
class Page:
    date: str
    code_version: str
    exit_code: Any
    verdict: tuple[str, str, str]  # title, explanation, CSS class
    figures: list[Figure]
    ledger: Table
    balance: dict[str, Any]  # balanced (bool), then the terms of the ledger's sum, printed
    chart_hours: Markup
    chart_causes: Markup
    causes: Table
    top_money: Table
    top_delta: Table
    ads_csv: str
    drift_csv: str
    conflicts: str
    conflict_examples: Table | None
    quarantine: Table
    quarantine_examples: Table | None
    inputs: dict[str, str]  # raw_files, raw_bytes, stream, beyond_horizon, more_raw ("" when all listed)
    files: Table
    restates: str = ""  # summary.restates_signed_off as a sentence ("" when it restates no sign-off)
    anomalies: str = ""  # summary.anomalies as a sentence ("" in summaries written before anomalies existed)


def page(*, summary: dict[str, Any], hours: list[dict[str, int]], ads: list[dict[str, Any]], quarantine: pa.Table,
         conflicts: pa.Table, inputs: dict[str, Any], code_version: str) -> Page:
    led, st, dr = summary["ledger"], summary["stream"], summary["drift"]
    billable = led["billable_clicks"]
    rate = (dr["abs_delta_clicks"] / billable) if billable else None
    m = dr["money"]
    remainder = led["rows_read"] - led["rows_invalid"] - led["duplicates_removed"] - led["clicks_out_of_day"]
    raw_files, stream_files = inputs.get("raw", []), inputs.get("stream", [])
    return Page(
        date=summary["date"], code_version=code_version, exit_code=summary["exit_code"],
        verdict=VERDICTS.get(summary["status"], VERDICTS["failed"]),
        figures=[
            Figure("Billable clicks", n(billable)),
            Figure("Billable spend", money(led["billable_spend_micros"])),
            Figure("Stream clicks", n(st["clicks"])),
            Figure("Net drift (stream − batch)", f"{signed(dr['net_delta_clicks'])} clicks",
                   f"money {money(m['net_at_risk_micros'])}"),
            Figure("Absolute drift", f"{n(dr['abs_delta_clicks'])} clicks", f"money {money(m['abs_at_risk_micros'])}"),
            Figure("Drift rate", "n/a" if rate is None else f"{rate:.3%}", "absolute drift / billable clicks"),
            Figure("Flagged windows", f"{n(dr['flagged'])} of {n(dr['keys'])}",
                   f"money at risk {money(m['flagged_abs_at_risk_micros'])}"),
        ],
        ledger=Table(["step", "rows"], [
            ["rows read", n(led["rows_read"])],
            *([f"− invalid: {reason}", n(-count)] for reason, count in led["invalid_by_reason"].items()),
            ["− duplicates removed", n(-led["duplicates_removed"])],
            ["− clicks outside the day (late of D−1, early of D+1)", n(-led["clicks_out_of_day"])],
        ], frozenset({1}), cls="ledger", total=["= billed clicks", n(billable)]),
        balance={"balanced": remainder == billable, "rows_read": n(led["rows_read"]),
                 "rows_invalid": n(led["rows_invalid"]), "duplicates_removed": n(led["duplicates_removed"]),
                 "clicks_out_of_day": n(led["clicks_out_of_day"]), "remainder": n(remainder),
                 "conflicting_click_ids": n(led["conflicting_click_ids"])},
        chart_hours=chart_hours(hours),
        chart_causes=chart_causes(dr["by_cause"]),
        causes=_causes(dr),
        top_money=_top_ads(ads, "money_at_risk_micros", "top-money"),
        top_delta=_top_ads(ads, "delta", "top-delta"),
        ads_csv=ADS_CSV, drift_csv=DRIFT_CSV,
        conflicts=n(conflicts.num_rows),
        conflict_examples=_conflict_examples(conflicts) if conflicts.num_rows else None,
        quarantine=Table(["reason", "rows"], [[r, n(c)] for r, c in led["invalid_by_reason"].items()], frozenset({1})),
        quarantine_examples=_quarantine_examples(quarantine) if quarantine.num_rows else None,
        inputs={"raw_files": n(len(raw_files)), "raw_bytes": n(sum(f["bytes"] for f in raw_files)),
                "stream": _stream_text(stream_files),
                "beyond_horizon": n(summary.get("horizon", {}).get("rows_beyond_horizon", 0)),
                "more_raw": n(len(raw_files) - RAW_FILES_SHOWN) if len(raw_files) > RAW_FILES_SHOWN else ""},
        # No version tags (mtime, ETag): they are run metadata, kept in manifest.json. A touched input with
        # the same bytes must give the same report, so a re-run stays "unchanged".
        files=Table(["file", "bytes"], [[f.get("uri", f.get("path")), n(f["bytes"]) if "bytes" in f else
                                         f"{n(f['rows_read'])} rows, sha256 {f['sha256'][:16]}"] for f in
                                        raw_files[:RAW_FILES_SHOWN] + stream_files[:STREAM_FILES_SHOWN]],
                    frozenset({1})),
        restates=_restates(summary.get("restates_signed_off")), anomalies=_anomalies(summary.get("anomalies")),
    )


def _restates(r: dict[str, Any] | None) -> str:
    if not r:
        return ""
    return (f"This version restates version {r['signed_off_version']}, signed off by {r['by']} at {r['at']}: "
            f"{n(r['ads'])} ads change, net {signed(r['net_clicks_delta'])} clicks, "
            f"{money(r['net_spend_micros_delta'])} (see billing adjustments).")


def _anomalies(a: dict[str, Any] | None) -> str:
    if not a:
        return ""
    if not a["judged"]:
        return (f"Not judged: {a['reference_days']} reconciled days before this one, "
                f"{a['rule']['min_days']} needed.")
    against = f"against {a['reference_days']} reconciled days ({a['reference_from']} to {a['reference_to']})"
    if not a["anomalous"]:
        return f"No anomaly {against}."
    parts = [f"{m} {x['value']:g} (expected {x['low']:g} to {x['high']:g})" for m, x in a["measures"].items()
             if x["anomalous"]]
    return f"Anomalous {against}: " + "; ".join(parts) + "."


def _stream_text(stream: list[dict[str, Any]]) -> str:
    """The stream side in the inputs line: its file count, or the table read (no snapshot: it is run metadata,
    kept in manifest.json, so a re-run over the same rows stays "unchanged")."""
    tables = [f for f in stream if f.get("source") == "postgresql"]
    if tables:
        return ", ".join(f"stream table {t['table']} (PostgreSQL, {n(t['rows_read'])} rows)" for t in tables)
    return f"{n(len(stream))} stream files"


def _causes(dr: dict[str, Any]) -> Table:
    rows = [[c, CAUSE_TEXT.get(c, ""), n(v["keys"]), n(v["clicks"])] for c, v in dr["by_cause"].items()]
    if dr["unexplained"]["keys"]:
        rows.append(["(unexplained remainder)", "part of a window's drift no rule accounts for",
                     n(dr["unexplained"]["keys"]), n(dr["unexplained"]["clicks"])])
    return Table(["cause", "meaning", "windows", "clicks"], rows, frozenset({2, 3}))


def _top_ads(ads: list[dict[str, Any]], by: str, table_id: str) -> Table:
    """The ads with the largest |``by``| (ties by ad), with their numbers as sort values."""
    top = sorted([a for a in ads if a[by]], key=lambda a: (-abs(a[by]), a["ad_id"]))[:TOP_ADS]
    return Table(
        ["ad", "billable clicks", "spend", "stream clicks", "delta", "money at risk", "flagged windows", "main cause"],
        [[a["ad_id"], n(a["billable_clicks"]), money(a["spend_micros"]), n(a["stream_clicks"]), signed(a["delta"]),
          money(a["money_at_risk_micros"]), n(a["flagged_windows"]), a["main_cause"] or ""] for a in top],
        frozenset({1, 2, 3, 4, 5, 6}),
        sort_values=[[a["ad_id"], a["billable_clicks"], a["spend_micros"], a["stream_clicks"], a["delta"],
                      a["money_at_risk_micros"], a["flagged_windows"], None] for a in top],
        id=table_id)


def _conflict_examples(conflicts: pa.Table) -> Table:
    return Table(["click_id", "copies", "ads", "windows", "billed ad", "billed window", "from"],
                 [[c["click_id"], c["copies"], ", ".join(map(str, c["ad_ids"])),
                   ", ".join(iso(w) for w in c["window_starts"]), c["winner_ad_id"], iso(c["winner_window_start"]),
                   f"{c['winner_source_file']} row {c['winner_row']}"] for c in conflicts.slice(0, 5).to_pylist()],
                 frozenset({1}))


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    """The rows as Python values; a column Python cannot hold (ns below the microsecond, years past 9999)
    as Arrow's own text of each value instead."""
    columns = {}
    for name in table.column_names:
        col = table.column(name)
        try:
            columns[name] = col.to_pylist()
        except (ValueError, OverflowError):
            columns[name] = col.cast(pa.string()).to_pylist()
    return [dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)]


def _quarantine_examples(quarantine: pa.Table) -> Table:
    """Two rows per reason, in the table's order, each raw row as strict JSON.

    Only those rows become Python values (the first two of each reason, found in Arrow): the whole table as
    Python objects had cost ~2 GB and ~25 s for 2.4M quarantined rows.
    """
    cols = [c for c in quarantine.column_names if c not in ("reason", "source_file", "source_row")]
    reasons = quarantine.column("reason")
    firsts = sorted(i for r in pc.unique(reasons).to_pylist()
                    for i in pc.indices_nonzero(pc.equal(reasons, r)).slice(0, 2).to_pylist())
    return Table(["reason", "source", "row"],
                 [[r["reason"], f"{r['source_file']} row {r['source_row']}",
                   json.dumps({c: plain(r[c]) for c in cols}, ensure_ascii=False, allow_nan=False)]
                  for r in _rows(quarantine.take(firsts))])

"""Report stage: the page finance reads, and the CSV exports.

``report.html`` is one self-contained file: inline CSS, inline SVG charts written here,
a few lines of inline script to sort tables, and nothing fetched at view time. Every
value that comes from data goes through :func:`html.escape`. The same inputs render the
same bytes (no clock, no random ids), so the report is reproducible like every other output.
"""

from __future__ import annotations

import csv
import datetime as dt
import html
import json
import math
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from billing.money import money

REPORT = "report.html"
DRIFT_CSV = "drift_flagged.csv"
ADS_CSV = "ads_daily.csv"

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


def e(value: Any) -> str:
    """Escape a data value for HTML text or attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def iso(ts: dt.datetime | None) -> str:
    if ts is None:
        return ""
    return ts.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def n(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"


def signed(value: int | None) -> str:
    return "n/a" if value is None else f"{value:+,}"


def render_all(folder: Path, *, summary: dict[str, Any], drift: pa.Table, totals: pa.Table,
               quarantine: pa.Table, conflicts: pa.Table, inputs: dict[str, Any],
               code_version: str) -> dict[str, Path]:
    """Write report.html, drift_flagged.csv and ads_daily.csv into ``folder``."""
    ads = per_ad(totals, drift)
    paths = {REPORT: folder / REPORT, DRIFT_CSV: folder / DRIFT_CSV, ADS_CSV: folder / ADS_CSV}
    write_drift_csv(drift, paths[DRIFT_CSV])
    write_ads_csv(ads, paths[ADS_CSV], summary["date"])
    page = render_html(summary=summary, drift=drift, ads=ads, quarantine=quarantine, conflicts=conflicts,
                       inputs=inputs, code_version=code_version)
    paths[REPORT].write_text(page, encoding="utf-8")
    return paths


# --- aggregates ----------------------------------------------------------------------------------

def _by_key(table: pa.Table, key: str, aggs: list[tuple[str, str]]) -> dict[Any, dict[str, Any]]:
    if table.num_rows == 0:
        return {}
    g = table.group_by(key).aggregate(aggs)
    cols = {name: g.column(name).to_pylist() for name in g.column_names}
    return {k: {name: cols[name][i] for name in cols} for i, k in enumerate(cols[key])}


def per_ad(totals: pa.Table, drift: pa.Table) -> list[dict[str, Any]]:
    """Per ad: billable clicks and spend, stream clicks, delta, money at risk (sorted by ad).

    Aggregated in Arrow (a day holds millions of windows, but only thousands of ads).
    """
    billed = _by_key(totals, "ad_id", [("clicks", "sum"), ("spend_micros", "sum")])
    flagged_tbl = drift.filter(drift.column("flagged")) if drift.num_rows else drift
    drifted = _by_key(drift, "ad_id", [("stream_clicks", "sum"), ("delta", "sum"), ("money_at_risk_micros", "sum")])
    n_flagged = _by_key(flagged_tbl, "ad_id", [("flagged", "count")])
    main_cause: dict[int, str] = {}
    if flagged_tbl.num_rows:
        t = flagged_tbl.append_column("abs_delta", pc.abs(flagged_tbl.column("delta")))
        g = t.group_by(["ad_id", "cause"]).aggregate([("abs_delta", "sum")])
        g = g.sort_by([("ad_id", "ascending"), ("abs_delta_sum", "descending"), ("cause", "ascending")])
        for ad, cause in zip(g.column("ad_id").to_pylist(), g.column("cause").to_pylist(), strict=True):
            main_cause.setdefault(ad, cause)
    out = []
    for ad in sorted(set(billed) | set(drifted)):
        b, d = billed.get(ad, {}), drifted.get(ad, {})
        out.append({
            "ad_id": ad,
            "billable_clicks": b.get("clicks_sum") or 0,
            "spend_micros": b.get("spend_micros_sum"),
            "stream_clicks": d.get("stream_clicks_sum") or 0,
            "delta": d.get("delta_sum") or 0,
            "money_at_risk_micros": d.get("money_at_risk_micros_sum"),
            "flagged_windows": n_flagged.get(ad, {}).get("flagged_count", 0),
            "main_cause": main_cause.get(ad),
        })
    return out


def per_hour(drift: pa.Table) -> list[dict[str, int]]:
    """Batch and stream clicks per hour of day, and |delta| of the flagged windows.

    A million rows at a time: the day's drift table is already in memory, its derived columns need not be.
    """
    hours = [{"hour": h, "batch": 0, "stream": 0, "flagged": 0, "abs_delta": 0} for h in range(24)]
    for batch in drift.to_batches(max_chunksize=1 << 20):
        if batch.num_rows == 0:
            continue
        flagged = batch.column("flagged")
        t = pa.table({"hour": pc.hour(batch.column("window_start")), "batch": batch.column("batch_clicks"),
                      "stream": batch.column("stream_clicks"), "flagged": flagged,
                      "abs_delta": pc.if_else(flagged, pc.abs(batch.column("delta")), 0)})
        g = t.group_by("hour").aggregate([("batch", "sum"), ("stream", "sum"), ("abs_delta", "sum"),
                                          ("flagged", "sum")])
        for h, b, st, a, f in zip(*(g.column(c).to_pylist() for c in
                                    ("hour", "batch_sum", "stream_sum", "abs_delta_sum", "flagged_sum")), strict=True):
            row = hours[h]
            row.update(batch=row["batch"] + b, stream=row["stream"] + st, abs_delta=row["abs_delta"] + a,
                       flagged=row["flagged"] + f)
    return hours


# --- CSV exports ---------------------------------------------------------------------------------

DRIFT_CSV_COLUMNS = ("ad_id", "window_start", "batch_clicks", "stream_clicks", "delta", "status", "cause",
                     "batch_spend_micros", "money_at_risk_micros")
ADS_CSV_COLUMNS = ("date", "ad_id", "billable_clicks", "spend_micros", "stream_clicks", "delta", "money_at_risk_micros",
                   "flagged_windows", "main_cause")


def _open_csv(path: Path) -> Any:
    # UTF-8 with a byte-order mark: Excel then reads it as UTF-8; LibreOffice and csv readers skip it.
    return open(path, "w", newline="", encoding="utf-8-sig")


def write_drift_csv(drift: pa.Table, path: Path) -> None:
    flagged = drift.filter(drift.column("flagged")) if drift.num_rows else drift
    with _open_csv(path) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(DRIFT_CSV_COLUMNS)
        for r in flagged.select(list(DRIFT_CSV_COLUMNS)).to_pylist():
            w.writerow(["" if r[c] is None else (iso(r[c]) if c == "window_start" else r[c])
                        for c in DRIFT_CSV_COLUMNS])


def write_ads_csv(ads: list[dict[str, Any]], path: Path, date: str) -> None:
    """Per ad of day ``date`` (the first column, so files of several days can be concatenated)."""
    with _open_csv(path) as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(ADS_CSV_COLUMNS)
        for a in ads:
            w.writerow([date, *("" if a[c] is None else a[c] for c in ADS_CSV_COLUMNS[1:])])


# --- charts --------------------------------------------------------------------------------------

#: Chart colours: billed clicks, stream clicks, drift.
BATCH, STREAM, DRIFT, INK, GRID = "#2b6cb0", "#a0aec0", "#c53030", "#1a202c", "#e2e8f0"


def nice_ticks(top: float, n: int = 5) -> list[int]:
    """Round tick values 0, s, 2s, ... covering ``top``, with s in {1, 2, 5} x 10^k."""
    if top <= 0:
        return [0, 1]
    raw = top / n
    mag = 10 ** max(0, len(str(int(raw))) - 1)
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    ticks = [0]
    while ticks[-1] < top:
        ticks.append(ticks[-1] + step)
    return ticks


def _svg_open(width: int, height: int, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="{html.escape(label)}" font-family="system-ui,sans-serif" font-size="11">',
            f"<title>{html.escape(label)}</title>"]


def _text(x: float, y: float, text: str, *, anchor: str = "middle", color: str = INK, extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{color}"{extra}>'
            f"{html.escape(text)}</text>")


def chart_hours(hours: list[dict[str, int]]) -> str:
    """Billed and stream clicks per hour (bars, left axis) and |drift| of flagged windows (line, right axis).

    Plain SVG written here: a bar chart needs no plotting library, and importing one cost ~1 s a run.
    """
    width, height, left, right, top, bottom = 900, 300, 70, 70, 34, 44
    pw, ph = width - left - right, height - top - bottom
    yt = nice_ticks(max([max(h["batch"], h["stream"]) for h in hours] + [1]))
    dt_ = nice_ticks(max([h["abs_delta"] for h in hours] + [1]))

    def y(v: float, ticks: list[int]) -> float:
        return top + ph - ph * v / ticks[-1]

    slot = pw / len(hours)
    out = _svg_open(width, height, "clicks per hour: batch (billed) and stream, and |drift| in flagged windows")
    for v in yt:
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v, yt):.1f}" y2="{y(v, yt):.1f}" stroke="{GRID}"/>')
        out.append(_text(left - 6, y(v, yt) + 4, f"{v:,}", anchor="end"))
    for v in dt_:
        out.append(_text(left + pw + 6, y(v, dt_) + 4, f"{v:,}", anchor="start", color=DRIFT))
    points = []
    for i, h in enumerate(hours):
        x0 = left + i * slot
        for value, dx, color in ((h["batch"], 0.1, BATCH), (h["stream"], 0.5, STREAM)):
            out.append(f'<rect x="{x0 + dx * slot:.1f}" y="{y(value, yt):.1f}" width="{0.4 * slot:.1f}" '
                       f'height="{ph - (y(value, yt) - top):.1f}" fill="{color}"><title>{h["hour"]:02d}h: '
                       f'{value:,} clicks</title></rect>')
        out.append(_text(x0 + slot / 2, top + ph + 14, str(h["hour"])))
        points.append((x0 + slot / 2, y(h["abs_delta"], dt_)))
    out.append(f'<polyline points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}" fill="none" '
               f'stroke="{DRIFT}" stroke-width="1.5"/>')
    out.extend(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="2.5" fill="{DRIFT}"/>' for px, py in points)
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="{INK}"/>')
    out.append(_text(left + pw / 2, height - 8, "hour of day (UTC)"))
    out.append(_text(16, top + ph / 2, "clicks", extra=f' transform="rotate(-90 16 {top + ph / 2:.1f})"'))
    out.append(_text(width - 12, top + ph / 2, "|drift| clicks", color=DRIFT,
                     extra=f' transform="rotate(90 {width - 12} {top + ph / 2:.1f})"'))
    x = left
    for color, name in ((BATCH, "batch (billed)"), (STREAM, "stream"), (DRIFT, "|drift| in flagged windows")):
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{color}"/>')
        out.append(_text(x + 14, 17, name, anchor="start"))
        x += 30 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def chart_causes(by_cause: dict[str, dict[str, int]]) -> str:
    """Clicks explained per cause of the flagged drift, largest first (horizontal bars)."""
    items = sorted(by_cause.items(), key=lambda kv: (-kv[1]["clicks"], kv[0]))
    row, left, width = 26, 210, 900
    height = 30 + row * max(1, len(items))
    out = _svg_open(width, height, "clicks explained per cause of flagged drift")
    if not items:
        out.append(_text(width / 2, height / 2 + 4, "no flagged drift"))
    top_clicks = max([v["clicks"] for _, v in items] + [1])
    for i, (cause, v) in enumerate(items):
        y0 = 10 + i * row
        w = (width - left - 260) * v["clicks"] / top_clicks
        out.append(_text(left - 8, y0 + 15, cause, anchor="end"))
        out.append(f'<rect x="{left}" y="{y0 + 3}" width="{w:.1f}" height="{row - 8}" fill="{DRIFT}"/>')
        out.append(_text(left + w + 6, y0 + 15, f"{v['clicks']:,} clicks, {v['keys']:,} windows", anchor="start"))
    out.append("</svg>")
    return "".join(out)


# --- the page ------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #e2e8f0}
.verdict{padding:14px 18px;border-radius:6px;margin:16px 0;font-size:16px}
.verdict b{font-size:20px;display:block}
.ok{background:#c6f6d5;border-left:6px solid #2f855a}.warn{background:#fefcbf;border-left:6px solid #b7791f}
.bad{background:#fed7d7;border-left:6px solid #c53030}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(200px,1fr));gap:10px}
.fig{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:10px 12px}
.fig .v{font-size:20px;font-weight:600;font-variant-numeric:tabular-nums}.fig .l{color:#4a5568;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;font-variant-numeric:tabular-nums}
th,td{border:1px solid #e2e8f0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#edf2f7;cursor:pointer} td.n{text-align:right}
.muted{color:#718096;font-size:12px} .chart svg{max-width:100%;height:auto;background:#fff}
tr.total td{font-weight:600;border-top:2px solid #4a5568}
code{font-size:12px}
"""

SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th) {
  th.addEventListener('click', function () {
    var i = th.cellIndex, body = th.closest('table').tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.dir !== 'asc'; th.dataset.dir = asc ? 'asc' : 'desc';
    rows.sort(function (a, b) {
      var x = a.cells[i].dataset.v || a.cells[i].textContent, y = b.cells[i].dataset.v || b.cells[i].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
document.body.dataset.ready = 'yes';
"""


def _fig(label: str, value: str, note: str = "") -> str:
    return (f'<div class="fig"><div class="l">{e(label)}</div><div class="v">{e(value)}</div>'
            f'{f"<div class=muted>{e(note)}</div>" if note else ""}</div>')


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None, cls: str = "sortable",
           sort_values: list[list[Any]] | None = None, table_id: str = "") -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = []
    for ri, r in enumerate(rows):
        cells = []
        for i, c in enumerate(r):
            attrs = ' class="n"' if i in numeric else ""
            if sort_values is not None and sort_values[ri][i] is not None:
                attrs += f' data-v="{e(sort_values[ri][i])}"'
            cells.append(f"<td{attrs}>{e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    id_attr = f' id="{e(table_id)}"' if table_id else ""
    return f'<table class="{cls}"{id_attr}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_html(*, summary: dict[str, Any], drift: pa.Table, ads: list[dict[str, Any]], quarantine: pa.Table,
                conflicts: pa.Table, inputs: dict[str, Any], code_version: str) -> str:
    led, st, dr = summary["ledger"], summary["stream"], summary["drift"]
    title, explain, cls = VERDICTS.get(summary["status"], VERDICTS["failed"])
    billable = led["billable_clicks"]
    rate = (dr["abs_delta_clicks"] / billable) if billable else None
    m = dr["money"]
    parts = [f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
             f"<meta name=viewport content='width=device-width,initial-scale=1'>"
             f"<title>Click reconciliation {e(summary['date'])}</title><style>{CSS}</style></head><body><main>"]
    parts.append(f"<h1>Click reconciliation for {e(summary['date'])} (UTC)</h1>"
                 f"<div class=muted>billing {e(code_version)} · exit code {e(summary['exit_code'])}</div>")
    parts.append(f'<div class="verdict {cls}" id="verdict"><b>{e(title)}</b>{e(explain)}</div>')
    parts.append('<div class="figures">'
                 + _fig("Billable clicks", n(billable))
                 + _fig("Billable spend", money(led["billable_spend_micros"]))
                 + _fig("Stream clicks", n(st["clicks"]))
                 + _fig("Net drift (stream − batch)", f"{signed(dr['net_delta_clicks'])} clicks",
                        f"money {money(m['net_at_risk_micros'])}")
                 + _fig("Absolute drift", f"{n(dr['abs_delta_clicks'])} clicks",
                        f"money {money(m['abs_at_risk_micros'])}")
                 + _fig("Drift rate", "n/a" if rate is None else f"{rate:.3%}", "absolute drift / billable clicks")
                 + _fig("Flagged windows", f"{n(dr['flagged'])} of {n(dr['keys'])}",
                        f"money at risk {money(m['flagged_abs_at_risk_micros'])}")
                 + "</div>")

    # the ledger
    parts.append("<h2>Row ledger</h2>")
    ledger_rows: list[list[Any]] = [["rows read", n(led["rows_read"])]]
    for reason, count in led["invalid_by_reason"].items():
        ledger_rows.append([f"− invalid: {reason}", n(-count)])
    ledger_rows.append(["− duplicates removed", n(-led["duplicates_removed"])])
    ledger_rows.append(["− clicks outside the day (late of D−1, early of D+1)", n(-led["clicks_out_of_day"])])
    remainder = (led["rows_read"] - led["rows_invalid"] - led["duplicates_removed"] - led["clicks_out_of_day"])
    balanced = remainder == billable
    parts.append(_table(["step", "rows"], ledger_rows, numeric={1}, cls="ledger").replace(
        "</tbody>", f'<tr class="total"><td>= billed clicks</td><td class="n">{n(billable)}</td></tr></tbody>'))
    parts.append(f'<p id="balance">{"Balances" if balanced else "DOES NOT BALANCE"}: '
                 f"{n(led['rows_read'])} − {n(led['rows_invalid'])} − {n(led['duplicates_removed'])} − "
                 f"{n(led['clicks_out_of_day'])} = {n(remainder)} billed. "
                 f"{n(led['conflicting_click_ids'])} click ids had conflicting copies (the earliest copy billed).</p>")

    # charts
    parts.append("<h2>Batch and stream clicks per hour</h2>")
    parts.append(f'<div class="chart">{chart_hours(per_hour(drift))}</div>')
    parts.append("<h2>Drift by cause</h2>")
    parts.append(f'<div class="chart">{chart_causes(dr["by_cause"])}</div>')
    cause_rows = [[c, CAUSE_TEXT.get(c, ""), n(v["keys"]), n(v["clicks"])] for c, v in dr["by_cause"].items()]
    if dr["unexplained"]["keys"]:
        cause_rows.append(["(unexplained remainder)", "part of a window's drift no rule accounts for",
                           n(dr["unexplained"]["keys"]), n(dr["unexplained"]["clicks"])])
    parts.append(_table(["cause", "meaning", "windows", "clicks"], cause_rows, numeric={2, 3}))

    # top ads
    def ad_row(a: dict[str, Any]) -> list[Any]:
        return [a["ad_id"], n(a["billable_clicks"]), money(a["spend_micros"]), n(a["stream_clicks"]),
                signed(a["delta"]), money(a["money_at_risk_micros"]), n(a["flagged_windows"]), a["main_cause"] or ""]

    def ad_sort(a: dict[str, Any]) -> list[Any]:
        return [a["ad_id"], a["billable_clicks"], a["spend_micros"], a["stream_clicks"], a["delta"],
                a["money_at_risk_micros"], a["flagged_windows"], None]

    headers = ["ad", "billable clicks", "spend", "stream clicks", "delta", "money at risk", "flagged windows",
               "main cause"]
    by_money = sorted([a for a in ads if a["money_at_risk_micros"]],
                      key=lambda a: (-abs(a["money_at_risk_micros"]), a["ad_id"]))[:15]
    by_delta = sorted([a for a in ads if a["delta"]], key=lambda a: (-abs(a["delta"]), a["ad_id"]))[:15]
    parts.append("<h2>Top ads by money at risk</h2>")
    parts.append(_table(headers, [ad_row(a) for a in by_money], numeric={1, 2, 3, 4, 5, 6},
                        sort_values=[ad_sort(a) for a in by_money], table_id="top-money"))
    parts.append("<h2>Top ads by click drift</h2>")
    parts.append(_table(headers, [ad_row(a) for a in by_delta], numeric={1, 2, 3, 4, 5, 6},
                        sort_values=[ad_sort(a) for a in by_delta], table_id="top-delta"))
    parts.append(f"<p class=muted>Every ad: {e(ADS_CSV)}; every flagged window: {e(DRIFT_CSV)} "
                 f"(beside this report).</p>")

    # conflicts and quarantine
    parts.append("<h2>Conflicting copies</h2>")
    parts.append(f"<p>{n(conflicts.num_rows)} click ids had copies that disagree on the ad or the minute.</p>")
    if conflicts.num_rows:
        ex = conflicts.slice(0, 5).to_pylist()
        parts.append(_table(["click_id", "copies", "ads", "windows", "billed ad", "billed window", "from"],
                            [[c["click_id"], c["copies"], ", ".join(map(str, c["ad_ids"])),
                              ", ".join(iso(w) for w in c["window_starts"]), c["winner_ad_id"],
                              iso(c["winner_window_start"]), f"{c['winner_source_file']} row {c['winner_row']}"]
                             for c in ex], numeric={1}))
    parts.append("<h2>Quarantined rows</h2>")
    parts.append(_table(["reason", "rows"], [[r, n(c)] for r, c in led["invalid_by_reason"].items()], numeric={1}))
    if quarantine.num_rows:
        cols = quarantine.column_names
        examples: list[list[Any]] = []
        seen: dict[str, int] = defaultdict(int)
        for r in quarantine.to_pylist():
            if seen[r["reason"]] < 2:
                seen[r["reason"]] += 1
                examples.append([r["reason"], f"{r['source_file']} row {r['source_row']}",
                                 json.dumps({c: _plain(r[c]) for c in cols
                                             if c not in ("reason", "source_file", "source_row")},
                                            ensure_ascii=False, allow_nan=False)])
        parts.append("<p class=muted>Examples, two per reason:</p>")
        parts.append(_table(["reason", "source", "row"], examples))

    # provenance
    parts.append("<h2>Inputs and code</h2>")
    raw_files = inputs.get("raw", [])
    parts.append(f"<p>{n(len(raw_files))} raw files ({n(sum(f['bytes'] for f in raw_files))} bytes), "
                 f"{n(len(inputs.get('stream', [])))} stream files; billing {e(code_version)}. "
                 f"Horizon: {n(summary.get('horizon', {}).get('rows_beyond_horizon', 0))} rows arrived after "
                 f"it and were not read.</p>")
    shown = raw_files[:10] + inputs.get("stream", [])[:5]
    parts.append(_table(["file", "bytes", "version"], [[f["path"], n(f["bytes"]), f["version"]] for f in shown],
                        numeric={1}))
    if len(raw_files) > 10:
        parts.append(f"<p class=muted>… and {n(len(raw_files) - 10)} more raw files, listed in manifest.json.</p>")
    parts.append(f"<script>{SCRIPT}</script></main></body></html>\n")
    return "".join(parts)


def _plain(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return iso(v)
    if isinstance(v, bytes):
        return v.hex()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # a raw column's NaN or inf, shown as text: the JSON stays strict
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, (list, dict, str, int, float, bool)) or v is None:
        return v
    return str(v)


# --- re-rendering a stored version -------------------------------------------------------------

#: Where ``billing report`` writes: outside every ``v=N`` (a committed version is immutable), and
#: under a name starting with ``_``, so readers of ``dt=*/v=*/`` never see it.
RENDERED = "_rendered"


def rerender(day: Any) -> str:
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
    with tempfile.TemporaryDirectory(prefix="billing-report-") as tmp:
        paths = render_all(Path(tmp), summary=summary, drift=tables["drift"], totals=tables["totals"],
                           quarantine=tables["quarantine"], conflicts=tables["conflicts"],
                           inputs=manifest.get("inputs", {}),
                           code_version=manifest.get("package", {}).get("version", billing.__version__))
        for name, path in sorted(paths.items()):
            day.out.upload(day.path(RENDERED, f"v={version}", name), path)
    return day.url(RENDERED, f"v={version}", REPORT)

"""The month page's two charts, plain SVG like the day report's (:mod:`billing.report.charts`): billable
clicks per day, and the drift rate per day stacked by cause. Every text from data is escaped here."""

from __future__ import annotations

import html
from typing import Any

from markupsafe import Markup

from billing.report.charts import BATCH, GRID, INK, nice_ticks

#: One colour per cause (the order of the drift causes table), then the unexplained rest.
CAUSE_COLOURS = {"raw_duplicates_counted": "#805ad5", "late_beyond_stream_watermark": "#dd6b20",
                 "sink_duplicate_rows": "#d69e2e", "window_boundary_shift": "#38a169", "replay_overcount": "#c53030",
                 "lost_events": "#2b6cb0", "missing_window": "#718096", "phantom_window": "#b83280",
                 "unexplained": "#a0aec0"}


def _open(width: int, height: int, label: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="{html.escape(label)}" font-family="system-ui,sans-serif" font-size="11">',
            f"<title>{html.escape(label)}</title>"]


def _text(x: float, y: float, text: str, anchor: str = "middle") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{INK}">{html.escape(text)}</text>'


def chart_days(days: list[dict[str, Any]]) -> Markup:
    """Billable clicks per calendar day (missing days: no bar, marked)."""
    width, height, left, top, bottom = 900, 220, 70, 14, 30
    pw, ph = width - left - 20, height - top - bottom
    ticks = nice_ticks(max([d["billable_clicks"] or 0 for d in days] + [1]))
    slot = pw / max(1, len(days))
    out = _open(width, height, "billable clicks per day")
    for v in ticks:
        y = top + ph - ph * v / ticks[-1]
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(_text(left - 6, y + 4, f"{v:,}", "end"))
    for i, d in enumerate(days):
        x = left + i * slot
        label = d["date"][8:]
        if d["status"] == "missing":
            out.append(_text(x + slot / 2, top + ph - 4, "–"))
        else:
            h = ph * (d["billable_clicks"] or 0) / ticks[-1]
            out.append(f'<rect x="{x + 0.15 * slot:.1f}" y="{top + ph - h:.1f}" width="{0.7 * slot:.1f}" '
                       f'height="{h:.1f}" fill="{BATCH}"><title>{html.escape(d["date"])}: '
                       f'{d["billable_clicks"]:,} billable clicks</title></rect>')
        out.append(_text(x + slot / 2, top + ph + 14, label))
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="{INK}"/></svg>')
    return Markup("".join(out))


def chart_drift(days: list[dict[str, Any]]) -> Markup:
    """Drift rate per day (absolute drift / billable clicks), each bar split by the clicks each cause explains."""
    width, height, left, top, bottom = 900, 260, 70, 40, 30
    pw, ph = width - left - 20, height - top - bottom
    rates = [d["drift_rate"] or 0 for d in days]
    top_pct = max([*rates, 0.0001]) * 100
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 25, 50, 100, 1e9) if s * 5 >= top_pct)
    ticks = [step * i for i in range(6)]
    scale = ph / ticks[-1]
    slot = pw / max(1, len(days))
    out = _open(width, height, "drift rate per day by cause")
    for v in ticks:
        y = top + ph - v * scale
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(_text(left - 6, y + 4, f"{v:g}%", "end"))
    used: list[str] = []
    for i, d in enumerate(days):
        x = left + i * slot
        out.append(_text(x + slot / 2, top + ph + 14, d["date"][8:]))
        if d["status"] == "missing" or not d["billable_clicks"]:
            continue
        parts = dict(d.get("by_cause") or {})
        rest = d["abs_delta_clicks"] - sum(parts.values())
        if rest > 0:
            parts["unexplained"] = rest
        y = top + ph
        for cause in CAUSE_COLOURS:
            clicks = parts.get(cause, 0)
            if not clicks:
                continue
            if cause not in used:
                used.append(cause)
            h = clicks / d["billable_clicks"] * 100 * scale
            y -= h
            out.append(f'<rect x="{x + 0.15 * slot:.1f}" y="{y:.1f}" width="{0.7 * slot:.1f}" height="{h:.1f}" '
                       f'fill="{CAUSE_COLOURS[cause]}"><title>{html.escape(d["date"])} {html.escape(cause)}: '
                       f'{clicks:,} clicks</title></rect>')
    x = left
    for cause in used:
        out.append(f'<rect x="{x}" y="8" width="10" height="10" fill="{CAUSE_COLOURS[cause]}"/>')
        out.append(_text(x + 14, 17, cause, "start"))
        x += 30 + 7 * len(cause)
    out.append(f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="{INK}"/></svg>')
    return Markup("".join(out))

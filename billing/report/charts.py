"""The report's two charts, as plain SVG written here: a bar chart needs no plotting library, and
importing one cost ~1 s a run. Each returns :class:`~markupsafe.Markup` (SVG we generate, every text
from data escaped here), which the page template inserts as is."""

from __future__ import annotations

import html

from markupsafe import Markup

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


def chart_hours(hours: list[dict[str, int]]) -> Markup:
    """Billed and stream clicks per hour (bars, left axis) and |drift| of flagged windows (line, right axis)."""
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
    return Markup("".join(out))


def chart_causes(by_cause: dict[str, dict[str, int]]) -> Markup:
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
    return Markup("".join(out))

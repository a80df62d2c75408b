"""The report finance reads: self-contained, escaped, exact, and real in a real browser."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.money import money
from billing.run.local import reconcile
from tests.browser import opened
from tests.lake import at, click, config, write_raw, write_stream


@pytest.fixture
def published(tmp_path: Path, demo_lake: Path) -> Path:
    result = reconcile(config(tmp_path, raw=str(demo_lake / "raw"), stream=str(demo_lake / "stream")))
    return Path(result.commit.url)


class Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for k, v in attrs:
            if k in ("src", "href", "xlink:href", "action", "data", "poster", "srcset") and v:
                self.refs.append((tag, k, v))


def test_report_is_self_contained(published: Path) -> None:
    page = (published / "report.html").read_text(encoding="utf-8")
    p = Refs()
    p.feed(page)
    assert not {"link", "img", "iframe", "object", "embed"} & p.tags
    assert all(v.startswith("#") for _, _, v in p.refs), p.refs  # only links inside the page
    assert "<svg" in page and "@import" not in page
    assert "url(" not in page  # the hand-written SVG and CSS reference nothing, not even inside the page
    without_ns = re.sub(r'xmlns(:\w+)?="[^"]*"', "", page)
    assert "http://" not in without_ns and "https://" not in without_ns
    assert "<script src" not in page


def test_report_shows_key_figures_and_balanced_ledger(published: Path) -> None:
    page = (published / "report.html").read_text(encoding="utf-8")
    s = json.loads((published / "summary.json").read_text())
    led = s["ledger"]
    assert "Drift flagged" in page
    assert f"{led['billable_clicks']:,}" in page and money(led["billable_spend_micros"]) in page
    assert f"{s['stream']['clicks']:,}" in page and f"{s['drift']['net_delta_clicks']:+,} clicks" in page
    assert (f"Balances: {led['rows_read']:,} − {led['rows_invalid']:,} − {led['duplicates_removed']:,} − "
            f"{led['clicks_out_of_day']:,} = {led['billable_clicks']:,} billed") in page
    for cause in s["drift"]["by_cause"]:
        assert cause in page


def test_hostile_values_are_escaped(tmp_path: Path) -> None:
    hostile = "<script>alert('x')</script>"
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet",
              [click(at(10), seq=1), {**click(at(10), seq=2), "ad_id": None, "campaign": hostile}])
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    result = reconcile(config(tmp_path))
    page = (Path(result.commit.url) / "report.html").read_text(encoding="utf-8")
    assert hostile not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # ours, the table sorter


def test_csv_exports_open_as_utf8_with_iso_times(published: Path) -> None:
    drift = pq.read_table(published / "drift.parquet").to_pylist()
    with open(published / "drift_flagged.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    flagged = [d for d in drift if d["flagged"]]
    assert len(rows) == len(flagged) > 0
    assert rows[0]["window_start"] == flagged[0]["window_start"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [int(r["delta"]) for r in rows] == [d["delta"] for d in flagged]
    assert [r["cause"] for r in rows] == [d["cause"] for d in flagged]
    with open(published / "ads_daily.csv", encoding="utf-8-sig", newline="") as f:
        assert f.readline().startswith("date,ad_id,")  # the day first, so days can be concatenated
        f.seek(0)
        ads = list(csv.DictReader(f))
    assert {a["date"] for a in ads} == {"2026-11-26"}
    totals = pq.read_table(published / "totals.parquet").to_pylist()
    assert sum(int(a["billable_clicks"]) for a in ads) == sum(t["clicks"] for t in totals)
    assert sum(int(a["spend_micros"] or 0) for a in ads) == sum(t["spend_micros"] for t in totals)
    assert sum(int(a["delta"]) for a in ads) == sum(d["delta"] for d in drift)
    assert sum(int(a["money_at_risk_micros"] or 0) for a in ads) == sum(
        d["money_at_risk_micros"] or 0 for d in drift)


def test_report_command_rerenders_from_stored_outputs(published: Path, tmp_path: Path, demo_lake: Path) -> None:

    names = ("report.html", "drift_flagged.csv", "ads_daily.csv")
    before = {p.name: p.read_bytes() for p in published.iterdir()}
    assert (demo_lake / "raw").is_dir()
    shutil.rmtree(demo_lake / "raw")  # the inputs are gone: only the stored outputs can be rendered from
    shutil.rmtree(demo_lake / "stream")
    r = CliRunner().invoke(cli, ["report", "--date", "2026-11-26", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    rendered = tmp_path / "out" / "dt=2026-11-26" / "_rendered" / "v=1"
    assert r.stdout.strip() == str(rendered / "report.html")
    assert {n: (rendered / n).read_bytes() for n in names} == {n: before[n] for n in names}
    assert {p.name: p.read_bytes() for p in published.iterdir()} == before  # the version itself is untouched


@pytest.mark.integration
def test_report_in_headless_chromium(published: Path, tmp_path: Path) -> None:
    summary = json.loads((published / "summary.json").read_text())
    with opened(published / "report.html") as seen:
        page = seen.page
        text = page.inner_text("body")
        page.locator("#top-delta th", has_text="delta").click()  # the inline sorter: ascending by delta
        cells = page.locator("#top-delta tbody tr td:nth-child(5)").all_inner_texts()
        deltas = [int(t.replace(",", "")) for t in cells]
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    assert seen.problems == []
    assert seen.requests == [(published / "report.html").as_uri()]  # nothing else was fetched
    assert shot.stat().st_size > 50_000
    assert len(deltas) > 1 and deltas == sorted(deltas)
    assert "Drift flagged" in text
    assert f"{summary['ledger']['billable_clicks']:,}" in text
    assert money(summary["ledger"]["billable_spend_micros"]) in text
    assert f"{summary['stream']['clicks']:,}" in text


def test_charts_draw_the_data_as_well_formed_svg() -> None:
    import xml.etree.ElementTree as ET

    from billing.report import chart_causes, chart_hours, nice_ticks

    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(12) == [0, 5, 10, 15] and nice_ticks(5_621_953)[-1] >= 5_621_953
    # top/5 = 1.12M: the first of 1, 2, 5 x 10^k above it is 2M
    assert nice_ticks(5_621_953) == [0, 2_000_000, 4_000_000, 6_000_000]
    hours = [{"hour": h, "batch": 100 * h, "stream": 100 * h + (7 if h == 5 else 0), "flagged": int(h == 5),
              "abs_delta": 7 if h == 5 else 0} for h in range(24)]
    ns = {"s": "http://www.w3.org/2000/svg"}
    root = ET.fromstring(chart_hours(hours))
    bars = [r for r in root.iterfind(".//s:rect", ns) if r.find("s:title", ns) is not None]
    assert len(bars) == 48
    tallest = max(bars, key=lambda r: float(r.get("height")))
    assert tallest.find("s:title", ns).text == "23h: 2,300 clicks"
    heights = {r.find("s:title", ns).text: float(r.get("height")) for r in bars}
    assert heights["10h: 1,000 clicks"] == pytest.approx(heights["20h: 2,000 clicks"] / 2, abs=0.11)
    line = root.find(".//s:polyline", ns).get("points").split()
    ys = [float(p.split(",")[1]) for p in line]
    assert ys[5] == min(ys) and len(set(ys[:5] + ys[6:])) == 1  # the drift peak at 05h, flat elsewhere
    causes = ET.fromstring(chart_causes({"lost_events": {"keys": 2, "clicks": 3},
                                         "replay_overcount": {"keys": 1, "clicks": 9}}))
    texts = [t.text for t in causes.iterfind(".//s:text", ns)]
    assert texts.index("replay_overcount") < texts.index("lost_events")  # largest first
    assert "9 clicks, 1 windows" in texts
    assert "no flagged drift" in [t.text for t in ET.fromstring(chart_causes({})).iterfind(".//s:text", ns)]


def test_parquet_outputs_declare_their_sort_order(published: Path) -> None:
    """sorting_columns in every row group, and the rows really are in that order (checked in Python)."""
    expected = {"totals.parquet": ["ad_id", "window_start"], "drift.parquet": ["ad_id", "window_start"],
                "quarantine.parquet": ["source_file", "source_row"], "conflicts.parquet": ["click_id"]}
    for name, keys in expected.items():
        f = pq.ParquetFile(published / name)
        names = f.schema_arrow.names
        assert f.metadata.num_row_groups >= 1
        for i in range(f.metadata.num_row_groups):
            declared = f.metadata.row_group(i).sorting_columns
            assert [(names[c.column_index], c.descending) for c in declared] == [(k, False) for k in keys], name
        rows = f.read(columns=keys).to_pylist()
        assert len(rows) > 0, name
        tuples = [tuple(r[k] for k in keys) for r in rows]
        assert tuples == sorted(tuples), name


def test_quarantine_examples_with_a_nan_column_stay_strict_json(tmp_path: Path) -> None:
    """A raw file's extra float column holding NaN: the report's example rows show it as text, not as a
    bare NaN token (not JSON)."""
    import html

    schema_rows = [click(at(10), seq=1, score=1.5), {**click(at(10), seq=2, score=float("nan")), "ad_id": None}]
    import pyarrow as pa

    from tests.lake import RAW_SCHEMA

    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", schema_rows,
              RAW_SCHEMA.append(pa.field("score", pa.float64())))
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    result = reconcile(config(tmp_path))
    page = html.unescape((Path(result.commit.url) / "report.html").read_text(encoding="utf-8"))
    (example,) = [m for m in re.findall(r"\{[^<>]*\"score\"[^<>]*\}", page)]
    assert json.loads(example, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))["score"] == "nan"


def _hand_built_day(text: str) -> dict[str, Any]:
    """render_html's arguments for a tiny day in which every value that comes from data is ``text``."""
    import datetime as dt

    import pyarrow as pa

    t = dt.datetime(2026, 11, 26, 10, tzinfo=dt.UTC)
    drift = pa.table({"ad_id": [1], "window_start": pa.array([t], pa.timestamp("us", tz="UTC")),
                      "batch_clicks": [1], "stream_clicks": [3], "delta": [2], "status": [text], "cause": [text],
                      "batch_spend_micros": [10], "money_at_risk_micros": [20], "flagged": [True]})
    quarantine = pa.table({"reason": [text], "source_file": [text], "source_row": [0], "campaign": [text]})
    conflicts = pa.Table.from_pylist(
        [{"click_id": 9, "copies": 2, "ad_ids": [1, 2], "window_starts": [t, t], "winner_ad_id": 1,
          "winner_window_start": t, "winner_source_file": text, "winner_row": 0}])
    ledger = {"billable_clicks": 1, "billable_spend_micros": 10, "rows_read": 2, "rows_invalid": 1,
              "invalid_by_reason": {text: 1}, "duplicates_removed": 0, "clicks_out_of_day": 0,
              "conflicting_click_ids": 1}
    money_ = {"net_at_risk_micros": 20, "abs_at_risk_micros": 20, "flagged_abs_at_risk_micros": 20}
    summary = {"date": text, "status": "drift_flagged", "exit_code": 3, "ledger": ledger, "stream": {"clicks": 3},
               "drift": {"abs_delta_clicks": 2, "net_delta_clicks": 2, "flagged": 1, "keys": 1, "money": money_,
                         "by_cause": {text: {"keys": 1, "clicks": 2}}, "unexplained": {"keys": 0, "clicks": 0}}}
    from billing.report import per_ad, per_hour

    totals = pa.table({"ad_id": [1], "clicks": [1], "spend_micros": [10]})
    return {"summary": summary, "hours": per_hour(drift), "ads": per_ad(totals, drift), "quarantine": quarantine,
            "conflicts": conflicts, "inputs": {"raw": [{"path": text, "bytes": 1, "version": text}],
                                               "stream": [{"path": text, "bytes": 1, "version": None}]},
            "code_version": text}


def test_every_data_value_is_escaped_as_before() -> None:
    """Each field from data carries markup: none reaches the page raw, each is escaped with html.escape
    (``'`` as ``&#x27;``, ``"`` as ``&quot;``, as before the template), and the one script is ours."""
    from billing.report import render_html

    hostile = "<b x='1'>\"&é✓</b>"
    page = render_html(**_hand_built_day(hostile))
    assert hostile not in page and "<b x=" not in page
    escaped = "&lt;b x=&#x27;1&#x27;&gt;&quot;&amp;é✓&lt;/b&gt;"
    # date x2, code version x2, ledger reason, cause chart + table + top ads x2 (main cause), quarantine reason
    # table + example reason + example source, conflict source, raw path, stream path (no versions: manifest)
    assert page.count(escaped) == 15, page.count(escaped)
    assert page.count("<script>") == 1 and page.count("<svg") == 2
    assert page.endswith("</script></main></body></html>\n")


def test_template_layout_is_dropped_but_css_and_script_are_verbatim() -> None:
    from importlib.resources import files

    from billing.report import render_html

    page = render_html(**_hand_built_day("x"))
    templates = files("billing.report") / "templates"
    assert f"<style>\n{(templates / 'report.css').read_text(encoding='utf-8')}</style>" in page
    assert f"<script>\n{(templates / 'sort.js').read_text(encoding='utf-8')}</script>" in page
    without = page.replace((templates / "report.css").read_text(encoding="utf-8"), "").replace(
        (templates / "sort.js").read_text(encoding="utf-8"), "")
    assert without.count("\n") == 3  # after <style>, after <script>, and the page's last
    assert "  <" not in without and "> <" not in without  # no indentation from the template source
    assert "Balances: 2 − 1 − 0 − 0 = 1 billed. 1 click ids had" in page  # spaces across template lines

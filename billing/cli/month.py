"""Commands that close a month: sign-off (a person accepts a day's version), adjustments (what changed
since), month (the month's books as a versioned folder). None of them changes a day's versions."""

from __future__ import annotations

import csv
import logging
from typing import Any

import click

from billing.anomaly_settings import ANOMALY_FIELDS
from billing.cli import cli
from billing.cli.options import (
    _check_writable,
    _day,
    _delta,
    _dumps,
    _money,
    _settings,
    _shown,
    config_option,
    day_options,
    month_options,
)

log = logging.getLogger("billing")


def _out(kw: dict[str, Any]) -> Any:
    from billing.io.storage import open_store

    v = _settings(kw, "out", "s3_endpoint", "s3_max_attempts")
    return open_store(v["out"], endpoint=v["s3_endpoint"], max_attempts=v["s3_max_attempts"])


@cli.command("sign-off")
@config_option
@day_options
@click.option("--by", "by", required=True, help="Who accepts the version (a name or an e-mail address).")
@click.option("--version", "version", type=int, default=None, help="The version accepted (default: current).")
@click.option("--note", "note", default=None, help="A note kept with the sign-off.")
def sign_off(by: str, version: int | None, note: str | None, **kw: Any) -> None:
    """Record that a person accepted a version of day D (an immutable record under OUT/dt=D/_signoff/).

    Refused (exit 2) for a version that is not committed or whose files no longer match its manifest.

    \b
    Example:
      billing sign-off --date 2026-11-26 --out ./out --by alice@example.com --note "invoiced"
    """
    from billing.month.signoff import sign_off as record

    day, _ = _day(kw)
    s = record(day, by=by, version=version, note=note)
    click.echo(f"{s.date}: version {s.version} signed off by {_shown(s.by)} at {s.at} (sign-off {s.seq})")


@cli.command()
@config_option
@month_options
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the adjustments as CSV (UTF-8 with BOM, CRLF) to this file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def adjustments(month: str, csv_path: str | None, as_json: bool, **kw: Any) -> None:
    """List every open post-close adjustment of the month: per day and ad, signed-off version → current.

    A negative delta is a credit owed to the advertiser, a positive one a debit.

    \b
    Example:
      billing adjustments --month 2026-11 --out ./out --csv adjustments.csv
    """
    from billing.day.publish import Day
    from billing.month.adjustments import ADJUSTMENT_COLUMNS, open_adjustment
    from billing.month.book import month_days, parse_month

    if csv_path:
        _check_writable(csv_path, "--csv")
    first = parse_month(month)
    out = _out(kw)
    rows: list[dict[str, Any]] = []
    days = []
    for d in month_days(first):
        adj = open_adjustment(Day(out, d))
        if adj is not None:
            rows.extend(adj.rows())
            days.append(adj.summary() | {"date": d.isoformat()})
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8-sig") as f:
            w = csv.writer(f, lineterminator="\r\n")
            w.writerow(ADJUSTMENT_COLUMNS)
            w.writerows([["" if r[c] is None else r[c] for c in ADJUSTMENT_COLUMNS] for r in rows])
        log.info("wrote %s", csv_path)
    if as_json:
        click.echo(_dumps({"month": first.strftime("%Y-%m"), "days": days, "adjustments": rows}))
        return
    click.echo(f"{first.strftime('%Y-%m')}: {len(days)} day(s) with an open adjustment, {len(rows)} ad row(s)")
    for s in days:
        click.echo(f"  {s['date']}: signed-off v{s['signed_off_version']} ({_shown(s['by'])}, {_shown(s['at'])}) "
                   f"-> current v{s['current_version']}: {s['ads']} ad(s), net {s['net_clicks_delta']:+,} clicks, "
                   f"{_delta(s['net_spend_micros_delta'])}")
    for r in rows:
        click.echo(f"    {r['date']} ad {r['ad_id']:>10}: clicks {r['signed_off_clicks']:,} -> {r['current_clicks']:,} "
                   f"({r['clicks_delta']:+,}), spend {_money(r['signed_off_spend_micros'])} -> "
                   f"{_money(r['current_spend_micros'])} ({_delta(r['spend_micros_delta'])})")


@cli.command()
@config_option
@month_options
@click.option("--json", "as_json", is_flag=True, help="Print month.json's verdict and where it was published.")
def month(month: str, as_json: bool, **kw: Any) -> None:
    """Build the month's books under OUT/month=YYYY-MM/ as a versioned folder (month.html, CSVs, JSON).

    A month with missing days still builds and names them. A re-run over the same published days
    commits nothing ("unchanged").

    \b
    Example:
      billing month --month 2026-11 --out ./out
    """
    from billing.month.anomalies import AnomalyRule
    from billing.month.build import build_month

    rule = AnomalyRule.from_settings(_settings(kw, *ANOMALY_FIELDS))
    book, commit = build_month(_out(kw), month, rule)
    v = book.verdict()
    if as_json:
        click.echo(_dumps({"verdict": v, "totals": book.totals(), "publish": {
            "version": commit.version, "unchanged": commit.unchanged, "url": commit.url}}))
        return
    state = "unchanged, still" if commit.unchanged else "published as"
    click.echo(f"{book.month}: {'closed' if v['closed'] else 'not closed'}, {state} version {commit.version}: "
               f"{commit.url}")
    click.echo(f"  {v['reconciled']} of {v['days']} days reconciled, {v['signed_off']} signed off")
    for what, key in (("missing", "missing"), ("not signed off", "not_signed_off"),
                      ("open adjustments", "open_adjustments"), ("anomalous", "anomalous")):
        if v[key]:
            click.echo(f"  {what}: {', '.join(v[key])}")

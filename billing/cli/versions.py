"""Commands over a day's committed versions: show, report (re-rendered outside the version), history,
diff-versions. None of them changes a committed version."""

from __future__ import annotations

import csv
import io
import logging
from typing import Any

import click

from billing.cli import cli
from billing.cli.options import _check_writable, _day, _dumps, _money, _shown, config_option, day_options
from billing.errors import UsageError

log = logging.getLogger("billing")

@cli.command()
@config_option
@day_options
@click.option("--version", "version", type=int, default=None, help="A version other than the current one.")
def show(version: int | None, **kw: Any) -> None:
    """Print the summary.json of the day's current (or given) version.

    \b
    Example:
      billing show --date 2026-11-26 --out ./out
    """
    day, _ = _day(kw)
    v = day.require_current() if version is None else _version(day, version, "--version")
    click.echo(_dumps(day.read_json(v, "summary.json")))


def _version(day: Any, v: int, option: str) -> int:
    """``v`` when it is a committed version of the day (in its chain of manifests), else exit 2 listing them."""
    if v < 1:
        raise UsageError(f"{option} {v}: versions are numbered from 1")
    committed = [m["version"] for m in day.history()]
    if v not in committed:
        listed = ", ".join(map(str, sorted(committed))) or "none"
        raise UsageError(f"{option} {v}: no committed version {v} for {day.date} (committed: {listed})")
    return v


@cli.command()
@config_option
@day_options
def report(**kw: Any) -> None:
    """Re-render report.html and the CSV exports of the current version from its stored outputs.

    They go to OUT/dt=D/_rendered/v=N/ (printed); the committed version itself is never rewritten.

    \b
    Example:
      billing report --date 2026-11-26 --out ./out
    """
    from billing.report import rerender

    path = rerender(_day(kw)[0])
    click.echo(path)


@cli.command()
@config_option
@day_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def history(as_json: bool, **kw: Any) -> None:
    """List the day's committed versions, newest first.

    \b
    Example:
      billing history --date 2026-11-26 --out ./out
    """
    from billing.month.signoff import sign_offs

    day, out = _day(kw)
    rows = []
    current = day.current_version()
    signed = sign_offs(day)
    for m in day.history():
        led = m["counts"]["ledger"]
        rows.append({"version": m["version"], "current": m["version"] == current, "created_at": m["created_at"],
                     "run_id": m["run_id"], "billable_clicks": led["billable_clicks"],
                     "billable_spend_micros": led["billable_spend_micros"],
                     "restated_ads": None if m.get("restatement") is None else len(m["restatement"]),
                     "previous_version": m.get("previous_version"),
                     "sign_offs": [{"by": s.by, "at": s.at, "note": s.note, "in_force": s is signed[-1]}
                                   for s in signed if s.version == m["version"]]})
    if not rows:  # text or JSON alike: a day without versions is an error, as for show and diff-versions
        raise UsageError(f"no committed version for {day.date} under {out}")
    if as_json:
        click.echo(_dumps(rows))
        return
    click.echo(f"{'version':>7}  {'created_at':<25} {'billable_clicks':>15} {'billable_spend':>18} "
               f"{'restated_ads':>12}  run_id")
    for r in rows:
        mark = "*" if r["current"] else " "
        click.echo(f"{r['version']:>6}{mark}  {r['created_at']:<25} {r['billable_clicks']:>15,} "
                   f"{_money(r['billable_spend_micros']):>18} "
                   f"{'-' if r['restated_ads'] is None else r['restated_ads']:>12}  {r['run_id']}")
        for s in r["sign_offs"]:
            click.echo(f"{'':>9}signed off by {_shown(s['by'])} at {_shown(s['at'])}"
                       f"{' (in force)' if s['in_force'] else ''}{': ' + _shown(s['note']) if s['note'] else ''}")


@cli.command("diff-versions")
@config_option
@day_options
@click.option("--from", "from_v", type=int, required=True, help="The earlier version.")
@click.option("--to", "to_v", type=int, default=None, help="The later version (default: current).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the table as CSV to this file ('-' for stdout only).")
def diff_versions(from_v: int, to_v: int | None, csv_path: str | None, **kw: Any) -> None:
    """What changed per ad between two versions: the billing adjustment.

    \b
    Example:
      billing diff-versions --date 2026-11-26 --out ./out --from 1 --to 2 --csv adjust.csv
    """
    from billing.day.restatement import TOTALS_PER_AD, per_ad_totals, restatement

    if csv_path and csv_path != "-":
        _check_writable(csv_path, "--csv")
    day, _ = _day(kw)
    from_v = _version(day, from_v, "--from")
    to_v = day.require_current() if to_v is None else _version(day, to_v, "--to")
    rows = restatement(per_ad_totals(day.iter_batches(from_v, "totals.parquet", TOTALS_PER_AD)),
                       per_ad_totals(day.iter_batches(to_v, "totals.parquet", TOTALS_PER_AD))) or []
    header = ["ad_id", "clicks_before", "clicks_after", "clicks_delta",
              "spend_micros_before", "spend_micros_after", "spend_micros_delta"]
    table = [{**r, "clicks_delta": r["clicks_after"] - r["clicks_before"],
              "spend_micros_delta": (r["spend_micros_after"] or 0) - (r["spend_micros_before"] or 0)}
             for r in rows]
    if csv_path == "-":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=header, lineterminator="\n")
        w.writeheader()
        w.writerows({k: r[k] for k in header} for r in table)
        click.echo(buf.getvalue(), nl=False)
        return
    click.echo(f"{day.date}: version {from_v} -> {to_v}: {len(table)} ad(s) changed")
    click.echo(f"{'ad_id':>10} {'clicks':>21} {'delta':>8} {'spend':>33} {'delta':>14}")
    for r in table:
        click.echo(f"{r['ad_id']:>10} {r['clicks_before']:>10,}->{r['clicks_after']:<10,} {r['clicks_delta']:>+8,} "
                   f"{_money(r['spend_micros_before']):>16}->{_money(r['spend_micros_after']):<16} "
                   f"{_money(r['spend_micros_delta']):>14}")
    if csv_path:
        with open(csv_path, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=header)
            w.writeheader()
            w.writerows({k: r[k] for k in header} for r in table)
        log.info("wrote %s", csv_path)



"""Commands for the readers of the results: the Delta tables under OUT/tables/ (publish-tables), the
invoicing database (export), and the current files for tools without Delta support (current-paths)."""

from __future__ import annotations

from typing import Any

import click

from billing.cli import cli
from billing.cli.options import _day, _dumps, _opt, _settings, config_option, day_options, out_options
from billing.errors import UsageError


@cli.command("publish-tables")
@config_option
@_opt("--date", help="The UTC day D, YYYY-MM-DD.", required_unless="--all-days")
@out_options
@click.option("--all-days", is_flag=True, help="Every day with a committed version under OUT (a backfill).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def publish_tables(all_days: bool, as_json: bool, **kw: Any) -> None:
    """Bring the Delta tables under OUT/tables/ level with the day's current version.

    reconcile and merge do this after each commit; this command repairs tables left behind (a crash
    between the version commit and the tables) and backfills days published before the tables existed.
    Tables already at the current version get no commit. Takes the day's lock.

    \b
    Examples:
      billing publish-tables --date 2026-11-26 --out s3://lake/billing
      billing publish-tables --all-days --out ./out
    """
    from billing.day.tables import publish_days
    from billing.io.storage import open_store

    if all_days and click.get_current_context().get_parameter_source("date") is \
            click.core.ParameterSource.COMMANDLINE:
        raise UsageError("--all-days and --date exclude each other")
    v = _settings(kw, "out", "s3_endpoint", "s3_max_attempts", "lock_ttl")
    dates = None if all_days else [_settings(kw, "date")["date"]]
    out = open_store(v["out"], endpoint=v["s3_endpoint"], max_attempts=v["s3_max_attempts"])
    done = publish_days(out, dates, s3_endpoint=v["s3_endpoint"], lock_ttl=v["lock_ttl"])
    if as_json:
        click.echo(_dumps([{"date": d.date.isoformat(), "skipped": d.skipped,
                            **(d.result.as_dict() if d.result else {})} for d in done]))
        return
    for d in done:
        click.echo(d.message())
    if not done:
        click.echo(f"no committed day under {v['out']}")


@cli.command()
@config_option
@day_options
@click.option("--to", "target", required=True, metavar="URI",
              help="postgresql://USER@HOST:PORT/DB?table=SCHEMA.TABLE (password: PGPASSWORD or ~/.pgpass).")
@click.option("--allow-rollback", is_flag=True, help="Export the current version even if a newer one was exported.")
@click.option("--replace-other-out", is_flag=True, help="Export even if the day was exported from another OUT.")
@click.option("--force", is_flag=True, help="Rewrite the day's rows even if they match the exported version.")
def export(target: str, allow_rollback: bool, replace_other_out: bool, force: bool, **kw: Any) -> None:
    """Export the day's current totals to the invoicing database, replacing the day in one transaction.

    Writes date, ad_id, window_start, clicks, spend_micros, billing_version into SCHEMA.TABLE and records
    the exported version and OUT in SCHEMA.TABLE_exports (both created if absent). Exporting the same
    version again changes nothing if the day's rows still match it (else they are repaired; --force rewrites
    them anyway); an older one is refused (exit 2) unless --allow-rollback, another OUT's unless
    --replace-other-out.

    \b
    Example:
      billing export --date 2026-11-26 --out ./out --to "postgresql://billing@db:5432/invoicing?table=billing.totals"
    """
    from billing.day.export import export_current

    day, _ = _day(kw)
    click.echo(export_current(day, target, allow_rollback=allow_rollback, replace_other_out=replace_other_out,
                              force=force).message())


@cli.command("current-paths")
@config_option
@out_options
@click.option("--table", "name", default="totals", show_default=True,
              type=click.Choice(["totals", "drift", "quarantine", "conflicts", "stream_quarantine"]),
              help="Which output file.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: [{date, version, path}, ...].")
def current_paths(name: str, as_json: bool, **kw: Any) -> None:
    """Print the current version's file of every committed day, one per line (for tools without Delta).

    \b
    Example:
      billing current-paths --table totals --out ./out
    """
    from billing.day.tables import current_paths as paths
    from billing.io.storage import open_store

    v = _settings(kw, "out", "s3_endpoint", "s3_max_attempts")
    found = paths(open_store(v["out"], endpoint=v["s3_endpoint"], max_attempts=v["s3_max_attempts"]), name)
    if as_json:
        click.echo(_dumps([{"date": f.date.isoformat(), "version": f.version, "path": f.path} for f in found]))
        return
    for f in found:
        click.echo(f.path)

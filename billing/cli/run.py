"""Commands that run a day: reconcile (one process), plan / set-aside / run-slice / merge (anywhere), the demo lake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from billing.cli import cli
from billing.cli.options import _delta, _dumps, _load, _money, _opt, _settings, _shown, run_options
from billing.config import parse_date
from billing.errors import UsageError


@cli.command()
@run_options
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the text summary.")
def reconcile(as_json: bool, **kw: Any) -> None:
    """Reconcile day D: read the raw log, dedup, total, diff against the stream, publish a version.

    \b
    Example:
      billing reconcile --date 2026-11-26 --raw s3://lake/clicks --stream s3://lake/agg --out ./out
    """
    from billing.run.local import reconcile as run

    _finish(run(_load(kw)), as_json=as_json)


def _finish(result: Any, *, as_json: bool) -> None:
    """Print a published day's summary and leave with its exit code (0, or 3 for flagged drift)."""
    _print_summary(result.summary, result.commit.url, unchanged=result.commit.unchanged,
                   version=result.commit.version, as_json=as_json, tables=result.tables)
    click.get_current_context().exit(result.exit_code)


@cli.command()
@run_options
def plan(**kw: Any) -> None:
    """Split day D into click-id slices of similar row counts (from Parquet statistics, no scan).

    Writes OUT/dt=D/_work/<plan id>/plan.json and prints its URI. The id is a hash of the
    inputs and settings: planning the same day again gives the same plan. Then run
    set-aside (its parts anywhere), run-slice for every slice, and merge.

    \b
    Example:
      billing plan --date 2026-11-26 --raw s3://lake/clicks --stream s3://lake/agg --out s3://lake/billing --slices 8
    """
    from billing.run.distributed import plan_day

    _, uri, _ = plan_day(_load(kw))
    click.echo(uri)


@cli.command("set-aside")
@click.option("--plan", "plan_uri", required=True, envvar="BILLING_PLAN", help="URI of plan.json.")
@click.option("--part", "part", type=int, default=None,
              help="Which part, 0-based (default: every part, in turn). The plan's log says how many.")
@_opt("--s3-endpoint", help="S3-compatible endpoint URL (default: the plan's, or AWS_ENDPOINT_URL).")
def set_aside(plan_uri: str, part: int | None, **kw: Any) -> None:
    """Set a plan's rows aside by slice, so that its slices decode each raw row about once.

    Writes OUT/dt=D/_work/<plan id>/set-aside/ (a retried part rewrites its own files); prints
    how many parts ran (0 when the plan's slices read the lake directly at little cost).
    Run it after plan and before run-slice.

    \b
    Example:
      billing set-aside --plan s3://lake/billing/dt=2026-11-26/_work/0123abcd/plan.json --part 0
    """
    from billing.run.distributed import set_aside_planned

    click.echo(set_aside_planned(plan_uri, part, **_settings(kw, "s3_endpoint", "s3_max_attempts")))


@cli.command("run-slice")
@click.option("--plan", "plan_uri", required=True, envvar="BILLING_PLAN", help="URI of plan.json.")
@click.option("--slice", "k", required=True, type=int, help="Which slice, 0-based.")
@_opt("--s3-endpoint", help="S3-compatible endpoint URL (default: the plan's, or AWS_ENDPOINT_URL).")
def run_slice(plan_uri: str, k: int, **kw: Any) -> None:
    """Dedup and total one slice of a plan; its partial results go where a retry overwrites them.

    \b
    Example:
      billing run-slice --plan s3://lake/billing/dt=2026-11-26/_work/0123abcd/plan.json --slice 3
    """
    from billing.run.distributed import run_planned_slice

    click.echo(run_planned_slice(plan_uri, k, **_settings(kw, "s3_endpoint", "s3_max_attempts")))


@cli.command()
@click.option("--plan", "plan_uri", required=True, envvar="BILLING_PLAN", help="URI of plan.json.")
@_opt("--s3-endpoint", help="S3-compatible endpoint URL (default: the plan's, or AWS_ENDPOINT_URL).")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the text summary.")
def merge(plan_uri: str, as_json: bool, **kw: Any) -> None:
    """Sum the slices of a plan, diff against the stream side, publish the day (exit 0 or 3).

    \b
    Example:
      billing merge --plan s3://lake/billing/dt=2026-11-26/_work/0123abcd/plan.json
    """
    from billing.run.distributed import merge_plan

    _finish(merge_plan(plan_uri, **_settings(kw, "s3_endpoint", "s3_max_attempts", "lock_ttl")), as_json=as_json)


def _print_summary(s: dict[str, Any], url: str, *, unchanged: bool, version: int, as_json: bool,
                   tables: Any = None) -> None:
    if as_json:
        # summary.json's keys as stored, plus what this run did with them (not part of summary.json).
        click.echo(_dumps({**s, "publish": {"version": version, "dir": f"v={version}", "unchanged": unchanged,
                                            "url": url, "tables": None if tables is None else tables.as_dict()}}))
        return
    led, st, dr = s["ledger"], s["stream"], s["drift"]
    state = "unchanged, still" if unchanged else "published as"
    click.echo(f"{s['date']}: {s['status']} (exit {s['exit_code']}), {state} version {version}: {url}")
    reasons = ", ".join(f"{k} {v:,}" for k, v in led["invalid_by_reason"].items()) or "none"
    click.echo(f"  rows read {led['rows_read']:,} = invalid {led['rows_invalid']:,} ({reasons}) "
               f"+ valid {led['rows_valid']:,}")
    click.echo(f"  valid {led['rows_valid']:,} - duplicates {led['duplicates_removed']:,} = "
               f"billable {led['billable_clicks']:,} + out of day {led['clicks_out_of_day']:,}; "
               f"conflicting ids {led['conflicting_click_ids']:,}")
    rejected = ", ".join(f"{k} {v:,}" for k, v in st.get("invalid_by_reason", {}).items()) or "none"
    click.echo(f"  billable spend {_money(led['billable_spend_micros'])}; stream clicks {st['clicks']:,} "
               f"({st['duplicate_keys']:,} duplicated sink keys, {st['rows_out_of_day']:,} rows of other days, "
               f"{st.get('rows_invalid', 0):,} rows rejected: {rejected})")
    click.echo(f"  drift: {dr['keys']:,} keys, {dr['flagged']:,} flagged, net {dr['net_delta_clicks']:+,} clicks, "
               f"abs {dr['abs_delta_clicks']:,}; money at risk net {_money(dr['money']['net_at_risk_micros'])}")
    for cause, c in dr["by_cause"].items():
        click.echo(f"    {cause:<30} {c['keys']:>7,} keys {c['clicks']:>9,} clicks")
    if r := s.get("restates_signed_off"):
        click.echo(f"  RESTATES signed-off version {r['signed_off_version']} ({_shown(r['by'])}, {r['at']}): "
                   f"{r['ads']:,} ads, net {r['net_clicks_delta']:+,} clicks, {_delta(r['net_spend_micros_delta'])}")
    if (a := s.get("anomalies")) and a["anomalous"]:
        click.echo(f"  anomalous against {a['reference_days']} reference days: {', '.join(a['flags'])}")
    if tables is not None:
        click.echo(f"  {tables.message()}")


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the demo lake.")
@click.option("--date", required=True, help="The day D to plant, YYYY-MM-DD.")
@click.option("--rows", default=100_000, show_default=True, type=int, help="About how many raw rows.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed: same seed, same lake.")
@click.option("--layout", type=click.Choice(["hour", "day"]), default="hour", show_default=True,
              help="Arrival partitions dt=/hour= or dt= only.")
@click.option("--days", default=1, show_default=True, type=click.IntRange(1, 366),
              help="Consecutive days from --date (more than 1: a simpler lake per day, see README 'Closing a month').")
@click.option("--spike-day", "spike_days", multiple=True, help="With --days: a day planted with 10x the drift.")
@click.option("--stream-db", metavar="URI", help="Also load the demo's stream into this PostgreSQL table "
              "(postgresql://host/db?table=SCHEMA.TABLE; refused when it holds rows, see --stream-db-replace).")
@click.option("--stream-db-replace", is_flag=True,
              help="Drop and recreate the --stream-db table even if it holds rows.")
@click.option("--stream-db-mode", type=click.Choice(["upsert", "insert"]), default="upsert", show_default=True,
              help="upsert: one row per key (primary key, last write wins); insert: every row, duplicates kept.")
def demo(out_dir: str, date: str, rows: int, seed: int, layout: str, days: int, spike_days: tuple[str, ...],
         stream_db: str | None, stream_db_mode: str, stream_db_replace: bool) -> None:
    """Write a demo lake (raw + stream) with planted faults, and the truth it planted.

    With --stream-db the stream side is loaded into a PostgreSQL sink table too, to reconcile from it.

    \b
    Example:
      billing demo --out ./demo --date 2026-11-26 --rows 100000 --seed 1
      billing demo --out ./month --date 2026-11-01 --days 30 --rows 4000 --spike-day 2026-11-20
      billing demo --out ./demo --date 2026-11-26 --stream-db "postgresql://postgres@localhost/test?table=demo.sink"
    """
    from billing.demo import generate

    d = parse_date(date)
    if Path(out_dir).exists() and any(Path(out_dir).iterdir()):
        raise UsageError(f"--out {out_dir} is not empty: the demo writes a new lake and the truth it planted "
                         f"(remove the folder first)")
    if rows < 1000:
        raise UsageError("--rows must be at least 1000")
    db = None
    if stream_db:
        from billing.io.postgres import StreamDatabase

        db = StreamDatabase.parse(stream_db)  # a bad URI is refused before the lake is written
    if days > 1 or spike_days:
        if db is not None:
            raise UsageError("--stream-db loads one day's stream: use it without --days")
        from billing.demo_days import generate_days

        written = generate_days(Path(out_dir), d, days, rows=rows, seed=seed,
                                spike_days=tuple(parse_date(s) for s in spike_days))
        click.echo(f"demo lake for {days} days from {d}: {Path(out_dir) / 'raw'} "
                   f"({sum(w['raw_rows'] for w in written):,} rows), {Path(out_dir) / 'stream'}, "
                   f"truth in {Path(out_dir) / 'truth'}")
        return
    if db is not None and stream_db and not stream_db_replace:
        from billing.io.postgres_load import existing_rows

        if held := existing_rows(stream_db):
            raise UsageError(f"--stream-db: table {db.display} at {db.redacted()} already holds {held:,} rows: "
                             f"the demo replaces it (pass --stream-db-replace to drop it, or name another table)")
    truth = generate(Path(out_dir), d, rows=rows, seed=seed, layout=layout)
    click.echo(f"demo lake for {d}: {Path(out_dir) / 'raw'} ({truth.ledger['rows_read']:,} rows in the horizon), "
               f"{Path(out_dir) / 'stream'}, truth in {Path(out_dir) / 'truth'}")
    if db is not None and stream_db:
        from billing.io.postgres_load import load_stream_table

        loaded = load_stream_table(stream_db, Path(out_dir) / "stream", d,
                                   mode="insert" if stream_db_mode == "insert" else "upsert")
        other = loaded.rows_total - loaded.rows_in_table
        dropped = f", {loaded.dropped_null_key:,} with a null key dropped" if loaded.dropped_null_key else ""
        click.echo(f"stream sink table {loaded.table} at {db.redacted()} ({loaded.mode}): {loaded.rows_total:,} rows "
                   f"({loaded.rows_in_table:,} of {d}, {other:,} of other days or without window_start) from "
                   f"{loaded.rows_in_files:,} file rows{dropped}; reconcile it with --stream '{db.redacted()}'")



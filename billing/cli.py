"""The ``billing`` command line: it parses arguments, prints results, and maps errors to exit codes
(here and nowhere else).

Every option that is a config field can also come from a ``BILLING_<OPTION>`` environment variable
or from a TOML file given with ``--config``; :meth:`billing.config.ReconcileConfig.load` does that
layering (command line > environment > file > default) and holds the defaults.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from billing.config import FIELDS, ReconcileConfig, default_text, env_name, is_required, parse_date, read_config_file
from billing.errors import BillingError, UsageError

log = logging.getLogger("billing")

#: The exit code of an unexpected failure (a bug, or an environment fault we did not anticipate).
EXIT_FAILURE = 1


def _one_line(text: str) -> str:
    """The first non-empty line of an error message: stderr gets one line per failure."""
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


class BillingGroup(click.Group):
    """Maps every error to its exit code with a one-line reason on stderr.

    ``--debug`` adds the traceback before that line; the exit code stays the same.
    """

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        """Click's own usage errors (an unknown option, a value of the wrong type) as one line too, exit 2."""
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, **extra)
        except click.exceptions.UsageError as e:
            where = e.ctx.command_path if e.ctx is not None else (prog_name or "billing")
            click.echo(f"billing: error: {_one_line(e.format_message())} (see '{where} --help')", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.ClickException as e:
            click.echo(f"billing: error: {_one_line(e.format_message())}", err=True)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            click.echo("billing: aborted", err=True)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BillingError as e:
            self._traceback_if_debug(ctx)
            click.echo(f"billing: error: {_one_line(str(e))}", err=True)
            ctx.exit(e.exit_code)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except BrokenPipeError:
            # The reader of our stdout went away (``billing show | head``): behave like SIGPIPE.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            ctx.exit(141)
        except Exception as e:
            self._traceback_if_debug(ctx)
            hint = "" if ctx.meta.get("billing.debug") else " (run with --debug for the traceback)"
            click.echo(f"billing: unexpected failure: {type(e).__name__}: {_one_line(str(e))}{hint}", err=True)
            ctx.exit(EXIT_FAILURE)

    @staticmethod
    def _traceback_if_debug(ctx: click.Context) -> None:
        if ctx.meta.get("billing.debug"):
            click.echo(traceback.format_exc().rstrip("\n"), err=True)


class ConfigOption(click.Option):
    """An option that is a config field: the command line layer of :meth:`ReconcileConfig.load`.

    It has no default and reads no environment variable of its own (the config layers them);
    ``--help`` shows the field's default and environment variable.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        assert self.name is not None
        self.envvar = env_name(self.name)
        self.show_envvar = True

    def resolve_envvar_value(self, ctx: click.Context) -> str | None:
        return None  # BILLING_<FIELD> is the config's env layer, below the file's (not above it, as click would)

    def get_help_extra(self, ctx: click.Context) -> Any:
        extra = super().get_help_extra(ctx)
        assert self.name is not None
        default = default_text(self.name)
        if default is not None and not self.is_flag:
            extra["default"] = default
        if is_required(self.name):
            extra["required"] = "required"
        return extra


def _opt(*decls: str, **kw: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(*decls, cls=ConfigOption, **kw)


def _remember_config_file(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Check the file at once (a bad key is exit 2 before any work). Its config fields are layered by
    :meth:`ReconcileConfig.load`; keys of this command's other options (``json``) become their defaults."""
    if not value:
        return value
    table = read_config_file(Path(value), config_keys())
    others = {p.name: table[key] for p in ctx.command.params if isinstance(p, click.Option)
              and not isinstance(p, ConfigOption) and p.name and p.name != "config_file"
              for key in _keys_of(p) if key in table}
    ctx.default_map = {**(ctx.default_map or {}), **others}
    ctx.meta["billing.config_file"] = Path(value)
    return value


@functools.cache
def config_keys() -> frozenset[str]:
    """Config-file keys (option names, ``-`` or ``_``) of every command.

    A key that belongs to another command (``raw`` in a file also used with ``billing show``) is
    allowed and ignored by commands without that option; a key no command has is an error.
    """
    return frozenset(_option_keys(list(cli.commands.values())))


def _option_keys(commands: list[click.Command]) -> set[str]:
    """Option names of ``commands``, ``-`` as ``_``, and their parameter names."""
    return {key for command in commands for p in command.params
            if isinstance(p, click.Option) and p.name and p.name != "config_file" for key in _keys_of(p)}


def _keys_of(p: click.Option) -> set[str]:
    return {str(p.name), *(decl[2:].replace("-", "_") for decl in p.opts if decl.startswith("--"))}


def _stack(*options: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Callable[..., Any]:
    def deco(f: Callable[..., Any]) -> Callable[..., Any]:
        for o in reversed(options):
            f = o(f)
        return f
    return deco


config_option = click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="BILLING_CONFIG",
                             is_eager=True, expose_value=False, callback=_remember_config_file,
                             help="TOML file with option values (keys as option names).")
day_options = _stack(
    _opt("--date", help="The UTC day D, YYYY-MM-DD."),
    _opt("--out", help="Output root: a local path or s3://bucket/prefix."),
    _opt("--s3-endpoint", help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)."),
)
input_options = _stack(
    _opt("--raw", help="Raw click log root (RAW/dt=D/hour=HH/*.parquet)."),
    _opt("--stream", help="Stream aggregates root (STREAM/dt=D/*.parquet)."),
)
semantics_options = _stack(
    _opt("--lateness", help="How far into D+1 (by arrival) clicks of D are read."),
    _opt("--max-id-skew", help="Largest |event_time - time in click_id|; 'off' disables the check."),
    _opt("--tolerance-abs", metavar="INTEGER", help="Drift up to this many clicks is not flagged."),
    _opt("--tolerance-rel", metavar="FLOAT", help="Drift up to this fraction of the batch clicks is not flagged."),
    _opt("--stream-allowed-lateness", help="The stream job's watermark lateness, to explain drift."),
    _opt("--snowflake-epoch-ms", metavar="INTEGER", help="Epoch of the Snowflake click ids, ms since 1970."),
    _opt("--allow-empty", is_flag=True, help="Publish an empty day when there is no raw partition."),
    _opt("--stream-optional", is_flag=True, help="Reconcile against nothing when the stream partition is missing."),
)
engine_options = _stack(
    _opt("--memory-limit", help="Memory for the whole run, e.g. 4GB; DuckDB gets 40% and spills "
         "beyond it (default: half the RAM)."),
    _opt("--threads", metavar="INTEGER", help="DuckDB threads (0: one per core)."),
    _opt("--slices", metavar="INTEGER", help="Click-id slices (0: chosen from the row count and memory)."),
    _opt("--workers", metavar="INTEGER", help="Processes running slices at once."),
)

#: Everything that defines a reconciliation run (reconcile and plan share it).
run_options = _stack(config_option, day_options, input_options, semantics_options, engine_options)


def _given(kw: dict[str, Any]) -> dict[str, Any]:
    """The config fields given on the command line: the first layer of the config."""
    ctx = click.get_current_context()
    return {k: v for k, v in kw.items()
            if k in FIELDS and ctx.get_parameter_source(k) is click.core.ParameterSource.COMMANDLINE}


def _load(kw: dict[str, Any]) -> ReconcileConfig:
    """The run's config: command line > ``BILLING_*`` > ``--config`` file > defaults."""
    return ReconcileConfig.load(cli=_given(kw), env=os.environ, file=_config_file(), other_keys=config_keys())


def _settings(kw: dict[str, Any], *names: str) -> dict[str, Any]:
    """Only the settings ``names``, layered alike (for commands that need no whole run)."""
    return ReconcileConfig.layer(names, cli=_given(kw), env=os.environ, file=_config_file(),
                                 other_keys=config_keys())


def _config_file() -> Path | None:
    return click.get_current_context().meta.get("billing.config_file")


@click.group(cls=BillingGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--debug", is_flag=True, help="Print the traceback of an error (the exit code stays the same).")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings and errors only.")
@click.version_option(package_name="billing")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """Nightly ad-click reconciliation: exhaustive dedup, authoritative totals, drift against the stream.

    Exit codes: 0 no flagged drift, 3 flagged drift (outputs written),
    2 bad usage or bad input (nothing published), 1 unexpected failure.
    """
    ctx.meta["billing.debug"] = debug
    # Where logs go is set once, by main(); here only how much (in-process callers, e.g. tests with
    # CliRunner, keep their own handlers: the records propagate to them).
    logging.getLogger("billing").setLevel(logging.WARNING if quiet else logging.INFO)


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
                   version=result.commit.version, as_json=as_json)
    click.get_current_context().exit(result.exit_code)


@cli.command()
@run_options
def plan(**kw: Any) -> None:
    """Split day D into click-id slices of similar row counts (from Parquet statistics, no scan).

    Writes OUT/dt=D/_work/<plan id>/plan.json and prints its URI. The id is a hash of the
    inputs and settings: planning the same day again gives the same plan.

    \b
    Example:
      billing plan --date 2026-11-26 --raw s3://lake/clicks --stream s3://lake/agg --out s3://lake/billing --slices 8
    """
    from billing.run.distributed import plan_day

    _, uri = plan_day(_load(kw))
    click.echo(uri)


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


def _money(micros: int | None) -> str:
    from billing.money import money

    return money(micros)


def _dumps(obj: Any) -> str:
    """Strict JSON for people and schedulers: a NaN or infinity is a bug, never printed."""
    return json.dumps(obj, indent=2, allow_nan=False)


def _print_summary(s: dict[str, Any], url: str, *, unchanged: bool, version: int, as_json: bool) -> None:
    if as_json:
        # summary.json's keys as stored, plus what this run did with them (not part of summary.json).
        click.echo(_dumps({**s, "publish": {"version": version, "dir": f"v={version}", "unchanged": unchanged,
                                            "url": url}}))
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
    click.echo(f"  billable spend {_money(led['billable_spend_micros'])}; stream clicks {st['clicks']:,} "
               f"({st['duplicate_keys']:,} duplicated sink keys, {st['rows_out_of_day']:,} rows of other days)")
    click.echo(f"  drift: {dr['keys']:,} keys, {dr['flagged']:,} flagged, net {dr['net_delta_clicks']:+,} clicks, "
               f"abs {dr['abs_delta_clicks']:,}; money at risk net {_money(dr['money']['net_at_risk_micros'])}")
    for cause, c in dr["by_cause"].items():
        click.echo(f"    {cause:<30} {c['keys']:>7,} keys {c['clicks']:>9,} clicks")


def _day(kw: dict[str, Any]) -> tuple[Any, str]:
    """The day of ``--date`` under ``--out`` (layered like every setting), and OUT as given."""
    from billing.day.publish import Day
    from billing.io.storage import open_store

    v = _settings(kw, "date", "out", "s3_endpoint", "s3_max_attempts")
    return Day(open_store(v["out"], endpoint=v["s3_endpoint"], max_attempts=v["s3_max_attempts"]), v["date"]), v["out"]


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
    v = day.require_current() if version is None else _version(version, "--version")
    click.echo(_dumps(day.read_json(v, "summary.json")))


def _version(v: int, option: str) -> int:
    if v < 1:
        raise UsageError(f"{option} {v}: versions are numbered from 1")
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
    day, out = _day(kw)
    rows = []
    current = day.current_version()
    for m in day.history():
        led = m["counts"]["ledger"]
        rows.append({"version": m["version"], "current": m["version"] == current, "created_at": m["created_at"],
                     "run_id": m["run_id"], "billable_clicks": led["billable_clicks"],
                     "billable_spend_micros": led["billable_spend_micros"],
                     "restated_ads": None if m.get("restatement") is None else len(m["restatement"]),
                     "previous_version": m.get("previous_version")})
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
    from_v = _version(from_v, "--from")
    to_v = day.require_current() if to_v is None else _version(to_v, "--to")
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


def _check_writable(path: str, option: str) -> None:
    """Refuse a destination file we could not write, before any work or output."""
    target = Path(path)
    folder = target.parent
    if target.is_dir():
        raise UsageError(f"{option} {path}: is a directory")
    if not folder.is_dir():
        raise UsageError(f"{option} {path}: no such directory {folder}")
    if not os.access(folder, os.W_OK) or (target.exists() and not os.access(target, os.W_OK)):
        raise UsageError(f"{option} {path}: not writable")


@cli.command()
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the demo lake.")
@click.option("--date", required=True, help="The day D to plant, YYYY-MM-DD.")
@click.option("--rows", default=100_000, show_default=True, type=int, help="About how many raw rows.")
@click.option("--seed", default=1, show_default=True, type=int, help="Random seed: same seed, same lake.")
@click.option("--layout", type=click.Choice(["hour", "day"]), default="hour", show_default=True,
              help="Arrival partitions dt=/hour= or dt= only.")
def demo(out_dir: str, date: str, rows: int, seed: int, layout: str) -> None:
    """Write a demo lake (raw + stream) with planted faults, and the truth it planted.

    \b
    Example:
      billing demo --out ./demo --date 2026-11-26 --rows 100000 --seed 1
    """
    from billing.demo import generate

    d = parse_date(date)
    if rows < 1000:
        raise UsageError("--rows must be at least 1000")
    truth = generate(Path(out_dir), d, rows=rows, seed=seed, layout=layout)
    click.echo(f"demo lake for {d}: {Path(out_dir) / 'raw'} ({truth.ledger['rows_read']:,} rows in the horizon), "
               f"{Path(out_dir) / 'stream'}, truth in {Path(out_dir) / 'truth'}")


def configure_logging() -> None:
    """Progress and logs to stderr, once per process (results go to stdout)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s billing %(levelname)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("billing")
    root.handlers[:] = [handler]
    root.propagate = False


def main(args: list[str] | None = None) -> None:
    """The ``billing`` console script (also ``python -m billing`` and the jobs/ entry points)."""
    configure_logging()
    cli(args, prog_name="billing")


@functools.cache
def commands() -> list[str]:
    return sorted(cli.commands)

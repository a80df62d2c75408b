"""Options shared by several commands, defined once, and the config layering seen from the command line.

An option that is a config field (:class:`ConfigOption`) has no default of its own and reads no
environment variable itself: :meth:`billing.config.ReconcileConfig.load` layers command line >
``BILLING_*`` > ``--config`` file > defaults. Helpers every command uses live here too.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from billing.config import FIELDS, ReconcileConfig, default_text, env_name, is_required, read_config_file
from billing.errors import UsageError


class ConfigOption(click.Option):
    """An option that is a config field: the command line layer of :meth:`ReconcileConfig.load`.

    It has no default and reads no environment variable of its own (the config layers them);
    ``--help`` shows the field's default and environment variable.
    """

    def __init__(self, *args: Any, required_unless: str | None = None, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.required_unless = required_unless  # e.g. "--all-days": the help says so instead of "required"
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
            extra["required"] = f"required unless {self.required_unless}" if self.required_unless else "required"
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
    from billing.cli import cli

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
out_options = _stack(
    _opt("--out", help="Output root: a local path or s3://bucket/prefix."),
    _opt("--s3-endpoint", help="S3-compatible endpoint URL (default: AWS_ENDPOINT_URL)."),
)
day_options = _stack(_opt("--date", help="The UTC day D, YYYY-MM-DD."), out_options)
#: A month's commands (month, adjustments): --month is no config field, it names what to build.
month_options = _stack(click.option("--month", required=True, help="The month, YYYY-MM (UTC days)."), out_options)
input_options = _stack(
    _opt("--raw", help="Raw click log root (RAW/dt=D/hour=HH/*.parquet)."),
    _opt("--stream", help="Stream aggregates root (STREAM/dt=D/*.parquet), or their sink table: "
         "postgresql://[user@]host[:port]/dbname?table=SCHEMA.TABLE (password: PGPASSWORD or ~/.pgpass)."),
    _opt("--stream-columns", metavar="KEY=COLUMN,...", help="A stream table's columns: "
         "ad_id=COL,window_start=COL,clicks=COL[,spend_micros=COL] (unnamed keys: their own name)."),
    _opt("--pg-connect-timeout", help="How long connecting to a stream table's server may take."),
    _opt("--pg-statement-timeout",
         help="How long reading a stream table may take (at most 24d); 0: no timeout; 'off' keeps the server's."),
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
    _opt("--tables/--no-tables", help="After the commit, bring the Delta tables under OUT/tables/ level "
         "(default: on)."),
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


def _money(micros: int | None) -> str:
    from billing.money import money

    return money(micros)


def _delta(micros: int | None) -> str:
    """A money delta exactly, to the micro and signed: 5000 micros -> ``+0.005000`` (never rounded to 0.00)."""
    from billing.money import money

    return "n/a" if micros is None else f"{'+' if micros > 0 else ''}{money(micros, 6)}"


def _shown(text: str | None) -> str:
    """A stored name or note for the terminal: control characters escaped (a newline cannot forge a line,
    an ANSI escape cannot repaint the screen)."""
    import unicodedata

    return "".join(repr(c)[1:-1] if unicodedata.category(c) == "Cc" else c for c in text or "")


def _dumps(obj: Any) -> str:
    """Strict JSON for people and schedulers: a NaN or infinity is a bug, never printed."""
    return json.dumps(obj, indent=2, allow_nan=False)


def _day(kw: dict[str, Any]) -> tuple[Any, str]:
    """The day of ``--date`` under ``--out`` (layered like every setting), and OUT as given."""
    from billing.day.publish import Day
    from billing.io.storage import open_store

    v = _settings(kw, "date", "out", "s3_endpoint", "s3_max_attempts")
    return Day(open_store(v["out"], endpoint=v["s3_endpoint"], max_attempts=v["s3_max_attempts"]), v["date"]), v["out"]


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



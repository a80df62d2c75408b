"""The ``billing`` command line: it parses arguments, prints results, and maps errors to exit codes
(here and nowhere else).

Every option that is a config field can also come from a ``BILLING_<OPTION>`` environment variable
or from a TOML file given with ``--config``; :meth:`billing.config.ReconcileConfig.load` does that
layering (command line > environment > file > default) and holds the defaults.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import traceback
from typing import Any

import click

from billing import progress
from billing.errors import BillingError

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
    # Progress: a live bar when stderr is a terminal, one plain log line per slice and stage otherwise.
    progress.configure(quiet=quiet)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever sys.stderr is at the time: a live progress bar redirects it to print above itself."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure_logging() -> None:
    """Progress and logs to stderr, once per process (results go to stdout)."""
    handler = _StderrHandler()
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


# The commands register themselves on ``cli``: a day's run (reconcile, plan, set-aside, run-slice, merge, demo),
# its versions (show, report, history, diff-versions), its readers (publish-tables, export, current-paths), and
# the month (sign-off, adjustments, month).
from billing.cli import month, run, tables, versions  # noqa: E402,F401  (imported for their @cli.command registrations)

"""The command line as Airflow and cron use it: exit codes, one-line errors, config layering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import build_config, cli, commands
from tests.lake import at, click, write_raw, write_stream


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_with_an_example(runner: CliRunner, command: str) -> None:
    r = runner.invoke(cli, [command, "--help"])
    assert r.exit_code == 0, r.output
    assert "Example" in r.output


def lake(tmp: Path, stream_clicks: int = 1) -> list[str]:
    write_raw(tmp / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_stream(tmp / "stream", [(1, at(10), stream_clicks)])
    return ["--date", "2026-11-26", "--raw", str(tmp / "raw"), "--stream", str(tmp / "stream"),
            "--out", str(tmp / "out")]


def test_exit_0_when_nothing_is_flagged(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["reconcile", *lake(tmp_path)])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("2026-11-26: billable (exit 0), published as version 1:")
    assert "billing INFO" not in r.stdout  # logs go to stderr, results to stdout


def test_exit_3_when_drift_is_flagged_and_outputs_are_written(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["reconcile", "--json", *lake(tmp_path, stream_clicks=2)])
    assert r.exit_code == 3, r.output
    summary = json.loads(r.stdout)
    assert summary["status"] == "drift_flagged" and summary["exit_code"] == 3
    assert (tmp_path / "out/dt=2026-11-26/_current.json").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--date", "2026-02-30"], "billing: error: not a date: '2026-02-30' (use YYYY-MM-DD)"),
    (["--lateness", "soon"], "billing: error: not a duration: 'soon' (use e.g. 2h, 90m, 30s)"),
    (["--max-id-skew", "x"], "billing: error: not a duration: 'x' (use e.g. 2h, 90m, 30s, or 'off')"),
    (["--memory-limit", "lots"], "billing: error: not a size: 'lots' (use e.g. 4GB or 512MiB)"),
])
def test_bad_options_exit_2_with_one_line(runner: CliRunner, tmp_path: Path, args: list[str], message: str) -> None:
    r = runner.invoke(cli, ["reconcile", *lake(tmp_path), *args])
    assert r.exit_code == 2
    assert r.stderr.strip() == message
    assert not (tmp_path / "out").exists()


def test_missing_required_option_is_exit_2(runner: CliRunner) -> None:
    r = runner.invoke(cli, ["reconcile", "--date", "2026-11-26"])
    assert r.exit_code == 2


def test_precedence_cli_over_env_over_file_over_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg_file = tmp_path / "billing.toml"
    cfg_file.write_text('[billing]\nlateness = "3h"\ntolerance-abs = 5\nmax_id_skew = "off"\nraw = "/r"\n'
                        'stream = "/s"\nout = "/o"\ndate = "2026-11-26"\n')
    seen = {}

    import billing.pipeline

    def fake_run(cfg):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(billing.pipeline, "reconcile", fake_run)
    runner = CliRunner()
    runner.invoke(cli, ["reconcile", "--config", str(cfg_file)])
    c = seen["cfg"]
    assert (c.lateness.total_seconds(), c.tolerance_abs, c.max_id_skew, c.raw) == (3 * 3600, 5, None, "/r")
    monkeypatch.setenv("BILLING_LATENESS", "4h")
    monkeypatch.setenv("BILLING_TOLERANCE_ABS", "6")
    runner.invoke(cli, ["reconcile", "--config", str(cfg_file)])
    c = seen["cfg"]
    assert (c.lateness.total_seconds(), c.tolerance_abs) == (4 * 3600, 6)
    runner.invoke(cli, ["reconcile", "--config", str(cfg_file), "--lateness", "90m"])
    assert seen["cfg"].lateness.total_seconds() == 90 * 60 and seen["cfg"].tolerance_abs == 6
    monkeypatch.setenv("BILLING_CONFIG", str(cfg_file))
    runner.invoke(cli, ["reconcile"])
    assert seen["cfg"].out == "/o"


def test_defaults() -> None:
    c = build_config(date="2026-11-26", raw="r", stream="s", out="o")
    assert (c.lateness.total_seconds(), c.max_id_skew.total_seconds(), c.tolerance_abs, c.tolerance_rel) == (
        7200, 300, 0, 0.0)
    assert c.stream_allowed_lateness.total_seconds() == 600


def test_show_prints_current_summary(runner: CliRunner, tmp_path: Path) -> None:
    args = lake(tmp_path)
    runner.invoke(cli, ["reconcile", *args])
    r = runner.invoke(cli, ["show", "--date", "2026-11-26", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0
    assert json.loads(r.stdout) == json.loads((tmp_path / "out/dt=2026-11-26/v=1/summary.json").read_text())


def test_show_without_a_version_is_exit_2(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["show", "--date", "2026-11-26", "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert r.stderr.startswith("billing: error: no committed version for 2026-11-26")


def test_console_script_is_installed() -> None:
    import shutil
    import subprocess
    import sys

    exe = shutil.which("billing", path=str(Path(sys.executable).parent))
    assert exe, "the billing console script is not installed in the venv"
    out = subprocess.run([exe, "--help"], capture_output=True, text=True, check=True).stdout
    assert "reconcile" in out and "Exit codes" in out

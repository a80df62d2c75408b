"""The command line as Airflow and cron use it: exit codes, one-line errors, config layering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import cli, commands
from billing.config import ReconcileConfig
from tests.lake import at, click, write_raw, write_stream


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("command", commands())
def test_every_command_has_help_with_an_example(runner: CliRunner, command: str) -> None:
    r = runner.invoke(cli, [command, "--help"])
    assert r.exit_code == 0, r.output
    assert "Example" in r.output


def test_publish_tables_help_says_date_is_required_unless_all_days(runner: CliRunner) -> None:
    text = " ".join(runner.invoke(cli, ["publish-tables", "--help"], terminal_width=200).output.split())
    assert "--date TEXT The UTC day D, YYYY-MM-DD. [env var: BILLING_DATE; required unless --all-days]" in text
    reconcile = " ".join(runner.invoke(cli, ["reconcile", "--help"], terminal_width=200).output.split())
    assert "[env var: BILLING_DATE; required]" in reconcile


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
    (["--memory-limit", "lots"], "billing: error: not a size: 'lots' (use e.g. 4GB or 1536MiB)"),
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

    import billing.run.local

    def fake_run(cfg):
        seen["cfg"] = cfg
        raise SystemExit(0)

    monkeypatch.setattr(billing.run.local, "reconcile", fake_run)
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
    c = ReconcileConfig.load(cli={"date": "2026-11-26", "raw": "r", "stream": "s", "out": "o"}, env={})
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


# --- issue 10: options no run can use, every exit path one line, --json that says what happened ---------

def one_error_line(r) -> str:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


@pytest.mark.parametrize(("args", "message"), [
    (["--tolerance-rel", "nan"], "billing: error: --tolerance-rel must be a finite number >= 0, got nan"),
    (["--tolerance-rel", "inf"], "billing: error: --tolerance-rel must be a finite number >= 0, got inf"),
    (["--tolerance-rel", "-0.5"], "billing: error: --tolerance-rel must be a finite number >= 0, got -0.5"),
    (["--tolerance-abs", "-1"], "billing: error: --tolerance-abs must be >= 0, got -1"),
    (["--memory-limit", "1KB"], "billing: error: --memory-limit 1000 bytes is below the minimum of 1.5GiB (1536MiB): "
                                "billing's own memory and a day's sorts need it"),
    (["--date", "9999-12-31"],
     "billing: error: --date 9999-12-31 with --lateness 2h: the horizon would end after 9999-12-31"),
    (["--lateness", "99999999999d"], "billing: error: duration out of range: '99999999999d'"),
])
def test_unusable_option_values_exit_2_and_publish_nothing(runner: CliRunner, tmp_path: Path, args: list[str],
                                                           message: str) -> None:
    r = runner.invoke(cli, ["reconcile", *lake(tmp_path), *args])
    assert r.exit_code == 2, r.output
    assert one_error_line(r) == message
    assert not (tmp_path / "out").exists()


def test_last_representable_day_is_a_usage_question_not_a_crash(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["reconcile", *lake(tmp_path), "--date", "9999-12-30"])
    assert r.exit_code == 2  # no raw partition for that day: an ordinary exit 2, not an OverflowError
    assert one_error_line(r).startswith("billing: error: no raw partition dt=9999-12-30")


def test_reconcile_json_says_what_was_published(runner: CliRunner, tmp_path: Path) -> None:
    args = lake(tmp_path)
    out = tmp_path / "out" / "dt=2026-11-26"
    first = json.loads(runner.invoke(cli, ["reconcile", "--json", *args]).stdout)
    tables = first["publish"].pop("tables")
    assert first["publish"] == {"version": 1, "dir": "v=1", "unchanged": False, "url": str(out / "v=1")}
    assert (tables["version"], tables["written"], tables["unchanged"]) == (
        1, ["totals", "drift", "conflicts", "quarantine", "days"], [])
    stored = json.loads((out / "v=1" / "summary.json").read_text())
    assert "publish" not in stored and {k: v for k, v in first.items() if k != "publish"} == stored
    again = runner.invoke(cli, ["reconcile", "--json", *args])
    publish = json.loads(again.stdout)["publish"]
    assert publish.pop("tables")["written"] == []  # the tables hold version 1 already: nothing committed
    assert publish == {"version": 1, "dir": "v=1", "unchanged": True, "url": str(out / "v=1")}
    write_stream(tmp_path / "stream", [(1, at(10), 2)])  # the stream changed: a new version
    third = json.loads(runner.invoke(cli, ["reconcile", "--json", *args]).stdout)
    assert third["publish"].pop("tables")["version"] == 2
    assert third["publish"] == {"version": 2, "dir": "v=2", "unchanged": False, "url": str(out / "v=2")}


def test_show_and_diff_versions_refuse_version_0(runner: CliRunner, tmp_path: Path) -> None:
    args = lake(tmp_path)
    runner.invoke(cli, ["reconcile", *args])
    day = ["--date", "2026-11-26", "--out", str(tmp_path / "out")]
    r = runner.invoke(cli, ["show", *day, "--version", "0"])
    assert (r.exit_code, one_error_line(r), r.stdout) == (2, "billing: error: --version 0: versions are numbered "
                                                          "from 1", "")
    r = runner.invoke(cli, ["diff-versions", *day, "--from", "1", "--to", "0"])
    assert (r.exit_code, one_error_line(r), r.stdout) == (2, "billing: error: --to 0: versions are numbered from 1",
                                                          "")


@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_history_of_a_day_without_versions_is_exit_2_in_text_and_json(runner: CliRunner, tmp_path: Path,
                                                                     as_json: list[str]) -> None:
    r = runner.invoke(cli, ["history", "--date", "2026-11-26", "--out", str(tmp_path), *as_json])
    assert r.exit_code == 2 and r.stdout == ""
    assert one_error_line(r) == f"billing: error: no committed version for 2026-11-26 under {tmp_path}"


def test_diff_versions_checks_the_csv_destination_first(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(cli, ["reconcile", *lake(tmp_path)])
    write_stream(tmp_path / "stream", [(1, at(10), 2)])
    runner.invoke(cli, ["reconcile", *lake(tmp_path, stream_clicks=2)])
    dest = tmp_path / "nonexistent" / "a.csv"
    r = runner.invoke(cli, ["diff-versions", "--date", "2026-11-26", "--out", str(tmp_path / "out"), "--from", "1",
                            "--csv", str(dest)])
    assert r.exit_code == 2 and r.stdout == ""  # no table printed before failing
    assert one_error_line(r) == f"billing: error: --csv {dest}: no such directory {dest.parent}"


def test_money_never_prints_a_negative_zero() -> None:
    from billing.money import money

    assert [money(m) for m in (-4_999, -1, 0, 1, -5_000, -5_001, -15_000)] == [
        "0.00", "0.00", "0.00", "0.00", "0.00", "-0.01", "-0.02"]  # half-even: -0.005 -> 0.00, -0.015 -> -0.02


def test_diff_versions_shows_a_sub_cent_decrease_as_0_00(runner: CliRunner, tmp_path: Path) -> None:
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1, cost=1_000)])
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    args = lake_args(tmp_path)
    runner.invoke(cli, ["reconcile", *args])
    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1, cost=600)])
    assert runner.invoke(cli, ["reconcile", *args]).exit_code == 0
    r = runner.invoke(cli, ["diff-versions", "--date", "2026-11-26", "--out", str(tmp_path / "out"), "--from", "1"])
    assert r.exit_code == 0, r.output
    row = r.stdout.splitlines()[2].split()  # ad, clicks before->after, delta, spend before->after, delta
    assert row[-2:] == ["0.00->0.00", "0.00"], r.stdout  # -400 micros: never "-0.00"


def lake_args(tmp: Path) -> list[str]:
    return ["--date", "2026-11-26", "--raw", str(tmp / "raw"), "--stream", str(tmp / "stream"),
            "--out", str(tmp / "out")]


def test_unexpected_failure_is_one_line_and_debug_adds_the_traceback(runner: CliRunner, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import billing.run.local

    def broken(cfg):
        raise RuntimeError("boom\nsecond line of a long message")

    monkeypatch.setattr(billing.run.local, "reconcile", broken)
    r = runner.invoke(cli, ["reconcile", *lake(tmp_path)])
    assert r.exit_code == 1
    assert one_error_line(r) == ("billing: unexpected failure: RuntimeError: boom "
                                 "(run with --debug for the traceback)")
    d = runner.invoke(cli, ["--debug", "reconcile", *lake(tmp_path)])
    assert d.exit_code == 1  # the same code as without --debug
    assert "Traceback (most recent call last)" in d.stderr and 'raise RuntimeError("boom' in d.stderr
    assert d.stderr.strip().splitlines()[-1] == "billing: unexpected failure: RuntimeError: boom"


def test_debug_keeps_exit_2_and_adds_the_traceback(runner: CliRunner, tmp_path: Path) -> None:
    r = runner.invoke(cli, ["--debug", "reconcile", *lake(tmp_path), "--date", "2026-11-20"])
    assert r.exit_code == 2
    assert "Traceback (most recent call last)" in r.stderr and "BadInputError" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("billing: error: no raw partition dt=2026-11-20")


def test_unexpected_failure_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    """The console script, as cron runs it: a non-JSON summary.json in the way of a show is exit 1, one line."""
    import subprocess
    import sys

    (tmp_path / "out/dt=2026-11-26/v=1").mkdir(parents=True)
    (tmp_path / "out/dt=2026-11-26/_current.json").write_text('{"version": 1, "dir": "v=1"}')
    (tmp_path / "out/dt=2026-11-26/v=1/summary.json").write_text("{not json")
    cmd = [sys.executable, "-m", "billing", "show", "--date", "2026-11-26", "--out", str(tmp_path / "out")]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "billing: unexpected failure: JSONDecodeError: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1) (run with --debug for the traceback)"]
    d = subprocess.run([sys.executable, "-m", "billing", "--debug", *cmd[3:]], capture_output=True, text=True)
    assert d.returncode == 1 and "Traceback (most recent call last)" in d.stderr


@pytest.mark.parametrize(("toml", "key", "where"), [
    ('latenes = "3h"\n', "latenes", "top level"),
    ('[billing]\ntolerance_rell = 0.1\n', "tolerance_rell", "[billing]"),
])
def test_unknown_config_key_is_exit_2_naming_it(runner: CliRunner, tmp_path: Path, toml: str, key: str,
                                                where: str) -> None:
    cfg = tmp_path / "billing.toml"
    cfg.write_text(toml)
    r = runner.invoke(cli, ["reconcile", "--config", str(cfg), *lake(tmp_path)])
    assert r.exit_code == 2
    assert one_error_line(r) == (f"billing: error: {cfg}: unknown key {key!r} ({where}); keys are option names, "
                                 f"e.g. lateness")
    assert not (tmp_path / "out").exists()


def test_config_keys_of_other_commands_are_allowed(runner: CliRunner, tmp_path: Path) -> None:
    """One file for reconcile and show: show has no --raw, and ignores it."""
    args = lake(tmp_path)
    runner.invoke(cli, ["reconcile", *args])
    cfg = tmp_path / "billing.toml"
    cfg.write_text(f'[billing]\nraw = "{tmp_path / "raw"}"\nout = "{tmp_path / "out"}"\nlateness = "2h"\n'
                   f'date = "2026-11-26"\n[other-tool]\nanything = 1\n')
    r = runner.invoke(cli, ["show", "--config", str(cfg)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["date"] == "2026-11-26"


def test_every_json_dump_in_the_package_is_strict() -> None:
    """No NaN/Infinity in anything we write or print: every json.dump(s) call passes allow_nan=False."""
    import ast

    import billing

    loose = []
    for path in Path(billing.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("dump", "dumps") and getattr(node.func.value, "id", None) == "json"):
                strict = any(k.arg == "allow_nan" and isinstance(k.value, ast.Constant) and k.value.value is False
                             for k in node.keywords)
                if not strict:
                    loose.append(f"{path.name}:{node.lineno}")
    assert loose == []

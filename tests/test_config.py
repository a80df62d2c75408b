"""ReconcileConfig.load: the layers (command line > BILLING_* > TOML > defaults), each field once."""

from __future__ import annotations

import ast
import datetime as dt
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import billing
from billing import config
from billing.cli import cli
from billing.config import LOCAL, ReconcileConfig
from billing.errors import UsageError
from tests.lake import at, click, write_raw, write_stream

REQUIRED = {"date": "2026-11-26", "raw": "/r", "stream": "/s", "out": "/o"}


def load(cli: dict[str, Any] | None = None, env: dict[str, str] | None = None, file: Path | None = None,
         **kw: Any) -> ReconcileConfig:
    return ReconcileConfig.load(cli={**REQUIRED, **(cli or {})}, env=env or {}, file=file, **kw)


def toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "billing.toml"
    path.write_text(text)
    return path


def test_defaults_are_the_fields_defaults() -> None:
    c = load()
    assert (c.lateness, c.max_id_skew, c.tolerance_abs, c.tolerance_rel, c.stream_allowed_lateness) == (
        dt.timedelta(hours=2), dt.timedelta(minutes=5), 0, 0.0, dt.timedelta(minutes=10))
    assert (c.slices, c.workers, c.threads, c.allow_empty, c.stream_optional, c.s3_endpoint) == (
        0, 1, 0, False, False, None)
    assert (c.s3_max_attempts, c.lock_ttl) == (8, dt.timedelta(minutes=2))


def test_each_layer_overrides_the_ones_below(tmp_path: Path) -> None:
    file = toml(tmp_path, '[billing]\nlateness = "3h"\ntolerance-abs = 5\nworkers = 2\nthreads = 3\n')
    env = {"BILLING_LATENESS": "4h", "BILLING_TOLERANCE_ABS": "6", "BILLING_WORKERS": "4"}
    c = load({"lateness": "90m"}, env, file)
    assert c.lateness == dt.timedelta(minutes=90)  # command line
    assert (c.tolerance_abs, c.workers) == (6, 4)  # environment over file
    assert c.threads == 3  # file over default
    assert c.tolerance_rel == 0.0  # default


def test_not_given_means_none_or_empty_in_every_layer(tmp_path: Path) -> None:
    file = toml(tmp_path, 'lateness = "3h"\n')
    c = load({"lateness": None, "tolerance_abs": ""}, {"BILLING_LATENESS": "", "BILLING_TOLERANCE_ABS": "7"}, file)
    assert (c.lateness, c.tolerance_abs) == (dt.timedelta(hours=3), 7)


def test_required_fields_from_any_layer(tmp_path: Path) -> None:
    file = toml(tmp_path, 'raw = "/r"\n')
    c = ReconcileConfig.load(cli={"date": "2026-11-26"}, env={"BILLING_STREAM": "/s", "BILLING_OUT": "/o"}, file=file)
    assert (c.date, c.raw, c.stream, c.out) == (dt.date(2026, 11, 26), "/r", "/s", "/o")
    with pytest.raises(UsageError, match=r"^missing --stream: give it on the command line, as BILLING_STREAM or "
                                         r"in the config file$"):
        ReconcileConfig.load(cli={"date": "2026-11-26", "raw": "/r", "out": "/o"}, env={})


def test_typed_values_from_a_caller_and_from_toml(tmp_path: Path) -> None:
    file = toml(tmp_path, 'date = 2026-11-26\nmax_id_skew = "off"\ntolerance_rel = 0.25\nallow-empty = true\n'
                          'memory_limit = "2GiB"\nlock_ttl = 90\n')
    c = ReconcileConfig.load(cli={"raw": "/r", "stream": "/s", "out": "/o", "stream_optional": True,
                                  "stream_allowed_lateness": dt.timedelta(minutes=1)}, env={}, file=file)
    assert (c.date, c.max_id_skew, c.tolerance_rel, c.allow_empty, c.stream_optional) == (
        dt.date(2026, 11, 26), None, 0.25, True, True)
    assert (c.memory_limit, c.lock_ttl, c.stream_allowed_lateness) == (
        2**31, dt.timedelta(seconds=90), dt.timedelta(minutes=1))


@pytest.mark.parametrize(("env", "message"), [
    ({"BILLING_TOLERANCE_ABS": "x"}, "--tolerance-abs: not an integer: 'x'"),
    ({"BILLING_TOLERANCE_REL": "lots"}, "--tolerance-rel: not a number: 'lots'"),
    ({"BILLING_ALLOW_EMPTY": "maybe"}, "--allow-empty: not a boolean: 'maybe' (use true or false)"),
    ({"BILLING_SLICES": "-1"}, "--slices must be >= 0"),
    ({"BILLING_LATENESS": "soon"}, "not a duration: 'soon' (use e.g. 2h, 90m, 30s)"),
    ({"BILLING_S3_MAX_ATTEMPTS": "many"}, "--s3-max-attempts: not an integer: 'many'"),
    ({"BILLING_LOCK_TTL": "1 hour"}, "not a duration: '1 hour' (use e.g. 2h, 90m, 30s)"),
    ({"BILLING_LOCK_TTL_HOURS": "two"}, "BILLING_LOCK_TTL_HOURS: not a number of hours: 'two'"),
])
def test_bad_values_are_one_line_usage_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError) as e:
        load(env=env)
    assert str(e.value) == message


def test_bool_words_as_click_reads_them() -> None:
    for word, value in (("1", True), ("yes", True), ("ON", True), ("0", False), ("no", False), ("off", False)):
        assert load(env={"BILLING_STREAM_OPTIONAL": word}).stream_optional is value


def test_workers_0_runs_in_this_process_as_1_does() -> None:
    assert load({"workers": "0"}).workers == 1


def test_s3_max_attempts_from_env_and_file(tmp_path: Path) -> None:
    assert load(env={"BILLING_S3_MAX_ATTEMPTS": "3"}).s3_max_attempts == 3
    assert load(file=toml(tmp_path, "s3-max-attempts = 5\n")).s3_max_attempts == 5


def test_lock_ttl_from_env_with_the_older_hours_variable_below_it(tmp_path: Path) -> None:
    assert load(env={"BILLING_LOCK_TTL": "90s"}).lock_ttl == dt.timedelta(seconds=90)
    assert load(env={"BILLING_LOCK_TTL_HOURS": "0.5"}).lock_ttl == dt.timedelta(minutes=30)
    assert load(env={"BILLING_LOCK_TTL": "90s", "BILLING_LOCK_TTL_HOURS": "5"}).lock_ttl == dt.timedelta(seconds=90)
    assert load(env={"BILLING_LOCK_TTL": "", "BILLING_LOCK_TTL_HOURS": "0"}).lock_ttl == dt.timedelta(0)
    file = toml(tmp_path, 'lock_ttl = "10m"\n')
    assert load(file=file).lock_ttl == dt.timedelta(minutes=10)
    assert load(env={"BILLING_LOCK_TTL_HOURS": "1"}, file=file).lock_ttl == dt.timedelta(hours=1)  # env > file


@pytest.mark.parametrize(("text", "key", "where"), [
    ('latenes = "3h"\n', "latenes", "top level"),
    ('[billing]\ntolerance_rell = 0.1\n', "tolerance_rell", "[billing]"),
])
def test_unknown_file_key_names_it(tmp_path: Path, text: str, key: str, where: str) -> None:
    file = toml(tmp_path, text)
    with pytest.raises(UsageError) as e:
        load(file=file)
    assert str(e.value) == f"{file}: unknown key {key!r} ({where}); keys are option names, e.g. lateness"


def test_file_keys_of_other_purposes_are_allowed_and_other_tables_ignored(tmp_path: Path) -> None:
    file = toml(tmp_path, '[billing]\nversion = 2\nlateness = "1h"\n[other-tool]\nanything = 1\n')
    assert load(file=file, other_keys={"version"}).lateness == dt.timedelta(hours=1)
    with pytest.raises(UsageError, match="unknown key 'version'"):
        load(file=file)


def test_unreadable_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^cannot read .*billing.toml: "):
        load(file=toml(tmp_path, "lateness = \n"))


def test_layer_reads_only_the_named_fields() -> None:
    env = {"BILLING_LATENESS": "soon", "BILLING_S3_MAX_ATTEMPTS": "2"}  # a bad lateness is not show's business
    assert ReconcileConfig.layer(("out", "s3_endpoint", "s3_max_attempts", "lock_ttl"), cli={"out": "/o"}, env=env) == {
        "out": "/o", "s3_endpoint": None, "s3_max_attempts": 2, "lock_ttl": dt.timedelta(minutes=2)}


def test_local_settings_change_neither_the_plan_nor_its_id() -> None:
    from billing.run.distributed import Plan

    a, b = load(), load(env={"BILLING_S3_MAX_ATTEMPTS": "2", "BILLING_LOCK_TTL": "1s"})
    assert a.as_dict() == b.as_dict() and not set(LOCAL) & set(a.as_dict())
    assert ReconcileConfig.from_dict(b.as_dict()) == a
    assert Plan(a, [], [], []).plan_id == Plan(b, [], [], []).plan_id
    assert Plan(a, [], [], []).to_json() == Plan(b, [], [], []).to_json()


def test_every_field_has_a_parser_and_one_docstring() -> None:
    """ReconcileConfig's own fields, and those it inherits from AnomalySettings (anomaly_settings.py) first."""
    from billing import anomaly_settings

    documented = []
    for module, name in ((anomaly_settings, "AnomalySettings"), (config, "ReconcileConfig")):
        tree = ast.parse(Path(module.__file__ or "").read_text(encoding="utf-8"))
        cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name)
        documented += [a.target.id for a, doc in zip(cls.body, cls.body[1:], strict=False)
                       if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                       and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)]
    names = [f.name for f in fields(ReconcileConfig)]
    assert sorted(documented) == sorted(names)
    assert sorted(config._PARSE) == sorted(names)


def test_only_the_config_reads_billing_variables() -> None:
    """BILLING_* names appear in code only in config.py; faults.py's fault-injection hooks are test hooks,
    and the CLI's --config and --plan (no config fields: which file, which plan) are read by click."""
    allowed = {"config.py": None, "faults.py": {"BILLING_FAULT_KILL_AT", "BILLING_FAULT_PAUSE_AT"},
               "cli/options.py": {"BILLING_CONFIG"}, "cli/run.py": {"BILLING_PLAN"}}
    root = Path(billing.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and re.fullmatch(r"BILLING_\w+",
                                                                                                node.value):
                ok = allowed.get(rel, set())
                if ok is not None and node.value not in ok:
                    found.append(f"{rel}:{node.lineno} {node.value}")
    assert found == []


def test_help_shows_the_config_default_and_env_var() -> None:
    r = CliRunner().invoke(cli, ["reconcile", "--help"], terminal_width=200)
    assert r.exit_code == 0
    text = " ".join(r.output.split())
    assert "[env var: BILLING_LATENESS; default: 2h]" in text
    assert "[env var: BILLING_DATE; required]" in text
    assert "[env var: BILLING_WORKERS; default: 1]" in text


def test_env_is_below_the_config_file_for_the_cli_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An env var beats the file, the command line beats both; click itself reads no BILLING_* field."""
    import billing.run.local

    seen = {}
    monkeypatch.setattr(billing.run.local, "reconcile", lambda cfg: seen.setdefault("cfg", cfg) and exit(0))
    file = toml(tmp_path, 'raw = "/r"\nstream = "/s"\nout = "/o"\ndate = "2026-11-26"\ns3_max_attempts = 4\n')
    monkeypatch.setenv("BILLING_LOCK_TTL", "30s")
    CliRunner().invoke(cli, ["reconcile", "--config", str(file)])
    assert (seen["cfg"].s3_max_attempts, seen["cfg"].lock_ttl) == (4, dt.timedelta(seconds=30))


def test_run_slice_and_merge_take_their_own_local_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import billing.run.distributed

    calls = []
    monkeypatch.setattr(billing.run.distributed, "run_planned_slice", lambda uri, k, **kw: calls.append(kw) or "ok")
    monkeypatch.setattr(billing.run.distributed, "merge_plan", lambda uri, **kw: calls.append(kw) or exit(0))
    monkeypatch.setenv("BILLING_S3_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("BILLING_LOCK_TTL", "45s")
    runner = CliRunner()
    r = runner.invoke(cli, ["run-slice", "--plan", "p.json", "--slice", "0", "--s3-endpoint", "http://e"])
    assert r.exit_code == 0, r.output
    runner.invoke(cli, ["merge", "--plan", "p.json"])
    assert calls == [{"s3_endpoint": "http://e", "s3_max_attempts": 3},
                     {"s3_endpoint": None, "s3_max_attempts": 3, "lock_ttl": dt.timedelta(seconds=45)}]


def test_a_plan_carries_no_local_settings_and_gets_the_loaders(tmp_path: Path) -> None:
    from billing.run.distributed import load_plan, plan_day

    write_raw(tmp_path / "raw", "dt=2026-11-26/hour=10/a.parquet", [click(at(10), seq=1)])
    write_stream(tmp_path / "stream", [(1, at(10), 1)])
    cfg = ReconcileConfig.load(cli={"date": "2026-11-26", "raw": str(tmp_path / "raw"),
                                    "stream": str(tmp_path / "stream"), "out": str(tmp_path / "out")},
                               env={"BILLING_S3_MAX_ATTEMPTS": "2", "BILLING_LOCK_TTL": "1s"})
    plan, uri, _ = plan_day(cfg)
    assert not set(LOCAL) & set(json.loads(Path(uri).read_text())["config"])
    loaded, _, _ = load_plan(uri, s3_max_attempts=5, lock_ttl=dt.timedelta(minutes=7))
    assert (loaded.cfg.s3_max_attempts, loaded.cfg.lock_ttl, loaded.plan_id) == (5, dt.timedelta(minutes=7),
                                                                                 plan.plan_id)


def test_s3_max_attempts_reaches_both_s3_clients() -> None:
    from billing.io.storage import open_store

    store = open_store("s3://bucket/prefix", endpoint="http://127.0.0.1:9", max_attempts=3)
    # botocore's retries["max_attempts"] counts the retries after the first attempt: it reports 3 + 1 in all
    assert store._s3.meta.config.retries == {"total_max_attempts": 4, "mode": "standard"}


def test_lock_ttl_reaches_the_lock(tmp_path: Path) -> None:
    from billing.day.publish import Day
    from billing.io.storage import open_store

    day = Day(open_store(str(tmp_path)), dt.date(2026, 11, 26))
    with day.lock("run-1", dt.timedelta(seconds=90)) as held:
        body = json.loads((tmp_path / "dt=2026-11-26/_lock.json").read_text())
        assert held.ttl == dt.timedelta(seconds=90)
    expires = dt.datetime.fromisoformat(body["expires_at"]) - dt.datetime.now(dt.UTC)
    assert dt.timedelta(seconds=60) < expires <= dt.timedelta(seconds=90)


@pytest.mark.parametrize(("layer", "message"), [
    ({"tolerance_abs": 0.5}, "--tolerance-abs: not an integer: 0.5"),
    ({"tolerance_abs": float("inf")}, "--tolerance-abs: not an integer: inf"),
    ({"slices": 1.5}, "--slices: not an integer: 1.5"),
    ({"tolerance_rel": True}, "--tolerance-rel: not a number: True"),
    ({"date": "20261126"}, "not a date: '20261126' (use YYYY-MM-DD)"),
    ({"date": "1970-01-01"}, "--date 1970-01-01: days before 1970-01-02 cannot be reconciled"),
    ({"lateness": "25h"}, "--lateness 25h: at most 1d"),
    ({"snowflake_epoch_ms": 2**70}, f"--snowflake-epoch-ms {2**70}: not an instant in ms since 1970"),
    ({"memory_limit": "999999999TB"}, "not a size: '999999999TB' (at most 8EiB)"),
])
def test_values_that_cannot_be_read_exactly_are_refused(layer: dict, message: str) -> None:
    """From the outsider trial: a TOML or CLI value is taken exactly as written, or refused (exit 2, one line)."""
    base = {"date": "2026-11-26", "raw": "/r", "stream": "/s", "out": "/o", **layer}
    with pytest.raises(UsageError) as e:
        ReconcileConfig.load(cli=base, env={})
    assert str(e.value).startswith(message), str(e.value)


def test_toml_booleans_as_numbers_are_read(tmp_path: Path) -> None:
    file = toml(tmp_path, 'raw = "/r"\nstream = "/s"\nout = "/o"\ndate = "2026-11-26"\nallow_empty = 0\n'
                          'stream_optional = 1\n')
    cfg = ReconcileConfig.load(cli={}, env={}, file=file)
    assert (cfg.allow_empty, cfg.stream_optional) == (False, True)


# --- a stream table's settings (issue 13) ------------------------------------------------------------------

@pytest.mark.parametrize(("uri", "shown"), [
    ("postgresql://bill:pw%40x@db:5432/sinks?table=a.b&sslmode=require&password=pw2",
     "postgresql://bill@db:5432/sinks?table=a.b&sslmode=require"),
    ("postgres://db/sinks?password=pw&table=t", "postgres://db/sinks?table=t"),
    ("postgresql://u:pw@db/d?sslpassword=k", "postgresql://u@db/d"),
    ("s3://bucket/user:pw@x", "s3://bucket/user:pw@x"),  # not a database URI: untouched
    ("/data/stream", "/data/stream"),
])
def test_redact_uri_drops_every_password(uri: str, shown: str) -> None:
    assert config.redact_uri(uri) == shown


def test_stream_table_settings_layer_and_a_plan_holds_no_password(tmp_path: Path) -> None:
    base = {"date": "2026-11-26", "raw": "r", "out": "o", "stream": "postgresql://u:Sekr1t@h/d?table=t"}
    (tmp_path / "c.toml").write_text('stream-columns = "clicks=n"\npg-statement-timeout = "30s"\n')
    cfg = ReconcileConfig.load(cli=base, env={"BILLING_PG_CONNECT_TIMEOUT": "3s"}, file=tmp_path / "c.toml")
    assert (cfg.stream_columns, cfg.pg_connect_timeout, cfg.pg_statement_timeout) == (
        "clicks=n", dt.timedelta(seconds=3), dt.timedelta(seconds=30))
    env = ReconcileConfig.load(cli={**base, "stream_columns": "ad_id=a"}, env={"BILLING_STREAM_COLUMNS": "clicks=x"})
    assert (env.stream_columns, env.pg_connect_timeout, env.pg_statement_timeout) == (
        "ad_id=a", dt.timedelta(seconds=10), None)
    d = cfg.as_dict()
    assert "Sekr1t" not in json.dumps(d) and "Sekr1t" not in json.dumps(cfg.run_settings())
    back = ReconcileConfig.from_dict(d)
    assert back.stream == "postgresql://u@h/d?table=t" and back.pg_statement_timeout == dt.timedelta(seconds=30)
    old = {k: v for k, v in d.items() if k not in ("stream_columns", "pg_connect_timeout", "pg_statement_timeout")}
    assert ReconcileConfig.from_dict(old).pg_connect_timeout == dt.timedelta(seconds=10)  # a plan from before

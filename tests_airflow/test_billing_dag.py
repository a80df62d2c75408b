"""The Airflow DAG against a real Airflow install (its own venv: `make test-airflow`)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DAGS = ROOT / "jobs" / "airflow"
DAY = dt.date(2026, 11, 26)


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("airflow-home")
    os.environ.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                       "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "AIRFLOW__CORE__UNIT_TEST_MODE": "True"})
    subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True,
                   env=os.environ.copy())
    return home


def test_dag_parses_without_work_or_connections(airflow_home: Path) -> None:
    """Parse in a fresh interpreter: no import errors, billing not imported, no socket opened."""
    code = f"""
import socket, sys, time
def refuse(*a, **k):
    raise AssertionError("network connection at parse time")
socket.socket.connect = refuse
t = time.monotonic()
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS)!r})
assert not bag.import_errors, bag.import_errors
dag = bag.dags["billing_reconcile"]
print(sorted(t.task_id for t in dag.tasks))
print(sorted(m for m in sys.modules if m.startswith("billing")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert r.returncode == 0, r.stderr[-3000:]
    tasks, billing_modules = r.stdout.strip().splitlines()[-2:]
    assert eval(tasks) == ["alert_drift", "billable", "check_drift", "export_invoicing", "merge", "parts_of", "plan",
                           "run_slice", "set_aside", "slices_of", "wait_for_raw_horizon"]
    assert eval(billing_modules) == []  # the DAG file does no work at parse time


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_dag_test_runs_a_demo_day_like_the_cli(airflow_home: Path, tmp_path: Path) -> None:
    from billing.day.outputs import CONTENT_FILES
    from billing.demo import generate

    lake = tmp_path / "lake"
    generate(lake, DAY, rows=8_000, seed=3)
    raw = lake / "raw"
    for d, hours in ((DAY, range(24)), (DAY + dt.timedelta(days=1), range(2))):
        for h in hours:  # an ingest tier marks every finished hour, with or without rows
            folder = raw / f"dt={d.isoformat()}" / f"hour={h:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "_SUCCESS").write_bytes(b"")
    os.environ.update({"AIRFLOW_VAR_BILLING_RAW": str(raw), "AIRFLOW_VAR_BILLING_STREAM": str(lake / "stream"),
                       "AIRFLOW_VAR_BILLING_OUT": str(tmp_path / "dag-out"), "AIRFLOW_VAR_BILLING_SLICES": "3"})
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["billing_reconcile"]
    run = dag.test(logical_date=dt.datetime(2026, 11, 27, tzinfo=dt.UTC))  # interval [D, D+1)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["merge"] == "success" and states["alert_drift"] == "success" and states["billable"] == "skipped"
    assert states["export_invoicing"] == "skipped"  # off by default (no billing_invoicing_uri)
    assert sum(1 for ti in run.get_task_instances() if ti.task_id == "run_slice") == 3
    assert [ti.state for ti in run.get_task_instances() if ti.task_id == "set_aside"] == ["success"]

    cli = subprocess.run([sys.executable, "-m", "billing", "-q", "reconcile", "--date", DAY.isoformat(), "--raw",
                          str(raw), "--stream", str(lake / "stream"), "--out", str(tmp_path / "cli-out")],
                         capture_output=True, text=True)
    assert cli.returncode == 3, cli.stderr
    a = tmp_path / "dag-out" / f"dt={DAY}" / "v=1"
    b = tmp_path / "cli-out" / f"dt={DAY}" / "v=1"
    for name in CONTENT_FILES:
        assert sha(a / name) == sha(b / name), name
    from deltalake import DeltaTable  # merge published the tables: the current version's totals, with a date

    table = DeltaTable(str(tmp_path / "dag-out" / "tables" / "totals")).to_pyarrow_table()
    import pyarrow.parquet as pq

    key = [("ad_id", "ascending"), ("window_start", "ascending")]
    assert table.drop_columns(["date"]).sort_by(key).to_pylist() == pq.read_table(a / "totals.parquet").to_pylist()
    assert json.loads((a / "summary.json").read_text())["exit_code"] == 3


def test_month_dag_parses_without_work_or_connections(airflow_home: Path) -> None:
    """The monthly DAG (issue 15): a sensor on the month's last day, then the month's books; no work at parse."""
    code = f"""
import socket, sys
def refuse(*a, **k):
    raise AssertionError("network connection at parse time")
socket.socket.connect = refuse
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder={str(DAGS)!r})
assert not bag.import_errors, bag.import_errors
dag = bag.dags["billing_month"]
print(sorted(t.task_id for t in dag.tasks))
print(dag.get_task("build_month").trigger_rule)
print(sorted(m for m in sys.modules if m.startswith("billing")))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert r.returncode == 0, r.stderr[-3000:]
    tasks, rule, billing_modules = r.stdout.strip().splitlines()[-3:]
    assert eval(tasks) == ["build_month", "wait_for_last_day"]
    assert rule in ("all_done", "TriggerRule.ALL_DONE")  # a month with missing days builds when the sensor times out
    assert eval(billing_modules) == []


def test_month_dag_test_builds_the_month_like_the_cli(airflow_home: Path, tmp_path: Path) -> None:
    from billing.demo_days import generate_days

    generate_days(tmp_path / "lake", dt.date(2026, 11, 29), 2, rows=1000, seed=2)
    out = tmp_path / "out"
    for day in ("2026-11-29", "2026-11-30"):
        r = subprocess.run([sys.executable, "-m", "billing", "-q", "reconcile", "--date", day, "--raw",
                            str(tmp_path / "lake" / "raw"), "--stream", str(tmp_path / "lake" / "stream"),
                            "--out", str(out)], capture_output=True, text=True)
        assert r.returncode in (0, 3), r.stderr
    os.environ["AIRFLOW_VAR_BILLING_OUT"] = str(out)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(DAGS)).dags["billing_month"]
    run = dag.test(logical_date=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))  # interval [2026-11-01, 2026-12-01)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states == {"wait_for_last_day": "success", "build_month": "success"}
    days = (out / "month=2026-11" / "v=1" / "month_days.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(days) == 31 and sum(",missing," in d for d in days) == 28
    cli = subprocess.run([sys.executable, "-m", "billing", "month", "--month", "2026-11", "--out", str(out)],
                         capture_output=True, text=True)
    assert cli.returncode == 0 and "unchanged, still version 1" in cli.stdout, cli.stdout + cli.stderr

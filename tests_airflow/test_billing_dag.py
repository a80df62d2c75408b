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
    assert eval(tasks) == ["alert_drift", "billable", "check_drift", "merge", "parts_of", "plan", "run_slice",
                           "set_aside", "slices_of", "wait_for_raw_horizon"]
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
    assert json.loads((a / "summary.json").read_text())["exit_code"] == 3

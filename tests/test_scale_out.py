"""plan → run-slice × N → merge gives exactly the single-process result; retries are idempotent."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing.cli import cli
from billing.pipeline import CONTENT_FILES
from tests.conftest import DEMO_DATE

pytestmark = pytest.mark.slow


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def args(lake: Path, out: Path) -> list[str]:
    return ["--date", str(DEMO_DATE), "--raw", str(lake / "raw"), "--stream", str(lake / "stream"),
            "--out", str(out)]


def test_plan_run_slices_merge_equals_one_process(demo_lake: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    single = runner.invoke(cli, ["-q", "reconcile", *args(demo_lake, tmp_path / "single")])
    assert single.exit_code == 3, single.output
    r = runner.invoke(cli, ["-q", "plan", *args(demo_lake, tmp_path / "fanout"), "--slices", "4"])
    assert r.exit_code == 0, r.output
    plan_uri = r.stdout.strip()
    plan = json.loads(Path(plan_uri).read_text())
    assert len(plan["slices"]) == 4 and plan["slices"][0]["lo"] is None and plan["slices"][-1]["hi"] is None
    again = runner.invoke(cli, ["-q", "plan", *args(demo_lake, tmp_path / "fanout"), "--slices", "4"])
    assert again.stdout.strip() == plan_uri  # deterministic plan id
    early = runner.invoke(cli, ["merge", "--plan", plan_uri])
    assert early.exit_code == 2 and "have no results yet" in early.stderr
    for k in (3, 0, 2, 1, 2):  # any order; slice 2 retried
        s = runner.invoke(cli, ["-q", "run-slice", "--plan", plan_uri, "--slice", str(k)])
        assert s.exit_code == 0, s.output
    m = runner.invoke(cli, ["-q", "merge", "--plan", plan_uri, "--json"])
    assert m.exit_code == 3, m.output
    a = tmp_path / "single" / f"dt={DEMO_DATE}" / "v=1"
    b = tmp_path / "fanout" / f"dt={DEMO_DATE}" / "v=1"
    for name in CONTENT_FILES:
        assert sha(a / name) == sha(b / name), name
    retried = runner.invoke(cli, ["-q", "merge", "--plan", plan_uri])
    assert retried.exit_code == 3 and "unchanged" in retried.stdout
    bad = runner.invoke(cli, ["run-slice", "--plan", plan_uri, "--slice", "9"])
    assert bad.exit_code == 2 and "the plan has slices 0..3" in bad.stderr


def test_run_slice_refuses_inputs_changed_since_the_plan(demo_lake: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    plan_uri = runner.invoke(cli, ["-q", "plan", *args(demo_lake, tmp_path / "o"), "--slices", "2"]).stdout.strip()
    victim = sorted((demo_lake / "raw" / f"dt={DEMO_DATE}").rglob("*.parquet"))[0]
    victim.write_bytes(victim.read_bytes())  # same bytes, new mtime: a rewritten file
    import os

    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    r = runner.invoke(cli, ["run-slice", "--plan", plan_uri, "--slice", "0"])
    assert r.exit_code == 2 and "changed or vanished since the plan was made" in r.stderr

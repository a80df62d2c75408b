"""Trust under faults: SIGKILL at every fault point, concurrent runs, flaky and broken object stores, secrets."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from billing import faults
from billing.cli import cli
from billing.config import ReconcileConfig
from billing.day.outputs import CONTENT_FILES, OUTPUT_FILES
from billing.run.local import reconcile
from tests.conftest import DEMO_DATE
from tests.s3proxy import FaultProxy

ROOT = Path(__file__).resolve().parents[1]
DAY = f"dt={DEMO_DATE}"


def run_cli(args: list[str], env_extra: dict[str, str] | None = None, wait: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BILLING_")}
    env.update(env_extra or {})
    cmd = [sys.executable, "-m", "billing", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class LocalOut:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def read(self, rel: str) -> bytes | None:
        p = self.root / rel
        return p.read_bytes() if p.exists() else None


class S3Out:
    def __init__(self, s3, prefix: str) -> None:
        self.s3, self.prefix = s3, prefix
        self.uri = f"s3://{s3.bucket}/{prefix}"

    def read(self, rel: str) -> bytes | None:
        try:
            return self.s3.read(f"{self.prefix}/{rel}")
        except self.s3.client.exceptions.NoSuchKey:
            return None


def assert_version_intact(out, version: int) -> dict:
    """The day's current version is ``version``, and every file of it matches its manifest."""
    assert json.loads(out.read(f"{DAY}/_current.json")) == {"version": version, "dir": f"v={version}"}
    manifest = json.loads(out.read(f"{DAY}/v={version}/manifest.json"))
    for name, meta in manifest["outputs"].items():
        assert sha(out.read(f"{DAY}/v={version}/{name}")) == meta["sha256"], name
    return manifest


#: mid_stream_read is reached only with a stream table (killed there in tests/test_postgres_cli.py).
KILL_POINTS = [p for p in faults.POINTS if p not in (*faults.COMMITTED, "mid_stream_read")]


def crash_matrix(raw: str, stream: str, out, env: dict[str, str], versions_seen) -> dict[str, int]:
    base = ["reconcile", "--date", str(DEMO_DATE), "--raw", raw, "--stream", stream, "--out", out.uri,
            "--memory-limit", "1536MiB"]
    first = run_cli(base, env)
    assert first.returncode == 3, first.stderr
    v1 = assert_version_intact(out, 1)
    restated = [*base, "--lateness", "3h"]  # a run whose outputs differ: it would commit v2
    killed = 0
    for point in KILL_POINTS:
        r = run_cli(restated, {**env, faults.ENV: point})
        assert r.returncode == -9, (point, r.returncode, r.stderr[-2000:])
        killed += 1
        assert assert_version_intact(out, 1)["run_id"] == v1["run_id"], point
        show = run_cli(["show", "--date", str(DEMO_DATE), "--out", out.uri], env)
        assert show.returncode == 0 and json.loads(show.stdout) == json.loads(out.read(f"{DAY}/v=1/summary.json"))
    # past the version commit: the first kill leaves the new version current and the tables behind it; the
    # re-runs find the outputs unchanged and die bringing the tables level (before any table, after totals)
    for point in faults.COMMITTED:
        r = run_cli(restated, {**env, faults.ENV: point})
        assert r.returncode == -9, (point, r.returncode, r.stderr[-2000:])
        killed += 1
    after = json.loads(out.read(f"{DAY}/_current.json"))["version"]
    assert after > 1
    assert_version_intact(out, after)
    # a re-run after all that: complete, correct, and equal to a clean run elsewhere; the tables level
    final = run_cli(restated, env)
    assert final.returncode == 3, final.stderr
    assert "unchanged" in final.stdout and f"tables at version {after}: wrote drift, conflicts, quarantine, days " \
        "(unchanged: totals)" in final.stdout, final.stdout
    # OUT/dt=*/v=*/*.parquet reads (DuckDB, pyarrow.dataset) and sees exactly the committed versions
    assert versions_seen() == ({1, after}, {1, after})
    return {"killed": killed, "version": after}


@pytest.mark.slow
def test_sigkill_at_every_point_local(demo_lake: Path, tmp_path: Path) -> None:
    out = LocalOut(tmp_path / "out")
    from tests.test_publish import glob_versions_local

    result = crash_matrix(str(demo_lake / "raw"), str(demo_lake / "stream"), out, {},
                          lambda: glob_versions_local(out.root))
    clean = reconcile(ReconcileConfig(date=DEMO_DATE, raw=str(demo_lake / "raw"), stream=str(demo_lake / "stream"),
                                      out=str(tmp_path / "clean"), lateness=dt.timedelta(hours=3)))
    for name in OUTPUT_FILES:
        assert sha(out.read(f"{DAY}/v={result['version']}/{name}")) == sha((Path(clean.commit.url) / name).read_bytes())
    assert not (tmp_path / "out" / DAY / "_lock.json").exists()
    assert result["killed"] == len(KILL_POINTS) + len(faults.COMMITTED)


@pytest.mark.slow
@pytest.mark.integration
def test_sigkill_at_every_point_s3(s3, demo_lake: Path) -> None:
    raw = s3.upload_tree(demo_lake / "raw", "raw")
    stream = s3.upload_tree(demo_lake / "stream", "stream")
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                      "AWS_ENDPOINT_URL")}
    from tests.test_publish import glob_versions_s3

    result = crash_matrix(raw, stream, S3Out(s3, "out"), env, lambda: glob_versions_s3(s3, "out"))
    assert result["killed"] == len(KILL_POINTS) + len(faults.COMMITTED)


def test_concurrent_run_fails_with_exit_2_naming_the_holder(demo_lake: Path, tmp_path: Path) -> None:
    args = ["reconcile", "--date", str(DEMO_DATE), "--raw", str(demo_lake / "raw"), "--stream",
            str(demo_lake / "stream"), "--out", str(tmp_path / "out")]
    holder = run_cli(args, {faults.PAUSE_ENV: "after_lock:6"}, wait=False)
    lock = tmp_path / "out" / DAY / "_lock.json"
    deadline = time.monotonic() + 60
    while not lock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists()
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2
    assert f"pid {holder.pid}" in r.stderr and "is being reconciled by another run" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    holder.wait(timeout=120)
    assert holder.returncode == 3
    assert not lock.exists()
    assert json.loads((tmp_path / "out" / DAY / "_current.json").read_text())["version"] == 1
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 3 and "unchanged" in again.stdout


def test_stale_lock_of_a_dead_process_is_broken(tmp_path: Path, demo_lake: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock = tmp_path / "out" / DAY / "_lock.json"
    lock.parent.mkdir(parents=True)
    import socket

    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout), "run_id": "dead",
                                "acquired_at": "2026-11-27T00:00:00+00:00",
                                "expires_at": "2099-01-01T00:00:00+00:00"}))
    result = reconcile(ReconcileConfig(date=DEMO_DATE, raw=str(demo_lake / "raw"), stream=str(demo_lake / "stream"),
                                       out=str(tmp_path / "out")))
    assert result.commit.version == 1 and not lock.exists()


@pytest.mark.integration
def test_transient_s3_faults_are_retried_and_the_result_is_exact(s3, demo_lake: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    raw = s3.upload_tree(demo_lake / "raw", "raw")
    stream = s3.upload_tree(demo_lake / "stream", "stream")
    clean = reconcile(ReconcileConfig(date=DEMO_DATE, raw=str(demo_lake / "raw"), stream=str(demo_lake / "stream"),
                                      out=str(tmp_path / "clean")))
    with FaultProxy(s3.endpoint, failure_rate=0.2, seed=11) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        result = reconcile(ReconcileConfig(date=DEMO_DATE, raw=raw, stream=stream, out=f"s3://{s3.bucket}/out"))
    print(f"\nfault proxy: {proxy.requests} requests, {proxy.injected} failed on purpose "
          f"({proxy.injected / proxy.requests:.1%}): {proxy.faults}")
    assert proxy.injected >= 10 and proxy.faults["drop"] > 0 and proxy.faults["503"] > 0
    assert result.exit_code == clean.exit_code == 3
    # the report names its inputs (s3:// here, local paths there); every data file and export is identical
    for name in (*CONTENT_FILES, "drift_flagged.csv", "ads_daily.csv"):
        assert sha(s3.read(f"out/{DAY}/v=1/{name}")) == sha((Path(clean.commit.url) / name).read_bytes()), name


@pytest.mark.integration
@pytest.mark.parametrize("status", [503, 403])
def test_persistent_s3_errors_exit_2_and_publish_nothing(s3, demo_lake: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, status: int) -> None:
    raw = s3.upload_tree(demo_lake / "raw", "raw")
    monkeypatch.setenv("BILLING_S3_MAX_ATTEMPTS", "2")
    with FaultProxy(s3.endpoint, permanent=status) as proxy:
        r = CliRunner().invoke(cli, ["reconcile", "--date", str(DEMO_DATE), "--raw", raw, "--stream",
                                     str(demo_lake / "stream"), "--out", str(tmp_path / "out"),
                                     "--s3-endpoint", proxy.url])
    assert r.exit_code == 2, r.output
    assert r.stderr.startswith("billing: error: cannot list s3://") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.integration
def test_credentials_never_appear_in_outputs_or_logs(s3, demo_lake: Path, tmp_path: Path) -> None:
    key, secret = os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]
    raw = s3.upload_tree(demo_lake / "raw", "raw")
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION",
                                      "AWS_ENDPOINT_URL")}
    runs = [
        run_cli(["reconcile", "--date", str(DEMO_DATE), "--raw", raw, "--stream", str(demo_lake / "stream"),
                 "--out", str(tmp_path / "out")], env),
        run_cli(["--debug", "reconcile", "--date", str(DEMO_DATE), "--raw", f"s3://no-such-bucket-{s3.bucket}/x",
                 "--stream", str(demo_lake / "stream"), "--out", str(tmp_path / "out2")], env),
        run_cli(["report", "--date", str(DEMO_DATE), "--out", str(tmp_path / "out")], env),
    ]
    assert [r.returncode for r in runs] == [3, 2, 0]  # --debug keeps exit 2 and adds the traceback
    assert "Traceback (most recent call last)" in runs[1].stderr
    texts = [r.stdout + r.stderr for r in runs]
    texts += [p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert len(texts) > 10
    for text in texts:
        assert key not in text and secret not in text

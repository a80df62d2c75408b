"""The S3 path end to end against a real HTTP S3 endpoint (moto's server), no patched clients."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from billing.config import ReconcileConfig
from billing.run.local import reconcile
from tests.conftest import DEMO_DATE

pytestmark = pytest.mark.integration

DATA_FILES = ("totals.parquet", "drift.parquet", "quarantine.parquet", "conflicts.parquet", "summary.json")


def cfg(raw: str, stream: str, out: str, **kw) -> ReconcileConfig:
    return ReconcileConfig(date=DEMO_DATE, raw=raw, stream=stream, out=out, memory_limit=1536 << 20, **kw)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_s3_in_s3_out_matches_local_and_truth(s3, demo_lake: Path, tmp_path: Path) -> None:
    raw = s3.upload_tree(demo_lake / "raw", "clicks")
    stream = s3.upload_tree(demo_lake / "stream", "agg")
    result = reconcile(cfg(raw, stream, f"s3://{s3.bucket}/billing"))
    truth = json.loads((demo_lake / "truth" / "truth.json").read_text())
    assert result.summary["ledger"] == truth["ledger"]
    assert result.summary["stream"] == truth["stream"]
    assert result.exit_code == 3
    current = json.loads(s3.read(f"billing/dt={DEMO_DATE}/_current.json"))
    assert current == {"version": 1, "dir": "v=1"}
    keys = s3.keys(f"billing/dt={DEMO_DATE}/v=1/")
    assert {k.rsplit("/", 1)[1] for k in keys} >= {*DATA_FILES, "manifest.json"}
    # local run over the same files: byte-identical data files
    local = reconcile(cfg(str(demo_lake / "raw"), str(demo_lake / "stream"), str(tmp_path / "out")))
    for name in DATA_FILES:
        assert sha(s3.read(f"billing/dt={DEMO_DATE}/v=1/{name}")) == sha((Path(local.commit.url) / name).read_bytes())
    manifest = json.loads(s3.read(f"billing/dt={DEMO_DATE}/v=1/manifest.json"))
    assert all(f["path"].startswith(f"s3://{s3.bucket}/clicks/") and f["version"] for f in manifest["inputs"]["raw"])
    for name in DATA_FILES:
        assert manifest["outputs"][name]["sha256"] == sha(s3.read(f"billing/dt={DEMO_DATE}/v=1/{name}"))


def test_s3_in_local_out_with_explicit_endpoint(s3, demo_lake: Path, tmp_path: Path, monkeypatch) -> None:
    raw = s3.upload_tree(demo_lake / "raw", "clicks")
    stream = s3.upload_tree(demo_lake / "stream", "agg")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    result = reconcile(cfg(raw, stream, str(tmp_path / "out"), s3_endpoint=s3.endpoint))
    truth = json.loads((demo_lake / "truth" / "truth.json").read_text())
    assert result.summary["ledger"] == truth["ledger"]
    assert pq.read_table(Path(result.commit.url) / "totals.parquet").to_pylist() == pq.read_table(
        demo_lake / "truth" / "totals.parquet").to_pylist()


def test_local_in_s3_out_then_show_reads_it(s3, demo_lake: Path) -> None:
    from click.testing import CliRunner

    from billing.cli import cli

    out = f"s3://{s3.bucket}/published"
    runner = CliRunner()
    r = runner.invoke(cli, ["-q", "reconcile", "--date", str(DEMO_DATE), "--raw", str(demo_lake / "raw"),
                            "--stream", str(demo_lake / "stream"), "--out", out])
    assert r.exit_code == 3, r.output
    r = runner.invoke(cli, ["show", "--date", str(DEMO_DATE), "--out", out])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == json.loads(s3.read(f"published/dt={DEMO_DATE}/v=1/summary.json"))

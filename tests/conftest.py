from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.demo import generate

DEMO_DATE = dt.date(2026, 11, 26)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BILLING_* or AWS_* variable of the developer's shell leaks into a test."""
    for k in list(os.environ):
        if k.startswith(("BILLING_", "AWS_")):
            monkeypatch.delenv(k)


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("demo-cache")


def _demo(cache: Path, seed: int, rows: int, layout: str = "hour") -> Path:
    folder = cache / f"seed{seed}-{rows}-{layout}"
    if not (folder / "truth" / "truth.json").exists():
        generate(folder, DEMO_DATE, rows=rows, seed=seed, layout=layout)
    return folder


@pytest.fixture
def demo_lake(demo_cache: Path, tmp_path: Path) -> Iterator[Path]:
    """A private copy of a small demo lake (seed 1, 20k rows) whose outputs go under tmp_path."""
    src = _demo(demo_cache, 1, 20_000)
    dst = tmp_path / "lake"
    shutil.copytree(src, dst)
    yield dst


@pytest.fixture(scope="session")
def demo_factory(demo_cache: Path):
    return lambda seed, rows=20_000, layout="hour": _demo(demo_cache, seed, rows, layout)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real HTTP S3 endpoint: moto's server on 127.0.0.1 (pyarrow's S3 client talks to it over HTTP)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """Credentials and endpoint in the standard AWS variables, and a fresh bucket per test."""
    import uuid

    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFAKEBILLINGTEST1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake/secret/billing+TEST+key+0123456789")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    bucket = f"lake-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)

    class S3:
        endpoint = moto_endpoint

        def __init__(self) -> None:
            self.client = client
            self.bucket = bucket

        def upload_tree(self, local: Path, prefix: str) -> str:
            for p in sorted(local.rglob("*")):
                if p.is_file():
                    client.upload_file(str(p), bucket, f"{prefix}/{p.relative_to(local).as_posix()}")
            return f"s3://{bucket}/{prefix}"

        def read(self, key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        def keys(self, prefix: str = "") -> list[str]:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    return S3()

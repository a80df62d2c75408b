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

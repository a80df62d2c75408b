"""Type checking is part of the tests: mypy, configured in pyproject.toml ([tool.mypy]), is clean on billing/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow  # about 11 s from a cold cache (a fresh clone, as in CI)
def test_mypy_is_clean_on_billing() -> None:
    done = subprocess.run([sys.executable, "-m", "mypy", "billing"], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr

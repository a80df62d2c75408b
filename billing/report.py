"""Report stage (placeholder while the core is brought up; replaced before commit)."""
from pathlib import Path
from typing import Any


def render_all(folder: Path, **kw: Any) -> dict[str, Path]:
    return {}

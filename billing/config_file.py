"""Reading billing's TOML config file (its layering is billing.config's)."""

from __future__ import annotations

import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from billing.errors import UsageError


def read_toml(path: Path, known: Collection[str]) -> dict[str, Any]:
    """The values of a TOML file, keys with ``_`` for ``-``: its ``[billing]`` table if it has one
    (other tables are not ours), else its top level. A key not in ``known`` (``-`` or ``_`` alike) is
    exit 2 naming it."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise UsageError(f"cannot read {path}: {e}") from e
    table = data.get("billing", data)
    if not isinstance(table, dict):
        raise UsageError(f"{path}: 'billing' must be a table")
    values = {}
    for key, v in table.items():
        k = key.replace("-", "_")
        if k not in known:
            where = "[billing]" if "billing" in data else "top level"
            raise UsageError(f"{path}: unknown key {key!r} ({where}); keys are option names, e.g. lateness")
        values[k] = v
    return values

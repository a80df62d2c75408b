"""A slice's result, as a folder: its window facts, quarantine pointers, conflicts and ledger.

``run-slice`` uploads the folder and ``merge`` downloads it; in one process the folders stay on
local disk. Window facts are left in their file once saved: a day has millions of windows, and
the diff reads them with DuckDB, inside its memory limit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from billing.ledger import Ledger
from billing.schemas import FACTS_SCHEMA, QUARANTINE_POINTERS

_PARQUET_PARTS = ("window_facts", "quarantine_pointers", "conflicts")
#: A saved partial's window facts.
FACTS_FILE = "window_facts.parquet"
#: The files a saved partial consists of (what run-slice uploads and merge downloads).
PARTIAL_FILES = (*(f"{name}.parquet" for name in _PARQUET_PARTS), "ledger.json", "slice.json")


@dataclass
class SlicePartial:
    """What one slice contributes to the day."""

    window_facts: pa.Table
    """The slice's windows while in memory; empty once saved (see ``facts_files``)."""
    ledger: Ledger
    quarantine_pointers: pa.Table
    conflicts: pa.Table
    facts_files: list[Path] = field(default_factory=list)
    """Parquet files holding the window facts once saved. A day's merged partial keeps its millions of
    windows there, not in memory: the diff reads them with DuckDB, inside its memory limit."""
    stats: dict[str, Any] = field(default_factory=dict)
    """How the slice went (slice.json): rows_decoded, rows_in_range, seconds, worker."""

    def save(self, folder: Path) -> SlicePartial:
        """Write the partial to ``folder``; return it with its window facts left on disk.

        Window facts already written there (billing.slice.run.run_slice with ``folder``) are left as they are.
        """
        folder.mkdir(parents=True, exist_ok=True)
        facts = folder / FACTS_FILE
        for name in _PARQUET_PARTS:
            if name != "window_facts" or facts not in self.facts_files:
                pq.write_table(getattr(self, name), folder / f"{name}.parquet")
        (folder / "ledger.json").write_text(json.dumps(self.ledger.as_dict(), sort_keys=True, allow_nan=False))
        (folder / "slice.json").write_text(json.dumps(self.stats, sort_keys=True, allow_nan=False) + "\n")
        files = self.facts_files if facts in self.facts_files else [*self.facts_files, facts]
        return SlicePartial(self.window_facts.schema.empty_table(), self.ledger, self.quarantine_pointers,
                            self.conflicts, files, self.stats)

    @classmethod
    def load(cls, folder: Path) -> SlicePartial:
        """A saved partial; its window facts stay on disk."""
        return cls(
            window_facts=pq.read_schema(folder / FACTS_FILE).empty_table(),
            ledger=Ledger.from_dict(json.loads((folder / "ledger.json").read_text())),
            quarantine_pointers=pq.read_table(folder / "quarantine_pointers.parquet"),
            conflicts=pq.read_table(folder / "conflicts.parquet"),
            facts_files=[folder / FACTS_FILE],
            stats=json.loads((folder / "slice.json").read_text()) if (folder / "slice.json").exists() else {},
        )


def empty_partial() -> SlicePartial:
    """What a day without raw files contributes."""
    return SlicePartial(FACTS_SCHEMA.empty_table(), Ledger(), QUARANTINE_POINTERS.empty_table(),
                        pa.schema([]).empty_table())

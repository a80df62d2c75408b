"""The inputs of one day, as found: its raw and output stores, its raw files (opened) and its stream side
(files or a database table, billing.io.stream_source).

Opening them (discovery, checks, exit 2 on what cannot be used) is billing.run.inputs' job; the
stages below the run layer only read what this holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.io.raw import SourceFile
from billing.io.storage import Store
from billing.io.stream_source import StreamSide


@dataclass
class Inputs:
    raw: Store
    stream: StreamSide
    out: Store
    sources: list[SourceFile]
    rows_beyond_horizon: int

    @property
    def total_rows(self) -> int:
        """Raw rows in the horizon, from the files' footers."""
        return sum(s.num_rows for s in self.sources)

    @property
    def has_cost(self) -> bool:
        """Whether any raw file of the horizon has a cost_micros column."""
        return any("cost_micros" in s.columns for s in self.sources)

    def listing(self) -> dict[str, list[dict[str, Any]]]:
        """Every raw file with its size and version (ETag or mtime), and the stream side's entries (its files,
        or the table read: redacted URI, server version, snapshot, rows read, SHA-256): for the manifest and
        the report."""
        return {
            "raw": [{"path": self.raw.url(s.path), "bytes": s.info.size, "version": s.info.version_tag,
                     "rows": s.num_rows} for s in self.sources],
            "stream": self.stream.listing(),
        }

"""The inputs of one day, as found: its three stores, its raw files (opened) and its stream files.

Opening them (discovery, checks, exit 2 on what cannot be used) is billing.run.inputs' job; the
stages below the run layer only read what this holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from billing.io.raw import SourceFile
from billing.io.storage import FileInfo, Store
from billing.io.stream import StreamSource, inspect_stream


@dataclass
class Inputs:
    raw: Store
    stream: Store
    out: Store
    sources: list[SourceFile]
    stream_files: list[FileInfo]
    rows_beyond_horizon: int
    stream_sources: list[StreamSource] | None = None

    def stream_side(self) -> list[StreamSource]:
        """The stream files, opened (checked) and their structure checked once; sorted by path."""
        if self.stream_sources is None:
            self.stream_sources = inspect_stream(self.stream, self.stream_files)
        return self.stream_sources

    @property
    def total_rows(self) -> int:
        """Raw rows in the horizon, from the files' footers."""
        return sum(s.num_rows for s in self.sources)

    @property
    def has_cost(self) -> bool:
        """Whether any raw file of the horizon has a cost_micros column."""
        return any("cost_micros" in s.columns for s in self.sources)

    def listing(self) -> dict[str, list[dict[str, Any]]]:
        """Every input file with its size and version (ETag or mtime): for the manifest and the report."""
        return {
            "raw": [{"path": self.raw.url(s.path), "bytes": s.info.size, "version": s.info.version_tag,
                     "rows": s.num_rows} for s in self.sources],
            "stream": [{"path": self.stream.url(f.path), "bytes": f.size, "version": f.version_tag}
                       for f in self.stream_files],
        }

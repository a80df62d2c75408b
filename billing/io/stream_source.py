"""The stream side of a day behind one small interface: the sink's Parquet files or its database table.

:class:`StreamSide` is all the day's stages know of it: its rows (:data:`billing.schemas.STREAM_SCHEMA`),
whether it carries spend, its quarantined rows, what the manifest and report list, and the source fields of
summary.json's ``stream`` block. :class:`FileStream` reads ``STREAM/dt=D/*.parquet`` (billing.io.stream);
:class:`DatabaseStream` a PostgreSQL table in one snapshot (billing.io.postgres_read). Another database
(MySQL/MariaDB, ClickHouse) is one more class here and one more reader module beside postgres_read.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from billing import faults
from billing.io.postgres import StreamDatabase
from billing.io.postgres_read import StreamRead, read_day
from billing.io.storage import FileInfo, Store
from billing.io.stream import (
    STREAM_CORE,
    STREAM_HEAD,
    StreamSource,
    inspect_stream,
    stream_pieces,
    stream_quarantine,
)
from billing.schemas import STREAM_SCHEMA

log = logging.getLogger(__name__)

#: Rows of the stream side handed to DuckDB at once (billing.day.diff.load_stream).
PIECE_ROWS = 1 << 20

#: URI schemes of a stream side held in a database (anything else is a file location).
DATABASE_SCHEMES = ("postgresql", "postgres")


def is_database(uri: str) -> bool:
    """Whether ``--stream`` names a database table rather than a folder of files."""
    return uri.partition("://")[0].lower() in DATABASE_SCHEMES and "://" in uri


class StreamSide(Protocol):
    kind: str
    """``files`` or ``postgresql``."""

    def check(self) -> None:
        """Refuse an unusable source (exit 2) before the day is deduplicated; reads no row of a table."""

    def pieces(self) -> Iterator[pa.Table]:
        """The day's sink rows, :data:`STREAM_SCHEMA`, in pieces (a file's row groups at a time, where the source
        allows); ``file_id``/``row_no`` point back at each row."""

    @property
    def has_spend(self) -> bool:
        """Whether the sink carries spend (otherwise stream spend is null, as for a file without it)."""

    @property
    def file_count(self) -> int:
        """summary.json's ``horizon.stream_files`` (0 for a table)."""

    def summary_fields(self) -> dict[str, Any]:
        """Fields added to summary.json's ``stream`` block (none for files, so their bytes never change)."""

    def listing(self) -> list[dict[str, Any]]:
        """manifest.json's ``inputs.stream`` (the report lists it too, without version tags)."""

    def quarantine(self, pointers: pa.Table) -> pa.Table:
        """stream_quarantine.parquet from the invalid rows' pointers (file_id, row_no, reason)."""


@dataclass
class FileStream:
    """``STREAM/dt=D/*.parquet``: files opened and their structure checked once, sorted by path."""

    store: Store
    files: list[FileInfo]
    kind: str = "files"
    _sources: list[StreamSource] | None = field(default=None, repr=False)

    def sources(self) -> list[StreamSource]:
        if self._sources is None:
            self._sources = inspect_stream(self.store, self.files)
        return self._sources

    def check(self) -> None:
        self.sources()  # an unreadable stream file stops the run here

    def pieces(self) -> Iterator[pa.Table]:
        # row groups gathered to ~PIECE_ROWS: a file of many tiny row groups is not copied a few rows at a time
        held: list[pa.Table] = []
        rows = 0
        for src in self.sources():
            for piece in stream_pieces(self.store, src):
                held.append(piece)
                rows += piece.num_rows
                if rows >= PIECE_ROWS:
                    yield pa.concat_tables(held)
                    held, rows = [], 0
        if held:
            yield pa.concat_tables(held)

    @property
    def has_spend(self) -> bool:
        return any(s.has_spend for s in self.sources())

    @property
    def file_count(self) -> int:
        return len(self.files)

    def summary_fields(self) -> dict[str, Any]:
        return {}

    def listing(self) -> list[dict[str, Any]]:
        return [{"path": self.store.url(f.path), "bytes": f.size, "version": f.version_tag} for f in self.files]

    def quarantine(self, pointers: pa.Table) -> pa.Table:
        return stream_quarantine(self.store, self.sources(), pointers)


@dataclass
class DatabaseStream:
    """A PostgreSQL sink table: day D's rows (window_start in [D, D+1) UTC, or NULL) read once, in one snapshot.

    Rows come in key order (ad_id, window_start, clicks, spend_micros); ``row_no`` is the position in that
    order and ``file_id`` is 0, so a quarantined row is named by the table and that position.
    """

    db: StreamDatabase
    date: dt.date
    connect_timeout_s: float | None = None
    statement_timeout_s: float | None = None
    kind: str = "postgresql"
    _read: StreamRead | None = field(default=None, repr=False)

    def check(self) -> None:
        read_day(self.db, self.date, connect_timeout_s=self.connect_timeout_s,
                 statement_timeout=self.statement_timeout_s, check_only=True)

    def read(self) -> StreamRead:
        """The day's rows, read on first use (by the step that diffs) and kept for the quarantine."""
        if self._read is None:
            self._read = read_day(self.db, self.date, connect_timeout_s=self.connect_timeout_s,
                                  statement_timeout=self.statement_timeout_s,
                                  pause_hook=lambda: faults.point("mid_stream_read"))
            r = self._read
            log.info("read %d stream rows of %s from %s in %.1fs (PostgreSQL %s, snapshot %s, sha256 %s)",
                     r.rows_read, r.table, r.source, r.seconds, r.server_version, r.snapshot, r.sha256[:16])
        return self._read

    def rows(self) -> pa.Table:
        rows = self.read().rows
        n = rows.num_rows
        cols = {c: rows.column(c) for c in STREAM_CORE}
        cols["window_ns"] = pa.array(np.zeros(n, dtype=np.int64))  # µs from the database: nothing below
        cols["file_id"] = pa.array(np.zeros(n, dtype=np.int32))
        cols["row_no"] = pa.array(np.arange(n, dtype=np.int64))
        return pa.table(cols, schema=STREAM_SCHEMA)

    def pieces(self) -> Iterator[pa.Table]:
        yield self.rows()  # the table's rows are read in one transaction, and held for the quarantine

    @property
    def has_spend(self) -> bool:
        return "spend_micros" in self.read().columns

    @property
    def file_count(self) -> int:
        return 0

    def summary_fields(self) -> dict[str, Any]:
        return {"source": "postgresql", "table": self.db.display}

    def listing(self) -> list[dict[str, Any]]:
        return [self.read().manifest()]

    def quarantine(self, pointers: pa.Table) -> pa.Table:
        if pointers.num_rows == 0:
            return STREAM_HEAD.empty_table()
        order = pointers.sort_by([("row_no", "ascending")])
        take = order.column("row_no").combine_chunks()
        rows = self.read().rows.take(take)
        cols: dict[str, Any] = {c: rows.column(c) for c in STREAM_CORE}
        cols["reason"] = order.column("reason")
        cols["source_file"] = pa.array([self.db.display] * rows.num_rows, pa.string())
        cols["source_row"] = take
        return pa.table(cols).cast(STREAM_HEAD)

"""The DuckDB session every stage runs in: settings fixed here, macros loaded once."""

from __future__ import annotations

import tempfile

import duckdb

from billing import sql

#: The files of sql/macros/, loaded into every session in this order (packing first: validate uses it).
MACRO_FILES = ("packing", "validate", "money", "stream_validate")


#: What the process holds before any data, whatever the day: the interpreter, pyarrow, DuckDB, deltalake
#: and the report's libraries (193–203 MiB RSS measured after the imports). A run's memory limit less this
#: is what its stages share.
PROCESS_BASE = 256 * 2**20

#: DuckDB's share of what a run's memory limit leaves beyond :data:`PROCESS_BASE`: it spills to disk beyond
#: it. The rest holds what stages hand each other as Arrow tables (a stream piece, the rows being written),
#: so the whole process stays under the limit.
DUCKDB_SHARE = 0.4


def budget(memory_limit: int) -> int:
    """What a run's stages share: the limit less the process's own :data:`PROCESS_BASE` (at least a quarter
    of the limit, for the small sessions tests and tools open)."""
    return max(memory_limit - PROCESS_BASE, memory_limit // 4)


def duckdb_limit(memory_limit: int, *, held: int = 0) -> int:
    """DuckDB's memory limit while the process holds ``held`` bytes of Arrow outside it.

    Its share (:data:`DUCKDB_SHARE` of the :func:`budget`), unless what is held leaves less than that:
    then what is left, never below a quarter of the share.
    """
    share = int(budget(memory_limit) * DUCKDB_SHARE)
    return max(share // 4, min(share, budget(memory_limit) - held))


def connect(*, memory_limit: int, threads: int = 0, temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB session for a run whose whole process may use ``memory_limit`` bytes."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    # Progress is ours (billing.progress): DuckDB's own bar would reach logs and terminals as noise.
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{duckdb_limit(memory_limit)}B'")
    # Results are sorted explicitly where order matters; letting DuckDB stream
    # unordered keeps big aggregations inside the memory limit.
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = '{_quote(temp_dir or tempfile.gettempdir())}'")
    if threads > 0:
        con.execute(f"SET threads = {int(threads)}")
    for name in MACRO_FILES:
        sql.run(con, name)
    return con


def set_memory(con: duckdb.DuckDBPyConnection, memory_limit: int, *, held: int = 0) -> None:
    """Set DuckDB's limit for a stage that holds ``held`` bytes outside it (:func:`duckdb_limit`): e.g. the
    stream piece being copied in, or the row groups of the outputs being written."""
    con.execute(f"SET memory_limit = '{duckdb_limit(memory_limit, held=held)}B'")


def _quote(text: str) -> str:
    return text.replace("'", "''")

"""The DuckDB session every stage runs in: settings fixed here, macros loaded once."""

from __future__ import annotations

import tempfile

import duckdb

from billing import sql

#: The files of sql/macros/, loaded into every session in this order (packing first: validate uses it).
MACRO_FILES = ("packing", "validate", "money", "stream_validate")


#: DuckDB's share of a run's memory limit (``--memory-limit``): it spills to disk beyond it. The
#: rest holds what stages hand each other as Arrow tables (a day's windows, the drift table), so
#: the whole process stays under the limit.
DUCKDB_SHARE = 0.4


def connect(*, memory_limit: int, threads: int = 0, temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB session for a run whose whole process may use ``memory_limit`` bytes."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    # Progress is ours (billing.progress): DuckDB's own bar would reach logs and terminals as noise.
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{int(memory_limit * DUCKDB_SHARE)}B'")
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
    """DuckDB's share of ``memory_limit``, less ``held`` bytes the process holds outside DuckDB meanwhile
    (never below a quarter of the share): e.g. the day's stream rows in Arrow while DuckDB sums them."""
    share = int(memory_limit * DUCKDB_SHARE)
    con.execute(f"SET memory_limit = '{max(share // 4, share - held)}B'")


def _quote(text: str) -> str:
    return text.replace("'", "''")

"""The DuckDB session every stage runs in: settings fixed here, macros loaded once."""

from __future__ import annotations

import tempfile

import duckdb

from billing import sql

#: SQL files that define macros rather than tables.
MACRO_FILES = ("validate", "money")


def connect(*, memory_limit: int, threads: int = 0, temp_dir: str | None = None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = '{int(memory_limit)}B'")
    # Results are sorted explicitly where order matters; letting DuckDB stream
    # unordered keeps big aggregations inside the memory limit.
    con.execute("SET preserve_insertion_order = false")
    con.execute(f"SET temp_directory = '{_quote(temp_dir or tempfile.gettempdir())}'")
    if threads > 0:
        con.execute(f"SET threads = {int(threads)}")
    for name in MACRO_FILES:
        sql.run(con, name)
    return con


def _quote(text: str) -> str:
    return text.replace("'", "''")

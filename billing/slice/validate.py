"""A slice's verdicts: every landed row got its reason in DuckDB (``sql/macros/validate.sql``; NULL = valid).

Invalid rows are never counted and take no part in dedup. Only pointers (file, row, reason)
leave the slice; the day's quarantine output re-reads the full rows (billing.day.quarantine).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from billing import sql


def invalid_by_reason(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {r["reason"]: int(r["n"]) for r in sql.fetch_dicts(con, "invalid_by_reason")}


def quarantine_pointers(con: duckdb.DuckDBPyConnection) -> pa.Table:
    return sql.table(con, "quarantine_rows")

"""Dedup stage: exhaustive, one winner per click_id (``sql/dedup.sql``), conflicts listed.

Runs on one slice of click_id space at a time: all copies of a click share its
click_id, so disjoint slices dedup independently and their totals add up.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from billing import sql


def pick_winners(con: duckdb.DuckDBPyConnection) -> None:
    """Tables ``repeated_ids`` and ``copies``: every valid copy of an id seen more than once, ranked."""
    sql.run(con, "dedup")


def conflicts(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per conflicting click_id (winner's file still as ``winner_file_id``)."""
    return sql.table(con, "conflicts")

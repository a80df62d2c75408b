"""Dedup stage: exhaustive, one winner per click_id (``sql/dedup.sql``), conflicts listed.

Runs on one slice of click_id space at a time: all copies of a click share its
click_id, so disjoint slices dedup independently and their totals add up.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from billing import sql


def repeated_ids(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The click_ids of table ``clicks`` that more than one valid row carries, ascending.

    Found by sorting the ids and comparing neighbours. Snowflake ids are one BIGINT each, and
    numpy sorts them with SIMD instructions in a single pass over memory: on a 25M-row slice
    of the benchmark day, fetch + sort + compare take ~0.5 s, against ~1.7 s for DuckDB's
    ``lag() OVER (ORDER BY click_id)`` and ~3.3 s for a hash aggregate (``GROUP BY ... HAVING``).
    """
    ids = con.sql("SELECT click_id FROM clicks WHERE reason IS NULL").to_arrow_table().column(0).to_numpy()
    # A valid row's click_id is never NULL (sql/validate.sql). Sorted in place unless the array
    # is a read-only view of a single Arrow chunk.
    if ids.flags.writeable:
        ids.sort()
    else:
        ids = np.sort(ids)
    repeats = ids[1:][ids[1:] == ids[:-1]]  # an id seen k times appears k-1 times here, in order
    first = np.ones(len(repeats), dtype=bool)
    first[1:] = repeats[1:] != repeats[:-1]
    return pa.table({"click_id": pa.array(repeats[first], pa.int64())})


def pick_winners(con: duckdb.DuckDBPyConnection) -> None:
    """Table ``copies``: every valid copy of a click_id seen more than once, ranked (``sql/dedup.sql``)."""
    repeated = repeated_ids(con)
    con.register("repeated_ids", repeated)
    try:
        sql.run(con, "dedup")
    finally:
        con.unregister("repeated_ids")


def conflicts(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per conflicting click_id (winner's file still as ``winner_file_id``)."""
    return sql.table(con, "conflicts")

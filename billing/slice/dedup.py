"""A slice's dedup: exhaustive, one winner per click_id (``sql/slice/dedup.sql``), conflicts listed.

Runs on one slice of click_id space at a time: all copies of a click share its
click_id, so disjoint slices dedup independently and their totals add up.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from billing import sql


def valid_ids(con: duckdb.DuckDBPyConnection) -> np.ndarray:
    """The click_id of every valid row of table ``clicks`` (``sql/slice/valid_ids.sql``), in one writable array.

    Copied batch by batch into an array of the final size: fetching one Arrow table and
    concatenating it touched twice the memory and took several times as long.
    """
    query = sql.load("valid_ids")
    ((n,),) = con.sql(query).count("*").fetchall()
    ids = np.empty(n, dtype=np.int64)
    filled = 0
    for batch in con.sql(query).to_arrow_reader(sql.BATCH_ROWS):
        part = batch.column(0).to_numpy()  # a valid row's click_id is never NULL (sql/macros/validate.sql)
        ids[filled:filled + len(part)] = part
        filled += len(part)
    if filled != n:
        raise RuntimeError(f"fetched {filled} valid click_ids, counted {n}")
    return ids


def repeated(ids: np.ndarray) -> np.ndarray:
    """The values seen more than once in ``ids``, ascending. Sorts ``ids`` in place.

    Snowflake ids are one BIGINT each, and numpy sorts them with SIMD instructions in one pass
    over memory, several times faster than DuckDB's ``lag() OVER (ORDER BY click_id)`` or a hash
    aggregate (``GROUP BY ... HAVING``; timings in the README's Scale section). numpy lets go of
    the GIL meanwhile, so DuckDB can work on the slice in parallel.

    A stable sort (numpy's timsort for int64): ids landed from files written in arrival order come in long
    stretches that are already in order, which it merges instead of sorting again. 25M ids of a slice: 0.96 s
    against quicksort's 1.8 s on the benchmark's dense and long-tail days, the same (1.74-1.91 against 1.77 s)
    on its disorder day, 2.3 against 1.8-2.0 s on ids in no order at all. The result is the same either way.
    """
    ids.sort(kind="stable")
    repeats = ids[1:][ids[1:] == ids[:-1]]  # an id seen k times appears k-1 times here, in order
    first = np.ones(len(repeats), dtype=bool)
    first[1:] = repeats[1:] != repeats[:-1]
    return repeats[first]


def pick_winners(con: duckdb.DuckDBPyConnection, repeated_ids: np.ndarray | None = None) -> None:
    """Table ``copies``: every valid copy of a click_id seen more than once, ranked (``sql/slice/dedup.sql``).

    ``repeated_ids``: :func:`repeated` of :func:`valid_ids`, if already found.
    """
    if repeated_ids is None:
        repeated_ids = repeated(valid_ids(con))
    con.register("repeated_ids", pa.table({"click_id": pa.array(repeated_ids, pa.int64())}))
    try:
        sql.run(con, "dedup")
    finally:
        con.unregister("repeated_ids")


def conflicts(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """One row per conflicting click_id (winner's file still as ``winner_file_id``)."""
    return sql.table(con, "conflicts")

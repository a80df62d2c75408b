"""SQL files, loaded by name from ``sql/``, run with bound parameters.

Values never reach SQL text: statements use ``$name`` parameters, bound here from
keyword arguments; a statement is given exactly the parameters it names.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "sql", here / "sql"):  # source tree, then installed wheel
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the sql/ folder is missing from this installation")


@cache
def load(name: str) -> str:
    return (sql_dir() / f"{name}.sql").read_text(encoding="utf-8")


def params_of(text: str) -> set[str]:
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return set(_PARAM.findall(code))


#: The only text ever spliced into a statement: fixed fragments, chosen by name. Values are parameters.
FRAGMENTS = {
    # Times as µs since the epoch, floored, and the nanoseconds below (sql/validate.sql): "ns" when a file
    # holds nanoseconds (DuckDB's cast to µs would round them), else the plain µs.
    "event_us": {"us": "epoch_us(event_time::TIMESTAMPTZ)", "ns": "floor_us(epoch_ns(event_time))"},
    "event_sub": {"us": "0::SMALLINT", "ns": "sub_us_ns(epoch_ns(event_time))"},
    "ingest_us": {"us": "epoch_us(ingest_time::TIMESTAMPTZ)", "ns": "floor_us(epoch_ns(ingest_time))",
                  "absent": "NULL::BIGINT"},
    "ingest_sub": {"us": "0::SMALLINT", "ns": "sub_us_ns(epoch_ns(ingest_time))", "absent": "0::SMALLINT"},
    "cost": {"present": "cost_micros::BIGINT", "absent": "NULL::BIGINT"},
    "range": {"all": "TRUE", "from": "click_id >= $lo", "below": "(click_id < $hi OR click_id IS NULL)",
              "between": "click_id >= $lo AND click_id < $hi"},
    "part": {"all": "TRUE",
             "stragglers": "is_straggler(click_id, ingest_us, $epoch_ms, $lead_us)",
             "core": "NOT is_straggler(click_id, ingest_us, $epoch_ms, $lead_us)"},
    # Bounds on the raw column that DuckDB prunes row groups by; implied by "core" (a µs wider on each
    # side than the floored bounds, as the cast may round nanoseconds), so they drop no row.
    "prune": {"all": "TRUE",
              "core": "ingest_time::TIMESTAMPTZ BETWEEN make_timestamptz($arrival_lo_us)"
                      " AND make_timestamptz($arrival_hi_us)"},
    "cutoff": {"none": "TRUE",
               "some": "(NOT list_contains($cutoff_files, file_index::BIGINT) OR ingest_us < $cutoff_us)"},
}


def render(name: str, **choices: str) -> str:
    """``sql/<name>.sql`` with its ``{slot}`` fragments chosen from :data:`FRAGMENTS`."""
    text = load(name)
    return text.format(**{slot: FRAGMENTS[slot][choice] for slot, choice in choices.items()})


def run(con: duckdb.DuckDBPyConnection, name: str, *, text: str | None = None,
        **params: Any) -> duckdb.DuckDBPyConnection:
    """Run ``sql/<name>.sql`` (or its rendered ``text``) with the parameters it names."""
    text = text or load(name)
    wanted = params_of(text)
    missing = wanted - params.keys()
    if missing:
        raise TypeError(f"sql/{name}.sql needs parameters {sorted(missing)}")
    if not wanted:
        return con.execute(text)
    return con.execute(text, {k: params[k] for k in wanted})


#: Rows per Arrow batch when a result leaves DuckDB.
BATCH_ROWS = 1 << 20


def table(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pa.Table:
    """The result of a query file as an Arrow table.

    Read batch by batch, so DuckDB never holds a whole day-sized result as well as its Arrow copy:
    the 1B-row day's sorted drift (12.7M windows) at ``--memory-limit 4GB`` peaked at 3.63 GiB
    fetched whole, 3.21 GiB in batches.
    """
    text = load(name)
    wanted = params_of(text)
    rel = con.sql(text, params={k: params[k] for k in wanted} if wanted else None)
    assert rel is not None, f"sql/{name}.sql returns no rows"
    return rel.to_arrow_reader(BATCH_ROWS).read_all()


def fetch_dicts(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    cur = run(con, name, **params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

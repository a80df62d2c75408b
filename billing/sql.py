"""SQL files, found by name under ``sql/``, checked against their header, run with bound parameters.

Where SQL lives: the top-level ``sql/`` folder, grouped by the unit that runs it (``sql/macros/``,
``sql/slice/``, ``sql/day/``). The package sees it as ``billing/sql``: in the source tree that is a
symbolic link to ``../sql``, in a wheel the folder itself (``pyproject.toml``, force-include). So
there is one place to look, :func:`sql_dir`, whether the code runs from a checkout, an editable
install or a wheel. File names are unique across the subfolders: callers name a file by its bare
name (``sql.run(con, "dedup")``).

Each file opens with a header (:class:`Header`) naming the tables it reads and what it makes;
before a file runs, the tables it reads are checked to exist in the session, and a missing one is
named (:class:`~billing.errors.SqlContractError`).

Values never reach SQL text: statements use ``$name`` parameters, bound here from keyword
arguments; a statement is given exactly the parameters it names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from billing.errors import SqlContractError

_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def sql_dir() -> Traversable:
    """The SQL folder: ``billing/sql`` in every installation (a link to the top-level ``sql/`` in a checkout)."""
    return resources.files("billing") / "sql"


@cache
def files() -> dict[str, tuple[str, Traversable]]:
    """Every SQL file by its bare name: (path under sql/, e.g. ``slice/dedup.sql``; the file)."""
    found: dict[str, tuple[str, Traversable]] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith(".sql"):
                name = entry.name.removesuffix(".sql")
                if name in found:
                    raise SqlContractError(f"two SQL files named {name!r}: sql/{found[name][0]} and "
                                           f"sql/{prefix}{entry.name}; names must be unique across sql/")
                found[name] = (f"{prefix}{entry.name}", entry)

    root = sql_dir()
    if not root.is_dir():
        raise FileNotFoundError("the sql/ folder is missing from this installation")
    walk(root, "")
    return found


def path_of(name: str) -> str:
    """``sql/<unit>/<name>.sql``, as a reader finds it in the source tree."""
    try:
        return f"sql/{files()[name][0]}"
    except KeyError:
        raise SqlContractError(f"no SQL file named {name!r} under sql/") from None


@cache
def load(name: str) -> str:
    path_of(name)  # names the file when there is none
    return files()[name][1].read_text(encoding="utf-8")


def params_of(text: str) -> set[str]:
    code = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    return set(_PARAM.findall(code))


#: What a header line may declare. ``reads`` and ``appends`` name tables (or views, or registered Arrow
#: objects) that must exist before the file runs; ``$name`` items are parameters naming files, not tables.
#: Exactly one of the others says what the file makes.
HEADER_KEYS = ("reads", "creates", "appends", "returns", "writes", "defines")
MAKES = ("creates", "appends", "returns", "writes", "defines")
_HEADER_LINE = re.compile(r"^--\s*(" + "|".join(HEADER_KEYS) + r"):\s*(.*?)\s*$")


@dataclass(frozen=True)
class Header:
    """The contract at the top of a SQL file, in its leading ``--`` comment lines::

        -- reads: clicks, repeated_ids     tables it needs (``$files``: a parameter naming files)
        -- creates: copies                 or appends: / returns: / writes: / defines:
        -- <purpose, in prose>
    """

    reads: tuple[str, ...]
    makes: str
    """Which of :data:`MAKES`."""
    made: tuple[str, ...]
    """What it makes: tables, macros, a file parameter, or (returns) a description of the rows."""

    @property
    def needs(self) -> tuple[str, ...]:
        """Tables that must exist in the session before the file runs."""
        tables = self.reads + (self.made if self.makes == "appends" else ())
        return tuple(t for t in tables if not t.startswith("$"))


def parse_header(name: str, text: str) -> Header:
    """The header of ``text`` (the file ``name``); a malformed one is a :class:`SqlContractError`."""
    where = path_of(name) if name in files() else name
    fields: dict[str, str] = {}
    prose = 0
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        m = _HEADER_LINE.match(line)
        if not m:
            prose += bool(line.strip("- "))
        elif m.group(1) in fields:
            raise SqlContractError(f"{where}: header line {m.group(1)!r} given twice")
        else:
            fields[m.group(1)] = m.group(2)
    makes = [k for k in MAKES if k in fields]
    if len(makes) != 1:
        raise SqlContractError(f"{where}: the header needs exactly one of {', '.join(MAKES)} (found {makes})")
    if "reads" not in fields and makes[0] != "defines":
        raise SqlContractError(f"{where}: the header needs a 'reads:' line")
    if not prose:
        raise SqlContractError(f"{where}: the header needs a line saying what the file is for")
    made = fields[makes[0]]
    items = (made,) if makes[0] == "returns" else _names(made)
    if not all(items):
        raise SqlContractError(f"{where}: empty '{makes[0]}:' line")
    return Header(_names(fields.get("reads", "")), makes[0], items)


def _names(value: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip())


@cache
def header(name: str) -> Header:
    return parse_header(name, load(name))


_PRESENT = ("SELECT name FROM (SELECT table_name AS name FROM duckdb_tables() UNION ALL "
            "SELECT view_name FROM duckdb_views() WHERE NOT internal) WHERE list_contains($names, name)")


def check_inputs(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Raise :class:`SqlContractError` naming the file and the table when a table it reads is missing.

    One catalogue query (tables, views, and registered Arrow objects, which DuckDB lists as views);
    no data is touched.
    """
    needs = header(name).needs
    if not needs:
        return
    present = {row[0] for row in con.execute(_PRESENT, {"names": list(needs)}).fetchall()}
    missing = [t for t in needs if t not in present]
    if missing:
        raise SqlContractError(f"{path_of(name)} reads {', '.join(missing)}, which this DuckDB session does "
                               f"not have (its header: reads {', '.join(header(name).reads) or 'nothing'})")


#: The only text ever spliced into a statement: fixed fragments, chosen by name. Values are parameters.
FRAGMENTS = {
    # Times as µs since the epoch, floored, and the nanoseconds below (sql/macros/validate.sql): "ns" when a
    # file holds nanoseconds (DuckDB's cast to µs would round them), else the plain µs.
    "event_us": {"us": "epoch_us(event_time::TIMESTAMPTZ)", "ns": "floor_us(epoch_ns(event_time))"},
    "event_sub": {"us": "0::SMALLINT", "ns": "sub_us_ns(epoch_ns(event_time))"},
    "ingest_us": {"us": "epoch_us(ingest_time::TIMESTAMPTZ)", "ns": "floor_us(epoch_ns(ingest_time))",
                  "absent": "NULL::BIGINT"},
    "ingest_sub": {"us": "0::SMALLINT", "ns": "sub_us_ns(epoch_ns(ingest_time))", "absent": "0::SMALLINT"},
    "cost": {"present": "cost_micros::BIGINT", "absent": "NULL::BIGINT"},
    # totals.parquet's spend (sql/day/day_drift.sql): 0 for none when the raw log has a cost column, else NULL
    "totals_spend": {"present": "coalesce(batch_spend_micros, 0)", "absent": "NULL::BIGINT"},
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
    """The file ``name`` with its ``{slot}`` fragments chosen from :data:`FRAGMENTS`."""
    text = load(name)
    return text.format(**{slot: FRAGMENTS[slot][choice] for slot, choice in choices.items()})


def run(con: duckdb.DuckDBPyConnection, name: str, *, text: str | None = None,
        **params: Any) -> duckdb.DuckDBPyConnection:
    """Run the file ``name`` (or its rendered ``text``) with the parameters it names."""
    text = text or load(name)
    wanted = params_of(text)
    missing = wanted - params.keys()
    if missing:
        raise TypeError(f"{path_of(name)} needs parameters {sorted(missing)}")
    check_inputs(con, name)
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
    return reader(con, name, **params).read_all()


def relation(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> duckdb.DuckDBPyRelation:
    """The result of a query file as a DuckDB relation, not yet run."""
    text = load(name)
    wanted = params_of(text)
    check_inputs(con, name)
    rel = con.sql(text, params={k: params[k] for k in wanted} if wanted else None)
    if rel is None:
        raise SqlContractError(f"{path_of(name)} returns no rows")
    return rel


def reader(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> pa.RecordBatchReader:
    """The result of a query file as a stream of Arrow batches of :data:`BATCH_ROWS` rows (the last may be
    shorter): a day-sized result leaves DuckDB one batch at a time."""
    return relation(con, name, **params).to_arrow_reader(BATCH_ROWS)


def copy_to(con: duckdb.DuckDBPyConnection, name: str, path: Path, **params: Any) -> None:
    """Write the result of a query file to ``path`` as Parquet, from DuckDB (never through Arrow)."""
    relation(con, name, **params).write_parquet(str(path))


def fetch_dicts(con: duckdb.DuckDBPyConnection, name: str, **params: Any) -> list[dict[str, Any]]:
    cur = run(con, name, **params)
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]

"""The sql/ folder's contract: one file per name, a header on every file that matches its SQL, and
``sql.run`` refusing to run a file whose input tables are missing, naming them."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pytest

from billing import engine, sql
from billing.errors import SqlContractError

ROOT = Path(__file__).resolve().parent.parent

_IDENT = r"([A-Za-z_][A-Za-z0-9_]*)"


def code_of(text: str) -> str:
    """The SQL without its comments (no file puts ``--`` inside a string)."""
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def statement_facts(text: str) -> dict[str, set[str]]:
    """What the SQL text itself reads and makes, found by pattern (good enough for our own files)."""
    code = code_of(text)
    ctes = set(re.findall(rf"(?:\bWITH|,)\s+{_IDENT}\s+AS\s*\(", code, re.IGNORECASE))
    created = re.findall(rf"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?(TABLE|VIEW|MACRO)\s+{_IDENT}",
                         code, re.IGNORECASE)
    tables = {n for kind, n in created if kind.upper() != "MACRO"}
    macros = {n for kind, n in created if kind.upper() == "MACRO"}
    appended = set(re.findall(rf"\bINSERT\s+INTO\s+{_IDENT}", code, re.IGNORECASE))
    written = set(re.findall(r"\bCOPY\b[\s\S]*\bTO\s+(\$[A-Za-z_][A-Za-z0-9_]*)", code, re.IGNORECASE))
    # a name after FROM or JOIN that is not a function call, a CTE or something the file makes itself
    sources = {n for n in re.findall(rf"\b(?:FROM|JOIN)\s+{_IDENT}\b(?!\s*\()", code, re.IGNORECASE)}
    reads = sources - ctes - tables - {"LATERAL"}
    files = set(re.findall(r"\bread_parquet\(\s*(\$[A-Za-z_][A-Za-z0-9_]*)", code))
    return {"reads": reads | files, "creates": tables, "defines": macros, "appends": appended, "writes": written}


def test_sql_names_are_unique_and_grouped_by_unit() -> None:
    listed = sorted(p.relative_to(ROOT / "sql").as_posix() for p in (ROOT / "sql").rglob("*.sql"))
    assert len({Path(p).stem for p in listed}) == len(listed), "two files share a name"
    assert {Path(p).parent.as_posix() for p in listed} == {"macros", "slice", "day", "report"}
    assert sorted(f"{path}" for path, _ in sql.files().values()) == listed  # the resolver sees the same files
    assert sql.path_of("dedup") == "sql/slice/dedup.sql"


def test_the_package_sees_the_top_level_sql_folder() -> None:
    """One location: billing/sql is the top-level sql/ (a link in the source tree, the folder in a wheel)."""
    assert Path(str(sql.sql_dir())).resolve() == (ROOT / "sql").resolve()


def test_macro_files_are_the_macros_folder() -> None:
    macros = sorted(n for n, (path, _) in sql.files().items() if path.startswith("macros/"))
    assert sorted(engine.MACRO_FILES) == macros
    assert all(sql.header(n).makes == "defines" for n in macros)


@pytest.mark.parametrize("name", sorted(sql.files()))
def test_header_is_well_formed_and_matches_the_sql(name: str) -> None:
    text = sql.load(name)
    h = sql.parse_header(name, text)
    assert text.startswith("--"), "the header comes first"
    facts = statement_facts(text)
    if h.makes == "returns":
        assert not (facts["creates"] or facts["defines"] or facts["appends"] or facts["writes"])
        assert re.match(r"\s*(WITH|SELECT)\b", code_of(text), re.IGNORECASE), "a query file is one query"
    else:
        assert set(h.made) == facts[h.makes], f"{sql.path_of(name)}: '{h.makes}:' says {h.made}"
        for other in {"creates", "defines", "appends", "writes"} - {h.makes}:
            assert not facts[other], f"{sql.path_of(name)} {other} {facts[other]} without saying so"
    assert set(h.reads) == facts["reads"], f"{sql.path_of(name)}: 'reads:' says {h.reads}"


def test_every_name_a_header_reads_is_made_somewhere_or_registered() -> None:
    """A table read is created by another file, or is an Arrow object billing registers (by name, in code)."""
    made = {t for n in sql.files() for t in sql.header(n).made if sql.header(n).makes in ("creates", "appends")}
    registered = set()
    for path in (ROOT / "billing").rglob("*.py"):
        registered |= set(re.findall(r"\.register\(\s*\"([a-z_]+)\"", path.read_text(encoding="utf-8")))
    for n in sql.files():
        for t in sql.header(n).needs:
            assert t in made | registered, f"{sql.path_of(n)} reads {t}, which nothing creates or registers"


@pytest.mark.parametrize("text, problem", [
    ("-- creates: x\n-- Purpose.\nCREATE TEMP TABLE x AS SELECT 1;\n", "'reads:'"),
    ("-- reads: a\n-- Purpose.\nSELECT * FROM a;\n", "exactly one of"),
    ("-- reads: a\n-- creates: x\n-- returns: rows\n-- Purpose.\nSELECT 1;\n", "exactly one of"),
    ("-- reads: a\n-- creates: x\nCREATE TEMP TABLE x AS SELECT * FROM a;\n", "what the file is for"),
    ("-- reads: a\n-- reads: b\n-- returns: rows\n-- Purpose.\nSELECT 1;\n", "given twice"),
])
def test_malformed_headers_are_refused(text: str, problem: str) -> None:
    with pytest.raises(SqlContractError, match=re.escape(problem)):
        sql.parse_header("example", text)


def test_a_missing_input_table_is_named_before_anything_runs() -> None:
    con = engine.connect(memory_limit=1536 << 20, threads=1)
    try:
        con.execute("CREATE TEMP TABLE clicks AS SELECT 1::BIGINT AS click_id, NULL::VARCHAR AS reason")
        with pytest.raises(SqlContractError, match=r"sql/slice/dedup\.sql reads repeated_ids, which this DuckDB"):
            sql.run(con, "dedup")
        with pytest.raises(SqlContractError, match=r"sql/slice/conflicts\.sql reads copies,"):
            sql.table(con, "conflicts")
        with pytest.raises(SqlContractError, match=r"sql/day/stream_counts\.sql reads stream_rows, stream_windows,"):
            sql.fetch_dicts(con, "stream_counts", day_start=None, day_end=None)
        # a registered Arrow object counts as present, and so do views
        con.register("repeated_ids", pa.table({"click_id": pa.array([], pa.int64())}))
        sql.check_inputs(con, "dedup")
        assert sql.fetch_dicts(con, "invalid_by_reason") == []
    finally:
        con.close()


def test_an_unknown_file_is_named() -> None:
    with pytest.raises(SqlContractError, match="no SQL file named 'nope'"):
        sql.load("nope")


def test_bit_packing_macros_match_python() -> None:
    from billing.config import SNOWFLAKE_EPOCH_MS, SNOWFLAKE_TIME_SHIFT

    con = engine.connect(memory_limit=1536 << 20, threads=1)
    try:
        click_id = (123_456_789 << SNOWFLAKE_TIME_SHIFT) | 4095
        pos, f, r, ms = con.execute(
            "SELECT row_pos(7::INTEGER, 1099511627775::BIGINT) AS p, pos_file_id(p), pos_row_no(p), "
            "snowflake_ms($c::BIGINT, $e)", {"c": click_id, "e": SNOWFLAKE_EPOCH_MS}).fetchone()
        assert (pos, f, r) == ((7 << 40) | (2**40 - 1), 7, 2**40 - 1)
        assert ms == 123_456_789 + SNOWFLAKE_EPOCH_MS
    finally:
        con.close()

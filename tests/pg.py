"""The local PostgreSQL server the tests use (127.0.0.1:5432, user postgres, trust auth, database test),
and a schema of its own for each test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import adbc_driver_postgresql.dbapi as pg

ADMIN = "postgresql://postgres@127.0.0.1:5432/test"


def sql(statement: str, params: tuple[Any, ...] | None = None, uri: str = ADMIN) -> list[tuple[Any, ...]]:
    with pg.connect(uri, autocommit=True) as c, c.cursor() as cur:
        cur.execute(statement, parameters=params)
        try:
            return list(cur.fetchall())
        except Exception:  # a statement without a result set
            return []


@contextmanager
def fresh_schema(prefix: str) -> Iterator[str]:
    """A uniquely named schema, dropped with everything in it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    sql(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        sql(f'DROP SCHEMA "{name}" CASCADE')

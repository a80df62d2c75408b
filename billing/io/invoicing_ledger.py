"""The invoicing export's tables and checks (issue 14; fix round): the CREATE TABLE statements, the ledger's
``out_uri`` column (added to ledgers made before it), and the day's fingerprint computed on both sides.

The fingerprint says whether the table's rows of a day are exactly the rows of the exported version, without
moving them: exact sums (NUMERIC in PostgreSQL, Python ints here) of the rows and of their values weighted by
their keys, so a changed count, clicks or spend value, a moved key or a row of another version shows."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from billing.io.postgres import quote_ident

LEDGER_SUFFIX = "_exports"


def ddl(schema: str, table: str) -> tuple[str, str]:
    """CREATE TABLE statements of the totals table and its ledger (identifiers quoted)."""
    s = quote_ident(schema)
    totals = (f"CREATE TABLE IF NOT EXISTS {s}.{quote_ident(table)} ("
              "date date NOT NULL, ad_id bigint NOT NULL, window_start timestamptz NOT NULL, "
              "clicks bigint NOT NULL, spend_micros bigint, billing_version integer NOT NULL, "
              "PRIMARY KEY (date, ad_id, window_start))")
    ledger = (f"CREATE TABLE IF NOT EXISTS {s}.{quote_ident(table + LEDGER_SUFFIX)} ("
              "date date PRIMARY KEY, version integer NOT NULL, exported_at timestamptz NOT NULL, "
              "manifest_sha256 text NOT NULL, row_count bigint NOT NULL, out_uri text)")
    return totals, ledger


def ensure_out_column(cur: Any, ledger: str) -> None:
    """Add ``out_uri`` to a ledger made before it (its rows keep a null: exported from an unrecorded OUT)."""
    cur.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = $1::regclass AND attname = 'out_uri' "
                "AND NOT attisdropped", parameters=(ledger,))
    if not int(cur.fetchone()[0]):
        cur.execute(f"ALTER TABLE {ledger} ADD COLUMN IF NOT EXISTS out_uri text")


def out_identity(uri: str) -> str:
    """OUT as recorded in the ledger: the URI without user, password or query (a local path as it is)."""
    parts = urlsplit(uri)
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return uri
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _n(expr: str) -> str:
    return f"coalesce(sum({expr}), 0)::text"


#: The fingerprint's terms, in order: count, sum(clicks), sum(spend_micros), count(spend_micros),
#: sum(ad_id*clicks), sum(epoch_us*clicks), sum(ad_id*spend), sum(epoch_us*spend), sum(ad_id*epoch_us),
#: rows of another billing_version.
def fingerprint_sql(target: str) -> str:
    us = "(extract(epoch FROM window_start) * 1000000)::bigint::numeric"
    return (f"SELECT count(*)::text, {_n('clicks::numeric')}, {_n('spend_micros::numeric')}, "
            f"count(spend_micros)::text, {_n('ad_id::numeric * clicks')}, {_n(f'{us} * clicks')}, "
            f"{_n('ad_id::numeric * spend_micros')}, {_n(f'{us} * spend_micros')}, {_n(f'ad_id::numeric * {us}')}, "
            f"count(*) FILTER (WHERE billing_version <> $2)::text FROM {target} WHERE date = $1")


def table_fingerprint(cur: Any, target: str, date: dt.date, version: int) -> tuple[int, ...]:
    """The fingerprint of the table's rows of ``date`` (see :func:`fingerprint_sql`)."""
    cur.execute(fingerprint_sql(target), parameters=(date, version))
    return tuple(int(v) for v in cur.fetchone())


def rows_fingerprint(rows: pa.Table) -> tuple[int, ...]:
    """The same fingerprint of the rows about to be exported (Python ints: exact)."""
    ads = rows.column("ad_id").to_pylist()
    us = rows.column("window_start").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_pylist()
    clicks = rows.column("clicks").to_pylist()
    spend = rows.column("spend_micros").to_pylist()
    paid = [(a, u, s) for a, u, s in zip(ads, us, spend, strict=True) if s is not None]
    return (rows.num_rows, sum(clicks), sum(s for _, _, s in paid), len(paid),
            sum(a * c for a, c in zip(ads, clicks, strict=True)), sum(u * c for u, c in zip(us, clicks, strict=True)),
            sum(a * s for a, _, s in paid), sum(u * s for _, u, s in paid),
            sum(a * u for a, u in zip(ads, us, strict=True)), 0)

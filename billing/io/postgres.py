"""The stream side in its PostgreSQL sink table (issue 13): the source, as parsed from its URI and column
mapping (:class:`StreamDatabase`). The read is :mod:`billing.io.postgres_read`, its errors
:mod:`billing.io.postgres_errors`, the demo loader :mod:`billing.io.postgres_load`.
Rows are neither deduplicated nor validated here: billing judges them
later in DuckDB exactly like rows read from files.

URI::

    postgresql://[user[:password]@]host[:port]/dbname?table=[SCHEMA.]TABLE[&libpq parameters]

The host may also be given as libpq's ``host=`` parameter (``postgresql:///db?table=T&host=/var/run/postgresql``,
a Unix socket directory) or percent-encoded in place (``postgresql://%2Fvar%2Frun%2Fpostgresql/db?table=T``).

* ``table`` is required. Without a schema it means ``public.TABLE`` (never the server's ``search_path``:
  the manifest must name the table that was read). Identifiers follow PostgreSQL's rules: unquoted ones
  are folded to lower case, ``"Double Quoted"`` ones are kept as written (``""`` inside is one ``"``);
  at most 63 bytes, no NUL. They are only ever put into SQL quoted; values are bound parameters.
* Every other query parameter is handed to libpq untouched (``sslmode``, ``application_name``,
  ``connect_timeout``, ``options``...). A password may come from the URI, ``PGPASSWORD`` or ``~/.pgpass``
  (``PGPASSFILE``), as for any libpq client; :meth:`StreamDatabase.redacted` drops it (and any
  ``password=`` / ``sslpassword=`` parameter) from everything billing prints or records.

Column mapping (``--stream-columns``): ``ad_id=campaign_id,window_start=minute,clicks=click_count
[,spend_micros=spend]``. Unnamed keys default to their own name; ``spend_micros`` is optional: when not
mapped it is read from a ``spend_micros`` column if the table has one, else it is all null (as for a Parquet
file without it). Accepted types: ``smallint``/``integer``/``bigint`` and ``numeric`` whose declared scale
is <= 0 (an unconstrained ``numeric`` may hold fractions: refused) for ``ad_id``, ``clicks`` and
``spend_micros``; ``timestamptz`` or ``timestamp`` (naive means UTC) for ``window_start``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import pyarrow as pa

from billing.errors import BadInputError

TS = pa.timestamp("us", tz="UTC")

#: The normalised stream columns this reader returns, in order (the first four of ``read.STREAM_SCHEMA``).
ROWS_SCHEMA = pa.schema([("ad_id", pa.int64()), ("window_start", TS), ("clicks", pa.int64()),
                         ("spend_micros", pa.int64())])
KEYS = ("ad_id", "window_start", "clicks", "spend_micros")
_INTEGER_KEYS = ("ad_id", "clicks", "spend_micros")
_SECRET_PARAMS = frozenset({"password", "sslpassword"})
_UNQUOTED = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_MAX_IDENT_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names; we refuse them

DEFAULT_CONNECT_TIMEOUT_S = 10


# --- identifiers -----------------------------------------------------------------------------------------

def _split_identifiers(text: str, what: str) -> list[str]:
    """``a.b`` / ``"A"."b.c"`` into the names PostgreSQL would resolve (unquoted ones folded to lower case)."""
    names: list[str] = []
    i, n = 0, len(text)
    while True:
        if i < n and text[i] == '"':
            j, buf = i + 1, []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise BadInputError(f"{what}: unterminated quoted identifier in {text!r}")
                buf.append(text[j:k])
                if k + 1 < n and text[k + 1] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            name = "".join(buf)
        else:
            m = _UNQUOTED.match(text, i)
            if m is None:
                raise BadInputError(f"{what}: not an identifier at {text[i:]!r} in {text!r}")
            name, i = m.group(0).lower(), m.end()
        if not name or "\x00" in name or len(name.encode()) > _MAX_IDENT_BYTES:
            raise BadInputError(f"{what}: identifier {name!r} is empty, holds NUL or is longer than 63 bytes")
        names.append(name)
        if i == n:
            return names
        if text[i] != ".":
            raise BadInputError(f"{what}: unexpected {text[i]!r} in {text!r}")
        i += 1


def quote_ident(name: str) -> str:
    """An identifier as SQL, always quoted (so no name is a keyword and case is kept)."""
    return '"' + name.replace('"', '""') + '"'


def display_ident(name: str) -> str:
    """An identifier as a person would type it: bare when that resolves to the same name."""
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else quote_ident(name)


# --- the source ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamDatabase:
    """A parsed stream source: where to connect (libpq URI), which table, which columns."""

    conninfo: str = field(repr=False)
    """The URI handed to libpq (password included when given; never print it: see :meth:`redacted`)."""
    schema: str
    table: str
    columns: dict[str, str]
    """Target key -> column name in the table (``spend_micros`` absent when not mapped)."""
    password: str | None = field(default=None, repr=False)
    _redacted: str = field(default="", repr=False)

    @classmethod
    def parse(cls, uri: str, columns: str | None = None) -> StreamDatabase:
        try:
            parts = urlsplit(uri)
        except ValueError as e:
            raise BadInputError(f"stream URI: {e}") from None
        if parts.scheme not in ("postgresql", "postgres"):
            raise BadInputError("stream URI: expected postgresql://[user[:password]@]host[:port]/dbname?table=...")
        userinfo, at, hosts = parts.netloc.rpartition("@")
        user, colon, raw_pw = userinfo.partition(":") if at else ("", "", "")
        password = unquote(raw_pw) if colon else None
        if not parts.path.strip("/"):
            raise BadInputError("stream URI: no database name (postgresql://host[:port]/dbname?table=...)")
        try:
            params = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
        except ValueError:
            raise BadInputError("stream URI: malformed query string") from None
        if not hosts and not any(k in ("host", "hostaddr") and v for k, v in params):
            raise BadInputError("stream URI: no host (postgresql://host[:port]/dbname?table=..., or a host= "
                                "parameter: a name, an address or a Unix socket directory)")
        tables = [v for k, v in params if k == "table"]
        if len(tables) != 1:
            raise BadInputError("stream URI: exactly one table=[SCHEMA.]TABLE parameter is required")
        names = _split_identifiers(tables[0], "stream URI table")
        if len(names) > 2:
            raise BadInputError(f"stream URI table: {tables[0]!r} is not [SCHEMA.]TABLE")
        schema, table = (["public", *names] if len(names) == 1 else names)
        passthrough = [(k, v) for k, v in params if k != "table"]
        secret = [v for k, v in passthrough if k in _SECRET_PARAMS]
        if password is None and any(k == "password" for k, _ in passthrough):
            password = next(v for k, v in passthrough if k == "password")
        base = f"{parts.scheme}://{parts.netloc}{parts.path}"
        conninfo = base + ("?" + urlencode(passthrough, quote_via=quote) if passthrough else "")
        shown_netloc = (quote(unquote(user), safe="") + "@" if user else "") + hosts
        shown_params = [(k, v) for k, v in params if k not in _SECRET_PARAMS]
        redacted = (f"{parts.scheme}://{shown_netloc}{parts.path}?"
                    + urlencode(shown_params, quote_via=lambda s, *a: quote(s, safe="./:,=\"")))
        mapping = parse_columns(columns)
        secrets = [s for s in [password, *secret] if s]
        return cls(conninfo, schema, table, mapping, "\x00".join(secrets) or None, redacted)

    def redacted(self) -> str:
        """The URI without any password: for manifests, logs and messages."""
        return self._redacted

    @property
    def qualified(self) -> str:
        """``schema.table`` as SQL (quoted)."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @property
    def display(self) -> str:
        """``schema.table`` as written for people (quoted only where needed)."""
        return f"{display_ident(self.schema)}.{display_ident(self.table)}"

    def scrub(self, text: str) -> str:
        """``text`` with every form of the password replaced by ``***`` (belt and braces: libpq does not
        echo it, but a message must never carry it)."""
        if self.password:
            for secret in self.password.split("\x00"):
                for form in {secret, quote(secret, safe=""), quote(secret)}:
                    if form:
                        text = text.replace(form, "***")
        return text


def parse_columns(spec: str | None) -> dict[str, str]:
    """``ad_id=campaign_id,window_start=minute,...`` into key -> column; unnamed required keys map to
    themselves; ``spend_micros`` is present only when mapped."""
    mapping: dict[str, str] = {}
    for item in (spec or "").split(","):
        if not item.strip():
            continue
        key, eq, col = (s.strip() for s in item.partition("="))
        if not eq or key not in KEYS:
            raise BadInputError(f"stream columns: {item.strip()!r} is not KEY=COLUMN with KEY one of {', '.join(KEYS)}")
        if key in mapping:
            raise BadInputError(f"stream columns: {key} is mapped twice")
        names = _split_identifiers(col, f"stream columns {key}")
        if len(names) != 1:
            raise BadInputError(f"stream columns: {key}={col!r} must name one column")
        mapping[key] = names[0]
    for key in ("ad_id", "window_start", "clicks"):
        mapping.setdefault(key, key)
    used = list(mapping.values())
    if len(set(used)) != len(used):
        raise BadInputError(f"stream columns: one column is mapped to two keys ({spec})")
    return {k: mapping[k] for k in KEYS if k in mapping}

"""PostgreSQL failures as billing's errors: one line each, the password scrubbed (exit 2), or a dropped
connection to retry. Shared by the stream reader and the invoicing export."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from billing.errors import BadInputError
from billing.io.postgres import DEFAULT_CONNECT_TIMEOUT_S, StreamDatabase


class Retryable(Exception):
    """The server closed the connection: the whole read is tried again."""

    def __init__(self, message: str) -> None:
        super().__init__(message)



def error_detail(e: BaseException) -> str:
    """One line out of an ADBC/libpq message, without its status prefix and echoed query: PostgreSQL's whole
    primary message when the driver passes it on (``PG_DIAG_MESSAGE_PRIMARY``), else the message's first line."""
    for key, value in getattr(e, "details", None) or ():
        if key in (b"PG_DIAG_MESSAGE_PRIMARY", "PG_DIAG_MESSAGE_PRIMARY") and value:
            raw = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
            return re.sub(r"\s+", " ", raw).strip()[:300]
    text = str(e).split("\nQuery was:", 1)[0]
    text = re.sub(r"^[A-Z_]+: ", "", text.strip())
    text = re.sub(r"^\[libpq\] ", "", text)
    text = re.sub(r"^Failed to connect: ", "", text)
    text = re.sub(r"\. SQLSTATE: [0-9A-Z]{5}$", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if lines and lines[0].startswith("LINE ") and len(lines) > 1:
        lines = lines[1:]
    first = re.sub(r"\s+", " ", lines[0]) if lines else type(e).__name__
    return first[:300]


_CLOSED = ("server closed the connection unexpectedly", "terminating connection", "no connection to the server",
           "connection to server was lost", "SSL connection has been closed unexpectedly", "SSL SYSCALL error",
           "could not receive data from server", "could not send data to server")
_UNREACHABLE = ("Connection refused", "could not translate host name", "timeout expired", "No route to host",
                "Network is unreachable", "Connection timed out", "could not connect to server",
                "received invalid response to SSL negotiation", "Connection reset by peer")
_AUTH = ("password authentication failed", "no password supplied", "authentication failed",
         "no pg_hba.conf entry", "is not permitted to log in", "role \"", "pg_hba.conf rejects connection")


def is_connection_failure(raw: str) -> bool:
    """Whether an ADBC message without SQLSTATE is libpq failing to connect or to authenticate."""
    return any(s in raw for s in _UNREACHABLE + _AUTH)


def connection_failure(db: StreamDatabase, raw: str, detail: str, state: str | None) -> BadInputError:
    """The one-line error for a connection that could not be made (every PostgreSQL URI billing opens)."""
    where = db.redacted()
    if re.search(r'database ".*" does not exist', raw):
        return BadInputError(db.scrub(f"{where}: database does not exist: {detail}"))
    if any(s in raw for s in _AUTH) or state in ("28000", "28P01"):
        return BadInputError(db.scrub(f"{where}: authentication failed: {detail}"))
    if any(s in raw for s in _UNREACHABLE):
        return BadInputError(db.scrub(f"{where}: cannot reach the server: {detail}"))
    return BadInputError(db.scrub(f"{where}: cannot connect: {detail}"))


def classify(db: StreamDatabase, e: Exception, *, connecting: bool) -> BadInputError | Retryable | None:
    """The one-line error for an ADBC failure (password scrubbed), Retryable for a dropped connection, or
    None when it is not the input's fault (a bug: re-raised, exit 1)."""
    import adbc_driver_manager as adbc

    if not isinstance(e, adbc.DatabaseError) or isinstance(e, adbc.InternalError | adbc.NotSupportedError):
        return None
    where = db.redacted()
    detail = db.scrub(error_detail(e))
    raw = str(e)
    state = getattr(e, "sqlstate", None)
    if state == "57014":
        return BadInputError(db.scrub(f"{where}: statement timeout while reading {db.display}: {detail}"))
    if state in ("57P01", "57P02", "57P03") or (state is None and any(s in raw for s in _CLOSED) and (
            not connecting or "server closed the connection" in raw)):
        return Retryable(db.scrub(f"{where}: the server closed the connection: {detail}"))
    if connecting or state is None:
        return connection_failure(db, raw, detail, state)
    if state == "22003":
        return BadInputError(db.scrub(f"{where}: a value of {db.display} does not fit int64: {detail}"))
    if state == "42501":
        return BadInputError(db.scrub(f"{where}: permission denied reading {db.display}: {detail}"))
    if state == "42P01":
        return BadInputError(db.scrub(f"{where}: table {db.display} does not exist"))
    return BadInputError(db.scrub(f"{where}: PostgreSQL error reading {db.display}: {detail}"))


def with_connect_timeout(conninfo: str, seconds: float | None) -> str:
    """libpq's ``connect_timeout`` (whole seconds, at least 2): the URI's own value wins over the default."""
    params = parse_qsl(urlsplit(conninfo).query, keep_blank_values=True)
    if any(k == "connect_timeout" for k, _ in params) and seconds is None:
        return conninfo
    value = max(2, round(seconds if seconds is not None else DEFAULT_CONNECT_TIMEOUT_S))
    base, _, _ = conninfo.partition("?")
    params = [(k, v) for k, v in params if k != "connect_timeout"] + [("connect_timeout", str(value))]
    return base + "?" + urlencode(params, quote_via=quote)



def raise_as(db: StreamDatabase, e: Exception, *, connecting: bool) -> Exception:
    err = classify(db, e, connecting=connecting)
    if err is None:
        return e
    return err


@contextlib.contextmanager
def session(db: StreamDatabase, conninfo: str) -> Iterator[Any]:
    """An ADBC connection to ``db`` (autocommit off: the driver opens the transaction block); every libpq
    failure, connecting or inside the block, becomes billing's one-line error without the password (or
    :class:`Retryable`); the connection is closed whatever happens."""
    import adbc_driver_postgresql.dbapi as pg

    try:
        conn = pg.connect(conninfo)
    except Exception as e:
        raise raise_as(db, e, connecting=True) from None
    try:
        yield conn
    except BadInputError:
        raise
    except Exception as e:
        raise raise_as(db, e, connecting=False) from None
    finally:
        with contextlib.suppress(Exception):  # closing a connection the server already dropped
            conn.close()

"""Where a Delta table lives and how delta-rs reaches it: its storage options, opening or creating it, and its
errors in one line without secrets (for :mod:`billing.io.delta`, which writes, and :mod:`billing.io.delta_read`).

* S3 (``s3://``): delta-rs 1.x writes each log entry with a conditional put (``PUT`` with
  ``If-None-Match: *``, object_store's ``conditional_put=etag``), so of two writers of version N exactly
  one wins and the other re-bases; no rename, no DynamoDB lock. :func:`storage_options_for` sets
  ``aws_conditional_put=etag`` explicitly (it is also delta-rs 1.x's default; ``disabled`` makes every
  commit fail instead of falling back to an unsafe rename) and takes the endpoint from
  ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` like the rest of billing, with ``AWS_ALLOW_HTTP`` for an
  ``http://`` endpoint. Credentials come from the standard AWS chain (environment, profile...).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from billing.errors import StorageError

PARTITION = "date"
APP_ID_PREFIX = "billing:dt="

_SECRET_KEY = re.compile(r"secret|token|password|credential", re.IGNORECASE)
#: Where a Rust backtrace starts in a delta-rs message ("... 0: <unknown> 1: ..." or "Stack backtrace:").
_BACKTRACE = re.compile(r"\s+0: (?:<unknown>|\S+::)|Stack backtrace:")


def app_id(date: dt.date) -> str:
    """The Delta application-transaction id recording the billing version of ``date``."""
    return f"{APP_ID_PREFIX}{date.isoformat()}"


def is_s3(table_uri: str) -> bool:
    return table_uri.startswith(("s3://", "s3a://"))


def storage_options_for(table_uri: str, storage_options: Mapping[str, str] | None = None) -> dict[str, str] | None:
    """The storage options handed to delta-rs: the caller's, plus, for ``s3://``, a conditional-put log
    (``aws_conditional_put=etag``), the endpoint from ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` when the
    caller gave none, ``AWS_ALLOW_HTTP`` for an ``http://`` endpoint and the region from
    ``AWS_DEFAULT_REGION`` when ``AWS_REGION`` is unset. Local paths: the caller's options unchanged."""
    opts = dict(storage_options or {})
    if not is_s3(table_uri):
        return opts or None
    keys = {k.lower() for k in opts}
    if not keys & {"aws_conditional_put", "conditional_put", "aws_copy_if_not_exists", "copy_if_not_exists"}:
        opts["aws_conditional_put"] = "etag"
    endpoint_keys = {"aws_endpoint_url", "aws_endpoint", "endpoint_url", "endpoint"}
    endpoint = next((v for k, v in opts.items() if k.lower() in endpoint_keys), None)
    if endpoint is None:
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts["AWS_ENDPOINT_URL"] = endpoint
    if endpoint and endpoint.startswith("http://") and "aws_allow_http" not in keys and "allow_http" not in keys:
        opts["AWS_ALLOW_HTTP"] = "true"
    if "aws_region" not in keys and "region" not in keys and not os.environ.get("AWS_REGION"):
        region = os.environ.get("AWS_DEFAULT_REGION")
        if region:
            opts["AWS_REGION"] = region
    return opts


def one_line(table_uri: str, what: str, e: BaseException, opts: Mapping[str, str] | None) -> str:
    text = " ".join(_BACKTRACE.split(str(e), maxsplit=1)[0].split()) or type(e).__name__
    for k, v in (opts or {}).items():
        if len(v) >= 4 and _SECRET_KEY.search(k):
            text = text.replace(v, "***")
    for k in ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        secret = os.environ.get(k)
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    if len(text) > 400:
        text = text[:400] + "..."
    return f"Delta table {table_uri}: {what}: {text}"


def open_table(table_uri: str, opts: Mapping[str, str] | None) -> Any:
    """The table's latest snapshot, or None when there is no table at ``table_uri``."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        return DeltaTable(table_uri, storage_options=dict(opts) if opts else None)
    except TableNotFoundError:
        return None
    except Exception as e:
        raise StorageError(one_line(table_uri, "cannot be opened", e, opts)) from None


def open_or_create(table_uri: str, schema: pa.Schema, opts: Mapping[str, str] | None) -> Any:
    from deltalake import CommitProperties, DeltaTable

    dtab = open_table(table_uri, opts)
    if dtab is not None:
        return dtab
    try:
        # No commit retries: delta-rs 1.6 re-bases a CREATE TABLE that lost the race for version 0 into a
        # second CREATE TABLE commit (seen with two processes, whatever the mode), which would silently
        # replace the winner's metadata. Losing must fail instead; the winner's table is then opened.
        return DeltaTable.create(table_uri, schema, mode="ignore", partition_by=[PARTITION],
                                 storage_options=dict(opts) if opts else None,
                                 commit_properties=CommitProperties(max_commit_retries=0))
    except Exception as e:
        dtab = open_table(table_uri, opts)  # a concurrent writer created it first
        if dtab is None:
            raise StorageError(one_line(table_uri, "cannot be created", e, opts)) from None
        return dtab

"""Export of a day's current totals to the invoicing database (issue 14): the current version's
totals.parquet and manifest SHA-256, handed to :func:`billing.io.invoicing.export_day` (one transaction)."""

from __future__ import annotations

import hashlib

from billing.day.publish import MANIFEST, Day
from billing.errors import BadInputError
from billing.io.invoicing import Export, export_day, parse_target
from billing.io.invoicing_ledger import out_identity


def export_current(day: Day, uri: str, *, allow_rollback: bool = False, replace_other_out: bool = False,
                   force: bool = False) -> Export:
    """Export ``day``'s current version to the table named by ``uri`` (``postgresql://...?table=S.T``).

    The URI is checked before any file is read; the version's files are immutable, so no lock is needed
    (a run committing a newer version meanwhile is exported by the next call). OUT (without credentials) is
    recorded in the ledger: a day exported from another OUT is refused unless ``replace_other_out``."""
    parse_target(uri)
    version = day.require_current()
    manifest = day.out.read_bytes(day.path(f"v={version}", MANIFEST))
    if manifest is None:
        raise BadInputError(f"{day.url(f'v={version}', MANIFEST)} does not exist")
    totals = day.read_table(version, "totals.parquet")
    return export_day(uri, day.date, totals, version=version, manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                      allow_rollback=allow_rollback, out_uri=out_identity(day.out.uri),
                      replace_other_out=replace_other_out, force=force)

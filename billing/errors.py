"""One root error; each subclass carries the exit code the CLI maps it to.

Exit codes (documented in the README, mapped in one place: ``billing.cli``):
  0  reconciled, no flagged drift
  1  unexpected failure (a bug, or an environment fault we did not anticipate)
  2  bad usage or structurally unusable input; nothing was published
  3  reconciled, drift flagged (all outputs were published)
"""

from __future__ import annotations


class BillingError(Exception):
    """Root of every error this package raises on purpose."""

    exit_code = 1


class BadInputError(BillingError):
    """Input that cannot be reconciled at all: the run stops, nothing is published."""

    exit_code = 2


class UsageError(BadInputError):
    """A bad option value or combination."""


class StorageError(BadInputError):
    """An input or output location that cannot be read or written (missing bucket, credentials)."""


class TableShapeError(StorageError):
    """A Delta table billing cannot replace a day of as it stands (its schema, partitioning or properties):
    retrying does not help; the table must be fixed or moved aside."""


class LockedError(BadInputError):
    """Another run holds the day's lock."""


class LedgerError(BillingError):
    """The row ledger does not balance: a bug, never published."""

    exit_code = 1


class OutputContractError(BillingError):
    """An output table broke its declared schema: a bug, never published."""

    exit_code = 1


class SqlContractError(BillingError):
    """A SQL file broke its header's contract (a table it reads is missing, a malformed header): a bug."""

    exit_code = 1

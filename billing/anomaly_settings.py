"""The anomaly rule's settings, a part of :class:`billing.config.ReconcileConfig` (it inherits them, so they
are layered like every setting: ``BILLING_ANOMALY_K``, TOML keys, defaults here). No option on the
command line: like ``lock_ttl``, they come from the environment or the config file.

A day is anomalous on a measure when it departs from its reference days' median by more than
``anomaly_k × max(MAD, floor)``; see :mod:`billing.month.anomalies` and the README, "Closing a month".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billing.errors import UsageError
from billing.values import _count, _float, _int


@dataclass(frozen=True, kw_only=True)
class AnomalySettings:
    anomaly_k: float = 5.0
    """How many MADs (at least the floor) from the reference days' median a day may be."""
    anomaly_window: int = 28
    """Reference days: at most this many, the most recent reconciled days before the day."""
    anomaly_min_days: int = 7
    """A day with fewer reference days is not judged."""
    anomaly_floor_rate: float = 0.001
    """Floor of the MAD of the drift rate (absolute drift / billable clicks)."""
    anomaly_floor_money: int = 1_000_000
    """Floor of the MAD of the absolute money at risk, in micros."""
    anomaly_floor_share: float = 0.1
    """Floor of the MAD of each cause's share of the absolute drift."""
    anomaly_floor_rel: float = 0.25
    """Floor of the MAD of the drift rate and of the money at risk, as a fraction of their median: a day's
    drift is a count of a few dozen windows in a small month, and its noise grows with it."""

    def __post_init__(self) -> None:
        if not self.anomaly_k > 0:
            raise UsageError(f"anomaly_k must be > 0, got {self.anomaly_k}")
        if self.anomaly_window < 1:
            raise UsageError("anomaly_window must be >= 1")
        if min(self.anomaly_floor_rate, self.anomaly_floor_money, self.anomaly_floor_share, self.anomaly_floor_rel) < 0:
            raise UsageError("the anomaly floors must be >= 0")


ANOMALY_FIELDS = ("anomaly_k", "anomaly_window", "anomaly_min_days", "anomaly_floor_rate", "anomaly_floor_money",
                  "anomaly_floor_share", "anomaly_floor_rel")
#: How each setting's value is read when given as text (environment, file) or typed.
ANOMALY_PARSE: dict[str, Callable[[Any, str], Any]] = {
    "anomaly_k": _float, "anomaly_window": _count, "anomaly_min_days": _count, "anomaly_floor_rate": _float,
    "anomaly_floor_money": _int, "anomaly_floor_share": _float, "anomaly_floor_rel": _float}

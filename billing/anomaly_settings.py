"""The anomaly rule's settings, a part of :class:`billing.config.ReconcileConfig` (it inherits them, so they
are layered like every setting: ``BILLING_ANOMALY_K``, TOML keys, defaults here). No option on the
command line: like ``lock_ttl``, they come from the environment or the config file.

A day is anomalous on a measure when it departs from its reference days' median by more than
``anomaly_k × max(MAD, floor)``; see :mod:`billing.month.anomalies` and the README, "Closing a month".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from billing.errors import UsageError
from billing.values import _float, _int


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
        for name in ANOMALY_FIELDS:  # a backstop for configs built in code; the layers check as they parse
            ANOMALY_PARSE[name](getattr(self, name), f"{name} ({'BILLING_' + name.upper()})")


def _checked(parse: Callable[[Any, str], Any], ok: Callable[[float], bool], what: str) -> Callable[[Any, str], Any]:
    def check(v: Any, label: str) -> Any:
        x = parse(v, label)
        if not ok(x):
            raise UsageError(f"{label} must be {what}, got {v!r}")
        return x
    return check


ANOMALY_FIELDS = ("anomaly_k", "anomaly_window", "anomaly_min_days", "anomaly_floor_rate", "anomaly_floor_money",
                  "anomaly_floor_share", "anomaly_floor_rel")
#: How each setting's value is read when given as text (environment, file) or typed.
ANOMALY_PARSE: dict[str, Callable[[Any, str], Any]] = {
    "anomaly_k": _checked(_float, lambda x: math.isfinite(x) and x > 0, "a finite number > 0"),
    **dict.fromkeys(("anomaly_window", "anomaly_min_days"), _checked(_int, lambda x: x >= 1, "an integer >= 1")),
    **dict.fromkeys(("anomaly_floor_rate", "anomaly_floor_share", "anomaly_floor_rel"),
                    _checked(_float, lambda x: math.isfinite(x) and x >= 0, "a finite number >= 0")),
    "anomaly_floor_money": _checked(_int, lambda x: x >= 0, "an integer >= 0 (micros)")}

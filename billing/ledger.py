"""The row ledger: where every raw row read went, and the proof that it balances.

A slice counts its rows into a :class:`Ledger`; the day adds the slices' ledgers up and checks
the sum before anything is published. Shared by both, so it sits with the base modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from billing.errors import LedgerError
from billing.schemas import REASONS


@dataclass
class Ledger:
    rows_read: int = 0
    rows_invalid: int = 0
    invalid_by_reason: dict[str, int] = field(default_factory=dict)
    rows_valid: int = 0
    duplicates_removed: int = 0
    conflicting_click_ids: int = 0
    clicks_out_of_day: int = 0
    billable_clicks: int = 0
    billable_spend_micros: int | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ledger:
        return cls(**d)

    def add(self, other: Ledger) -> Ledger:
        """The ledger of two disjoint click_id slices."""
        reasons = dict(self.invalid_by_reason)
        for k, v in other.invalid_by_reason.items():
            reasons[k] = reasons.get(k, 0) + v
        spend = None
        if self.billable_spend_micros is not None or other.billable_spend_micros is not None:
            spend = (self.billable_spend_micros or 0) + (other.billable_spend_micros or 0)
        return Ledger(
            rows_read=self.rows_read + other.rows_read,
            rows_invalid=self.rows_invalid + other.rows_invalid,
            invalid_by_reason=reasons,
            rows_valid=self.rows_valid + other.rows_valid,
            duplicates_removed=self.duplicates_removed + other.duplicates_removed,
            conflicting_click_ids=self.conflicting_click_ids + other.conflicting_click_ids,
            clicks_out_of_day=self.clicks_out_of_day + other.clicks_out_of_day,
            billable_clicks=self.billable_clicks + other.billable_clicks,
            billable_spend_micros=spend,
        )

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["invalid_by_reason"] = {r: self.invalid_by_reason[r] for r in REASONS if r in self.invalid_by_reason}
        return d

    def check_balance(self, *, totals_clicks: int, totals_spend: int | None) -> None:
        """Raise :class:`LedgerError` unless every row is accounted for exactly once."""
        problems = []
        if self.rows_read != self.rows_invalid + self.rows_valid:
            problems.append(f"rows_read {self.rows_read} != rows_invalid {self.rows_invalid} "
                            f"+ rows_valid {self.rows_valid}")
        if sum(self.invalid_by_reason.values()) != self.rows_invalid:
            problems.append(f"invalid_by_reason sums to {sum(self.invalid_by_reason.values())}, "
                            f"rows_invalid is {self.rows_invalid}")
        if self.rows_valid - self.duplicates_removed != self.billable_clicks + self.clicks_out_of_day:
            problems.append(f"rows_valid {self.rows_valid} - duplicates_removed {self.duplicates_removed} "
                            f"!= billable_clicks {self.billable_clicks} + clicks_out_of_day "
                            f"{self.clicks_out_of_day}")
        if self.billable_clicks != totals_clicks:
            problems.append(f"billable_clicks {self.billable_clicks} != sum of totals.clicks {totals_clicks}")
        if (self.billable_spend_micros or 0) != (totals_spend or 0):
            problems.append(f"billable_spend_micros {self.billable_spend_micros} != sum of totals.spend_micros "
                            f"{totals_spend}")
        if problems:
            raise LedgerError("the ledger does not balance, nothing published: " + "; ".join(problems))




def check_stream_balance(stream: dict[str, Any], *, rows_in_day: int) -> None:
    """Raise :class:`LedgerError` unless every stream row read is invalid, out of day or in a window of D
    exactly once (``stream`` is summary.stream; ``rows_in_day`` is counted from the day's windows)."""
    problems = []
    read, invalid, out = stream["rows_read"], stream["rows_invalid"], stream["rows_out_of_day"]
    if read != invalid + out + rows_in_day:
        problems.append(f"stream rows_read {read} != rows_invalid {invalid} + rows_out_of_day {out} "
                        f"+ rows in day {rows_in_day}")
    by_reason = stream["invalid_by_reason"]
    if sum(by_reason.values()) != invalid:
        problems.append(f"stream invalid_by_reason sums to {sum(by_reason.values())}, rows_invalid is {invalid}")
    if problems:
        raise LedgerError("the stream ledger does not balance, nothing published: " + "; ".join(problems))

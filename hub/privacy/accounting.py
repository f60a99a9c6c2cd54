"""Exact privacy-loss amounts: what a query costs, what a budget holds, what has been spent.

Domain core. Amounts are :class:`fractions.Fraction`, never floats, so that a thousand small
debits add up to exactly their sum and a budget edge is decided exactly. Two accounting
measures exist, chosen per policy:

* ``zcdp``: zero-concentrated DP, amounts are rho (the default; discrete Gaussian noise);
* ``pure``: pure epsilon-DP, amounts are epsilon (discrete Laplace noise).

Amounts of different measures never mix: adding or comparing them raises ``ValueError``.
An explicit zero is allowed; infinity is not representable on purpose (no unbounded budget).

A cost may also carry a ``delta``: the probability with which a mechanism's guarantee may
fail outright. Only key selection (thresholded noisy counts of distinct units, see
:mod:`hub.privacy.selection`) spends delta; everything else is delta 0. Deltas compose by
addition (basic composition), so they are summed and capped like the main amount, exactly.
In files and JSON an amount is written as a decimal or fraction string (``"0.05"``,
``"1/20"``) or an integer, never as a float literal, so that ``0.1`` means exactly 1/10.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from fractions import Fraction
from typing import Any

__all__ = ["BudgetLimits", "Cost", "Measure", "parse_amount"]


class Measure(StrEnum):
    ZCDP = "zcdp"  # amounts are rho
    PURE = "pure"  # amounts are epsilon

    @property
    def symbol(self) -> str:
        return "rho" if self is Measure.ZCDP else "epsilon"


def parse_amount(value: Any) -> Fraction:
    """An exact, non-negative amount from a decimal/fraction string or an integer."""
    if isinstance(value, bool | float):
        raise ValueError(
            "write privacy amounts as a string (\"0.1\", \"1/10\") or an integer, "
            "so that they are exact"
        )
    if isinstance(value, Fraction):
        amount = value
    elif isinstance(value, int):
        amount = Fraction(value)
    elif isinstance(value, str):
        try:
            amount = Fraction(value.strip())
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{value!r} is not a decimal or fraction") from None
    else:
        raise ValueError(f"{value!r} is not a privacy amount")
    if amount < 0:
        raise ValueError("a privacy amount cannot be negative")
    return amount


@dataclass(frozen=True, slots=True, order=False)
class Cost:
    """An amount of privacy loss in one measure, and the delta it may fail with (default 0).

    Comparisons look at ``amount`` only (the budgets' rules check ``delta`` on their own)."""

    measure: Measure
    amount: Fraction
    delta: Fraction = Fraction(0)

    @classmethod
    def zero(cls, measure: Measure) -> Cost:
        return cls(measure, Fraction(0))

    def with_delta(self, delta: Fraction) -> Cost:
        return Cost(self.measure, self.amount, Fraction(delta))

    @classmethod
    def parse(cls, measure: Measure | str, value: Any) -> Cost:
        return cls(Measure(measure), parse_amount(value))

    def _same(self, other: Cost) -> None:
        if self.measure is not other.measure:
            raise ValueError(f"cannot combine {self.measure.value} and {other.measure.value}")

    def __add__(self, other: Cost) -> Cost:
        self._same(other)
        return Cost(self.measure, self.amount + other.amount, self.delta + other.delta)

    def __sub__(self, other: Cost) -> Cost:
        self._same(other)
        return Cost(self.measure, self.amount - other.amount, self.delta - other.delta)

    def __le__(self, other: Cost) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def __lt__(self, other: Cost) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __ge__(self, other: Cost) -> bool:
        self._same(other)
        return self.amount >= other.amount

    def __gt__(self, other: Cost) -> bool:
        self._same(other)
        return self.amount > other.amount

    def __str__(self) -> str:
        text = f"{self.measure.symbol}={_decimal(self.amount)}"
        return text + (f", delta={_decimal(self.delta)}" if self.delta else "")

    def as_json(self) -> dict[str, Any]:
        """Exact (``"1/20"``) and readable (``0.05``) forms, for APIs and the ledger; a
        ``delta`` (exact string) only when it is not 0."""
        out: dict[str, Any] = {
            "measure": self.measure.value,
            "amount": str(self.amount),
            "value": float(self.amount),
        }
        if self.delta:
            out["delta"] = str(self.delta)
        return out


def _decimal(x: Fraction) -> str:
    """The exact decimal when there is a short one (``0.05``), else the fraction (``1/3``)."""
    twos = fives = 0
    d = x.denominator
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    places = max(twos, fives)
    if d != 1 or places > 12:
        return str(x)
    digits = str(x.numerator * 10**places // x.denominator).rjust(places + 1, "0")
    whole, frac = digits[: len(digits) - places], digits[len(digits) - places :]
    return f"{whole}.{frac}".rstrip("0").rstrip(".") if places else whole


@dataclass(frozen=True, slots=True)
class BudgetLimits:
    """The limits a sharing policy sets on one dataset, all in one measure.

    ``global_total`` bounds what all members together may ever spend on the dataset since
    ``opened`` (so that colluding members cannot average the noise away); ``per_member`` what
    one member organisation may ever spend; ``per_query`` the most one query may cost;
    ``per_month``, when set, what one member may spend in one calendar month (UTC). None of
    them renews by itself: raising one is an explicit, audited governance change.

    ``delta_*`` cap the deltas the same way (global, per member, per query); all 0 (the
    default) means no mechanism with a delta may run: key selection is refused.
    """

    measure: Measure
    global_total: Fraction
    per_member: Fraction
    per_query: Fraction
    opened: date
    per_month: Fraction | None = None
    delta_global: Fraction = Fraction(0)
    delta_per_member: Fraction = Fraction(0)
    delta_per_query: Fraction = Fraction(0)

    def __post_init__(self) -> None:
        if self.per_member > self.global_total:
            raise ValueError("the per-member budget cannot exceed the global budget")
        if self.per_query > self.per_member:
            raise ValueError("the per-query cap cannot exceed the per-member budget")
        if self.per_month is not None and self.per_month > self.per_member:
            raise ValueError("the monthly cap cannot exceed the per-member budget")
        if not 0 <= self.delta_per_query <= self.delta_per_member <= self.delta_global < 1:
            raise ValueError("deltas need 0 <= per query <= per member <= global < 1")

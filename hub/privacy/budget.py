"""The ledger's rules: may a query spend, and what is left. Exact, pure, no storage.

Domain core (no database, no web): :mod:`hub.query.ledger` reads the spending out of the metadata
store inside one locked transaction and asks :func:`check_charge` whether a cost fits; the
rules live here so that they are testable alone and read in one place.

What counts as spent
    Every ledger entry of the dataset created at or after the dataset's ``opened`` date
    (midnight UTC), in the policy's measure, whatever its status: ``released``; ``charged``
    (being computed, or its process died before the release: the hub cannot prove that
    nothing left it); and ``failed``, because the budget is debited before the computation
    and never refunded (whether a computation fails can depend on the data, so a refund
    would let a member probe the data for free). Budgets never renew: nothing ever leaves
    the sum, whatever the date.

The rules, checked in this order (the first that refuses names itself as the ``rule``):

==================  ====================================================================
``budget:per_query``  the cost is above the policy's per-query cap
``budget:month``      this member's spend in the calendar month (UTC) of ``now``, plus the
                      cost, is above ``per_month``
``budget:member``     this member's spend since ``opened``, plus the cost, is above
                      ``per_member``
``budget:global``     all members' spend since ``opened``, plus the cost, is above
                      ``global_total``
``budget:delta``      the cost's delta is above the per-query delta cap, or this member's
                      or all members' deltas since ``opened``, plus it, are above theirs
==================  ====================================================================

Each refusal is a :class:`~hub.errors.BudgetExceeded` with ``requested`` and ``remaining``
as exact strings (``"1/20"``). Equality is allowed: spending exactly the whole budget
succeeds, and then any further non-zero cost is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from fractions import Fraction
from typing import Any

from hub.errors import BudgetExceeded, Forbidden, InvalidInput
from hub.privacy.accounting import BudgetLimits, Cost, Measure

__all__ = [
    "Balance",
    "Spend",
    "SpentEntry",
    "check_charge",
    "epsilon_for",
    "month_window",
    "opened_at",
    "tally",
]


def opened_at(limits: BudgetLimits) -> datetime:
    """The instant the dataset opened: midnight UTC of ``limits.opened``."""
    return datetime.combine(limits.opened, time(0), tzinfo=UTC)


def month_window(now: datetime) -> tuple[datetime, datetime]:
    """``[first instant of now's UTC month, first instant of the next month)``."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    nxt = datetime(now.year + (now.month == 12), now.month % 12 + 1, 1, tzinfo=UTC)
    return start, nxt


@dataclass(frozen=True, slots=True)
class SpentEntry:
    """One entry that counts as spent (already filtered by status, measure and ``opened``)."""

    org: str
    amount: Fraction
    created_at: datetime
    delta: Fraction = Fraction(0)


@dataclass(frozen=True, slots=True)
class Spend:
    """What has been spent on one dataset, seen from one member at one instant."""

    member: Fraction
    month: Fraction
    all_members: Fraction
    member_delta: Fraction = Fraction(0)
    all_delta: Fraction = Fraction(0)


def tally(entries: Iterable[SpentEntry], *, org: str, now: datetime) -> Spend:
    """Sum the spent entries exactly: this member's total, its month of ``now``, everyone's.

    The month window is taken from each entry's *stored* ``created_at``, never from the
    caller's clock alone, so two callers whose clocks disagree still see the same entries;
    the member and global sums have no upper time bound at all (an entry stamped in the
    "future" by a skewed clock still counts).
    """
    start, end = month_window(now)
    member = month = everyone = member_delta = all_delta = Fraction(0)
    for e in entries:
        everyone += e.amount
        all_delta += e.delta
        if e.org == org:
            member += e.amount
            member_delta += e.delta
            created = e.created_at if e.created_at.tzinfo else e.created_at.replace(tzinfo=UTC)
            if start <= created < end:
                month += e.amount
    return Spend(member=member, month=month, all_members=everyone, member_delta=member_delta,
                 all_delta=all_delta)


def _refuse(rule: str, what: str, cost: Cost, remaining: Fraction) -> BudgetExceeded:
    left = max(remaining, Fraction(0))
    return BudgetExceeded(
        f"the query costs {cost} but {what} has {Cost(cost.measure, left)} left",
        rule=rule,
        measure=cost.measure.value,
        requested=str(cost.amount),
        remaining=str(left),
    )


def check_charge(limits: BudgetLimits, cost: Cost, spent: Spend, *, now: datetime) -> None:
    """Refuse (raise) unless ``cost`` fits every limit given what is ``spent``; else return.

    ``InvalidInput`` (``rule=budget:measure``) when the cost is in another measure than the
    policy; ``Forbidden`` (``rule=budget:opened``) before the dataset opens; otherwise the
    :class:`BudgetExceeded` of the first rule (module docstring) that the cost breaks.
    """
    if cost.measure is not limits.measure:
        raise InvalidInput(
            f"the cost is in {cost.measure.value} but the policy accounts in "
            f"{limits.measure.value}",
            field="cost",
            rule="budget:measure",
        )
    if now < opened_at(limits):
        raise Forbidden(
            f"the dataset opens for queries on {limits.opened.isoformat()}",
            rule="budget:opened",
        )
    amount = cost.amount
    if amount > limits.per_query:
        raise _refuse("budget:per_query", "the per-query cap", cost, limits.per_query)
    if limits.per_month is not None and spent.month + amount > limits.per_month:
        raise _refuse("budget:month", "this month's budget", cost,
                      limits.per_month - spent.month)
    if spent.member + amount > limits.per_member:
        raise _refuse("budget:member", "your budget", cost, limits.per_member - spent.member)
    if spent.all_members + amount > limits.global_total:
        raise _refuse("budget:global", "the dataset's global budget", cost,
                      limits.global_total - spent.all_members)
    if cost.delta:
        for cap, used, what in (
            (limits.delta_per_query, Fraction(0), "the per-query delta cap"),
            (limits.delta_per_member, spent.member_delta, "your delta budget"),
            (limits.delta_global, spent.all_delta, "the dataset's global delta budget"),
        ):
            if used + cost.delta > cap:
                left = max(cap - used, Fraction(0))
                raise BudgetExceeded(
                    f"the query needs delta {cost.delta} but {what} has {left} left"
                    + (" (this policy allows no delta: key selection is off)" if not cap
                       else ""),
                    rule="budget:delta", measure="delta", requested=str(cost.delta),
                    remaining=str(left),
                )


def epsilon_for(measure: Measure, amount: Fraction, delta: Fraction) -> float:
    """The epsilon of (epsilon, delta)-DP that ``amount`` implies, rounded up; for reports.

    Pure DP: epsilon is the amount itself (any delta). zCDP: rho-zCDP implies
    (rho + 2 sqrt(rho ln(1/delta)), delta)-DP for every delta > 0 (Bun and Steinke 2016,
    Proposition 1.3). A float, nudged up one ulp per operation, because it is only shown,
    never used to decide a charge.
    """
    if not 0 < delta < 1:
        raise ValueError("delta must be in (0, 1)")
    up = math.inf
    if measure is Measure.PURE:
        return math.nextafter(float(amount), up)
    rho = math.nextafter(float(amount), up)
    log_term = math.nextafter(-math.log(float(delta)), up)
    root = math.nextafter(math.sqrt(math.nextafter(rho * log_term, up)), up)
    return math.nextafter(rho + math.nextafter(2 * root, up), up)


def _left(limit: Fraction, spent: Fraction) -> Fraction:
    return max(limit - spent, Fraction(0))


@dataclass(frozen=True, slots=True)
class Balance:
    """What one member has spent and has left on one dataset, all exact.

    ``cumulative`` is the privacy loss of the whole dataset since it opened: everything all
    members have spent, because colluding members can combine their releases.
    """

    dataset: str
    org: str
    measure: Measure
    opened: date
    member_spent: Fraction
    member_left: Fraction
    month_spent: Fraction
    month_left: Fraction | None
    global_spent: Fraction
    global_left: Fraction
    per_query: Fraction
    delta_member_spent: Fraction = Fraction(0)
    delta_member_left: Fraction = Fraction(0)
    delta_global_spent: Fraction = Fraction(0)
    delta_global_left: Fraction = Fraction(0)
    delta_per_query: Fraction = Fraction(0)

    @classmethod
    def of(cls, *, dataset: str, org: str, limits: BudgetLimits, spent: Spend) -> Balance:
        return cls(
            dataset=dataset,
            org=org,
            measure=limits.measure,
            opened=limits.opened,
            member_spent=spent.member,
            member_left=_left(limits.per_member, spent.member),
            month_spent=spent.month,
            month_left=None if limits.per_month is None else _left(limits.per_month,
                                                                   spent.month),
            global_spent=spent.all_members,
            global_left=_left(limits.global_total, spent.all_members),
            per_query=limits.per_query,
            delta_member_spent=spent.member_delta,
            delta_member_left=_left(limits.delta_per_member, spent.member_delta),
            delta_global_spent=spent.all_delta,
            delta_global_left=_left(limits.delta_global, spent.all_delta),
            delta_per_query=limits.delta_per_query,
        )

    @property
    def can_spend_delta(self) -> Fraction:
        """The largest delta the next query may spend (0: no key selection possible)."""
        return min(self.delta_per_query, self.delta_member_left, self.delta_global_left)

    @property
    def cumulative(self) -> Cost:
        return Cost(self.measure, self.global_spent)

    @property
    def can_spend(self) -> Fraction:
        """The most the next query may cost (the smallest of the caps and what is left)."""
        caps = [self.per_query, self.member_left, self.global_left]
        if self.month_left is not None:
            caps.append(self.month_left)
        return min(caps)

    def as_json(self, delta: Fraction = Fraction(1, 10**9)) -> dict[str, Any]:
        """Exact amounts as strings, plus the (epsilon, delta) the cumulative loss implies."""
        def amount(x: Fraction | None) -> str | None:
            return None if x is None else str(x)

        out: dict[str, Any] = {
            "dataset": self.dataset,
            "measure": self.measure.value,
            "opened": self.opened.isoformat(),
            "member": {"spent": amount(self.member_spent), "left": amount(self.member_left)},
            "month": {"spent": amount(self.month_spent), "left": amount(self.month_left)},
            "global": {"spent": amount(self.global_spent), "left": amount(self.global_left)},
            "per_query": amount(self.per_query),
            "can_spend": amount(self.can_spend),
            "cumulative": {
                "measure": self.measure.value,
                "amount": amount(self.global_spent),
                "epsilon": epsilon_for(self.measure, self.global_spent, delta),
                "delta": 0.0 if self.measure is Measure.PURE else float(delta),
            },
        }
        if self.delta_per_query or self.delta_global_spent:
            out["cumulative"]["delta"] += float(self.delta_global_spent)
            out["delta"] = {
                "member": {"spent": amount(self.delta_member_spent),
                           "left": amount(self.delta_member_left)},
                "global": {"spent": amount(self.delta_global_spent),
                           "left": amount(self.delta_global_left)},
                "per_query": amount(self.delta_per_query),
                "can_spend": amount(self.can_spend_delta),
            }
        return out

"""The ledger's pure rules: exact tallies, month windows, refusals, implied epsilon."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.errors import BudgetExceeded, Forbidden, InvalidInput
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.privacy.budget import (
    Balance,
    Spend,
    SpentEntry,
    check_charge,
    epsilon_for,
    month_window,
    tally,
)

LIMITS = BudgetLimits(Measure.ZCDP, global_total=Fraction(2), per_member=Fraction(1),
                      per_query=Fraction(1, 4), opened=date(2025, 1, 1),
                      per_month=Fraction(1, 2))
NOW = datetime(2025, 3, 15, 12, tzinfo=UTC)


def _at(month: int, day: int = 1) -> datetime:
    return datetime(2025, month, day, tzinfo=UTC)


def test_month_window_is_the_utc_calendar_month_including_december() -> None:
    assert month_window(NOW) == (_at(3), _at(4))
    assert month_window(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == (
        _at(12), datetime(2026, 1, 1, tzinfo=UTC))


def test_tally_sums_exactly_and_uses_each_entrys_stored_date() -> None:
    entries = [SpentEntry("a", Fraction(1, 3), _at(1)), SpentEntry("a", Fraction(1, 3), _at(3)),
               SpentEntry("a", Fraction(1, 3), _at(3, 31)), SpentEntry("b", Fraction(1, 7), _at(3)),
               SpentEntry("a", Fraction(1, 10), _at(6))]  # "future" entry of a skewed clock
    spent = tally(entries, org="a", now=NOW)
    assert spent == Spend(member=Fraction(1) + Fraction(1, 10), month=Fraction(2, 3),
                          all_members=Fraction(1) + Fraction(1, 10) + Fraction(1, 7))


@pytest.mark.parametrize(("spent", "cost", "rule", "remaining"), [
    (Spend(Fraction(0), Fraction(0), Fraction(0)), "1/3", "budget:per_query", "1/4"),
    (Spend(Fraction(1, 2), Fraction(1, 2), Fraction(1, 2)), "1/100", "budget:month", "0"),
    (Spend(Fraction(9, 10), Fraction(0), Fraction(9, 10)), "1/5", "budget:member", "1/10"),
    (Spend(Fraction(0), Fraction(0), Fraction(39, 20)), "1/10", "budget:global", "1/20"),
])
def test_each_rule_refuses_with_requested_and_remaining(
        spent: Spend, cost: str, rule: str, remaining: str) -> None:
    with pytest.raises(BudgetExceeded) as err:
        check_charge(LIMITS, Cost.parse("zcdp", cost), spent, now=NOW)
    assert err.value.extra["rule"] == rule
    assert err.value.extra["requested"] == cost
    assert err.value.extra["remaining"] == remaining
    body = err.value.problem()
    assert body["status"] == 403 and body["code"] == "budget_exceeded" and body["rule"] == rule


def test_spending_exactly_the_limit_is_allowed_and_zero_always_fits() -> None:
    check_charge(LIMITS, Cost.parse("zcdp", "1/4"),
                 Spend(Fraction(3, 4), Fraction(1, 4), Fraction(7, 4)), now=NOW)
    check_charge(LIMITS, Cost.zero(Measure.ZCDP),
                 Spend(Fraction(1), Fraction(1, 2), Fraction(2)), now=NOW)


def test_other_measure_and_before_opening_are_refused() -> None:
    zero = Spend(Fraction(0), Fraction(0), Fraction(0))
    with pytest.raises(InvalidInput) as err:
        check_charge(LIMITS, Cost.parse("pure", "1/10"), zero, now=NOW)
    assert err.value.extra["rule"] == "budget:measure" and err.value.field == "cost"
    with pytest.raises(Forbidden) as forbidden:
        check_charge(LIMITS, Cost.parse("zcdp", "1/10"), zero,
                     now=datetime(2024, 12, 31, 23, 59, tzinfo=UTC))
    assert forbidden.value.extra["rule"] == "budget:opened"


@given(spent=st.fractions(min_value=0, max_value=3), cost=st.fractions(min_value=0, max_value=1))
def test_a_charge_passes_exactly_when_it_fits_every_limit(spent: Fraction, cost: Fraction) -> None:
    state = Spend(member=spent / 3, month=spent / 6, all_members=spent)
    fits = (cost <= LIMITS.per_query and state.month + cost <= Fraction(1, 2)
            and state.member + cost <= 1 and state.all_members + cost <= 2)
    try:
        check_charge(LIMITS, Cost(Measure.ZCDP, cost), state, now=NOW)
        passed = True
    except BudgetExceeded:
        passed = False
    assert passed == fits


def test_balance_is_exact_and_never_negative() -> None:
    bal = Balance.of(dataset="d", org="a", limits=LIMITS,
                     spent=Spend(Fraction(1, 3), Fraction(1, 3), Fraction(5, 2)))
    assert bal.member_left == Fraction(2, 3) and bal.month_left == Fraction(1, 6)
    assert bal.global_left == 0  # limits lowered below the spending: shown as 0, not negative
    assert bal.can_spend == 0 and bal.cumulative == Cost(Measure.ZCDP, Fraction(5, 2))
    doc = bal.as_json()
    assert doc["member"] == {"spent": "1/3", "left": "2/3"}
    assert doc["cumulative"]["amount"] == "5/2"


def test_implied_epsilon_matches_the_zcdp_conversion_and_rounds_up() -> None:
    rho, delta = Fraction(1, 2), Fraction(1, 10**6)
    exact = 0.5 + 2 * math.sqrt(0.5 * math.log(10**6))
    eps = epsilon_for(Measure.ZCDP, rho, delta)
    assert exact <= eps <= exact * (1 + 1e-12)
    assert epsilon_for(Measure.PURE, Fraction(1, 10), delta) >= 0.1
    with pytest.raises(ValueError, match="delta"):
        epsilon_for(Measure.ZCDP, rho, Fraction(0))


# -- deltas (approximate DP: key selection) ------------------------------------------------------
DELTAS = BudgetLimits(Measure.ZCDP, global_total=Fraction(2), per_member=Fraction(1),
                      per_query=Fraction(1, 4), opened=date(2025, 1, 1),
                      delta_global=Fraction(3, 10**6), delta_per_member=Fraction(1, 10**6),
                      delta_per_query=Fraction(1, 10**7))


def test_deltas_add_up_exactly_per_member_and_in_total() -> None:
    entries = [SpentEntry("a", Fraction(1, 10), _at(1), Fraction(1, 10**7)),
               SpentEntry("a", Fraction(1, 10), _at(2)),
               SpentEntry("b", Fraction(1, 10), _at(2), Fraction(1, 10**7))]
    spent = tally(entries, org="a", now=NOW)
    assert spent.member_delta == Fraction(1, 10**7) and spent.all_delta == Fraction(2, 10**7)
    balance = Balance.of(dataset="d", org="a", limits=DELTAS, spent=spent)
    assert balance.can_spend_delta == Fraction(1, 10**7)
    shown = balance.as_json()["delta"]
    assert shown["member"] == {"spent": "1/10000000", "left": "9/10000000"}
    assert shown["global"]["left"] == "7/2500000"


@pytest.mark.parametrize(("member", "everyone", "delta", "remaining"), [
    (Fraction(0), Fraction(0), Fraction(2, 10**7), "1/10000000"),  # per query
    (Fraction(1, 10**6), Fraction(1, 10**6), Fraction(1, 10**7), "0"),  # member spent it all
    (Fraction(0), Fraction(3, 10**6), Fraction(1, 10**7), "0"),  # everyone spent it all
])
def test_a_delta_beyond_a_cap_is_refused_naming_the_delta_rule(
        member: Fraction, everyone: Fraction, delta: Fraction, remaining: str) -> None:
    spent = Spend(Fraction(0), Fraction(0), Fraction(0), member_delta=member,
                  all_delta=everyone)
    with pytest.raises(BudgetExceeded) as err:
        check_charge(DELTAS, Cost(Measure.ZCDP, Fraction(1, 10), delta), spent, now=NOW)
    assert err.value.extra["rule"] == "budget:delta"
    assert err.value.extra["remaining"] == remaining
    check_charge(DELTAS, Cost(Measure.ZCDP, Fraction(1, 10)), spent, now=NOW)  # no delta: fine


def test_a_policy_without_delta_refuses_any_delta() -> None:
    with pytest.raises(BudgetExceeded, match="allows no delta"):
        check_charge(LIMITS, Cost(Measure.ZCDP, Fraction(1, 10), Fraction(1, 10**9)),
                     Spend(Fraction(0), Fraction(0), Fraction(0)), now=NOW)

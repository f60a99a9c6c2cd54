"""Exact privacy amounts: no floats, no mixing of measures, exact edges."""

from __future__ import annotations

from fractions import Fraction

import pytest

from hub.privacy.accounting import Cost, Measure, parse_amount


def test_amounts_are_exact_so_many_small_debits_add_up() -> None:
    total = Cost.zero(Measure.ZCDP)
    for _ in range(10):
        total = total + Cost.parse("zcdp", "0.1")
    assert total == Cost(Measure.ZCDP, Fraction(1))
    assert total <= Cost.parse(Measure.ZCDP, 1) and not total < Cost.parse(Measure.ZCDP, 1)


@pytest.mark.parametrize(("text", "value"), [("0.05", Fraction(1, 20)), ("1/3", Fraction(1, 3)),
                                             (2, Fraction(2)), ("0", Fraction(0))])
def test_parse_amount(text: object, value: Fraction) -> None:
    assert parse_amount(text) == value


@pytest.mark.parametrize(("bad", "message"), [(0.1, "exact"), ("-1", "negative"),
                                              ("abc", "not a decimal"), (True, "exact"),
                                              ("inf", "not a decimal"), (None, "not a privacy")])
def test_parse_amount_refuses_floats_negatives_and_infinity(bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_amount(bad)


def test_measures_never_mix() -> None:
    with pytest.raises(ValueError, match="cannot combine zcdp and pure"):
        Cost.parse("zcdp", "1") + Cost.parse("pure", "1")
    with pytest.raises(ValueError):
        assert Cost.parse("zcdp", "1") <= Cost.parse("pure", "1")


def test_display_and_json() -> None:
    assert str(Cost.parse("zcdp", "1/20")) == "rho=0.05"
    assert str(Cost.parse("pure", "1/3")) == "epsilon=1/3"
    assert Cost.parse("pure", "0.25").as_json() == {"measure": "pure", "amount": "1/4",
                                                    "value": 0.25}


@pytest.mark.parametrize(("amount", "text"), [("0.05", "0.05"), ("1/3", "1/3"), ("12", "12"),
                                              ("1.5", "1.5"), ("10" + "0" * 400, "1" + "0" * 401),
                                              ("1/1024", "0.0009765625")])
def test_display_is_exact_for_any_size(amount: str, text: str) -> None:
    assert str(Cost.parse("pure", amount)) == f"epsilon={text}"

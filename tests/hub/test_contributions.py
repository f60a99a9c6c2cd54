"""Suggested bounds (hub.query.contributions): DP quantiles of rows per unit and the share of
rows a bound leaves out, against the exact truth of fixed contributions."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from hub.contracts.model import ContractRegistry
from hub.errors import InvalidInput
from hub.governance.policies import Policy, load_policy_file
from hub.privacy.accounting import Cost, Measure
from hub.query.contributions import calibrate_suggestion, suggest
from tests.core.test_policies import REPO

REGISTRY = ContractRegistry.load()


@pytest.fixture(scope="module")
def alerts() -> Policy:
    return load_policy_file(REPO / "policies" / "bank_alerts.yaml", REGISTRY)


class Fixed:
    """Units with fixed (total rows, most rows in one period, rows beyond m_p per period)."""

    def __init__(self, units: list[tuple[int, int, int]]) -> None:
        self.units = units

    def contributions(self, dataset: str, period: str | None,
                      per_period: int | None = None) -> list[tuple[int, int, int]]:
        return self.units


def test_the_quantiles_and_the_left_out_share_tell_the_truth(alerts: Policy) -> None:
    # 4,000 units: most with 1-3 rows, 10% with 20 (more than max_rows = 10)
    units = [(1 + i % 3, 1, 0) for i in range(3600)] + [(20, 3, 4) for _ in range(400)]
    truth_share = 400 * 10 / sum(n for n, _, _ in units)
    s = calibrate_suggestion(alerts, "period", Cost(Measure.ZCDP, Fraction(1)), (0.5, 0.95))
    runs, covered = 200, 0
    for _ in range(runs):
        body = suggest(s, Fixed(units))
        share = body["rows_per_unit"]["left_out_share"]
        covered += share["low"] <= truth_share <= share["high"]
    assert covered / runs >= 0.95 - 4 * math.sqrt(0.95 * 0.05 / runs)
    total = body["rows_per_unit"]
    assert total["quantiles"]["0.5"] in (1, 2, 3) and 15 <= total["quantiles"]["0.95"] <= 20
    assert "0.95" in body["rows_per_unit_per_period"]["quantiles"]
    assert body["rows_per_unit_per_period"]["current"] == 4


def test_levels_are_checked_before_anything_is_spent(alerts: Policy) -> None:
    for levels in ((), (0.5, 0.5), (0.0,), (1.0,)):
        with pytest.raises(InvalidInput) as err:
            calibrate_suggestion(alerts, None, Cost(Measure.ZCDP, Fraction(1, 10)), levels)
        assert err.value.field == "quantiles"

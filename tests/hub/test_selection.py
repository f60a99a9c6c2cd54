"""Key selection and ranked answers (hub.privacy.selection, hub.query.release): the derived
sensitivities against OpenDP's own maps, and the statements a release makes, measured.

OpenDP's samplers cannot be seeded (they use the OS's CSPRNG, on purpose), so the statistical
tests are random; each tolerance is 4 binomial standard deviations or more, so a correct
implementation fails one of them far less than once in ten thousand runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import opendp.prelude as dp
import pytest

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry
from hub.errors import InvalidInput
from hub.governance.policies import PolicySet, load_policy_file
from hub.privacy.accounting import Cost, Measure
from hub.privacy.selection import (
    SelectionSpec,
    _selection_loss,
    _threshold_measurement,
    _top_loss,
    appearance,
    calibrate_selection,
    calibrate_top,
    gap_for,
    key_text,
    rank_intervals,
    select_keys,
    top_k,
)
from hub.query.authorisation import authorise
from hub.query.plan import QueryPlan
from hub.query.release import calibrate_plan, cost_for, release
from hub.query.request import QueryRequest
from hub.query.sql import Part
from tests.core.test_policies import REPO

REGISTRY = ContractRegistry.load()
ANALYST = Actor("cli_a", "org_a", "Bank A", frozenset({Role.ANALYST}))
MEASURES = (Measure.ZCDP, Measure.PURE)


def _sd(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


# -- sensitivity: derivation == OpenDP's map ---------------------------------------------------
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("keys", [1, 4, 10, 24])
def test_the_selection_loss_is_the_derived_one(measure: Measure, keys: int) -> None:
    """One unit changes at most L0 keys by 1 each: loss L1/b = L0/b (pure) or
    (L2/s)^2 / 2 = L0 / (2 s^2) (zCDP), exactly what OpenDP's threshold maps say."""
    spec = calibrate_selection(Cost(measure, Fraction(1, 20), Fraction(1, 10**7)), keys)
    amount, delta = _selection_loss(spec)
    derived = (keys / spec.scale if measure is Measure.PURE
               else keys / (2 * spec.scale**2))
    assert float(amount) == pytest.approx(derived, rel=1e-9)
    assert amount <= Fraction(1, 20) and delta <= Fraction(1, 10**7)
    # the threshold is the least one within the delta
    lower = SelectionSpec(spec.mechanism, spec.scale, spec.threshold - 1, spec.cost, keys)
    assert _selection_loss(lower)[1] > Fraction(1, 10**7)
    # and OpenDP's own calibration of the same budget finds no smaller threshold
    opendp_threshold = dp.binary_search(
        lambda t: _selection_loss(SelectionSpec(spec.mechanism, spec.scale, t, spec.cost,
                                                keys))[1] <= Fraction(1, 10**7), T=int)
    assert opendp_threshold == spec.threshold


def test_more_keys_per_unit_need_a_higher_threshold() -> None:
    cost = Cost(Measure.ZCDP, Fraction(1, 20), Fraction(1, 10**7))
    thresholds = [calibrate_selection(cost, k).threshold for k in (1, 4, 24)]
    assert thresholds == sorted(thresholds) and thresholds[0] < thresholds[-1]


@pytest.mark.parametrize(("cost", "match"), [
    (Cost(Measure.ZCDP, Fraction(1, 20)), "delta"),
    (Cost(Measure.ZCDP, Fraction(0), Fraction(1, 100)), "positive cost"),
    (Cost(Measure.PURE, Fraction(1), Fraction(1)), "delta"),
])
def test_selection_needs_a_cost_and_a_delta(cost: Cost, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        calibrate_selection(cost, 1)


# -- selection: what delta allows, what the estimate states, measured --------------------------
@pytest.mark.parametrize("measure", MEASURES)
def test_a_key_of_one_unit_appears_no_more_often_than_delta_allows(measure: Measure) -> None:
    """Through the same calibration and sampler as the API, with a delta large enough to see:
    20,000 keys of one unit each, independently thresholded in one release."""
    delta = Fraction(1, 20)
    spec = calibrate_selection(Cost(measure, Fraction(1, 4), delta), 1)
    n = 20_000
    shown = len(select_keys({f"k{i}": 1 for i in range(n)}, spec)) / n
    assert shown <= float(delta) + 4 * _sd(float(delta), n)
    assert shown > 0.001  # not vacuous: such keys do appear, rarely


@pytest.mark.parametrize("measure", MEASURES)
def test_opendps_own_threshold_map_counts_one_step_too_few(measure: Measure) -> None:
    """Why tahub charges the map of threshold T - 1 (hub.privacy.selection._selection_loss):
    OpenDP 0.16 keeps keys whose noisy value is >= T but its map bounds P(noise > T - 1)
    for a key of one unit. If OpenDP changes either, this test says so."""
    spec = calibrate_selection(Cost(measure, Fraction(1, 4), Fraction(1, 20)), 1)
    raw = _threshold_measurement(spec.mechanism, spec.scale, spec.threshold)
    claimed = raw.map(spec.d_in())[1]
    n = 40_000
    shown = len(select_keys({f"k{i}": 1 for i in range(n)}, spec)) / n
    assert shown > claimed + 4 * _sd(claimed, n)
    assert shown <= float(_selection_loss(spec)[1]) + 4 * _sd(shown, n)


@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize("probability", [0.5, 0.95])
def test_keys_appear_as_often_as_the_estimate_states(measure: Measure,
                                                      probability: float) -> None:
    spec = calibrate_selection(Cost(measure, Fraction(1, 10), Fraction(1, 10**7)), 1)
    units = appearance(spec, probability)
    n = 20_000
    shown = len(select_keys({f"k{i}": units for i in range(n)}, spec)) / n
    assert shown >= probability - 4 * _sd(probability, n)
    if probability == 0.95:  # the statement is tight: one unit fewer is below it
        fewer = len(select_keys({f"k{i}": units - 3 for i in range(n)}, spec)) / n
        assert fewer < 0.95


def test_keys_absent_from_the_data_are_never_selected() -> None:
    spec = calibrate_selection(Cost(Measure.ZCDP, Fraction(1), Fraction(1, 100)), 1)
    assert select_keys({}, spec) == set()
    assert select_keys({key_text(("NG", None)): 0}, spec) == set()


# -- ranking ------------------------------------------------------------------------------------
@pytest.mark.parametrize("measure", MEASURES)
@pytest.mark.parametrize(("k", "delta", "monotonic"), [(1, 1, True), (10, 1, True),
                                                        (3, 4, False), (5, 2500, True)])
def test_the_top_k_loss_is_the_derived_one(measure: Measure, k: int, delta: int,
                                          monotonic: bool) -> None:
    """k peels of report-noisy-max: k d / scale (pure) or k (d / scale)^2 / 8 (zCDP), with
    d = Delta for monotone scores and 2 Delta otherwise."""
    spec = calibrate_top(Cost(measure, Fraction(1, 10)), k, delta, monotonic)
    d = delta if monotonic else 2 * delta
    derived = (k * d / spec.scale if measure is Measure.PURE
               else k * (d / spec.scale) ** 2 / 8)
    assert float(_top_loss(spec)) == pytest.approx(derived, rel=1e-9)
    assert _top_loss(spec) <= Fraction(1, 10)


@pytest.mark.parametrize("measure", MEASURES)
def test_two_keys_gap_90_apart_are_ordered_right_90_percent_of_the_time(
    measure: Measure
) -> None:
    spec = calibrate_top(Cost(measure, Fraction(1, 20)), 1, 1, True)
    gap = math.ceil(gap_for(spec, 0.9))
    n = 1500
    right = sum(top_k([100, 100 + gap], spec) == [1] for _ in range(n)) / n
    assert right >= 0.9 - 4 * _sd(0.9, n)


def test_rank_intervals_count_the_keys_surely_above_and_below() -> None:
    assert rank_intervals([10, 5, 0], [20, 9, 6]) == [(1, 1), (2, 3), (2, 3)]
    assert rank_intervals([0, 0], [5, 5]) == [(1, 2), (1, 2)]
    assert rank_intervals([], []) == []


# -- releases through the API's own calibration -------------------------------------------------
class FixedData:
    """An engine over fixed exact groups (the aggregates are the engine's, tested elsewhere):
    ``groups`` key -> per-part value, every key with the same value for every count part."""

    def __init__(self, groups: dict[tuple[str | None, ...], int]) -> None:
        self._groups = groups

    def partners(self, dataset: str) -> int:
        return 2

    def prefetch(self, dataset: str) -> None:
        return None

    def groups(self, plan: QueryPlan, parts: Sequence[Part]) -> list[Any]:
        return [(k, [v for _ in parts]) for k, v in self._groups.items()]

    def aggregate(self, plan: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]:
        import itertools

        grid = list(itertools.product(*(d.keys for d in plan.dimensions)))
        return [[self._groups.get(k, 0) for k in grid] for _ in parts]


@pytest.fixture(scope="module")
def shipped() -> PolicySet:
    return PolicySet.of(*(load_policy_file(REPO / "policies" / f"{d}.yaml", REGISTRY)
                          for d in ("case_records", "bank_alerts")))


def _plan(policies: PolicySet, body: dict[str, Any]) -> QueryPlan:
    return authorise(policies, REGISTRY, ANALYST, QueryRequest.parse(body))


def test_a_route_query_is_charged_the_policy_delta_and_selects_by_one_vote(
    shipped: PolicySet
) -> None:
    plan = _plan(shipped, {"dataset": "case_records", "route": True, "cost": "1/5",
                           "measures": ["count_units"], "top": {"k": 10}})
    cal = calibrate_plan(plan, cost_for(plan))
    assert cal.cost == Cost(Measure.ZCDP, Fraction(1, 5), Fraction(1, 10**7))
    assert cal.selection is not None and cal.selection.max_keys == 1  # keys_per_unit: 1
    assert cal.top is not None and cal.top.sensitivity == 1  # a person counts once a route
    parts = (cal.selection.cost.amount + cal.top.cost.amount
             + sum(m.cost.amount for m in cal.measures))
    assert parts == Fraction(1, 5)  # sequential composition adds up to the cost charged


def test_ranks_hold_together_as_often_as_stated(shipped: PolicySet) -> None:
    """Routes 10 persons apart on average, some closer: over repeated releases, every listed
    route's true rank among the listed routes lies in its interval >= 90% of the time."""
    truth = {("NG", "LY", "IT"): 95, ("RO", None, "GB"): 80, ("VN", "RS", "GB"): 78,
             ("AL", "RS", "GR"): 60, ("ER", "LY", "IT"): 58, ("PH", None, "AE"): 40,
             ("NG", "NE", "ES"): 35, ("UA", "HU", "DE"): 25}
    plan = _plan(shipped, {"dataset": "case_records", "route": True, "cost": "1/5",
                           "measures": ["count_units"], "top": {"k": 5}})
    cal = calibrate_plan(plan, cost_for(plan))
    data = FixedData(truth)
    runs, held, widths = 300, 0, []
    for _ in range(runs):
        rows = release(cal, data)["rows"]
        keys = [(r["source_country"], r["transit_country"], r["destination_country"])
                for r in rows]
        ok = True
        for row, key in zip(rows, keys, strict=True):
            true_rank = 1 + sum(truth[other] > truth[key] for other in keys)
            ok &= row["rank"]["low"] <= true_rank <= row["rank"]["high"]
            widths.append(row["rank"]["high"] - row["rank"]["low"])
        held += ok
    assert held / runs >= 0.9 - 4 * _sd(0.9, runs)
    assert sum(widths) / len(widths) < 2.5  # not vacuous: intervals say something


def test_consistent_totals_add_up_and_cover(shipped: PolicySet) -> None:
    plan = _plan(shipped, {"dataset": "bank_alerts", "cost": "1/5",
                           "group_by": ["exploitation_stream", "typology"],
                           "measures": ["count"], "postprocess": {"consistent_totals": True}})
    cal = calibrate_plan(plan, cost_for(plan))
    streams = [k for k in plan.dimensions[0].keys]
    typologies = [k for k in plan.dimensions[1].keys]
    truth = {(s, t): 10 * i + j for i, s in enumerate(streams)
             for j, t in enumerate(typologies)}
    runs, covered, checked = 200, 0, 0
    for _ in range(runs):
        body = release(cal, FixedData(truth))
        cells = {(r["exploitation_stream"], r["typology"]): r["count"] for r in body["rows"]}
        for margin in body["totals"]:
            for row in margin["rows"]:
                members = [k for k in cells
                           if all(row[d] == k[plan.dimensions.index(next(
                               x for x in plan.dimensions if x.name == d))]
                               for d in margin["by"])]
                total = row["count"]
                assert total["value"] == sum(cells[k]["value"] for k in members)  # adds up
                exact = sum(truth.get(k, 0) for k in members)
                covered += total["low"] <= exact <= total["high"]
                checked += 1
    assert covered / checked >= 0.95 - 4 * _sd(0.95, checked)

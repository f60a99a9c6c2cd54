"""hub.privacy against real OpenDP: sensitivities, calibration edges, intervals, costs."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from hub.errors import InvalidInput
from hub.privacy.accounting import Cost, Measure
from hub.privacy.intervals import (
    _exact_sum_steps,
    _laplace_sum_steps,
    cost_for_halfwidth,
    estimates,
    halfwidth,
    margin_totals,
    mean_interval,
    to_epsilon_delta,
)
from hub.privacy.noise import (
    COST_GRID,
    Function,
    Mechanism,
    NoiseSpec,
    _loss,
    calibrate,
    calibrate_mean,
    calibrate_quantile,
    quantile_candidates,
    quantile_release,
    release_counts,
    release_sums,
    sensitivity,
    split_cost,
    to_fixed,
)

RHO = Cost.parse("zcdp", "1/8")
EPS = Cost.parse("pure", "1/2")


def test_sensitivities_follow_the_derivations() -> None:
    count = sensitivity("count", 10)
    assert (count.l1, count.l2_squared, count.l2) == (10, 100, 10.0)
    units = sensitivity("count_units", 10)
    assert (units.l1, units.l2_squared) == (10, 10)
    assert units.l2 >= math.sqrt(10) and Fraction(units.l2) ** 2 >= 10
    assert sensitivity("linked_units", 7).l2_squared == 7
    total = sensitivity("sum", 10, (-3.5, 50000), decimals=2)
    assert total.l1 == 10 * 5_000_000 and total.l2_squared == total.l1**2
    assert total.resolution == Fraction(1, 100) and total.decimals == 2
    assert sensitivity("sum", 2, (-7, 3)).l1 == 14  # max(|lo|, |hi|) per row
    assert sensitivity("quantile", 4, (0, 10)).l1 == 4


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("mean", 10, (0, 1)), "function"),
        (("median", 10), "function"),
        (("count", 0), "max_rows"),
        (("sum", 10), "clamp"),
        (("sum", 10, (5, 1)), "clamp"),
        (("sum", 10, (0, 0)), "clamp"),
        (("sum", 10, (0, 1), 9), "decimals"),
        (("sum", 10**6, (0, 10**12), 6), "clamp"),
    ],
)
def test_bad_sensitivity_input_names_the_field(args: tuple, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        sensitivity(*args)
    assert err.value.field == field


@pytest.mark.parametrize("cost", [RHO, EPS])
@pytest.mark.parametrize("function", ["count", "count_units", "sum"])
def test_calibration_is_tight_and_within_the_cost(cost: Cost, function: str) -> None:
    sens = sensitivity(function, 10, (0, 100) if function == "sum" else None)
    noise = calibrate(cost, sens)
    assert noise.mechanism is (Mechanism.DISCRETE_GAUSSIAN if cost.measure is Measure.ZCDP
                               else Mechanism.DISCRETE_LAPLACE)
    assert _loss(noise) <= cost.amount
    slightly_less = NoiseSpec(noise.mechanism, noise.scale * (1 - 1e-9), cost, sens)
    assert _loss(slightly_less) > cost.amount  # the smallest scale that fits, not a loose one


def test_closed_forms() -> None:
    # zCDP: rho = (L2 / scale)^2 / 2 ; pure: epsilon = L1 / scale
    assert calibrate(Cost.parse("zcdp", "1/2"), sensitivity("count", 3)).scale == pytest.approx(3)
    assert calibrate(Cost.parse("pure", 2), sensitivity("count", 3)).scale == pytest.approx(1.5)


@pytest.mark.parametrize("amount", ["0", "1/10**400"])
def test_zero_and_vanishing_costs_are_refused(amount: str) -> None:
    value = Fraction(0) if amount == "0" else Fraction(1, 10**400)
    with pytest.raises(InvalidInput) as err:
        calibrate(Cost(Measure.ZCDP, value), sensitivity("count", 1))
    assert err.value.field == "cost"


def test_tiny_and_huge_costs() -> None:
    tiny = calibrate(Cost(Measure.ZCDP, Fraction(1, 10**12)), sensitivity("count", 1))
    assert tiny.scale == pytest.approx(1 / math.sqrt(2e-12), rel=1e-6)
    huge = calibrate(Cost(Measure.PURE, Fraction(10**9)), sensitivity("count", 1))
    assert release_counts([5, 0, 7], huge) == [5, 0, 7]
    with pytest.raises(InvalidInput, match="too large"):
        calibrate(Cost(Measure.ZCDP, Fraction(10**400)), sensitivity("count", 1))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 1000])
@pytest.mark.parametrize("amount", [Fraction(1), Fraction(1, 3), Fraction(7, 100)])
def test_split_is_exact(n: int, amount: Fraction) -> None:
    parts = split_cost(Cost(Measure.ZCDP, amount), n)
    assert len(parts) == n
    assert sum((p.amount for p in parts), Fraction(0)) == amount
    assert len({p.amount for p in parts}) == 1
    with pytest.raises(InvalidInput):
        split_cost(Cost(Measure.ZCDP, amount), 0)


def test_release_keeps_shape_and_type() -> None:
    noise = calibrate(RHO, sensitivity("count", 2))
    out = release_counts([0, 10, 1_000_000], noise)
    assert len(out) == 3 and all(type(v) is int for v in out)
    assert release_counts([], noise) == []
    with pytest.raises(ValueError, match="64-bit"):
        release_counts([1.5], noise)  # type: ignore[list-item]
    sums = calibrate(Cost.parse("pure", 10**6), sensitivity("sum", 1, (0, 100), 2))
    assert release_sums([to_fixed(12.34, 2)], sums) == [12.34]


def test_halfwidth_and_nonnegative_estimates_are_honest() -> None:
    noise = calibrate(Cost.parse("zcdp", "1/2"), sensitivity("count", 10))  # scale 10
    assert halfwidth(noise) == 20.0  # OpenDP's accuracy 21: P(|X| >= 21) <= 5%
    cells = estimates([-30, 5, 100], noise, nonnegative=True)
    assert [(c.value, c.low, c.high) for c in cells] == [
        (0.0, 0.0, 0.0), (5.0, 0.0, 25.0), (100.0, 80.0, 120.0)]
    sums = calibrate(Cost.parse("zcdp", "1/2"), sensitivity("sum", 1, (0, 0.1), 2))
    assert halfwidth(sums) == pytest.approx(0.2)  # in euros, not cents


def test_mean_interval_is_honest_for_small_and_large_counts() -> None:
    noise = calibrate_mean(Cost.parse("zcdp", "1/2"), 10, (0, 100), 0)
    assert noise.sum.cost.amount + noise.count.cost.amount == Fraction(1, 2)
    empty = mean_interval(3, 0, noise)
    assert (empty.low, empty.high) == (0.0, 100.0)
    assert 0 <= empty.value <= 100
    big = mean_interval(50_000, 1000, noise)
    assert big.low < 50 < big.high and big.high - big.low < 20
    # the interval is built from the sum and count intervals at alpha/2 each
    from hub.privacy.intervals import _halfwidth_steps
    hs, hc = _halfwidth_steps(noise.sum, 0.025), _halfwidth_steps(noise.count, 0.025)
    assert big.low == pytest.approx((50_000 - hs) / (1000 + hc))
    assert big.high == pytest.approx((50_000 + hs) / (1000 - hc))


def test_mean_interval_takes_the_least_and_largest_of_the_four_corners() -> None:
    """The two corners picked by sign are the extremes of all four ratios (the rule of
    ``mean_interval``'s docstring), exactly, for negative, straddling and positive sums."""
    import random

    from hub.privacy.intervals import _halfwidth_steps
    rng = random.Random(3)  # noqa: S311 - test inputs, never noise
    for clamp, decimals in (((-40, 100), 1), ((0, 100), 0), ((-500, -20), 2)):
        noise = calibrate_mean(Cost.parse("pure", "1/2"), 3, clamp, decimals)
        res, (lo, hi) = noise.sum.sensitivity.resolution, noise.sum.sensitivity.clamp or (0, 0)
        hs, hc = _halfwidth_steps(noise.sum, 0.025), _halfwidth_steps(noise.count, 0.025)
        for _ in range(2000):
            s, c = rng.randint(-3 * hs, 3 * hs) * 7, rng.randint(-hc, 4 * hc)
            s1, s2 = Fraction(s - hs) * res, Fraction(s + hs) * res
            n1, n2 = max(c - hc, 1), c + hc
            low, high = Fraction(lo), Fraction(hi)
            if n2 >= 1:
                corners = [s1 / n1, s1 / n2, s2 / n1, s2 / n2]
                low, high = max(low, min(corners)), min(high, max(corners))
                if low > high:
                    low, high = Fraction(lo), Fraction(hi)
            value = Fraction(s) * res / c if c >= 1 else (Fraction(lo) + hi) / 2
            expected = (float(min(max(value, low), high)), float(low), float(high))
            got = mean_interval(s, c, noise)
            assert (got.value, got.low, got.high) == expected, (s, c)


def test_margin_totals_add_up_and_are_wider_than_a_cell() -> None:
    for cost in (RHO, EPS):
        noise = calibrate(cost, sensitivity("count", 3))
        cells = [10, 20, -3, 7]
        totals = margin_totals(cells, [[0, 1, 2, 3], [1]], noise)
        assert totals[0].value == sum(cells)
        assert totals[1].high - totals[1].value == halfwidth(noise)
        assert halfwidth(noise) < totals[0].high - totals[0].value < 4 * halfwidth(noise)
        clamped = margin_totals(cells, [[0, 1, 2, 3]], noise, nonnegative=True)[0]
        assert clamped.value == 37 and clamped.low >= 0 and clamped.high >= 37


@pytest.mark.parametrize("measure", list(Measure))
@pytest.mark.parametrize(("function", "target"), [("count", 25), ("count_units", 3),
                                                  ("sum", 1000.0)])
def test_cost_for_halfwidth_is_the_smallest_on_the_grid(measure: Measure, function: str,
                                                        target: float) -> None:
    kwargs = {"clamp": (0, 5000), "decimals": 2} if function == "sum" else {}
    cost = cost_for_halfwidth(function, target, measure=measure, max_rows=10, **kwargs)
    assert cost.measure is measure and (cost.amount / COST_GRID).denominator == 1
    sens = sensitivity(function, 10, **kwargs)
    assert halfwidth(calibrate(cost, sens)) <= target
    cheaper = Cost(measure, cost.amount - COST_GRID)
    assert halfwidth(calibrate(cheaper, sens)) > target


def test_cost_for_halfwidth_refusals_name_the_target() -> None:
    with pytest.raises(InvalidInput) as err:
        cost_for_halfwidth("count", 1, measure=Measure.ZCDP, max_rows=10, cap=Fraction(1))
    assert err.value.field == "target" and "cap" in err.value.detail
    for function in ("mean", "quantile"):
        with pytest.raises(InvalidInput) as err:
            cost_for_halfwidth(function, 1, measure=Measure.ZCDP, max_rows=10)
        assert err.value.field == "target"
    with pytest.raises(InvalidInput):
        cost_for_halfwidth("count", 0, measure=Measure.ZCDP, max_rows=10)


def test_epsilon_delta_reporting() -> None:
    assert to_epsilon_delta(Cost.parse("pure", "0.3")) == (0.3, 0.0)
    rho, delta = 0.5, 1e-7
    eps, out_delta = to_epsilon_delta(Cost.parse("zcdp", "1/2"), delta)
    assert out_delta == delta
    assert rho < eps <= rho + 2 * math.sqrt(rho * math.log(1 / delta))
    assert to_epsilon_delta(Cost.parse("zcdp", "1/8"))[0] < eps  # monotone in rho
    with pytest.raises(InvalidInput):
        to_epsilon_delta(Cost.parse("zcdp", 1), 0)


@pytest.mark.parametrize("cost", [RHO, EPS])
def test_quantile_release(cost: Cost) -> None:
    sens = sensitivity(Function.QUANTILE, 2, (0, 100))
    noise = calibrate_quantile(cost, sens, "1/2", quantile_candidates((0, 100), steps=10))
    assert _loss(noise) <= cost.amount
    grid = set(noise.candidates)
    cells = [[float(i % 101) for i in range(10_100)] + [500.0], []]  # 500 is clamped to 100
    assert all(v in grid for v in quantile_release(cells, noise))
    generous = calibrate_quantile(Cost(cost.measure, Fraction(10**4)), sens, "1/2",
                                  noise.candidates)
    assert quantile_release(cells[:1], generous) == [50.0]
    with pytest.raises(InvalidInput):
        calibrate_quantile(cost, sens, 2)
    with pytest.raises(InvalidInput):
        calibrate(cost, sens)


@pytest.mark.parametrize("scale", [2_000.5, 7_321.0, 40_000.0, 250_000.0])
@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_large_scale_gaussian_halfwidth_is_never_narrower_than_opendps(
    scale: float, alpha: float
) -> None:
    """The proven tail bound used at large scales (OpenDP's exact helper is slow there)."""
    import math

    import opendp.prelude as dp

    from hub.privacy.intervals import _gaussian_tail_steps

    dp.enable_features("contrib")
    exact = max(math.ceil(dp.discrete_gaussian_scale_to_accuracy(scale, alpha)) - 1, 0)
    ours = _gaussian_tail_steps(scale, alpha)
    assert exact <= ours <= exact + 2


def test_fixed_point_rounds_ties_away_from_zero_like_duckdb() -> None:
    import duckdb

    values = [2.5, -2.5, 0.125, 1234.565, 0.49999999999999994, -0.5]
    ours = [to_fixed(v, 2 if v == 0.125 else 0) for v in values]
    assert ours[:3] == [3, -3, 13]
    sql = [duckdb.execute("SELECT CAST(round(? * ?) AS BIGINT)",
                          [v, float(10 ** (2 if v == 0.125 else 0))]).fetchall()[0][0]
           for v in values]
    assert ours == sql


@pytest.mark.parametrize("mechanism", [Mechanism.DISCRETE_GAUSSIAN, Mechanism.DISCRETE_LAPLACE])
def test_a_sums_exact_half_width_is_the_convolutions_quantile(mechanism: Mechanism) -> None:
    """The k-fold convolution by FFT against a direct convolution of the same pmf, and never
    wider than the Chernoff bound it replaces."""
    import numpy as np

    scale, k = 3.0, 3
    exact = _exact_sum_steps(mechanism, scale, k, 0.05)
    r = 60
    x = np.arange(-r, r + 1, dtype=np.float64)
    pmf = (np.exp(-(x * x) / (2 * scale * scale)) if mechanism is Mechanism.DISCRETE_GAUSSIAN
           else np.exp(-np.abs(x) / scale))
    pmf /= pmf.sum()
    total = pmf
    for _ in range(k - 1):
        total = np.convolve(total, pmf)
    centre = len(total) // 2
    least = next(h for h in range(centre) if 1 - total[centre - h:centre + h + 1].sum() <= 0.05)
    assert exact is not None and least <= exact <= least + 1
    chernoff = (math.ceil(scale * math.sqrt(2 * k * math.log(40))) - 1
                if mechanism is Mechanism.DISCRETE_GAUSSIAN else _laplace_sum_steps(scale, k, 0.05))
    assert exact <= chernoff

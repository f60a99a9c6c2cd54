"""tahub's noise scales against OpenDP's own Polars ``Context`` for the same query and bounds.

For every query shape, the same question is put to ``dp.Context.compositor`` over a polars
LazyFrame with the same bounds, and tahub's scale for the same cost must be equal to
OpenDP's or larger (more conservative). OpenDP finds its scale by a float binary search, so
"equal" allows a relative 1e-9; the exact guarantee (map <= cost) is asserted separately.

How tahub's bound maps onto the ``Context``:

* "a unit keeps at most m rows in total" is ``dp.unit_of(contributions=m)``: the symmetric
  distance between neighbours is m rows. OpenDP then derives per-partition bounds itself
  (at most m rows in one group, at most m groups), the same worst cases as tahub's docs.
* public group keys are ``Margin(by=dims, invariant="keys", max_length=..., max_groups=...)``;
  ``max_length`` and ``max_groups`` are public facts OpenDP needs for integer sums and means
  (they bound overflow), not contribution bounds, so they do not change a scale.
* ``count_units`` counts one row per (unit, cell) pair: the frame holds the distinct pairs and
  the unit is declared with ``Bound(per_group=m)`` (at most m pairs per unit in total) and
  ``Bound(by=dims, per_group=1)`` (at most one per cell), then ``dp.len(signed=True)`` per group.
* a query with k measures gets ``loss / k`` per measure in tahub (equal split); OpenDP's
  ``agg`` with k expressions does the same (one shared global scale, equal shares), and a mean
  is a sum and a length at half each in both.
"""

from __future__ import annotations

from fractions import Fraction

import opendp.prelude as dp
import polars as pl
import pytest

from hub.privacy.accounting import Cost, Measure
from hub.privacy.noise import (
    Function,
    _loss,
    calibrate,
    calibrate_mean,
    sensitivity,
    split_cost,
    to_fixed,
)

M = 5  # max_rows
LOSSES = {Measure.ZCDP: Fraction(1, 8), Measure.PURE: Fraction(1, 2)}
CLAMP = (0, 2500)  # a clamp range in euros, two decimals
DECIMALS = 2


@pytest.fixture(scope="module")
def frame() -> pl.LazyFrame:
    dp.enable_features("contrib")  # OpenDP's Context needs it; tahub enables it when it calls
    rows = [("PH", "AE", 1, 120.50), ("PH", "AE", 1, 3000.0), ("VN", "GB", 2, 10.0),
            ("VN", "AE", 3, 99.99), ("PH", "GB", 3, 1.0)]
    return pl.LazyFrame(
        {"origin": [r[0] for r in rows], "dest": [r[1] for r in rows],
         "unit": [r[2] for r in rows],
         "amount": [to_fixed(min(max(r[3], CLAMP[0]), CLAMP[1]), DECIMALS) for r in rows]},
        schema={"origin": pl.String, "dest": pl.String, "unit": pl.Int64, "amount": pl.Int64},
    )


def _context(data: pl.LazyFrame, measure: Measure, by: list[str], unit=None) -> dp.Context:
    loss = LOSSES[measure]
    privacy_loss = (dp.loss_of(rho=float(loss)) if measure is Measure.ZCDP
                    else dp.loss_of(epsilon=float(loss)))
    return dp.Context.compositor(
        data=data,
        privacy_unit=unit or dp.unit_of(contributions=M),
        privacy_loss=privacy_loss,
        split_evenly_over=1,
        margins=[dp.polars.Margin(by=by, invariant="keys", max_length=1_000_000,
                                  max_groups=100)],
    )


def _scales(query: dp.polars.LazyFrameQuery) -> list[float]:
    summary = query.summarize(alpha=0.05)
    return [float(s) for s in summary["scale"].to_list()]


def _assert_conservative(tahub: float, opendp: float) -> None:
    assert tahub >= opendp * (1 - 1e-9), (tahub, opendp)
    # ... and not needlessly noisier: the same derivation, not a looser one
    assert tahub <= opendp * (1 + 1e-6), (tahub, opendp)


def _distribution(measure: Measure) -> str:
    return "Integer Gaussian" if measure is Measure.ZCDP else "Integer Laplace"


@pytest.mark.parametrize("measure", list(Measure))
def test_count_by_one_dimension(frame: pl.LazyFrame, measure: Measure) -> None:
    query = _context(frame, measure, ["origin"]).query().group_by("origin").agg(dp.len(signed=True))
    (opendp_scale,) = _scales(query)
    assert query.summarize()["distribution"][0] == _distribution(measure)
    noise = calibrate(Cost(measure, LOSSES[measure]), sensitivity(Function.COUNT, M))
    _assert_conservative(noise.scale, opendp_scale)
    assert _loss(noise) <= LOSSES[measure]


@pytest.mark.parametrize("measure", list(Measure))
def test_sum_with_clamp(frame: pl.LazyFrame, measure: Measure) -> None:
    bounds = (to_fixed(CLAMP[0], DECIMALS), to_fixed(CLAMP[1], DECIMALS))
    query = (_context(frame, measure, ["origin"]).query().group_by("origin")
             .agg(pl.col("amount").fill_null(0).dp.sum(bounds)))
    (opendp_scale,) = _scales(query)
    sens = sensitivity(Function.SUM, M, CLAMP, DECIMALS)
    assert sens.l1 == M * 250_000
    noise = calibrate(Cost(measure, LOSSES[measure]), sens)
    _assert_conservative(noise.scale, opendp_scale)


@pytest.mark.parametrize("measure", list(Measure))
def test_mean_is_a_sum_and_a_count_at_half_each(frame: pl.LazyFrame, measure: Measure) -> None:
    bounds = (to_fixed(CLAMP[0], DECIMALS), to_fixed(CLAMP[1], DECIMALS))
    query = (_context(frame, measure, ["origin"]).query().group_by("origin")
             .agg(pl.col("amount").fill_null(0).dp.mean(bounds)))
    summary = query.summarize(alpha=0.05)
    by_aggregate = dict(zip(summary["aggregate"], summary["scale"], strict=True))
    noise = calibrate_mean(Cost(measure, LOSSES[measure]), M, CLAMP, DECIMALS)
    _assert_conservative(noise.sum.scale, by_aggregate["Sum"])
    _assert_conservative(noise.count.scale, by_aggregate["Length"])


@pytest.mark.parametrize("measure", list(Measure))
def test_count_units(frame: pl.LazyFrame, measure: Measure) -> None:
    pairs = frame.select("unit", "origin").unique()
    unit = dp.unit_of(contributions=[dp.polars.Bound(per_group=M),
                                     dp.polars.Bound(by=["origin"], per_group=1)])
    query = (_context(pairs, measure, ["origin"], unit).query().group_by("origin")
             .agg(dp.len(signed=True)))
    (opendp_scale,) = _scales(query)
    sens = sensitivity(Function.COUNT_UNITS, M)
    assert (sens.l1, sens.l2_squared) == (M, M)
    noise = calibrate(Cost(measure, LOSSES[measure]), sens)
    _assert_conservative(noise.scale, opendp_scale)
    # linked units: the same bound (a subset of the distinct pairs)
    linked = calibrate(Cost(measure, LOSSES[measure]), sensitivity(Function.LINKED_UNITS, M))
    assert linked.scale == noise.scale


@pytest.mark.parametrize("measure", list(Measure))
def test_count_and_sum_by_two_public_dimensions(frame: pl.LazyFrame, measure: Measure) -> None:
    bounds = (to_fixed(CLAMP[0], DECIMALS), to_fixed(CLAMP[1], DECIMALS))
    query = (_context(frame, measure, ["origin", "dest"]).query()
             .group_by(["origin", "dest"])
             .agg(dp.len(signed=True), pl.col("amount").fill_null(0).dp.sum(bounds)))
    count_scale, sum_scale = _scales(query)
    count_cost, sum_cost = split_cost(Cost(measure, LOSSES[measure]), 2)
    _assert_conservative(calibrate(count_cost, sensitivity(Function.COUNT, M)).scale,
                         count_scale)
    _assert_conservative(
        calibrate(sum_cost, sensitivity(Function.SUM, M, CLAMP, DECIMALS)).scale, sum_scale)

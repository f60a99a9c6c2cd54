"""One vector-domain OpenDP measurement per measure: the privacy it is charged, and its noise.

tahub draws the noise of all cells of a measure in one call of OpenDP's ``make_gaussian`` or
``make_laplace`` over ``vector_domain(atom_domain(T=i64))`` (:func:`hub.privacy.noise.
release_counts`), never one call per cell. Two things must then hold, and are tested here:

* **Privacy.** The vector measurement's map, at the sensitivity tahub derives
  (:func:`hub.privacy.noise.sensitivity`: L2 for the discrete Gaussian, L1 for the discrete
  Laplace), is exactly the cost charged for the measure, and it equals what sequential
  composition of one scalar measurement per cell would charge for the same neighbour. For a
  neighbour that moves the cells by d = (d_1, ..., d_n), the scalar maps add up to
  sum_i d_i^2 / (2 s^2) = ||d||_2^2 / (2 s^2) (zCDP) or sum_i |d_i| / s = ||d||_1 / s (pure),
  which is the vector map at ||d||: the two accountings agree for every way a unit's rows
  spread over the cells, and the worst spread is the sensitivity. The shapes below are
  built from a unit's rows (all in one cell, one per cell, at random; with per-period
  bounding, m rows in each period) for several bounds.
* **Noise.** The vector's cells get independent noise with the distribution and scale of one
  scalar draw: a two-sample test against OpenDP's scalar measurement called per cell (the
  former path), the mean and variance against the claimed scale at a sum's large scales, and
  independence of neighbouring cells and of two releases. Every test is random (OpenDP's
  sampler cannot be seeded); all of the file's tests of a true hypothesis together fail a
  correct implementation at most once in a thousand runs (each at ALPHA = 0.001 / 20, its
  20 such checks, Bonferroni; at 0.001 each, CI failed on one in about fifty runs), and each
  shows power against a 15% wrong scale or dependent noise at the same ALPHA. The
  chi-square test against the exact pmf is in ``test_noise_statistics.py``.
"""

from __future__ import annotations

import math
import random
from fractions import Fraction

import opendp.prelude as dp
import pytest
from scipy import stats

from hub.privacy.accounting import Cost, Measure
from hub.privacy.noise import (
    Function,
    Mechanism,
    NoiseSpec,
    _loss,
    _measurement,
    _opendp,
    calibrate,
    release_counts,
    sensitivity,
)

#: Bonferroni over the file's 20 checks of a true hypothesis (module docstring)
ALPHA = 0.001 / 20
COSTS = {Measure.ZCDP: Cost.parse("zcdp", "3/8"), Measure.PURE: Cost.parse("pure", "7/10")}
BOUNDS = (1, 3, 10, 37)  # rows per unit (max_rows x groups_per_row)
CLAMP, DECIMALS = (-20.0, 500.25), 2  # c = 50,025 fixed-point steps per row
CELLS = 60  # cells per period
#: rho 1/2 or epsilon 1 for a count of at most 3 rows per unit: scale 3 in both
SCALE_3 = {Measure.ZCDP: Cost.parse("zcdp", "1/2"), Measure.PURE: Cost.parse("pure", 1)}


def _scalar(noise: NoiseSpec) -> dp.Measurement:
    """OpenDP's scalar measurement at the same scale: what one call per cell used."""
    lib, atom = _opendp(), dp.atom_domain(T="i64")
    if noise.mechanism is Mechanism.DISCRETE_GAUSSIAN:
        return lib.m.make_gaussian(atom, lib.absolute_distance(T="f64"), scale=noise.scale)
    return lib.m.make_laplace(atom, lib.absolute_distance(T="i64"), scale=noise.scale)


def _root_up(square: int) -> float:
    root = math.sqrt(square)
    while Fraction(root) ** 2 < square:
        root = math.nextafter(root, math.inf)
    return root


def _neighbour(fn: Function, m: int, periods: int, spread: str,
               rng: random.Random) -> list[int]:
    """How far one unit moves each cell (in released units) when it is added: ``m`` rows in
    each of ``periods`` blocks of :data:`CELLS` cells, placed by ``spread``."""
    c = max(abs(round(x * 10**DECIMALS)) for x in CLAMP)
    out = [0] * (CELLS * periods)
    for p in range(periods):
        if spread == "one cell":
            cells = [rng.randrange(CELLS)] * m
        elif spread == "one per cell":
            cells = rng.sample(range(CELLS), m) if m <= CELLS else list(range(CELLS))
        else:
            cells = [rng.randrange(CELLS) for _ in range(m)]
        touched = sorted(set(cells))
        for cell in (touched if fn in (Function.COUNT_UNITS, Function.LINKED_UNITS)
                     else cells):
            per_row = c if fn is Function.SUM else 1
            out[p * CELLS + cell] += per_row
    return out


@pytest.mark.parametrize("measure", list(Measure))
@pytest.mark.parametrize("fn", [Function.COUNT, Function.SUM, Function.COUNT_UNITS,
                                Function.LINKED_UNITS])
def test_vector_map_is_the_charged_cost_and_the_per_cell_composition(
        measure: Measure, fn: Function) -> None:
    rng = random.Random(16)  # noqa: S311 - places rows in cells, never noise
    cost = COSTS[measure]
    for m in BOUNDS:
        for periods in (1, 4):
            sens = sensitivity(fn, m, CLAMP if fn is Function.SUM else None,
                               DECIMALS if fn is Function.SUM else 0, periods)
            noise = calibrate(cost, sens)
            vector = _measurement(noise.mechanism, noise.scale, measure)
            scalar = _scalar(noise)
            gaussian = noise.mechanism is Mechanism.DISCRETE_GAUSSIAN
            charged = Fraction(vector.map(sens.l2 if gaussian else sens.l1))
            # the vector map at the derived sensitivity is what is charged, and tight
            assert charged == _loss(noise) <= cost.amount
            assert charged >= cost.amount * (1 - Fraction(1, 10**9))
            # ... and the closed form of the derivation (rho = L2^2 / 2s^2, eps = L1 / s)
            closed = (sens.l2_squared / (2 * noise.scale**2) if gaussian
                      else sens.l1 / noise.scale)
            assert float(charged) == pytest.approx(closed, rel=1e-9)
            for spread in ("one cell", "one per cell", "random"):
                d = _neighbour(fn, m, periods, spread, rng)
                l1, l2_squared = sum(abs(x) for x in d), sum(x * x for x in d)
                # the derivation covers this neighbour ...
                assert l1 <= sens.l1 and l2_squared <= sens.l2_squared, (m, periods, spread)
                # ... the vector map at its own distance is within the charge ...
                own = Fraction(vector.map(_root_up(l2_squared) if gaussian else l1))
                assert own <= charged
                # ... and equals one scalar measurement per cell, composed
                composed = math.fsum(float(scalar.map(abs(x))) for x in d if x)
                assert composed == pytest.approx(float(own), rel=1e-9)
            # the worst neighbours reach the sensitivity: the charge is not loose
            worst = "one per cell" if fn in (Function.COUNT_UNITS,
                                             Function.LINKED_UNITS) else "one cell"
            d = _neighbour(fn, min(m, CELLS), periods, worst, rng)
            if m <= CELLS:
                assert sum(abs(x) for x in d) == sens.l1
                assert sum(x * x for x in d) == sens.l2_squared


def _draws(noise: NoiseSpec, truths: list[int]) -> list[int]:
    return [v - t for v, t in zip(release_counts(truths, noise), truths, strict=True)]


def _homogeneity_p(a: list[int], b: list[int]) -> float:
    """Chi-square two-sample test on the values, rare values pooled into the tails."""
    lo = sorted(a + b)[(len(a) + len(b)) // 200]
    hi = sorted(a + b)[-(len(a) + len(b)) // 200]
    def counts(xs: list[int]) -> list[int]:
        row = [0] * (hi - lo + 3)
        for x in xs:
            row[min(max(x, lo - 1), hi + 1) - lo + 1] += 1
        return row
    table = [counts(a), counts(b)]
    keep = [i for i in range(len(table[0])) if table[0][i] + table[1][i] > 0]
    return float(stats.chi2_contingency([[r[i] for i in keep] for r in table]).pvalue)


@pytest.mark.parametrize("measure", list(Measure))
def test_vector_noise_is_distributed_as_one_scalar_draw_per_cell(measure: Measure) -> None:
    noise = calibrate(SCALE_3[measure], sensitivity("count", 3))
    assert noise.scale == pytest.approx(3.0)
    n = 10_000
    truths = [(i * 7919) % 1000 for i in range(n)]  # different cells, different values
    vector = _draws(noise, truths)
    scalar = _scalar(noise)
    per_cell = [int(scalar(t)) - t for t in truths]
    assert _homogeneity_p(vector, per_cell) > ALPHA
    # power: the same test tells a 15% larger scale apart
    wider = _scalar(NoiseSpec(noise.mechanism, noise.scale * 1.15, noise.cost,
                              noise.sensitivity))
    assert _homogeneity_p(vector, [int(wider(t)) - t for t in truths]) < ALPHA


def _variance(mechanism: Mechanism, scale: float) -> float:
    """The exact variance of the noise: sigma^2 for the discrete Gaussian at these scales
    (they differ by less than exp(-2 pi^2 s^2) relative, CKS20), 2p / (1-p)^2 with
    p = exp(-1/s) for the discrete Laplace."""
    if mechanism is Mechanism.DISCRETE_GAUSSIAN:
        return scale * scale
    p = math.exp(-1 / scale)
    return 2 * p / (1 - p) ** 2


@pytest.mark.parametrize("measure", list(Measure))
@pytest.mark.parametrize("fn", ["count", "sum"])
def test_vector_noise_has_mean_zero_and_the_claimed_variance(measure: Measure,
                                                             fn: str) -> None:
    sens = (sensitivity("count", 10) if fn == "count"
            else sensitivity("sum", 10, (0, 50_000), 0))
    noise = calibrate(Cost(measure, Fraction(1, 4)), sens)
    n = 20_000
    truths = [((i * 7919) % 1000) * (1 if fn == "count" else 4_321) for i in range(n)]
    e = _draws(noise, truths)
    mean = math.fsum(e) / n
    var = math.fsum((x - mean) ** 2 for x in e) / (n - 1)
    m4 = math.fsum((x - mean) ** 4 for x in e) / n
    claimed = _variance(noise.mechanism, noise.scale)
    z_mean = mean / math.sqrt(claimed / n)
    se_var = math.sqrt((m4 - var * var) / n)
    z = stats.norm.isf(ALPHA / 2)
    assert abs(z_mean) < z
    assert abs(var - claimed) / se_var < z, (var, claimed)
    assert abs(var - _variance(noise.mechanism, noise.scale * 1.15)) / se_var > z  # power


@pytest.mark.parametrize("measure", list(Measure))
def test_cells_get_independent_noise(measure: Measure) -> None:
    noise = calibrate(SCALE_3[measure], sensitivity("count", 3))
    assert noise.scale == pytest.approx(3.0)
    n = 20_000
    truths = [(i * 31) % 97 for i in range(n)]
    first, second = _draws(noise, truths), _draws(noise, truths)

    def dependence_p(x: list[int], y: list[int]) -> tuple[float, float]:
        """Pearson's correlation, and a chi-square test of independence of the signs."""
        r = float(stats.pearsonr(x, y).pvalue)
        table = [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
        for a, b in zip(x, y, strict=True):
            table[(a > 0) - (a < 0) + 1][(b > 0) - (b < 0) + 1] += 1
        return r, float(stats.chi2_contingency(table).pvalue)

    # neighbouring cells of one release (disjoint pairs: independent pairs of draws) ...
    assert min(dependence_p(first[0::2], first[1::2])) > ALPHA
    # ... and the same cell in two releases
    assert min(dependence_p(first, second)) > ALPHA
    # no cell repeats its neighbour's draw more often than chance: P(X = Y) = sum p(x)^2
    x, y = first[0::2], first[1::2]
    pmf = {v: first.count(v) / n for v in set(first)}
    same = sum(1 for a, b in zip(x, y, strict=True) if a == b)
    p_same = math.fsum(p * p for p in pmf.values())
    assert stats.binomtest(same, len(x), p_same).pvalue > ALPHA
    # power: noise shared by a quarter of the pairs is caught
    shared = [b if i % 4 else a for i, (a, b) in enumerate(zip(x, y, strict=True))]
    assert min(dependence_p(x, shared)) < ALPHA

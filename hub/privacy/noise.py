"""Sensitivities, OpenDP calibration and release: the numeric core of a DP query.

See the package docstring (``hub.privacy``) and docs/privacy.md for the privacy argument.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from typing import Any

import opendp.prelude as dp

from hub.errors import InvalidInput
from hub.privacy.accounting import Cost, Measure

__all__ = [
    "COST_GRID",
    "DEFAULT_DELTA",
    "MAX_DECIMALS",
    "MAX_SCALE",
    "Function",
    "MeanNoise",
    "Mechanism",
    "NoiseSpec",
    "Sensitivity",
    "calibrate",
    "calibrate_mean",
    "calibrate_quantile",
    "from_fixed",
    "quantile_candidates",
    "quantile_release",
    "release_counts",
    "release_sums",
    "sensitivity",
    "split_cost",
    "sum_decimals",
    "to_fixed",
]

#: Costs solved from a target accuracy are rounded UP to this grid (exact).
COST_GRID = Fraction(1, 10**6)
#: The delta at which a rho is reported as (epsilon, delta).
DEFAULT_DELTA = Fraction(1, 10**7)
#: Most decimals a fixed-point sum keeps (resolution 10**-6).
MAX_DECIMALS = 6
#: A sum's fixed-point step is at most 10**-SUM_STEPS_EXPONENT of its clamp range.
SUM_STEPS_EXPONENT = 4
#: Most decimals a sum keeps by :func:`sum_decimals` (<= MAX_DECIMALS).
MAX_SUM_DECIMALS = 4
#: Largest noise scale tahub samples: beyond it a release is noise and i64 sums could overflow.
MAX_SCALE = 1e14
_I64 = 2**63 - 1


class Function(StrEnum):
    """The aggregate a measure computes per cell."""

    COUNT = "count"  # rows
    SUM = "sum"  # clamped values, fixed point
    MEAN = "mean"  # noisy sum / noisy count (post-processing)
    COUNT_UNITS = "count_units"  # distinct privacy units
    LINKED_UNITS = "linked_units"  # distinct units seen at >= 2 distinct partners
    QUANTILE = "quantile"  # exponential mechanism over a public candidate grid


class Mechanism(StrEnum):
    DISCRETE_GAUSSIAN = "discrete_gaussian"  # zcdp
    DISCRETE_LAPLACE = "discrete_laplace"  # pure
    EXPONENTIAL = "exponential"  # quantile: OpenDP's make_private_quantile


def _opendp() -> Any:
    """OpenDP with its vetted (``contrib``) constructors enabled; called, never at import."""
    dp.enable_features("contrib")
    return dp


# --------------------------------------------------------------------------- sensitivity


@dataclass(frozen=True, slots=True)
class Sensitivity:
    """How far one privacy unit can move the released vector of cells.

    ``l1`` and ``l2_squared`` are exact integers in the released unit (rows, distinct units,
    or fixed-point steps of ``resolution``). For a quantile, ``l1`` is the symmetric distance
    (rows added or removed, summed over all cells' value lists) that OpenDP's quantile map
    takes as its input distance.
    """

    function: Function
    max_rows: int
    l1: int
    l2_squared: int
    resolution: Fraction = Fraction(1)
    clamp: tuple[Fraction, Fraction] | None = None
    periods: int = 1  # per-period bounding: max_rows per unit in each of this many periods

    @property
    def l2(self) -> float:
        """sqrt(l2_squared) as the smallest float that is not below the real root."""
        root = math.sqrt(self.l2_squared)
        while Fraction(root) ** 2 < self.l2_squared:
            root = math.nextafter(root, math.inf)
        return root

    @property
    def decimals(self) -> int:
        return len(str(self.resolution.denominator)) - 1


def to_fixed(value: float | Fraction, decimals: int) -> int:
    """A (clamped) value as the fixed-point integer the engine sums: value * 10**d rounded
    to the nearest integer, ties away from zero (DuckDB's ``round``, cheaper than its
    ``round_even``).

    The engine's SQL is ``CAST(round(least(greatest(x, lo), hi) * 10^d) AS BIGINT)``; any
    monotone rounding keeps the result inside ``[to_fixed(lo), to_fixed(hi)]``, which is all
    the sensitivity below relies on. Each value moves by at most half a resolution step.
    """
    scaled = Fraction(value) * 10**decimals
    whole = math.floor(abs(scaled) + Fraction(1, 2))
    return whole if scaled >= 0 else -whole


def sum_decimals(clamp: tuple[float, float], integer: bool = False) -> int:
    """Fixed-point decimals of a sum of values clamped to ``clamp``.

    0 for integer fields. For number fields, the fewest decimals (at most
    :data:`MAX_SUM_DECIMALS`) whose step is at most 1/10,000 of the clamp range: amounts
    clamped to [0, 50000] EUR are summed in whole euros, [0, 1000] in tenths, [0, 1] in
    1/10,000. Rounding moves a value by at most half a step (0.005% of its range), far
    below the noise, whose size in the value's unit does not depend on the step; a finer
    step would only make the noise scale, in steps, larger (and OpenDP's discrete Gaussian
    accuracy helper takes time linear in it).
    """
    if integer:
        return 0
    width = clamp[1] - clamp[0]
    if width <= 0:
        return MAX_SUM_DECIMALS
    return min(max(0, math.ceil(SUM_STEPS_EXPONENT - math.log10(width))), MAX_SUM_DECIMALS)


def from_fixed(value: int, decimals: int) -> float:
    return float(Fraction(value, 10**decimals))


def sensitivity(
    function: Function | str,
    max_rows: int,
    clamp: tuple[float, float] | tuple[Fraction, Fraction] | None = None,
    decimals: int = 0,
    periods: int = 1,
) -> Sensitivity:
    """The sensitivity of one measure over the full vector of public cells; m = ``max_rows``.

    With ``periods`` = P > 1 (per-period bounding, for trends grouped by period), a unit
    keeps at most m rows *in each* of the P periods of the query, and the cells of different
    periods are disjoint: the unit's change is P independent blocks, each bounded as below,
    so L1 = P * L1(m) and L2^2 = P * L2(m)^2 (the worst case puts each block in one cell of
    its period). P = 1 is the total bound.

    A neighbour adds or removes one unit: at most m rows in total, spread in any way over the
    cells (group keys are public, so the vector's length and order never change).

    * ``count``: each row adds 1 to one cell. L1 = m. L2 = m as well: the worst case puts all
      m rows in one cell (sqrt of m^2); spreading them only lowers L2 to sqrt(m).
    * ``sum`` of values clamped to [lo, hi] in fixed point (c = max(|to_fixed(lo)|,
      |to_fixed(hi)|) steps of 10**-decimals per row): L1 = m*c, and L2 = m*c by the same
      worst case (all rows in one cell).
    * ``count_units``: a unit counts at most once per cell and has rows in at most m cells,
      so it moves at most m cells by exactly 1: L1 = m, L2 = sqrt(m) (``l2_squared`` = m).
    * ``linked_units``: the units of a cell seen at >= 2 partners are a subset of the
      distinct units of that cell, decided by the unit's own rows only; the same bound holds:
      L1 = m, L2 = sqrt(m). (The partner of a row is public; a unit's rows do not change
      whether another unit is linked.)
    * ``quantile``: each cell releases from its own list of clamped values; removing the
      unit removes at most m values in total across the lists: symmetric distance m, which
      OpenDP's quantile measurement maps to a cost (its score has sensitivity
      max(q, 1-q)-scaled per value; see :func:`calibrate_quantile` for composition).
    * ``mean`` is not one vector: it is a sum and a count, see :func:`calibrate_mean`.
    """
    fn = _function(function)
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise InvalidInput("max_rows must be a positive integer", field="max_rows")
    if isinstance(periods, bool) or not isinstance(periods, int) or periods < 1:
        raise InvalidInput("periods must be a positive integer", field="periods")
    if periods > 1:
        block = sensitivity(fn, max_rows, clamp, decimals)
        if block.l1 * periods > _I64 // 2:
            raise InvalidInput("clamp range x max_rows x periods overflows a 64-bit sum",
                               field="clamp")
        return Sensitivity(fn, max_rows, l1=block.l1 * periods,
                           l2_squared=block.l2_squared * periods,
                           resolution=block.resolution, clamp=block.clamp, periods=periods)
    if fn is Function.MEAN:
        raise InvalidInput(
            "a mean is a noisy sum over a noisy count: calibrate it with calibrate_mean",
            field="function",
        )
    m = max_rows
    if fn in (Function.COUNT, Function.COUNT_UNITS, Function.LINKED_UNITS):
        l2_sq = m * m if fn is Function.COUNT else m
        return Sensitivity(fn, m, l1=m, l2_squared=l2_sq)
    bounds = _clamp(clamp, fn)
    if fn is Function.QUANTILE:
        return Sensitivity(fn, m, l1=m, l2_squared=m * m, clamp=bounds)
    if isinstance(decimals, bool) or not 0 <= decimals <= MAX_DECIMALS:
        raise InvalidInput(f"decimals must be 0..{MAX_DECIMALS}", field="decimals")
    per_row = max(abs(to_fixed(bounds[0], decimals)), abs(to_fixed(bounds[1], decimals)))
    if per_row == 0:
        raise InvalidInput("the clamp range [0, 0] makes every sum 0", field="clamp")
    if m * per_row > _I64 // 2:
        raise InvalidInput("clamp range x max_rows overflows a 64-bit sum", field="clamp")
    return Sensitivity(fn, m, l1=m * per_row, l2_squared=(m * per_row) ** 2,
                       resolution=Fraction(1, 10**decimals), clamp=bounds)


def _function(function: Function | str) -> Function:
    try:
        return Function(function)
    except ValueError:
        raise InvalidInput(f"unknown function {function!r}", field="function") from None


def _clamp(clamp: Any, fn: Function) -> tuple[Fraction, Fraction]:
    if clamp is None:
        raise InvalidInput(f"{fn.value} needs a clamp range [lo, hi]", field="clamp")
    lo, hi = (Fraction(x) for x in clamp)
    if lo > hi:
        raise InvalidInput("clamp needs lo <= hi", field="clamp")
    return lo, hi


# --------------------------------------------------------------------------- calibration


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    """Noise for one measure over all its cells: ``scale`` is OpenDP's scale parameter
    (sigma for the discrete Gaussian, b for the discrete Laplace, the Gumbel scale for the
    quantile), in units of ``sensitivity.resolution``; ``cost`` is what it spends."""

    mechanism: Mechanism
    scale: float
    cost: Cost
    sensitivity: Sensitivity
    quantile: Fraction | None = None
    candidates: tuple[float, ...] = ()


def split_cost(cost: Cost, n: int) -> list[Cost]:
    """``n`` equal, exact parts of ``cost`` (sequential composition adds them back to it).

    Equal split: each measure of a query gets the same share, so that the total is exactly
    the cost asked for, whichever measure is noisier. Parts of a Fraction are exact.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput("a cost is split into at least one part", field="measures")
    part = cost.amount / n
    return [Cost(cost.measure, part) for _ in range(n)]


def _mechanism(measure: Measure) -> Mechanism:
    return Mechanism.DISCRETE_GAUSSIAN if measure is Measure.ZCDP else Mechanism.DISCRETE_LAPLACE


def _measurement(spec_mech: Mechanism, scale: float, measure: Measure,
                 quantile: Fraction | None = None, candidates: Sequence[float] = ()) -> Any:
    """The OpenDP measurement tahub releases with (one vector of cells, or one quantile)."""
    lib = _opendp()
    ints = lib.vector_domain(lib.atom_domain(T="i64"))
    if spec_mech is Mechanism.DISCRETE_GAUSSIAN:
        return lib.m.make_gaussian(ints, lib.l2_distance(T="f64"), scale=scale)
    if spec_mech is Mechanism.DISCRETE_LAPLACE:
        return lib.m.make_laplace(ints, lib.l1_distance(T="i64"), scale=scale)
    out = (lib.zero_concentrated_divergence() if measure is Measure.ZCDP
           else lib.max_divergence())
    return lib.m.make_private_quantile(
        lib.vector_domain(lib.atom_domain(T=float, nan=False)), lib.symmetric_distance(), out,
        list(candidates), float(quantile if quantile is not None else Fraction(1, 2)), scale)


def _d_in(mechanism: Mechanism, sens: Sensitivity) -> float | int:
    return sens.l2 if mechanism is Mechanism.DISCRETE_GAUSSIAN else sens.l1


def _loss(spec: NoiseSpec) -> Fraction:
    """The privacy map of the exact OpenDP measurement ``spec`` releases with, as a Fraction."""
    meas = _measurement(spec.mechanism, spec.scale, spec.cost.measure, spec.quantile,
                        spec.candidates)
    return Fraction(meas.map(_d_in(spec.mechanism, spec.sensitivity)))


def _solve(mechanism: Mechanism, cost: Cost, sens: Sensitivity,
           quantile: Fraction | None = None, candidates: tuple[float, ...] = ()) -> NoiseSpec:
    """The smallest scale (up to float steps) whose OpenDP privacy map is <= ``cost``.

    Closed form checked against the map: all three maps scale exactly as loss(s) =
    loss(1) / s**p, with p = 2 for zCDP (rho = (d/s)^2 / 2 for the Gaussian, (d*D/s)^2 / 8
    for the quantile's Gumbel noise) and p = 1 for pure DP (epsilon = d/s, d*D/s). OpenDP
    rounds its maps outwards, so the closed form can land a hair too low: the scale is
    raised in tiny steps until ``measurement.map(d_in) <= cost`` holds exactly.
    """
    if cost.amount <= 0:
        raise InvalidInput("a release needs a positive cost (cost 0 means infinite noise)",
                           field="cost")
    power = 2 if cost.measure is Measure.ZCDP else 1
    unit = NoiseSpec(mechanism, 1.0, cost, sens, quantile, candidates)
    base = float(_loss(unit))
    try:
        amount = float(cost.amount)
    except OverflowError:
        raise InvalidInput("the cost is too large to calibrate", field="cost") from None
    scale = (base / amount) ** (1 / power) if amount > 0 else math.inf
    if not math.isfinite(scale) or scale > MAX_SCALE:
        raise InvalidInput(f"cost {cost} is too small: the noise would drown any answer",
                           field="cost")
    if scale <= 0 or math.isinf(amount):
        raise InvalidInput(f"cost {cost} is too large to calibrate", field="cost")
    for _ in range(200):
        spec = NoiseSpec(mechanism, scale, cost, sens, quantile, candidates)
        if _loss(spec) <= cost.amount:
            return spec
        scale *= 1 + 2**-40
    raise RuntimeError("OpenDP's privacy map did not converge")  # pragma: no cover - a bug


def calibrate(cost: Cost, sens: Sensitivity) -> NoiseSpec:
    """Noise for a count, sum, count_units or linked_units vector that spends ``cost``.

    The cells are covered by the vector sensitivity: one measurement over all cells, no
    per-cell composition.
    """
    if sens.function is Function.QUANTILE:
        raise InvalidInput("quantiles are calibrated with calibrate_quantile", field="function")
    return _solve(_mechanism(cost.measure), cost, sens)


@dataclass(frozen=True, slots=True)
class MeanNoise:
    """A mean's two releases, each at half its cost."""

    sum: NoiseSpec
    count: NoiseSpec


def calibrate_mean(cost: Cost, max_rows: int, clamp: tuple[float, float] | tuple[
        Fraction, Fraction], decimals: int = 0, periods: int = 1) -> MeanNoise:
    """Mean = noisy sum / noisy count: pure post-processing of two releases, so the cost is
    split equally (exact halves) between the sum and the count vectors."""
    half_sum, half_count = split_cost(cost, 2)
    return MeanNoise(
        sum=calibrate(half_sum, sensitivity(Function.SUM, max_rows, clamp, decimals, periods)),
        count=calibrate(half_count, sensitivity(Function.COUNT, max_rows, periods=periods)),
    )


def quantile_candidates(clamp: tuple[float, float] | tuple[Fraction, Fraction],
                        steps: int = 100) -> tuple[float, ...]:
    """A public grid over the clamp range: ``steps + 1`` evenly spaced points, ends included.

    It depends only on the contract's public clamp range, never on data. The released
    quantile is one of these points, so its resolution is (hi - lo) / steps.
    """
    lo, hi = _clamp(clamp, Function.QUANTILE)
    if isinstance(steps, bool) or not 1 <= steps <= 10_000:
        raise InvalidInput("a quantile grid has 1..10000 steps", field="steps")
    return tuple(sorted({float(lo + (hi - lo) * i / steps) for i in range(steps + 1)}))


def calibrate_quantile(cost: Cost, sens: Sensitivity, quantile: float | Fraction | str,
                       candidates: Sequence[float] | None = None) -> NoiseSpec:
    """Noise for one quantile per cell, via OpenDP's exponential mechanism.

    OpenDP's ``make_private_quantile`` scores each candidate by how far its rank is from
    q*n; adding or removing one value moves every score by at most max(q, 1 - q) in OpenDP's
    scaled integer units (its map accounts for that), and the Gumbel report-noisy-max picks
    the best noisy score. The map is taken at d_in = m (all of a unit's rows in one cell).

    Composition over cells: each cell is a separate measurement whose input distance d_i is
    the number of the unit's rows in that cell, with sum(d_i) <= m. The maps are
    loss(d) = c*d (pure) and c*d^2 (zCDP), and both satisfy sum(loss(d_i)) <= loss(sum d_i),
    so charging loss(m) once covers every cell together.
    """
    if sens.function is not Function.QUANTILE or sens.clamp is None:
        raise InvalidInput("calibrate_quantile needs a quantile sensitivity", field="function")
    q = Fraction(quantile)
    if not 0 <= q <= 1:
        raise InvalidInput("a quantile lies in [0, 1]", field="quantile")
    grid = tuple(candidates) if candidates is not None else quantile_candidates(sens.clamp)
    if list(grid) != sorted(set(grid)) or not grid:
        raise InvalidInput("candidates must be strictly increasing", field="candidates")
    return _solve(Mechanism.EXPONENTIAL, cost, sens, q, grid)


def _checked(noise: NoiseSpec) -> Any:
    """Re-check the guarantee right before drawing noise (check, then spend, then run)."""
    loss = _loss(noise)
    if loss > noise.cost.amount:
        raise RuntimeError(f"noise for {noise.cost} would spend {loss}")  # a bug, never input
    return _measurement(noise.mechanism, noise.scale, noise.cost.measure, noise.quantile,
                        noise.candidates)


# --------------------------------------------------------------------------- release


def release_counts(values: Sequence[int], noise: NoiseSpec) -> list[int]:
    """The exact integer cells (counts, or fixed-point sums) plus OpenDP noise, all at once.

    One call of one OpenDP measurement for all cells of the measure (:func:`_measurement`:
    ``make_gaussian`` or ``make_laplace`` over ``vector_domain(atom_domain(T=i64))``), never
    one call per cell. OpenDP samples each coordinate independently with the scalar
    mechanism's distribution (discrete Gaussian or discrete Laplace at ``noise.scale``), so
    the cells get exactly the noise that one scalar call per cell would draw.

    Privacy, derived: a neighbour moves the cells by d = (d_1, ..., d_n); one scalar
    measurement per cell, composed, would spend sum_i d_i^2 / (2 s^2) = ||d||_2^2 / (2 s^2)
    (zCDP) or sum_i |d_i| / s = ||d||_1 / s (pure), which is the vector map at ||d||_2 or
    ||d||_1; its worst case over neighbours is the map at the sensitivity (:func:`sensitivity`:
    L2 for the Gaussian, L1 for the Laplace), which is what :func:`calibrate` makes equal to
    the cost charged and :func:`_checked` re-checks here. ``tests/hub/test_noise_vector.py``
    compares the vector map with the composed scalar maps for several bounds and spreads of
    a unit's rows, and the vector's noise with per-cell draws.

    Speed: the per-cell cost that remains (about 7-12 microseconds of CPU a cell) is OpenDP's
    exact sampler itself (rational arithmetic and OS-grade random bytes per Bernoulli trial),
    not the call; moving the cells into OpenDP and back is under 1 microsecond a cell
    (``bench/noise_vector.py``).
    """
    if noise.mechanism is Mechanism.EXPONENTIAL:
        raise InvalidInput("quantiles are released with quantile_release", field="function")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or abs(v) > _I64:
            raise ValueError(f"cell values must be 64-bit integers, got {v!r}")
    if not values:
        return []
    return [int(x) for x in _checked(noise)(list(values))]


def release_sums(values: Sequence[int], noise: NoiseSpec) -> list[float]:
    """Fixed-point sums released and converted back to the value's unit."""
    decimals = noise.sensitivity.decimals
    return [from_fixed(v, decimals) for v in release_counts(values, noise)]


def quantile_release(cells: Sequence[Sequence[float]], noise: NoiseSpec) -> list[float]:
    """One quantile per cell: each cell's clamped values through the same OpenDP measurement
    (the cost covers all cells, see :func:`calibrate_quantile`). Empty cells are released
    too (the mechanism then picks by noise alone), so emptiness leaks nothing."""
    if noise.mechanism is not Mechanism.EXPONENTIAL or noise.sensitivity.clamp is None:
        raise InvalidInput("quantile_release needs a quantile NoiseSpec", field="function")
    lo, hi = (float(x) for x in noise.sensitivity.clamp)
    meas = _checked(noise)
    return [float(meas([min(max(float(v), lo), hi) for v in cell])) for cell in cells]

"""Intervals, margins, and cost <-> accuracy, over the noise :mod:`hub.privacy.noise` draws.

Every interval here is honest: it holds the truth (of the bounded, clamped data) with
probability at least 1 - alpha per cell, including after the optional post-processing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from hub.errors import InvalidInput
from hub.privacy.accounting import Cost, Measure
from hub.privacy.noise import (
    COST_GRID,
    DEFAULT_DELTA,
    Function,
    MeanNoise,
    Mechanism,
    NoiseSpec,
    _function,
    _loss,
    _mechanism,
    _opendp,
    calibrate,
    sensitivity,
)

__all__ = [
    "Estimate",
    "cost_for_halfwidth",
    "estimates",
    "halfwidth",
    "margin_totals",
    "mean_interval",
    "to_epsilon_delta",
]


@dataclass(frozen=True, slots=True)
class Estimate:
    """A released value and its interval, which holds the truth with probability >= 1-alpha
    (per cell; intervals of different cells are not simultaneous)."""

    value: float
    low: float
    high: float


def _alpha(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise InvalidInput("alpha must lie strictly between 0 and 1", field="alpha")
    return float(alpha)


#: Above this scale, OpenDP's exact discrete Gaussian accuracy helper (time linear in the
#: scale: 0.1 s at 5e5) gives way to the proven bound of :func:`_gaussian_tail_steps`.
_EXACT_GAUSSIAN_SCALE = 2_000.0


def _gaussian_tail_steps(scale: float, alpha: float) -> int:
    """The least integer h whose bound below gives P(|X| > h) <= alpha, X discrete Gaussian
    with scale s; never narrower than the exact quantile, and at most a step or so wider at
    the scales it is used for (a test checks both against OpenDP).

    With f(x) = exp(-x^2 / 2s^2) and Z = sum of f over the integers:

    * Z >= sqrt(2 pi) s, by Poisson summation: Z = sqrt(2 pi) s (1 + 2 sum_k exp(-2 pi^2 s^2 k^2));
    * for an integer t >= 1, sum_{x >= t} f(x) <= f(t) + integral_t^inf f(x) dx, as f decreases
      on [t, inf), and the integral is sqrt(2 pi) s Q(t/s) (Q the normal upper tail).

    So P(|X| >= t) <= 2 (Q(t/s) + f(t) / (sqrt(2 pi) s)), and P(|X| > h) = P(|X| >= h + 1).
    A relative margin of 1e-9 absorbs floating-point error in erfc and exp.
    """

    def bound(t: int) -> float:
        z = t / scale
        q = 0.5 * math.erfc(z / math.sqrt(2))
        return 2 * (q + math.exp(-z * z / 2) / (math.sqrt(2 * math.pi) * scale)) * (1 + 1e-9)

    lo, hi = 1, 1
    while bound(hi) > alpha:  # the bound decreases in t: find a t that satisfies it...
        lo, hi = hi, hi * 2
    while lo < hi:  # ...then the least one
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if bound(mid) <= alpha else (mid + 1, hi)
    return hi - 1


@functools.lru_cache(maxsize=1024)
def _halfwidth_steps(noise: NoiseSpec, alpha: float) -> int:
    """The least integer h with P(|noise| > h) <= alpha, from OpenDP's accuracy helpers.

    Cached (a pure function of a frozen spec): OpenDP's discrete Gaussian helper takes time
    linear in the scale (about 0.14 s at scale 5e5), and a release asks for it per measure
    several times (interval of each cell, the measure's half-width, margin totals).

    ``dp.discrete_*_scale_to_accuracy(scale, alpha)`` returns a with P(|X| >= a) <= alpha
    (OpenDP's proofs); X is an integer, so P(|X| > ceil(a) - 1) = P(|X| >= ceil(a)) <= alpha.
    """
    lib = _opendp()
    if noise.mechanism is Mechanism.DISCRETE_GAUSSIAN and noise.scale > _EXACT_GAUSSIAN_SCALE:
        return _gaussian_tail_steps(noise.scale, _alpha(alpha))
    if noise.mechanism is Mechanism.DISCRETE_GAUSSIAN:
        acc = lib.discrete_gaussian_scale_to_accuracy(noise.scale, _alpha(alpha))
    elif noise.mechanism is Mechanism.DISCRETE_LAPLACE:
        acc = lib.discrete_laplacian_scale_to_accuracy(noise.scale, _alpha(alpha))
    else:
        raise InvalidInput("a quantile has no additive noise interval", field="function")
    return max(math.ceil(acc) - 1, 0)


def halfwidth(noise: NoiseSpec, alpha: float = 0.05) -> float:
    """The (1-alpha) half-width of one cell, in the value's unit (e.g. euros for a sum)."""
    return float(_halfwidth_steps(noise, alpha) * noise.sensitivity.resolution)


def estimates(noisy: Sequence[int], noise: NoiseSpec, alpha: float = 0.05,
              nonnegative: bool = False) -> list[Estimate]:
    """Released cells with their intervals, in the value's unit.

    ``nonnegative`` (for counts, or sums whose clamp range is >= 0) projects the value and
    both ends of the interval onto [0, inf). Still honest: the truth is >= 0, so if it lies
    in [v-h, v+h] it lies in [max(0, v-h), max(0, v+h)].
    """
    h = _halfwidth_steps(noise, alpha)
    # Integer steps times the resolution num/den: exact integer products and one correctly
    # rounded division (Fraction arithmetic per cell cost half a second on 3,600 cells).
    num, den = noise.sensitivity.resolution.numerator, noise.sensitivity.resolution.denominator
    out = []
    for v in noisy:
        low, value, high = v - h, v, v + h
        if nonnegative:
            low, value, high = max(low, 0), max(value, 0), max(high, 0)
        out.append(Estimate(value * num / den, low * num / den, high * num / den))
    return out


def mean_interval(noisy_sum: int, noisy_count: int, noise: MeanNoise,
                  alpha: float = 0.05) -> Estimate:
    """A cell's mean from its noisy fixed-point sum and noisy count, with an honest interval.

    The sum's interval [s1, s2] and the count's [n1, n2] are each taken at alpha/2, so both
    hold together with probability >= 1 - alpha (union bound). The true count is an integer,
    and the mean only exists when it is >= 1, so n1 is raised to 1; S/N is monotone in each
    argument for N > 0, so the true mean lies between the smallest and largest corner ratio.
    It also lies in the clamp range, which is the whole answer when the count's interval
    does not exclude an empty cell or the counts are too noisy: honest even for tiny counts.
    """
    sens = noise.sum.sensitivity
    if sens.clamp is None:
        raise InvalidInput("a mean needs the sum's clamp range", field="clamp")
    # Exact rationals as (numerator, denominator > 0) pairs of integers, compared by cross
    # multiplication: no Fraction (and no gcd) per cell; a / b of two ints is correctly
    # rounded, so each float is float(Fraction(a, b)).
    lo, hi = ((x.numerator, x.denominator) for x in sens.clamp)
    num, den = sens.resolution.numerator, sens.resolution.denominator
    hs = _halfwidth_steps(noise.sum, _alpha(alpha) / 2)
    hc = _halfwidth_steps(noise.count, alpha / 2)
    s1, s2 = noisy_sum - hs, noisy_sum + hs  # the sum's interval, in steps of num/den
    n1, n2 = max(noisy_count - hc, 1), noisy_count + hc
    low, high = lo, hi
    if n2 >= 1:
        # the least and largest of the four corner ratios s/n, s1 <= s2, 0 < n1 <= n2:
        # s1/n2 or s1/n1 (as s1 >= 0 or not), s2/n1 or s2/n2 (as s2 >= 0 or not)
        low = _rmax(lo, (s1 * num, den * (n2 if s1 >= 0 else n1)))
        high = _rmin(hi, (s2 * num, den * (n1 if s2 >= 0 else n2)))
        if _less(high, low):  # the noise put both ends outside [lo, hi]: the honest range
            low, high = lo, hi
    value = ((noisy_sum * num, den * noisy_count) if noisy_count >= 1
             else (lo[0] * hi[1] + hi[0] * lo[1], 2 * lo[1] * hi[1]))
    value = _rmin(_rmax(value, low), high)
    return Estimate(value[0] / value[1], low[0] / low[1], high[0] / high[1])


def _less(x: tuple[int, int], y: tuple[int, int]) -> bool:
    """x < y for rationals (numerator, positive denominator)."""
    return x[0] * y[1] < y[0] * x[1]


def _rmax(x: tuple[int, int], y: tuple[int, int]) -> tuple[int, int]:
    return y if _less(x, y) else x


def _rmin(x: tuple[int, int], y: tuple[int, int]) -> tuple[int, int]:
    return y if _less(y, x) else x


def _sum_halfwidth_steps(noise: NoiseSpec, k: int, alpha: float) -> int:
    """The least integer h with P(|e_1 + ... + e_k| > h) <= alpha for k independent noises.

    Exactly, when the sum's distribution is small enough to compute (:func:`_exact_sum_steps`:
    the k-fold convolution of the noise's pmf, coverage then 95% rather than 99%); else by
    Chernoff: P(|S| >= t) <= 2 * inf_l exp(-l*t) * M(l)^k, with M the noise's moment
    generating function. The discrete Gaussian with scale s has M(l) <= exp(l^2 s^2 / 2)
    (Canonne, Kamath, Steinke 2020, Cor. 9), so t = s * sqrt(2 k ln(2/alpha)). The discrete
    Laplace with p = exp(-1/s) has M(l) = (1-p)^2 / ((1-p e^l)(1-p e^-l)) for 0 <= l < 1/s;
    the infimum is found numerically (the exponent is convex in l) and t by bisection.
    """
    if k == 1:
        return _halfwidth_steps(noise, alpha)
    exact = _exact_sum_steps(noise.mechanism, noise.scale, k, alpha)
    if exact is not None:
        return exact
    s = noise.scale
    if noise.mechanism is Mechanism.DISCRETE_GAUSSIAN:
        t = s * math.sqrt(2 * k * math.log(2 / alpha))
        return max(math.ceil(t) - 1, 0)
    return _laplace_sum_steps(s, k, alpha)


#: Largest support (points) of a sum's distribution computed exactly; beyond it, Chernoff.
_EXACT_SUM_POINTS = 2**22


@functools.lru_cache(maxsize=256)
def _exact_sum_steps(mechanism: Mechanism, scale: float, k: int, alpha: float) -> int | None:
    """The least integer h with P(|S| > h) <= alpha, S the sum of k independent noises, from
    the k-fold convolution of the noise's pmf (a distribution computed with NumPy's FFT, never
    a sample: every noise draw is OpenDP's), or None when the support is too large.

    Each pmf is truncated at +/-r with tail mass tau <= 1e-15 (discrete Gaussian: r = 12 s,
    tail below exp(-72); discrete Laplace: r with 2 p^(r+1) / (1+p) <= 1e-15) and normalised
    over the truncated range, which moves at most k * tau of probability from the tails to the
    centre; h is therefore taken where the computed tail is at most alpha - k * tau - 1e-9
    (the last term for floating-point error in the FFT, far above it), so the true tail is at
    most alpha.
    """
    import numpy as np  # the distribution of a sum; loaded only when totals are asked for

    if mechanism is Mechanism.DISCRETE_GAUSSIAN:
        r = math.ceil(12 * scale) + 1
        tau = math.exp(-72)
        x = np.arange(-r, r + 1, dtype=np.float64)
        pmf = np.exp(-(x * x) / (2 * scale * scale))
    elif mechanism is Mechanism.DISCRETE_LAPLACE:
        p = math.exp(-1 / scale)
        r = max(1, math.ceil(math.log(1e-15 * (1 + p) / 2) / math.log(p)))
        tau = 1e-15
        x = np.arange(-r, r + 1, dtype=np.float64)
        pmf = np.exp(-np.abs(x) / scale)
    else:
        return None
    support = k * 2 * r + 1
    if support > _EXACT_SUM_POINTS:
        return None
    pmf /= pmf.sum()
    size = 1 << (support - 1).bit_length()
    total = np.fft.irfft(np.fft.rfft(pmf, size) ** k, size)[:support]
    total = np.clip(total, 0.0, None)
    centre = k * r  # index of S = 0
    budget = alpha - k * tau - 1e-9
    # tail(h) = P(|S| > h) = 1 - P(-h <= S <= h): the least h within the budget
    cumulative = np.concatenate(([0.0], np.cumsum(total)))  # cumulative[i] = P(index < i)
    h = np.arange(centre + 1)
    tails = 1.0 - (cumulative[centre + h + 1] - cumulative[centre - h])
    within = np.flatnonzero(tails <= budget)
    return int(within[0]) if within.size else None


@functools.lru_cache(maxsize=256)
def _laplace_sum_steps(s: float, k: int, alpha: float) -> int:
    """The Chernoff half-width for a sum of k discrete Laplace(s) noises (pure function)."""
    p = math.exp(-1 / s)

    def log_bound(t: float) -> float:  # log of inf_l 2 exp(-l t) M(l)^k
        def f(lam: float) -> float:
            return (-lam * t + k * (2 * math.log1p(-p) - math.log1p(-p * math.exp(lam))
                                    - math.log1p(-p * math.exp(-lam))))
        a, b = 0.0, (1 / s) * (1 - 1e-9)
        for _ in range(100):  # golden-section search on a convex function
            c, d = b - (b - a) / 1.618033988749895, a + (b - a) / 1.618033988749895
            a, b = (a, d) if f(c) < f(d) else (c, b)
        return math.log(2) + min(f(a), f(b), 0.0)

    lo_t, hi_t = 0.0, s * k * 64 + 64
    target = math.log(alpha)
    for _ in range(200):
        mid = (lo_t + hi_t) / 2
        lo_t, hi_t = (lo_t, mid) if log_bound(mid) <= target else (mid, hi_t)
    return max(math.ceil(hi_t) - 1, 0)


def margin_totals(noisy: Sequence[int], groups: Sequence[Sequence[int]], noise: NoiseSpec,
                  alpha: float = 0.05, nonnegative: bool = False) -> list[Estimate]:
    """Totals over a requested margin that add up: each total is the sum of its released
    cells (``groups`` lists the cell indexes of each total), so no extra cost is spent and
    the table is consistent by construction (with no separately measured margin, the sum of
    the cells is also the least-squares estimate of the total).

    The total's interval bounds the sum of its cells' independent noises (Chernoff bound,
    :func:`_sum_halfwidth_steps`). With ``nonnegative`` the total is the sum of the clamped
    cells, consistent with the cells shown; its interval is [max(0, raw - h), max(raw + h,
    total)], which contains [raw - h, raw + h] intersected with [0, inf): still honest.
    """
    res = noise.sensitivity.resolution
    out = []
    for members in groups:
        raw = sum(noisy[i] for i in members)
        h = _sum_halfwidth_steps(noise, max(len(members), 1), _alpha(alpha))
        if nonnegative:
            total = sum(max(noisy[i], 0) for i in members)
            low, high = max(raw - h, 0), max(raw + h, total)
        else:
            total, low, high = raw, raw - h, raw + h
        out.append(Estimate(float(total * res), float(low * res), float(high * res)))
    return out


# --------------------------------------------------------------------------- cost <-> accuracy


def cost_for_halfwidth(
    function: Function | str,
    target: float | Fraction,
    *,
    measure: Measure,
    max_rows: int,
    clamp: tuple[float, float] | tuple[Fraction, Fraction] | None = None,
    decimals: int = 0,
    cap: Fraction | None = None,
    alpha: float = 0.05,
    periods: int = 1,
) -> Cost:
    """The smallest cost on :data:`COST_GRID` whose (1-alpha) half-width is <= ``target``.

    Only for measures whose error does not depend on the data (count, sum, count_units,
    linked_units). OpenDP's ``accuracy_to_discrete_*_scale`` gives the scale, its privacy map
    the cost; the cost is rounded UP to the grid (more privacy loss, less noise) and then
    checked by calibrating it. Refused with ``field="target"`` if more than ``cap`` is needed.
    """
    fn = _function(function)
    if fn in (Function.MEAN, Function.QUANTILE):
        raise InvalidInput(f"a target accuracy cannot be set for {fn.value}: its error "
                           "depends on the data; give a cost instead", field="target")
    sens = sensitivity(fn, max_rows, clamp, decimals, periods)
    goal = Fraction(target)
    if goal <= 0:
        raise InvalidInput("the target half-width must be positive", field="target")
    steps = math.floor(goal / sens.resolution)  # integer half-width wanted
    lib = _opendp()
    mech = _mechanism(measure)
    to_scale = (lib.accuracy_to_discrete_gaussian_scale if mech is Mechanism.DISCRETE_GAUSSIAN
                else lib.accuracy_to_discrete_laplacian_scale)
    scale = float(to_scale(float(steps + 1), _alpha(alpha)))
    exact = _loss(NoiseSpec(mech, scale, Cost(measure, Fraction(1)), sens))
    amount = max(math.ceil(exact / COST_GRID), 1) * COST_GRID
    def reaches(amount: Fraction) -> bool:
        if cap is not None and amount > cap:
            raise InvalidInput(
                f"reaching +/-{float(goal)} would cost {Cost(measure, amount)}, above the cap "
                f"{Cost(measure, cap)}", field="target", requested=str(amount), cap=str(cap))
        return _halfwidth_steps(calibrate(Cost(measure, amount), sens), alpha) <= steps

    # Up in doubling steps from OpenDP's inverse until the half-width is reached (the
    # large-scale tail bound can be a step wider than OpenDP's exact one)...
    below, step = amount - COST_GRID, COST_GRID
    for _ in range(64):
        if reaches(amount):
            break
        below, amount, step = amount, amount + step, step * 2
    else:  # pragma: no cover - a bug
        raise RuntimeError("cost search did not converge")
    # ...then the least grid point that reaches it (the half-width shrinks as cost grows).
    while amount - below > COST_GRID:
        mid = below + ((amount - below) / COST_GRID // 2) * COST_GRID
        below, amount = (below, mid) if reaches(mid) else (mid, amount)
    return Cost(measure, amount)


@functools.lru_cache(maxsize=1024)
def to_epsilon_delta(cost: Cost, delta: float | Fraction = DEFAULT_DELTA) -> tuple[float, float]:
    """The (epsilon, delta)-DP a cost implies, for display (the ledger keeps the exact cost).

    Pure costs are (epsilon, 0). A rho is converted by OpenDP itself: a discrete Gaussian
    measurement whose map is >= rho goes through ``make_zCDP_to_approxDP`` and
    ``make_fix_delta`` (OpenDP's conversion, at least as tight as rho + 2 sqrt(rho ln(1/delta))).
    Remembered per cost (OpenDP's search for epsilon takes about 4 ms, and an estimate and
    the query that follows it, or a policy's grid of costs, ask for the same ones).
    """
    if cost.measure is Measure.PURE:
        return float(cost.amount), 0.0
    d = float(delta)
    if not 0 < d < 1:
        raise InvalidInput("delta must lie strictly between 0 and 1", field="delta")
    if cost.amount == 0:
        return 0.0, d
    lib = _opendp()
    unit = lib.m.make_gaussian(lib.atom_domain(T="i64"), lib.absolute_distance(T="f64"),
                               scale=1.0)  # map(x) = x^2 / 2
    x = math.sqrt(2 * float(cost.amount))
    while Fraction(unit.map(x)) < cost.amount:
        x = math.nextafter(x, math.inf)
    fixed = lib.c.make_fix_delta(lib.c.make_zCDP_to_approxDP(unit), d)
    epsilon, out_delta = fixed.map(x)
    return float(epsilon), float(out_delta)

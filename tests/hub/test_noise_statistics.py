"""The released noise has the claimed distribution and scale, and the 95% intervals cover.

Each test draws many releases at once (one release of a long vector of equal cells is as
many independent draws: OpenDP samples each coordinate independently) and compares them with
the exact pmf of the discrete Gaussian, p(x) ~ exp(-x^2 / (2 s^2)), or the discrete Laplace,
p(x) ~ exp(-|x| / s), by a chi-square test. OpenDP's sampler cannot be seeded (it uses the
OS's CSPRNG, on purpose), so every test is random: all of the file's checks of a true
hypothesis together fail a correct implementation at most once in a thousand runs (each at
ALPHA = 0.001 / 12, its 12 such checks, Bonferroni).
Each test also shows it has power: the same samples must reject a 15% wrong scale.
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from scipy import stats

from hub.privacy.accounting import Cost, Measure
from hub.privacy.intervals import _halfwidth_steps, estimates, margin_totals, mean_interval
from hub.privacy.noise import calibrate, calibrate_mean, release_counts, sensitivity

#: Bonferroni over the file's 12 checks of a true hypothesis (module docstring)
ALPHA = 0.001 / 12
N = 20_000


def _pmf(kind: str, scale: float) -> dict[int, float]:
    wide = range(-int(60 * scale) - 10, int(60 * scale) + 11)
    if kind == "gaussian":
        weights = {x: math.exp(-x * x / (2 * scale * scale)) for x in wide}
    else:
        weights = {x: math.exp(-abs(x) / scale) for x in wide}
    total = math.fsum(weights.values())
    return {x: w / total for x, w in weights.items()}


def _chi_square_p(samples: list[int], pmf: dict[int, float]) -> float:
    """Bins with expected count >= 5 each; the two tails pooled into one bin each."""
    inner = [x for x, p in pmf.items() if p * len(samples) >= 5]
    lo, hi = min(inner), max(inner)
    observed = [sum(1 for s in samples if s < lo)] + [0] * (hi - lo + 1) + [
        sum(1 for s in samples if s > hi)]
    for s in samples:
        if lo <= s <= hi:
            observed[s - lo + 1] += 1
    expected = ([sum(p for x, p in pmf.items() if x < lo)]
                + [pmf[x] for x in range(lo, hi + 1)]
                + [sum(p for x, p in pmf.items() if x > hi)])
    expected = [e * len(samples) for e in expected]
    pairs = [(o, e) for o, e in zip(observed, expected, strict=True) if e > 0]
    scale_to = sum(o for o, _ in pairs) / sum(e for _, e in pairs)
    return float(stats.chisquare([o for o, _ in pairs], [e * scale_to for _, e in pairs]).pvalue)


CASES = [("gaussian", Cost.parse("zcdp", "1/2"), 3), ("laplace", Cost.parse("pure", 1), 3)]


@pytest.mark.parametrize(("kind", "cost", "max_rows"), CASES)
def test_noise_has_the_claimed_distribution_and_scale(kind: str, cost: Cost,
                                                      max_rows: int) -> None:
    noise = calibrate(cost, sensitivity("count", max_rows))
    assert noise.scale == pytest.approx(3.0)  # rho = (3/s)^2/2 = 1/2 ; epsilon = 3/s = 1
    truth = 1000
    samples = [v - truth for v in release_counts([truth] * N, noise)]
    assert _chi_square_p(samples, _pmf(kind, noise.scale)) > ALPHA
    # power: a 15% larger scale is rejected by the same test on the same samples
    assert _chi_square_p(samples, _pmf(kind, noise.scale * 1.15)) < ALPHA


@pytest.mark.parametrize(("kind", "cost", "max_rows"), CASES)
def test_95_percent_intervals_cover_the_truth(kind: str, cost: Cost, max_rows: int) -> None:
    noise = calibrate(cost, sensitivity("count", max_rows))
    h = _halfwidth_steps(noise, 0.05)
    exact = math.fsum(p for x, p in _pmf(kind, noise.scale).items() if abs(x) <= h)
    assert exact >= 0.95  # honest by construction...
    truth = 40
    cells = estimates(release_counts([truth] * N, noise), noise)
    covered = sum(1 for c in cells if c.low <= truth <= c.high)
    # ... and the releases agree with it (two-sided binomial test at ALPHA)
    assert stats.binomtest(covered, N, exact).pvalue > ALPHA
    assert covered / N > 0.94


@pytest.mark.parametrize(("kind", "cost", "max_rows"), CASES)
def test_margin_totals_and_means_cover_at_least_95_percent(kind: str, cost: Cost,
                                                           max_rows: int) -> None:
    noise = calibrate(cost, sensitivity("count", max_rows))
    k, groups = 4, 3000
    noisy = release_counts([7] * (k * groups), noise)
    totals = margin_totals(noisy, [range(i * k, (i + 1) * k) for i in range(groups)], noise,
                           nonnegative=True)
    covered = sum(1 for t in totals if t.low <= 7 * k <= t.high)
    assert stats.binomtest(covered, groups, 0.95, alternative="less").pvalue > ALPHA
    # and not wider than needed: the sum's exact distribution, not a tail bound (99%+)
    assert stats.binomtest(covered, groups, 0.97, alternative="greater").pvalue > ALPHA

    mean_noise = calibrate_mean(Cost(cost.measure, cost.amount * 4), max_rows, (0, 100))
    cells, true_sum, true_count = 3000, 30 * 12, 12  # mean 30 over 12 rows
    sums = release_counts([true_sum] * cells, mean_noise.sum)
    counts = release_counts([true_count] * cells, mean_noise.count)
    means = [mean_interval(s, c, mean_noise) for s, c in zip(sums, counts, strict=True)]
    covered = sum(1 for m in means if m.low <= 30 <= m.high)
    assert stats.binomtest(covered, cells, 0.95, alternative="less").pvalue > ALPHA
    assert mean_noise.sum.cost.measure is (Measure.ZCDP if kind == "gaussian" else Measure.PURE)
    assert mean_noise.sum.cost.amount == Fraction(cost.amount * 2)

"""Which keys to show, and which come first: OpenDP's selection mechanisms.

Both mechanisms here are OpenDP's own: constructed with its constructors, checked against its
privacy maps before any budget is spent and again right before sampling, and sampled by it.

Key selection (partition selection)
    A group-by over a large grid of public keys (pairs and triples of countries: 62,000 to
    15 million cells) is mostly empty, and a list sorted by noisy value over it is a list of
    the largest noise draws. Instead, only keys *present in the data* are candidates; each
    candidate's value is the number of distinct privacy units with a kept row in it; OpenDP's
    threshold measurement adds noise to each value and keeps the keys whose noisy value
    reaches a threshold ``T`` (``make_gaussian_threshold`` for zCDP, giving (rho, delta);
    ``make_laplace_threshold`` for pure DP, giving (epsilon, delta)). The released set of keys
    is then used for noisy measures, paid for separately (sequential composition); the
    threshold's own noisy counts are never shown, as they are biased upwards by the very
    selection (only the keys whose noise was high enough pass near the threshold).

    Sensitivity, derived: after contribution bounding a unit keeps at most ``m`` rows, and a
    row falls in at most ``g`` keys (``g`` > 1 only with category-list dimensions), so adding
    or removing one unit changes at most ``L0 = m * g`` keys' values (and may add or remove
    those keys), each by exactly 1 (a unit counts once per key): ``Linf = 1``,
    ``L1 = L0 * Linf = L0``, ``L2 = sqrt(L0) * Linf``. A route query counts distinct
    (unit, route) pairs, at most ``m`` routes per unit: the same bound with ``g = 1``. OpenDP's
    maps take ``(L0, L1 or L2, Linf)`` and bound the loss by ``L1 / scale`` (pure) or
    ``(L2 / scale)^2 / 2`` (zCDP), and delta by ``L0`` times the chance that a key held by one
    unit passes the threshold (``tests/hub/test_selection.py`` checks our derivation against
    the maps and measures that chance empirically).

    What absence means: a key is listed only when its noisy count of distinct units reaches
    ``T``. A key with ``c`` units appears with probability 1/2 when ``c = T`` and with
    probability 95% from ``c = appears_95`` on (:func:`appearance`); an absent key had too
    few units to show, or none at all: absence tells nothing more.

Ranked answers (noisy top-k)
    OpenDP's ``make_noisy_top_k`` picks the indexes of the ``k`` largest scores (peeling):
    permute-and-flip (exponential noise) for pure DP, the exponential mechanism (Gumbel
    noise) for zCDP. Its map is ``k * d / scale`` (pure) or ``k * (d / scale)^2 / 8`` (zCDP),
    with ``d`` the scores' L-infinity sensitivity ``Delta`` (one unit moves any one score by at
    most ``Delta``) when the scores are monotone (adding a unit never lowers a score: counts,
    distinct units, sums of values clamped to ``[lo, hi]`` with ``lo >= 0``), else ``2 Delta``.
    ``Delta`` is ``m`` for row counts, ``1`` for distinct units and linked units, ``m * c`` for
    fixed-point sums (``c`` steps per row).

    Two keys whose scores differ by ``gap`` are put in the right order with probability at
    least ``1 / (1 + exp(-gap / scale))`` (exact for the Gumbel noise of the exponential
    mechanism, a lower bound for permute-and-flip, which is at least as accurate):
    :func:`gap_for` and :func:`scale_for_gap` turn that into an accuracy target.

    How sure a rank is: after the selection, the chosen keys' measures are released with
    fresh noise and honest intervals; taken at ``alpha / k`` each (Bonferroni), all ``k``
    intervals hold together with probability ``1 - alpha``, and then every key's true rank
    among the listed keys lies in :func:`rank_intervals` (keys surely above it, keys surely
    below it). Pure post-processing: free.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from hub.errors import InvalidInput
from hub.privacy.accounting import Cost, Measure
from hub.privacy.noise import MAX_SCALE, Mechanism, _mechanism, _opendp

__all__ = [
    "SelectionSpec",
    "TopSpec",
    "appearance",
    "calibrate_selection",
    "calibrate_top",
    "gap_for",
    "key_text",
    "rank_intervals",
    "scale_for_gap",
    "select_keys",
    "top_k",
]

#: Largest threshold searched (a threshold above it means the delta is absurdly small).
_MAX_THRESHOLD = 2**40


def key_text(key: Sequence[str | None]) -> str:
    """A group key as the string OpenDP's map domain holds (JSON; unknown is null)."""
    return json.dumps(list(key), separators=(",", ":"))


# --------------------------------------------------------------------------- key selection


@dataclass(frozen=True, slots=True)
class SelectionSpec:
    """A calibrated threshold measurement: noise ``scale``, ``threshold`` (in units), the
    ``cost`` it spends (amount and delta) and ``max_keys`` = L0 (keys one unit can touch)."""

    mechanism: Mechanism
    scale: float
    threshold: int
    cost: Cost
    max_keys: int

    def d_in(self) -> tuple[int, int, int]:
        """(L0, L1 or L2, Linf) for OpenDP's map (module docstring). L2 is passed as L0,
        an upper bound of sqrt(L0) that OpenDP's map lowers to sqrt(L0) * Linf itself."""
        return (self.max_keys, self.max_keys, 1)

    def as_json(self) -> dict[str, Any]:
        return {
            "mechanism": f"{self.mechanism.value}_threshold",
            "noise_scale": self.scale,
            "threshold": self.threshold,
            "appears_50": appearance(self, 0.5),
            "appears_95": appearance(self, 0.95),
            "keys_per_unit": self.max_keys,
            "cost": self.cost.as_json(),
        }


def _threshold_measurement(mechanism: Mechanism, scale: float, threshold: int) -> Any:
    lib = _opendp()
    domain = lib.map_domain(lib.atom_domain(T=str), lib.atom_domain(T=lib.i64))
    inner = lib.absolute_distance(T=lib.i64)
    if mechanism is Mechanism.DISCRETE_GAUSSIAN:
        return lib.m.make_gaussian_threshold(domain, lib.l02inf_distance(inner), scale=scale,
                                             threshold=threshold)
    return lib.m.make_laplace_threshold(domain, lib.l01inf_distance(inner), scale=scale,
                                        threshold=threshold)


def _selection_loss(spec: SelectionSpec) -> tuple[Fraction, Fraction]:
    """(amount, delta) that ``spec`` spends, from OpenDP's maps, exact as Fractions.

    The delta is the map's at threshold ``T - 1``, not ``T``: OpenDP 0.16's threshold maps
    bound the chance that a key of value ``Linf`` passes by P(noise > T - Linf), while its
    measurements keep a key whose noisy value is *at least* T, which happens with
    P(noise >= T - Linf) = P(noise > (T - 1) - Linf): one integer step more (measured in
    tests/hub/test_selection.py: 6.1% against a claimed 4.6% at scale 4). The map at T - 1
    is that true probability, so tahub charges it.
    """
    meas = _threshold_measurement(spec.mechanism, spec.scale, spec.threshold)
    amount, _ = meas.map(spec.d_in())
    below = _threshold_measurement(spec.mechanism, spec.scale, spec.threshold - 1)
    _, delta = below.map(spec.d_in())
    return Fraction(amount), Fraction(delta)


def calibrate_selection(cost: Cost, max_keys: int) -> SelectionSpec:
    """The threshold measurement that spends at most ``cost`` (its amount *and* its delta)
    when one unit can touch ``max_keys`` keys.

    The scale is the smallest (up to float steps) whose map amount is within ``cost.amount``
    (closed form ``L1 / epsilon`` or ``sqrt(L0 / (2 rho))``, raised until OpenDP's map agrees);
    the threshold is then the smallest integer whose map delta is within ``cost.delta``.
    """
    if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
        raise InvalidInput("a unit touches at least one key", field="max_keys")
    if cost.amount <= 0:
        raise InvalidInput("key selection needs a positive cost", field="cost")
    if not 0 < cost.delta < 1:
        raise InvalidInput("key selection needs a delta in (0, 1): the policy's "
                           "budget.delta", field="cost", rule="budget:delta")
    mechanism = _mechanism(cost.measure)
    amount = float(cost.amount)
    if cost.measure is Measure.ZCDP:
        scale = math.sqrt(max_keys / (2 * amount))
    else:
        scale = max_keys / amount
    if not math.isfinite(scale) or scale > MAX_SCALE:
        raise InvalidInput(f"cost {cost} is too small to select keys", field="cost")
    spec = SelectionSpec(mechanism, scale, _MAX_THRESHOLD, cost, max_keys)
    for _ in range(200):
        if _selection_loss(spec)[0] <= cost.amount:
            break
        spec = SelectionSpec(mechanism, spec.scale * (1 + 2**-40), _MAX_THRESHOLD, cost,
                             max_keys)
    else:  # pragma: no cover - a bug
        raise RuntimeError("OpenDP's threshold map did not converge")
    if _selection_loss(spec)[1] > cost.delta:
        raise InvalidInput(f"delta {cost.delta} is too small for any threshold",
                           field="cost", rule="budget:delta")
    lo, hi = 2, _MAX_THRESHOLD  # the map's delta decreases as the threshold grows

    def fits(t: int) -> bool:
        return _selection_loss(SelectionSpec(mechanism, spec.scale, t, cost,
                                             max_keys))[1] <= cost.delta

    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if fits(mid) else (mid + 1, hi)
    return SelectionSpec(mechanism, spec.scale, lo, cost, max_keys)


def _checked_selection(spec: SelectionSpec) -> Any:
    amount, delta = _selection_loss(spec)
    if amount > spec.cost.amount or delta > spec.cost.delta:  # a bug, never input
        raise RuntimeError(f"key selection would spend ({amount}, {delta}) > {spec.cost}")
    return _threshold_measurement(spec.mechanism, spec.scale, spec.threshold)


def select_keys(counts: Mapping[str, int], spec: SelectionSpec) -> set[str]:
    """The keys (see :func:`key_text`) whose noisy count of distinct units reaches the
    threshold. ``counts`` holds every key present in the bounded data (value >= 1); keys
    absent from it count 0 and can never be chosen (the threshold is >= 1)."""
    if not counts:
        return set()
    for k, v in counts.items():
        if not isinstance(k, str) or isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"selection counts are str -> non-negative int, got {k!r}: {v!r}")
    return set(_checked_selection(spec)(dict(counts)))


def _upper_tail(mechanism: Mechanism, scale: float, alpha: float) -> int:
    """An integer ``a`` with P(noise >= a) <= alpha (one side), from OpenDP's two-sided
    accuracy helpers at 2 * alpha (the noise is symmetric)."""
    lib = _opendp()
    helper = (lib.discrete_gaussian_scale_to_accuracy if mechanism is
              Mechanism.DISCRETE_GAUSSIAN else lib.discrete_laplacian_scale_to_accuracy)
    return math.ceil(helper(scale, 2 * alpha))


def appearance(spec: SelectionSpec, probability: float) -> int:
    """The true count of distinct units from which a key is listed with at least
    ``probability`` (in [1/2, 1)): ``T`` for 1/2 (the noise is symmetric, P(X >= 0) >= 1/2),
    else ``T - 1 + a`` with P(X >= a) <= 1 - probability."""
    if not 0.5 <= probability < 1:
        raise InvalidInput("an appearance probability lies in [0.5, 1)", field="probability")
    if probability == 0.5:
        return spec.threshold
    return spec.threshold - 1 + _upper_tail(spec.mechanism, spec.scale, 1 - probability)


# --------------------------------------------------------------------------- ranked answers


@dataclass(frozen=True, slots=True)
class TopSpec:
    """A calibrated noisy top-k: ``scale`` of its noise, ``k``, the ``cost`` it spends, the
    scores' L-infinity sensitivity ``sensitivity`` and whether they are ``monotonic``."""

    scale: float
    k: int
    cost: Cost
    sensitivity: int
    monotonic: bool

    @property
    def mechanism(self) -> str:
        return "exponential" if self.cost.measure is Measure.ZCDP else "permute_and_flip"

    def as_json(self) -> dict[str, Any]:
        return {"mechanism": self.mechanism, "noise_scale": self.scale, "k": self.k,
                "score_sensitivity": self.sensitivity, "monotonic": self.monotonic,
                "gap_90": gap_for(self, 0.9), "cost": self.cost.as_json()}


def _top_measurement(measure: Measure, k: int, scale: float, monotonic: bool,
                     candidates: int | None = None) -> Any:
    lib = _opendp()
    out = (lib.zero_concentrated_divergence() if measure is Measure.ZCDP
           else lib.max_divergence())
    return lib.m.make_noisy_top_k(
        lib.vector_domain(lib.atom_domain(T=lib.i64), size=candidates),
        lib.linf_distance(T=lib.i64, monotonic=monotonic), out, k, scale)


def _top_loss(spec: TopSpec) -> Fraction:
    meas = _top_measurement(spec.cost.measure, spec.k, spec.scale, spec.monotonic)
    return Fraction(meas.map(spec.sensitivity))


def calibrate_top(cost: Cost, k: int, sensitivity: int, monotonic: bool) -> TopSpec:
    """The noisy top-k that spends at most ``cost.amount`` (no delta): closed form
    ``k d / epsilon`` or ``d sqrt(k / (8 rho))`` (``d`` = Delta, or 2 Delta if not monotonic),
    raised until OpenDP's map agrees."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput("k must be a positive integer", field="top.k")
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, int) or sensitivity < 1:
        raise InvalidInput("a score sensitivity is a positive integer", field="top")
    if cost.amount <= 0:
        raise InvalidInput("a ranked query needs a positive cost", field="cost")
    d = sensitivity if monotonic else 2 * sensitivity
    amount = float(cost.amount)
    scale = (d * math.sqrt(k / (8 * amount)) if cost.measure is Measure.ZCDP
             else k * d / amount)
    if not math.isfinite(scale) or scale > MAX_SCALE:
        raise InvalidInput(f"cost {cost} is too small to rank {k} keys", field="cost")
    for _ in range(200):
        spec = TopSpec(scale, k, Cost(cost.measure, cost.amount), sensitivity, monotonic)
        if _top_loss(spec) <= cost.amount:
            return spec
        scale *= 1 + 2**-40
    raise RuntimeError("OpenDP's top-k map did not converge")  # pragma: no cover - a bug


def top_k(scores: Sequence[int], spec: TopSpec) -> list[int]:
    """Indexes of the (up to) ``spec.k`` largest scores, best first, by OpenDP's noisy top-k.

    With fewer candidates than ``k``, every candidate is ranked (``k`` = their number, whose
    loss is below the calibrated one: the map grows with ``k``)."""
    if not scores:
        return []
    for s in scores:
        if isinstance(s, bool) or not isinstance(s, int):
            raise ValueError(f"scores are integers, got {s!r}")
    k = min(spec.k, len(scores))
    if _top_loss(spec) > spec.cost.amount:  # a bug, never input
        raise RuntimeError(f"top-k would spend more than {spec.cost}")
    meas = _top_measurement(spec.cost.measure, k, spec.scale, spec.monotonic)
    return [int(i) for i in meas(list(scores))]


def gap_for(spec: TopSpec, probability: float) -> float:
    """The score gap two keys need to be ranked in the right order with ``probability``."""
    if not 0.5 <= probability < 1:
        raise InvalidInput("a confidence lies in [0.5, 1)", field="confidence")
    return spec.scale * math.log(probability / (1 - probability))


def scale_for_gap(gap: float, probability: float) -> float:
    """The largest noise scale that orders two keys ``gap`` apart with ``probability``."""
    if not gap > 0 or not math.isfinite(gap):
        raise InvalidInput("the gap must be a positive number", field="target.top_gap")
    if not 0.5 < probability < 1:
        raise InvalidInput("the confidence lies in (0.5, 1)", field="target.confidence")
    return gap / math.log(probability / (1 - probability))


def rank_intervals(lows: Sequence[float], highs: Sequence[float]) -> list[tuple[int, int]]:
    """For intervals that hold together, each key's true rank (1 = largest; ties share the
    better rank) among these keys: from 1 + the keys surely above it to n - the keys
    surely below it (module docstring)."""
    n = len(lows)
    if len(highs) != n:
        raise ValueError("lows and highs differ in length")
    out = []
    for i in range(n):
        above = sum(1 for j in range(n) if j != i and lows[j] > highs[i])
        below = sum(1 for j in range(n) if j != i and highs[j] < lows[i])
        out.append((1 + above, n - below))
    return out

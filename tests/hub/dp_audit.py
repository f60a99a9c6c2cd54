"""Auditing tahub's DP releases: an empirical LOWER bound on the privacy loss, measured on the
real release path, to hold against what the ledger charges.

What is exercised
    :func:`hub.query.release.calibrate_plan` and :func:`hub.query.release.release`, the two
    functions :class:`hub.query.service.QueryService` calls for every query, over plans made
    by the real :func:`hub.query.authorisation.authorise` from the shipped policies (only their
    accounting and budget caps changed, :func:`audit_policies`). Everything between the exact
    aggregates and the JSON body is the production code: the split of the cost between key
    selection, ranking and the measures, every calibration against OpenDP's maps, the re-check
    before sampling, OpenDP's samplers, intervals and post-processing. Only the query engine
    (DuckDB over committed extracts) is replaced by :class:`FixedAggregates`, which returns the
    exact aggregates of a dataset computed once; ``tests/hub/test_dp_audit.py`` checks that the
    real engine computes those very aggregates from rows (with contribution bounding).

Why that is the layer where the guarantee lives
    The engine is deterministic: its aggregates of two neighbouring datasets (one privacy unit
    added with all its rows, at most ``max_rows`` kept) differ by at most the sensitivity the
    privacy docs derive. From there on, only the calibrated noise stands between the data and
    the output, so the distributions of ``release(cal, D)`` and ``release(cal, D')`` are what
    the charged cost promises to keep close. Auditing below this layer (OpenDP's samplers
    alone) would miss a wrong split, sensitivity or scale; above it (HTTP, ledger) adds
    nothing random and would only be slower (about 1 ms per release here is already the
    budget of a test).

How the bound is computed (threshold events and exact binomial limits, as in Ding et al.,
"Detecting violations of differential privacy", 2018, and Jagielski et al., "Auditing
differentially private machine learning", 2020)
    A statistic ``s`` of each released body is computed (the noisy cell where the unit adds
    its rows, or the log-likelihood ratio of the claimed noise model, or whether a key is
    listed: any function of the output is allowed, by post-processing). For an event
    ``S = {s > t}`` or ``{s <= t}``, (epsilon, delta)-DP says ``P[M(A) in S] <= e^eps
    P[M(B) in S] + delta`` for both orders of the neighbours ``A``, ``B``. With a lower
    Clopper-Pearson limit ``p_lo`` of the first probability and an upper limit ``q_hi`` of the
    second, ``eps_lb = ln((p_lo - delta) / q_hi)`` is below the true epsilon whenever both
    limits hold. Events are picked on one half of the samples (the ``keep`` events with the
    best bound there, among thresholds at quantiles of that half) and measured on the other
    half, each limit at ``alpha / (2 keep)`` (Bonferroni): all limits hold together with
    probability >= 1 - alpha, so a mechanism that keeps its claim fails ``eps_lb <= claim``
    at most once in 1 / alpha runs (ALPHA = 0.001 by default; the CI test divides it among
    its tests). When the statistic takes few values, the caller lists the thresholds and
    every sample is used, with the Bonferroni correction over all of their events.

The neighbours and statistics (:data:`tests.hub.dp_audit_cases.CASES`)
    count, sum, mean: a unit adds ``max_rows`` kept rows at the clamp's top to one cell (the
    worst case of both L1 and L2); the statistic is the log-likelihood ratio of the released
    cell under the published noise (for a mean, of the noisy sum and count it is computed
    from, which its value and interval give away: ``dp_audit_cases.decode_mean``). count_units and
    linked_units: a unit adds 1 to each cell of a block (``max_rows`` cells; ``max_rows // 2``
    for linked units, which need two rows from two partners per cell); the statistic is the
    block's summed log-likelihood ratio. quantile: a unit adds ``max_rows`` values at the
    clamp's top; the statistic is the released value. key selection: each key gets one more
    distinct unit; the statistic is whether it is listed. top-k: a unit adds its rows to the
    second of two keys; the statistic is whether that key is ranked first.

Claims
    A pure cost epsilon is the claim itself (delta 0, or the mechanism's own delta for key
    selection). A zCDP cost rho is converted by OpenDP (``make_zCDP_to_approxDP``, the
    conversion of Canonne, Kamath and Steinke 2020, tighter than rho + 2 sqrt(rho ln(1/delta)),
    which :func:`Claim.epsilon` is checked against): the claim at ``delta`` is the epsilon of
    that privacy profile. Key selection's (rho, delta_0) is approximate zCDP: its claim at
    ``delta`` is the profile's epsilon at ``delta - delta_0``.

Replicated cells
    One sample per release costs about a millisecond, and tens of thousands are needed. The
    vector mechanisms (counts, sums, means, distinct units, per-cell quantiles, key selection)
    draw every cell independently (OpenDP's samplers, one independent draw per coordinate;
    ``tests/hub/test_noise_statistics.py`` relies on the same), and their calibration does not
    depend on the data. So a release over ``C`` cells of a dataset ``D''`` in which *each* cell
    (or block of cells) has its own added unit yields ``C`` independent samples of the
    neighbouring pair ``(D, D + u_j)`` restricted to that cell: a cell's output depends only on
    its own exact values. Ranked answers (noisy top-k) are one sample per release.

OpenDP's samplers cannot be seeded (they use the OS's CSPRNG on purpose): every audit is
random, with the false-failure probability ALPHA stated above.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike
from scipy import stats

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry
from hub.governance.policies import PolicySet, default_policies_dir, parse_policy_text
from hub.privacy.accounting import Cost, Measure
from hub.privacy.noise import _opendp
from hub.query.authorisation import authorise
from hub.query.plan import QueryPlan
from hub.query.release import Calibrated, calibrate_plan, cost_for, release
from hub.query.request import QueryRequest
from hub.query.sql import Part

__all__ = [
    "ALPHA",
    "ANALYST",
    "AUDITED",
    "ZCDP_DELTA",
    "AuditResult",
    "Case",
    "Claim",
    "EventBound",
    "FixedAggregates",
    "Key",
    "Pair",
    "Statistic",
    "audit",
    "audit_policies",
    "clopper_pearson",
    "halved_noise",
    "lower_bound",
]

#: Probability that an audit of a mechanism that keeps its claim fails (all limits at once).
ALPHA = 0.001
ANALYST = Actor("cli_audit", "org_audit", "Audit", frozenset({Role.ANALYST}))
Key = tuple[str | None, ...]


# -- statistics ---------------------------------------------------------------------------------
def clopper_pearson(hits: int, n: int, level: float) -> tuple[float, float]:
    """One-sided exact binomial limits, each failing with probability <= ``level``: the lower
    limit of ``hits / n`` and the upper one (Clopper and Pearson 1934)."""
    lower = float(stats.beta.ppf(level, hits, n - hits + 1)) if hits > 0 else 0.0
    upper = float(stats.beta.ppf(1 - level, hits + 1, n - hits)) if hits < n else 1.0
    return lower, upper


def _epsilon(hits_a: int, n_a: int, hits_b: int, n_b: int, delta: float, level: float) -> float:
    """ln((p_lo - delta) / q_hi) for P[S | A] = hits_a / n_a and P[S | B] = hits_b / n_b."""
    low, _ = clopper_pearson(hits_a, n_a, level)
    _, high = clopper_pearson(hits_b, n_b, level)
    return math.log((low - delta) / high) if low > delta else -math.inf


@dataclass(frozen=True, slots=True)
class EventBound:
    """The best empirical lower bound found, and the event that gave it."""

    epsilon: float
    event: str
    hits: tuple[int, int] = (0, 0)  # of the event under the first, second dataset
    samples: tuple[int, int] = (0, 0)

    def __str__(self) -> str:
        return (f"eps_lb={self.epsilon:.3f} from {self.event} "
                f"({self.hits[0]}/{self.samples[0]} vs {self.hits[1]}/{self.samples[1]})")


# (threshold, above, first) -> the event {s > t} (above) or {s <= t}, and which dataset's
# probability is the numerator: "base" (D) or "neighbour" (D').
_Event = tuple[float, bool, str]


def _hits(sorted_samples: np.ndarray, t: float, above: bool) -> int:
    below = int(np.searchsorted(sorted_samples, t, side="right"))  # samples <= t
    return len(sorted_samples) - below if above else below


def _event_bound(base: np.ndarray, neighbour: np.ndarray, ev: _Event, delta: float,
                 level: float) -> EventBound:
    t, above, first = ev
    a, b = (base, neighbour) if first == "base" else (neighbour, base)
    ha, hb = _hits(a, t, above), _hits(b, t, above)
    names = ("D", "D'") if first == "base" else ("D'", "D")
    where = f"s > {t:g}" if above else f"s <= {t:g}"
    text = f"P[{where} | {names[0]}] / P[{where} | {names[1]}]"
    return EventBound(_epsilon(ha, len(a), hb, len(b), delta, level), text, (ha, hb),
                      (len(a), len(b)))


def lower_bound(base: ArrayLike, neighbour: ArrayLike, delta: float, *,
                alpha: float = ALPHA, thresholds: Sequence[float] | None = None,
                keep: int = 3, candidates: int = 80) -> EventBound:
    """An empirical lower bound on epsilon at ``delta`` from samples of a statistic of
    ``M(D)`` (``base``) and ``M(D')`` (``neighbour``); it exceeds the true epsilon with
    probability at most ``alpha`` (module docstring).

    With ``thresholds``, every sample is used for the events ``{s > t}`` and ``{s <= t}`` of
    each threshold in both orders, Bonferroni over all of them. Without, the first half of
    each sample picks the ``keep`` best events among ``candidates`` thresholds (quantiles of
    that half, pooled) and the second half measures them, Bonferroni over ``keep``.
    """
    x, y = np.sort(np.asarray(base, dtype=float)), np.sort(np.asarray(neighbour, dtype=float))
    if thresholds is not None:
        events = [(float(t), above, first) for t in thresholds for above in (True, False)
                  for first in ("base", "neighbour")]
        level = alpha / (2 * len(events))
        return max((_event_bound(x, y, ev, delta, level) for ev in events),
                   key=lambda b: b.epsilon)
    xs, xe = np.asarray(base, dtype=float)[0::2], np.asarray(base, dtype=float)[1::2]
    ys, ye = np.asarray(neighbour, dtype=float)[0::2], np.asarray(neighbour, dtype=float)[1::2]
    xs, ys, xe, ye = np.sort(xs), np.sort(ys), np.sort(xe), np.sort(ye)
    level = alpha / (2 * keep)
    grid = np.unique(np.quantile(np.concatenate([xs, ys]), np.linspace(0, 1, candidates)))
    picked = sorted(((_event_bound(xs, ys, (float(t), above, first), delta, level).epsilon,
                      (float(t), above, first))
                     for t in grid for above in (True, False)
                     for first in ("base", "neighbour")), reverse=True)[:keep]
    return max((_event_bound(xe, ye, ev, delta, level) for _, ev in picked),
               key=lambda b: b.epsilon)


# -- claims -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claim:
    """What a mechanism is charged: a pure epsilon or a zCDP rho, and its own delta."""

    cost: Cost

    def epsilon(self, delta: float) -> float:
        """The epsilon the claim allows at ``delta`` (module docstring); inf when ``delta`` is
        not above the mechanism's own delta."""
        rest = delta - float(self.cost.delta)
        if self.cost.measure is Measure.PURE:
            return float(self.cost.amount) if rest >= 0 else math.inf
        if rest <= 0:
            return math.inf
        lib = _opendp()
        unit = lib.m.make_gaussian(lib.atom_domain(T="i64"), lib.absolute_distance(T="f64"),
                                   scale=1.0)  # map(x) = x^2 / 2
        x = math.sqrt(2 * float(self.cost.amount))
        while Fraction(unit.map(x)) < self.cost.amount:  # never below the charged rho
            x = math.nextafter(x, math.inf)
        profile = lib.c.make_zCDP_to_approxDP(unit).map(x)
        return float(profile.epsilon(rest))

    def __str__(self) -> str:
        return str(self.cost)


# -- the data -----------------------------------------------------------------------------------
class FixedAggregates:
    """The query engine's answer for one dataset, computed once (:class:`Aggregator`).

    ``cells`` maps each part to its exact values on the plan's public grid (``aggregate``);
    ``present`` lists the groups present, with one value per part (``groups``, for plans that
    select or rank their keys)."""

    def __init__(self, cells: dict[Part, list[Any]] | None = None,
                 present: list[tuple[Key, dict[Part, Any]]] | None = None) -> None:
        self._cells = cells or {}
        self._present = present or []

    def partners(self, dataset: str) -> int:
        return 2

    def prefetch(self, dataset: str) -> None:
        return None

    def aggregate(self, plan: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]:
        return [self._cells[p] for p in parts]

    def groups(self, plan: QueryPlan, parts: Sequence[Part]) -> list[tuple[Key, list[Any]]]:
        return [(k, [values[p] for p in parts]) for k, values in self._present]

    def contributions(self, dataset: str, period: str | None,
                      per_period: int | None = None) -> list[tuple[int, int, int]]:
        raise AssertionError("an audited release never asks for contributions")


def audit_policies(measure: Measure, per_query: str = "64") -> PolicySet:
    """The shipped policies of bank_alerts and case_records, with ``measure`` as their
    accounting and caps high enough for any audited cost (everything else unchanged)."""
    registry = ContractRegistry.load()
    out = []
    for dataset in ("bank_alerts", "case_records"):
        doc = yaml.safe_load((default_policies_dir() / f"{dataset}.yaml").read_text("utf-8"))
        doc["accounting"] = measure.value
        doc["budget"].update({"global": "1000", "per_member": "1000", "per_month": "1000",
                              "per_query": per_query})
        out.append(parse_policy_text(yaml.safe_dump(doc), registry, source=f"audit:{dataset}"))
    return PolicySet.of(*out)


# -- the mechanisms audited -----------------------------------------------------------------------
Statistic = Callable[[dict[str, Any], Calibrated], list[float]]
Pair = tuple[FixedAggregates, FixedAggregates]
#: The audited mechanism's own cost in every case: rho 1/2 (zCDP) or epsilon 1 (pure), where
#: OpenDP's conversion of rho 1/2 at delta 0.05 is epsilon 2.04: large enough for the events
#: that show it to have probabilities a few thousand samples measure.
AUDITED = {Measure.ZCDP: Fraction(1, 2), Measure.PURE: Fraction(1)}
#: The point of a zCDP claim's privacy profile tested (pure claims: delta 0, or the
#: mechanism's own delta). Chosen for power: the halved noise then exceeds its claim most.
ZCDP_DELTA = 0.05


@dataclass(frozen=True)
class Case:
    """One mechanism to audit: the query, the neighbouring datasets and the statistic.

    ``data(cal)`` gives the aggregates of D and of D'' (each replicate with its own added unit,
    module docstring) and may use what a release publishes (noise scales, the threshold);
    ``statistic`` gives one value per replicate of a released body; ``claim(plan, cost)`` is
    the part of the charged cost the statistic depends on, from the documented split (never
    from the calibration under audit). The query costs ``AUDITED / share``, so that the
    audited part is ``AUDITED``. ``thresholds`` lists the events when the statistic takes
    few values. ``replicates`` is what a test draws per dataset, per accounting (enough to
    catch the noise halved, :func:`halved_noise`, with probability far above 1 - ALPHA;
    multiples of the samples one release gives).
    """

    name: str
    dataset: str
    body: dict[str, Any]
    data: Callable[[Calibrated], Pair]
    statistic: Statistic
    claim: Callable[[QueryPlan, Cost], Cost]
    share: Fraction = Fraction(1)
    thresholds: Sequence[float] | None = None
    replicates: Mapping[Measure, int] = field(
        default_factory=lambda: {Measure.ZCDP: 4980, Measure.PURE: 4980})

    def cost(self, measure: Measure) -> Fraction:
        return AUDITED[measure] / self.share

    def plan(self, measure: Measure) -> QueryPlan:
        body = {"dataset": self.dataset, "cost": str(self.cost(measure)), **self.body}
        return authorise(audit_policies(measure), ContractRegistry.load(), ANALYST,
                         QueryRequest.parse(body))


@dataclass(frozen=True)
class AuditResult:
    """One audit: the claim tested, the bound found, and what it took."""

    case: str
    measure: Measure
    claim: Claim  # the audited mechanism's part of the charged cost
    delta: float
    claimed: float  # the claim's epsilon at delta
    bound: EventBound
    replicates: int
    releases: int
    seconds: float
    scales: dict[str, float] = field(default_factory=dict)

    @property
    def holds(self) -> bool:
        return self.bound.epsilon <= self.claimed

    def __str__(self) -> str:
        return (f"{self.case} ({self.measure.value}, {self.claim}): claim eps={self.claimed:.3f}"
                f" at delta={self.delta:g}; {self.bound}; {self.replicates:,} replicates, "
                f"{self.releases:,} releases, {self.seconds:.1f} s; scales {self.scales}")


def audit(case: Case, measure: Measure, replicates: int | None = None, *,
          alpha: float = ALPHA) -> AuditResult:
    """Release ``case`` on D and on D'' until ``replicates`` samples of each, and bound the
    privacy loss of the audited mechanism (module docstring)."""
    started = time.perf_counter()
    plan = case.plan(measure)
    cost = cost_for(plan)
    cal = calibrate_plan(plan, cost)
    base, neighbour = case.data(cal)
    wanted = replicates or case.replicates[measure]
    xs: list[float] = []
    ys: list[float] = []
    releases = 0
    while len(xs) < wanted:
        x, y = (case.statistic(release(cal, base), cal),
                case.statistic(release(cal, neighbour), cal))
        if not x or len(x) != len(y):
            raise AssertionError(f"{case.name}: a release gave {len(x)} and {len(y)} samples")
        xs, ys, releases = xs + x, ys + y, releases + 2
    claim = Claim(case.claim(plan, cost))
    delta = ZCDP_DELTA if measure is Measure.ZCDP else float(claim.cost.delta)
    bound = lower_bound(xs, ys, delta, alpha=alpha, thresholds=case.thresholds)
    scales = {m.name: m.noise.scale for m in cal.measures if m.noise is not None}
    scales.update({f"{m.name}.sum": m.mean.sum.scale for m in cal.measures if m.mean})
    if cal.selection is not None:
        scales["selection"] = cal.selection.scale
    if cal.top is not None:
        scales["top"] = cal.top.scale
    return AuditResult(case.name, measure, claim, delta, claim.epsilon(delta), bound,
                       len(xs), releases, time.perf_counter() - started, scales)


@contextlib.contextmanager
def halved_noise() -> Iterator[None]:
    """A deliberately broken hub: every calibration :mod:`hub.query.release` calls is handed
    the cost that halves its noise scale (4x a rho, 2x an epsilon: each scale goes as
    1/sqrt(rho) or 1/epsilon), while the query is still charged, and claims, the original
    cost. The re-checks against OpenDP's maps pass (each spec is consistent with the cost it
    was given), so only a statistical test can see it."""
    import hub.query.release as rel

    def inflate(cost: Cost) -> Cost:
        factor = 4 if cost.measure is Measure.ZCDP else 2
        return Cost(cost.measure, cost.amount * factor, cost.delta)

    def broken(real: Callable[..., Any]) -> Callable[..., Any]:
        return lambda cost, *args, **kwargs: real(inflate(cost), *args, **kwargs)

    names = ("calibrate", "calibrate_mean", "calibrate_quantile", "calibrate_selection",
             "calibrate_top")
    saved = {n: getattr(rel, n) for n in names}
    try:
        for n in names:
            setattr(rel, n, broken(saved[n]))
        yield
    finally:
        for n, f in saved.items():
            setattr(rel, n, f)

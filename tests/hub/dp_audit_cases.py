"""The mechanisms the DP audit runs (:mod:`tests.hub.dp_audit`): for each, the query, the
neighbouring datasets D and D'' (each replicate with its own added unit) and the statistic of
a released body, as the harness's docstring describes them.
"""

from __future__ import annotations

import functools
import itertools
from fractions import Fraction
from typing import Any

import numpy as np

from hub.contracts.model import ContractRegistry
from hub.privacy.accounting import Cost, Measure
from hub.privacy.intervals import _halfwidth_steps, mean_interval
from hub.privacy.noise import MeanNoise, Mechanism, NoiseSpec
from hub.privacy.selection import key_text
from hub.query.plan import QueryPlan
from hub.query.release import TOP_SHARE, Calibrated, split
from hub.query.sql import Part
from tests.hub.dp_audit import Case, FixedAggregates, Key, Pair

__all__ = ["CASES", "decode_mean"]


def _query_claim(plan: QueryPlan, cost: Cost) -> Cost:
    return cost


def _selection_claim(plan: QueryPlan, cost: Cost) -> Cost:
    selection, _, _ = split(plan, cost)
    if selection is None:
        raise AssertionError("the plan does not select its keys")
    return selection


def _top_claim(plan: QueryPlan, cost: Cost) -> Cost:
    _, top, _ = split(plan, cost)
    if top is None:
        raise AssertionError("the plan does not rank its keys")
    return top


def _noise(cal: Calibrated) -> NoiseSpec:
    noise = cal.measures[0].noise
    if noise is None:
        raise AssertionError("the measure has no single noise spec")
    return noise


def _llr(values: np.ndarray, base: float, shift: float, noise: NoiseSpec) -> np.ndarray:
    """The log-likelihood ratio of D'' against D for cells whose exact value is ``base`` in D
    and ``base + shift`` in D'', under the published noise: the most powerful statistic
    (Neyman-Pearson). Only its order matters, which for the Gaussian does not depend on the
    scale at all."""
    z = values - base
    if noise.mechanism is Mechanism.DISCRETE_GAUSSIAN:
        return shift * (z - shift / 2) / noise.scale**2
    return (np.abs(z) - np.abs(z - shift)) / noise.scale


def _values(body: dict[str, Any], name: str) -> np.ndarray:
    return np.array([row[name]["value"] for row in body["rows"]], dtype=float)


#: Exact rows (or units) per cell of D: far from 0, so that flooring at 0 never applies.
_BASE = 1000


# count, sum, mean: a unit's max_rows rows in one cell (the worst case of L1 and L2) --------------
def _count_data(cal: Calibrated) -> Pair:
    """D: 1,000 rows per cell. D'': a unit with ``max_rows`` kept rows in each cell."""
    n, m, part = cal.plan.cells, cal.plan.max_rows, cal.measures[0].parts[0]
    return (FixedAggregates({part: [_BASE] * n}), FixedAggregates({part: [_BASE + m] * n}))


def _count_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    return list(_llr(_values(body, cal.measures[0].name), _BASE, cal.plan.max_rows,
                     _noise(cal)))


def _per_row(noise: NoiseSpec, cal: Calibrated) -> int:
    """Fixed-point steps one kept row adds at most: the clamp's top in the sum's unit (taken
    from the plan, never from the sensitivity under audit)."""
    clamp = cal.measures[0].plan.clamp
    if clamp is None:
        raise AssertionError("a sum without a clamp range")
    return int(Fraction(clamp[1]) * 10**noise.sensitivity.decimals)


def _sum_data(cal: Calibrated) -> Pair:
    """D: 1,000 rows at the middle of the clamp range per cell. D'': a unit with
    ``max_rows`` kept rows at the clamp's top (or above it: clamped) in each cell."""
    n, m, part = cal.plan.cells, cal.plan.max_rows, cal.measures[0].parts[0]
    c = _per_row(_noise(cal), cal)
    return (FixedAggregates({part: [_BASE * c // 2] * n}),
            FixedAggregates({part: [_BASE * c // 2 + m * c] * n}))


def _sum_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    noise = _noise(cal)
    c, m = _per_row(noise, cal), cal.plan.max_rows
    steps = np.rint(_values(body, cal.measures[0].name) / float(noise.sensitivity.resolution))
    return list(_llr(steps, _BASE * c // 2, m * c, noise))


def _mean_noise(cal: Calibrated) -> MeanNoise:
    mean = cal.measures[0].mean
    if mean is None:
        raise AssertionError("not a mean")
    return mean


def _mean_data(cal: Calibrated) -> Pair:
    """D: 1,000 rows at the middle of the clamp range per cell; D'': a unit with ``max_rows``
    kept rows at the clamp's top in each cell (its sum and its count both move)."""
    n, m = cal.plan.cells, cal.plan.max_rows
    sum_part, count_part = cal.measures[0].parts
    c = _per_row(_mean_noise(cal).sum, cal)
    return (FixedAggregates({sum_part: [_BASE * c // 2] * n, count_part: [_BASE] * n}),
            FixedAggregates({sum_part: [_BASE * c // 2 + m * c] * n,
                             count_part: [_BASE + m] * n}))


def decode_mean(rows: list[dict[str, Any]], name: str, noise: MeanNoise) -> np.ndarray:
    """The noisy sums and counts that released means were computed from, one pair per row.

    A mean's cell is S/N and its interval, and :func:`mean_interval` is public: with the
    half-widths hs and hc of the sum and the count, low = (S - hs) / (N + hc) when the
    interval is inside the clamp range (always, on these data), so N = (low hc + hs res) /
    (value - low) and S = value N / res. An attacker's post-processing, which DP covers. The
    first row is checked by recomputing its cell exactly, so that a change of
    :func:`mean_interval` is noticed rather than silently weakening the audit."""
    res = float(noise.sum.sensitivity.resolution)
    hs = _halfwidth_steps(noise.sum, 0.05 / 2)
    hc = _halfwidth_steps(noise.count, 0.05 / 2)
    value = np.array([r[name]["value"] for r in rows], dtype=float)
    low = np.array([r[name]["low"] for r in rows], dtype=float)
    n = np.rint((low * hc + hs * res) / (value - low))
    s = np.rint(value * n / res)
    check, cell = mean_interval(int(s[0]), int(n[0]), noise), rows[0][name]
    if (check.value, check.low, check.high) != (cell["value"], cell["low"], cell["high"]):
        raise AssertionError(f"a mean cell decoded wrongly: {cell} is not S={s[0]}, N={n[0]}")
    return np.stack([s, n], axis=1)


def _mean_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    noise, m = _mean_noise(cal), cal.plan.max_rows
    c = _per_row(noise.sum, cal)
    pairs = decode_mean(body["rows"], cal.measures[0].name, noise)
    return list(_llr(pairs[:, 0], _BASE * c // 2, m * c, noise.sum)
                + _llr(pairs[:, 1], _BASE, m, noise.count))


# distinct units: one unit in a block of cells, +1 in each ---------------------------------------
def _units_data(cal: Calibrated) -> Pair:
    """D: 1,000 units per cell. D'': one more unit in every cell, a unit per block of
    :func:`_block` cells (its kept rows spread over the block)."""
    n, part = cal.plan.cells, cal.measures[0].parts[0]
    return (FixedAggregates({part: [_BASE] * n}), FixedAggregates({part: [_BASE + 1] * n}))


def _block(cal: Calibrated) -> int:
    """Cells one unit moves by 1: ``max_rows`` for count_units (a row per cell); for
    linked_units ``max_rows // 2``, as a unit is linked in a cell only with rows there from
    two partners, so two of its kept rows per cell."""
    m = cal.plan.max_rows
    return m // 2 if cal.measures[0].plan.function.value == "linked_units" else m


def _units_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    block = _block(cal)
    llr = _llr(_values(body, cal.measures[0].name), _BASE, 1, _noise(cal))
    usable = len(llr) // block * block
    return list(llr[:usable].reshape(-1, block).sum(axis=1))


# quantile: the unit's max_rows values at the clamp's top -----------------------------------------
def _quantile_design(cal: Calibrated) -> tuple[float, int]:
    """Where D's values sit (the candidate at 90% of the clamp range) and how many there are
    per cell (12 noise scales' worth for zCDP, 8 for pure DP).

    The released quantile's chance to lie above the data is what one unit's values at the top
    change most: it raises those candidates' weights by e^(Delta/s) and lowers all others' by
    the same factor, so when the others hold most of the weight the ratio nears e^(2 Delta/s),
    the claim; more values at the data make the event rarer. The constants were chosen by
    simulating OpenDP's Gumbel (zCDP) and exponential (pure) noisy max on the same scores,
    for power against the halved noise at the test's sample sizes."""
    noise = _noise(cal)
    at = noise.candidates[round((len(noise.candidates) - 1) * 0.9)]
    return at, round((12 if cal.plan.accounting is Measure.ZCDP else 8) * noise.scale)


def _quantile_data(cal: Calibrated) -> Pair:
    """D: ``n`` values at one candidate per cell (:func:`_quantile_design`); D'': a unit with
    ``max_rows`` kept values at the clamp's top in each cell."""
    noise = _noise(cal)
    if noise.sensitivity.clamp is None:
        raise AssertionError("a quantile without a clamp range")
    top = float(noise.sensitivity.clamp[1])
    at, n = _quantile_design(cal)
    cells, m, part = cal.plan.cells, cal.plan.max_rows, cal.measures[0].parts[0]
    return (FixedAggregates({part: [[at] * n] * cells}),
            FixedAggregates({part: [[at] * n + [top] * m] * cells}))


def _quantile_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    return list(_values(body, cal.measures[0].name))


# key selection: each key present with c distinct units, one more in D'' --------------------------
_SELECTED = 3000  # corridors present in the data


@functools.cache
def _corridors() -> list[Key]:
    codes = ContractRegistry.load().get("bank_alerts").field("origin_country").codes
    return list(itertools.islice(itertools.product(codes, codes), _SELECTED))


def _selection_units(cal: Calibrated) -> int:
    """Distinct units per key in D, from the published threshold T and noise scale: T - 1 for
    the Laplace threshold (its tail is geometric, so every key below T shows the full ratio
    and T - 1 the largest chances); for the Gaussian, two deviations below T (at least two
    units), where the ratio is large while the chances stay measurable."""
    spec = cal.selection
    if spec is None:
        raise AssertionError("the plan does not select its keys")
    if spec.mechanism is Mechanism.DISCRETE_LAPLACE:
        return spec.threshold - 1
    return max(1, spec.threshold - max(2, round(2 * spec.scale)))


def _selection_data(cal: Calibrated) -> Pair:
    """D: 3,000 corridors of ``c`` distinct units each; D'': one more unit in each (a unit
    votes for one key, the policy's keys_per_unit)."""
    c, parts = _selection_units(cal), cal.parts

    def present(units: int) -> list[tuple[Key, dict[Part, Any]]]:
        return [(k, dict.fromkeys(parts, units)) for k in _corridors()]

    return FixedAggregates(present=present(c)), FixedAggregates(present=present(c + 1))


def _selection_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    names = body["dimensions"]
    listed = {key_text([row[d] for d in names]) for row in body["rows"]}
    return [1.0 if key_text(k) in listed else 0.0 for k in _corridors()]


# noisy top-k: two keys, the unit adds its rows to the second ------------------------------------
_RANKED = ("front_company", "funnel_account")


def _top_data(cal: Calibrated) -> Pair:
    """Two keys; in D the second is one score sensitivity behind the first, in D'' a unit
    adds its ``max_rows`` rows to it (one sensitivity): the two tie."""
    if cal.plan.top is None:
        raise AssertionError("the plan does not rank its keys")
    d, part = cal.plan.top.sensitivity, cal.measures[0].parts[0]
    lead = 100 * d

    def present(second: int) -> list[tuple[Key, dict[Part, Any]]]:
        return [((_RANKED[0],), {part: lead}), ((_RANKED[1],), {part: second})]

    return FixedAggregates(present=present(lead - d)), FixedAggregates(present=present(lead))


def _top_statistic(body: dict[str, Any], cal: Calibrated) -> list[float]:
    return [1.0 if body["rows"][0]["typology"] == _RANKED[1] else 0.0]


# public keys, every cell released (zeros included): 1,245 cells, and 2,750
_GRID = {"group_by": ["origin_country", "typology"], "bounding": "total", "keys": "public"}
_ROUTES = {"group_by": ["source_country", "exploitation_type"], "bounding": "total",
           "keys": "public"}
# six releases of 1,245 cells for the discrete Gaussian (its bound varies more), four for
# the discrete Laplace
_GAUSSIAN = {Measure.ZCDP: 7470, Measure.PURE: 4980}

CASES: dict[str, Case] = {c.name: c for c in (
    Case("count", "bank_alerts", {**_GRID, "measures": ["count"]}, _count_data,
         _count_statistic, _query_claim, replicates=_GAUSSIAN),
    Case("sum", "bank_alerts", {**_GRID, "measures": [{"function": "sum", "field": "amount"}]},
         _sum_data, _sum_statistic, _query_claim, replicates=_GAUSSIAN),
    Case("mean", "bank_alerts", {**_GRID, "measures": [{"function": "mean",
                                                         "field": "amount"}]},
         _mean_data, _mean_statistic, _query_claim, replicates=_GAUSSIAN),
    Case("quantile", "bank_alerts", {**_GRID, "measures": [
        {"function": "quantile", "field": "amount", "quantile": 0.5}]}, _quantile_data,
         _quantile_statistic, _query_claim, replicates=dict.fromkeys(Measure, 7470)),
    # case_records: 4 rows per person, so a unit's +1s span 4 cells (count_units), 2 (linked)
    Case("count_units", "case_records", {**_ROUTES, "measures": ["count_units"]}, _units_data,
         _units_statistic, _query_claim, replicates=dict.fromkeys(Measure, 8244)),
    Case("linked_units", "case_records", {**_ROUTES, "measures": ["linked_units"]},
         _units_data, _units_statistic, _query_claim,
         replicates=dict.fromkeys(Measure, 11_000)),
    Case("key_selection", "bank_alerts", {
        "group_by": ["origin_country", "destination_country"], "keys": "selected",
        "measures": ["count_units"]}, _selection_data, _selection_statistic,
         _selection_claim, share=Fraction(1, 4), thresholds=(0.5,),
         replicates=dict.fromkeys(Measure, 12_000)),
    Case("top_k", "bank_alerts", {
        "group_by": ["typology"], "filters": {"typology": list(_RANKED)},
        "measures": ["count"], "top": {"k": 1, "by": 0}}, _top_data, _top_statistic,
         _top_claim, share=TOP_SHARE, thresholds=(0.5,),
         replicates={Measure.ZCDP: 3000, Measure.PURE: 1500}),
)}

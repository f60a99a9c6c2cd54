"""What one query releases: its keys (public, selected or ranked), its noisy measures with
honest intervals, how sure each rank is, and totals that add up.

Everything a release needs is derived before anything is spent (:func:`calibrate_plan`: the
cost's split, every noise scale, the threshold, checked against OpenDP's maps); the release
itself (:func:`release`) then runs the engine once and only post-processes OpenDP's output.

How a query's cost is split (sequential composition: the parts add up to the cost asked for)
    * key selection, when the plan selects its keys: ``plan.selection_share`` of the amount,
      and the policy's per-query delta (``hub.privacy.selection``);
    * a ranked query's noisy top-k: :data:`TOP_SHARE` of the amount;
    * the measures: the rest, in equal parts per measure (a mean's part split again between
      its sum and its count).

Fixed-point decimals of a sum (:func:`decimals_for`): 0 for integer fields; for number fields
a step of at most 1/10,000 of the clamp range (whole euros for amounts clamped to [0, 50000]):
the step only sets the unit the noise is drawn in, the noise in the value's unit is the same.

Category-list dimensions put one row in up to ``plan.groups_per_row`` cells, so the
sensitivities are taken at ``max_rows * groups_per_row`` rows per unit; per-period bounding
multiplies by the number of periods (``hub.privacy.noise.sensitivity``).

Presentation rules the release carries (docs/queries.md): rows are in the order of the key
grid, or of the ranking for a ranked query, never by noisy value; each additive cell says
whether its interval excludes zero (``distinguishable``); a ranked row gives its rank
interval among the listed keys, all holding together with probability 90%.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, TypeVar

from hub.contracts.model import FieldType
from hub.errors import BudgetExceeded, InvalidInput
from hub.governance.policies import Function
from hub.privacy.accounting import Cost, Measure
from hub.privacy.intervals import (
    Estimate,
    cost_for_halfwidth,
    estimates,
    halfwidth,
    margin_totals,
    mean_interval,
)
from hub.privacy.noise import (
    COST_GRID,
    MeanNoise,
    NoiseSpec,
    calibrate,
    calibrate_mean,
    calibrate_quantile,
    quantile_release,
    release_counts,
    sensitivity,
    split_cost,
    sum_decimals,
)
from hub.privacy.selection import (
    SelectionSpec,
    TopSpec,
    appearance,
    calibrate_selection,
    calibrate_top,
    gap_for,
    key_text,
    rank_intervals,
    scale_for_gap,
    select_keys,
    top_k,
)
from hub.query.plan import MeasurePlan, QueryPlan
from hub.query.sql import Part, PartKind

__all__ = [
    "RANK_CONFIDENCE",
    "TOP_SHARE",
    "Aggregator",
    "Calibrated",
    "Key",
    "calibrate_plan",
    "cost_for",
    "decimals_for",
    "domain_order",
    "margins",
    "measure_name",
    "parts_of",
    "release",
    "route_json",
]

#: Share of a ranked query's cost spent on choosing its keys (OpenDP's noisy top-k).
TOP_SHARE = Fraction(1, 4)
#: Rank intervals of a ranked query hold together with this probability.
RANK_CONFIDENCE = 0.9
#: A ranked query is refused when even the per-query cap could not put two keys this many
#: score sensitivities apart (25 people, for a count of people) in the right order with 90%
#: confidence: a ranking that cannot tell such keys apart is not a useful one.
USEFUL_GAP = 25
_ADDITIVE = (Function.COUNT, Function.SUM, Function.COUNT_UNITS, Function.LINKED_UNITS)
_KIND: dict[Function, PartKind] = {Function.COUNT: "count", Function.COUNT_UNITS: "count_units",
                                   Function.LINKED_UNITS: "linked_units"}
_T = TypeVar("_T")
Key = tuple[str | None, ...]


def _need(value: _T | None) -> _T:
    """``value``, which the plan guarantees is set (a None here is a bug, never input)."""
    if value is None:
        raise RuntimeError("a query plan lacks a value its measure needs")
    return value


class Aggregator(Protocol):
    """What a release needs of the query engine (hub.query.engine.QueryEngine)."""

    def partners(self, dataset: str) -> int: ...

    def prefetch(self, dataset: str) -> None: ...

    def aggregate(self, plan: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]: ...

    def groups(self, plan: QueryPlan, parts: Sequence[Part]) -> list[tuple[Key, list[Any]]]: ...

    def contributions(self, dataset: str, period: str | None,
                      per_period: int | None = None) -> list[tuple[int, int, int]]: ...


def decimals_for(m: MeasurePlan) -> int:
    """Fixed-point decimals of the sum of ``m``'s field (:func:`hub.privacy.sum_decimals`)."""
    return 0 if m.clamp is None else sum_decimals(m.clamp, m.integer)


def measure_name(m: MeasurePlan) -> str:
    """``count``, ``count_units``, ``linked_units``, ``sum_amount``, ``quantile_50_amount``."""
    if m.function is Function.QUANTILE:
        return f"quantile_{_need(m.quantile) * 100:g}_{m.field}"
    return m.function.value if m.field is None else f"{m.function.value}_{m.field}"


# -- calibration (no data, nothing spent) -----------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Measure:
    """One measure with its share of the cost, its calibrated noise and its engine parts."""

    plan: MeasurePlan
    name: str
    cost: Cost
    parts: tuple[Part, ...]
    noise: NoiseSpec | None = None  # count, sum, count_units, linked_units, quantile
    mean: MeanNoise | None = None

    def describe(self) -> dict[str, Any]:
        """Public facts about the release of this measure (no data)."""
        out: dict[str, Any] = {
            "name": self.name,
            "function": self.plan.function.value,
            "field": self.plan.field,
        }
        if self.plan.clamp is not None:
            out["clamp"] = list(self.plan.clamp)
        if self.plan.quantile is not None:
            out["quantile"] = self.plan.quantile
        if self.mean is not None:
            s, c = self.mean.sum, self.mean.count
            out.update(
                mechanism=s.mechanism.value,
                noise_scale=float(s.scale * s.sensitivity.resolution),
                count_noise_scale=float(c.scale),
                halfwidth_95=None,
                note="mean = noisy sum / noisy count; its interval depends on the count, "
                "see each cell",
            )
        else:
            n = _need(self.noise)
            if self.plan.function is Function.QUANTILE:
                out.update(
                    mechanism=n.mechanism.value,
                    noise_scale=float(n.scale),
                    halfwidth_95=None,
                    candidates=len(n.candidates),
                    note="a quantile's error is in rank and depends on the data: no interval",
                )
            else:
                out.update(
                    mechanism=n.mechanism.value,
                    noise_scale=float(n.scale * n.sensitivity.resolution),
                    halfwidth_95=halfwidth(n),
                )
        out["cost"] = self.cost.as_json()
        return out


@dataclass(frozen=True)
class Calibrated:
    """A plan with every mechanism calibrated: what it costs and how it will be released."""

    plan: QueryPlan
    cost: Cost  # the whole query's: amount, and delta when keys are selected
    selection: SelectionSpec | None
    top: TopSpec | None
    measures: list[_Measure]

    @property
    def parts(self) -> list[Part]:
        """What the engine computes: every measure's parts, and the distinct units that key
        selection thresholds."""
        parts = [p for m in self.measures for p in m.parts]
        if self.selection is not None:
            parts.append(Part("select_units", limit=self.plan.selection_keys))
        return list(dict.fromkeys(parts))

    def keys_json(self) -> dict[str, Any]:
        """How the keys are chosen, and what an absent key means."""
        if self.selection is None:
            return {"mode": "public", "candidates": self.plan.cells,
                    "absent": "every key of the grid is listed, zeros included"}
        s = self.selection
        return {"mode": "selected", **s.as_json(),
                "absent": f"keys not listed had too few distinct units to show: a key is "
                f"listed with probability 1/2 from {s.threshold} units and 95% from "
                f"{appearance(s, 0.95)}; absence says nothing more (it may also mean none)"}

    def top_json(self) -> dict[str, Any] | None:
        if self.top is None or self.plan.top is None:
            return None
        return {**self.top.as_json(), "by": self.measures[self.plan.top.by].name,
                "rank_confidence": RANK_CONFIDENCE,
                "note": f"keys are chosen by OpenDP's noisy top-k; two keys "
                f"{gap_for(self.top, 0.9):.3g} apart by "
                f"{self.measures[self.plan.top.by].name} are put in the right order with "
                f"probability 90%. Each rank interval is the key's true rank among the "
                f"listed keys; all hold together with probability {RANK_CONFIDENCE:.0%}"}


def split(plan: QueryPlan, cost: Cost) -> tuple[Cost | None, Cost | None, Cost]:
    """The cost of key selection (with the delta), of the ranking, and of the measures."""
    selection = (Cost(cost.measure, cost.amount * plan.selection_share,
                      plan.limits.delta_per_query) if plan.selected else None)
    top = Cost(cost.measure, cost.amount * TOP_SHARE) if plan.top is not None else None
    return selection, top, Cost(cost.measure, cost.amount * _measures_share(plan))


def _measures_share(plan: QueryPlan) -> Fraction:
    """The fraction of a query's cost its measures share (module docstring)."""
    return (Fraction(1) - (plan.selection_share if plan.selected else 0)
            - (TOP_SHARE if plan.top is not None else 0))


def calibrate_plan(plan: QueryPlan, cost: Cost) -> Calibrated:
    """Split ``cost`` and calibrate every mechanism (no data, nothing spent)."""
    selection_cost, top_cost, measures_cost = split(plan, cost)
    selection = (None if selection_cost is None
                 else calibrate_selection(selection_cost, plan.selection_keys))
    top = None
    if top_cost is not None:
        ranking = _need(plan.top)
        top = calibrate_top(top_cost, ranking.k, ranking.sensitivity, ranking.monotonic)
    total = cost.with_delta(selection_cost.delta if selection_cost else Fraction(0))
    return Calibrated(plan, total, selection, top, _compile(plan, measures_cost))


def parts_of(m: MeasurePlan) -> tuple[Part, ...]:
    """What the engine computes for ``m``: a count's kind, a sum's fixed-point sum, a mean's
    sum and count, a quantile's clamped values."""
    fn = m.function
    if fn in (Function.COUNT, Function.COUNT_UNITS, Function.LINKED_UNITS):
        return (Part(_KIND[fn]),)
    field, clamp = _need(m.field), _need(m.clamp)
    if fn is Function.SUM:
        return (Part("sum", field, clamp, decimals_for(m)),)
    if fn is Function.MEAN:
        return (Part("sum", field, clamp, decimals_for(m)), Part("count"))
    return (Part("values", field, clamp),)


def _compile(plan: QueryPlan, cost: Cost) -> list[_Measure]:
    """Split ``cost`` over the measures and calibrate each."""
    bound, periods = plan.max_rows * plan.groups_per_row, plan.periods
    out = []
    for m, share in zip(plan.measures, split_cost(cost, len(plan.measures)), strict=True):
        fn, name, parts = m.function, measure_name(m), parts_of(m)
        if fn in (Function.COUNT, Function.COUNT_UNITS, Function.LINKED_UNITS):
            noise = calibrate(share, sensitivity(fn.value, bound, periods=periods))
            out.append(_Measure(m, name, share, parts, noise=noise))
            continue
        clamp, d = _need(m.clamp), decimals_for(m)
        if fn is Function.SUM:
            noise = calibrate(share, sensitivity("sum", bound, clamp, d, periods))
            out.append(_Measure(m, name, share, parts, noise=noise))
        elif fn is Function.MEAN:
            mean = calibrate_mean(share, bound, clamp, d, periods)
            out.append(_Measure(m, name, share, parts, mean=mean))
        else:  # quantile
            noise = calibrate_quantile(share, sensitivity("quantile", bound, clamp,
                                                          periods=periods),
                                       Fraction(_need(m.quantile)))
            out.append(_Measure(m, name, share, parts, noise=noise))
    return out


def cost_for(plan: QueryPlan) -> Cost:
    """The plan's cost, or the least cost on the grid that reaches its target accuracy
    (refused, naming the per-query cap, when the cap cannot reach it)."""
    if plan.cost is not None:
        cost = plan.cost
    else:
        target = _need(plan.target)
        cost = (_cost_for_gap(plan, _need(target.top_gap), target.confidence)
                if target.top_gap is not None else _cost_for_halfwidth(plan))
    _check_useful_ranking(plan)
    return cost


def _cap_refusal(plan: QueryPlan, what: str, needed: Fraction) -> BudgetExceeded:
    return BudgetExceeded(
        f"{what} would cost {Cost(plan.accounting, needed)} for the query, above the "
        f"per-query cap of {Cost(plan.accounting, plan.limits.per_query)}",
        field="target", rule="budget:per_query", requested=str(needed),
        remaining=str(plan.limits.per_query), measure=plan.accounting.value)


def _cost_for_halfwidth(plan: QueryPlan) -> Cost:
    target = _need(plan.target)
    n = len(plan.measures)
    m = plan.measures[target.measure]
    share = _measures_share(plan)
    cap = plan.limits.per_query * share / n
    goal = _need(target.ci_halfwidth)
    try:
        part = cost_for_halfwidth(
            m.function.value, goal, measure=plan.accounting,
            max_rows=plan.max_rows * plan.groups_per_row, clamp=m.clamp,
            decimals=decimals_for(m) if m.field else 0, cap=cap, periods=plan.periods,
        )
    except InvalidInput as exc:
        if "cap" not in exc.extra:
            raise
        needed = Fraction(str(exc.extra["requested"])) * n / share
        raise _cap_refusal(plan, f"reaching +/-{goal:g} on {measure_name(m)} ({n} "
                                 "measure(s) share the cost equally)", needed) from None
    return Cost(plan.accounting, _grid_up(part.amount * n / share))


def _cost_for_gap(plan: QueryPlan, gap: float, confidence: float) -> Cost:
    """The least cost whose noisy top-k orders two keys ``gap`` apart with ``confidence``."""
    ranking = _need(plan.top)
    scale = scale_for_gap(gap, confidence)
    probe = calibrate_top(Cost(plan.accounting, Fraction(1)), ranking.k, ranking.sensitivity,
                          ranking.monotonic)
    # every map here scales as loss(1) / scale^p: p = 2 for zCDP, 1 for pure DP
    power = 2 if plan.accounting is Measure.ZCDP else 1
    top_amount = Fraction(probe.scale / scale) ** power
    needed = _grid_up(top_amount / TOP_SHARE)
    while calibrate_top(Cost(plan.accounting, needed * TOP_SHARE), ranking.k,
                        ranking.sensitivity, ranking.monotonic).scale > scale:
        needed += COST_GRID
    if needed > plan.limits.per_query:
        raise _cap_refusal(plan, f"ranking keys {gap:g} apart with {confidence:.0%} "
                                 "confidence", needed)
    return Cost(plan.accounting, needed)


def _grid_up(amount: Fraction) -> Fraction:
    return max(math.ceil(amount / COST_GRID), 1) * COST_GRID


def _check_useful_ranking(plan: QueryPlan) -> None:
    """Refuse a k that even the per-query cap cannot rank usefully (:data:`USEFUL_GAP`)."""
    if plan.top is None:
        return
    best = calibrate_top(Cost(plan.accounting, plan.limits.per_query * TOP_SHARE), plan.top.k,
                         plan.top.sensitivity, plan.top.monotonic)
    gap = gap_for(best, 0.9)
    if gap > USEFUL_GAP * plan.top.sensitivity:
        raise InvalidInput(
            f"ranking the top {plan.top.k} keys: even the per-query cap would only order two "
            f"keys {gap:.3g} apart with 90% confidence ({gap / plan.top.sensitivity:.3g} "
            f"times what one unit can change); ask for fewer keys",
            field="top.k", rule="top:k", gap_90=gap)


# -- the release (post-processing of OpenDP's output) -----------------------------------------
def release(cal: Calibrated, engine: Aggregator) -> dict[str, Any]:
    """Run the engine once, then select, rank, add noise and build the released body
    (rows, totals, how keys were chosen). No budget is touched here."""
    plan = cal.plan
    parts = cal.parts
    if cal.selection is None and cal.top is None:
        exact = engine.aggregate(plan, parts)
        if len(exact) != len(parts) or any(len(v) != plan.cells for v in exact):
            raise RuntimeError("the engine returned cells that do not match the plan")
        keys: list[Key] = list(itertools.product(*(d.keys for d in plan.dimensions)))
        by_part = dict(zip(parts, exact, strict=True))
    else:
        keys, by_part = _chosen(cal, engine.groups(plan, parts), parts)
    names = [d.name for d in plan.dimensions]
    rows: list[dict[str, Any]] = [dict(zip(names, k, strict=True)) for k in keys]
    additive: list[tuple[_Measure, list[int]]] = []
    for m in cal.measures:
        cells, noisy = _noisy_cells(m, by_part, plan.postprocess.nonnegative)
        for row, cell in zip(rows, cells, strict=True):
            row[m.name] = cell
        if noisy is not None and m.plan.function in _ADDITIVE:
            additive.append((m, noisy))
    if cal.top is not None and plan.top is not None:
        _ranks(rows, cal.measures[plan.top.by], additive, plan)
    totals = (_totals(plan, keys, additive)
              if plan.postprocess.consistent_totals and plan.top is None else [])
    span = _period_span(plan, keys, additive)
    return {
        "dimensions": names,
        "measures": [m.describe() for m in cal.measures],
        "rows": rows,
        "totals": totals,
        "keys": {**cal.keys_json(), "listed": len(rows)},
        "top": cal.top_json(),
        "route": route_json(plan),
        "bounding": bounding_json(plan),
        "period_span": span,
        "postprocess": {"nonnegative": plan.postprocess.nonnegative,
                        "consistent_totals": plan.postprocess.consistent_totals},
        "cells": plan.cells,
    }


def _chosen(cal: Calibrated, groups: list[tuple[Key, list[Any]]], parts: list[Part]
            ) -> tuple[list[Key], dict[Part, list[Any]]]:
    """The keys a selecting or ranked plan releases (in grid order, or best first), and
    each part's exact values on them."""
    plan = cal.plan
    present = dict(groups)
    zero: list[Any] = [[] if p.kind == "values" else 0 for p in parts]
    if cal.selection is not None:
        units = parts.index(Part("select_units", limit=plan.selection_keys))
        chosen = select_keys({key_text(k): v[units] for k, v in groups}, cal.selection)
        keys = sorted((k for k in present if key_text(k) in chosen), key=domain_order(plan))
    else:
        keys = list(itertools.product(*(d.keys for d in plan.dimensions)))
    if cal.top is not None and plan.top is not None:
        score = parts.index(cal.measures[plan.top.by].parts[0])
        scores = [int(present.get(k, zero)[score]) for k in keys]
        keys = [keys[i] for i in top_k(scores, cal.top)]
    values = [present.get(k, zero) for k in keys]
    return keys, {p: [v[i] for v in values] for i, p in enumerate(parts)}


def domain_order(plan: QueryPlan) -> Callable[[Key], tuple[int, ...]]:
    """Sort key: the order of the public key grid (``itertools.product`` order)."""
    index = [{k: i for i, k in enumerate(d.keys)} for d in plan.dimensions]
    return lambda key: tuple(ix[k] for ix, k in zip(index, key, strict=True))


def _cell(e: Estimate, integer: bool, additive: bool = True) -> dict[str, Any]:
    cell: dict[str, Any] = ({"value": int(e.value), "low": int(e.low), "high": int(e.high)}
                            if integer else {"value": e.value, "low": e.low, "high": e.high})
    if additive:  # what the data show, told apart from what noise could have produced
        cell["distinguishable"] = e.low > 0 or e.high < 0
    return cell


def _noisy_cells(m: _Measure, by_part: dict[Part, list[Any]],
                 nonnegative: bool) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The released cells of one measure, and its raw noisy integers (for totals, ranks)."""
    fn = m.plan.function
    if m.mean is not None:
        sum_part, count_part = m.parts
        sums = release_counts(by_part[sum_part], m.mean.sum)
        counts = release_counts(by_part[count_part], m.mean.count)
        return [_cell(mean_interval(s, c, m.mean), False, additive=False)
                for s, c in zip(sums, counts, strict=True)], None
    noise = _need(m.noise)
    if fn is Function.QUANTILE:
        values = quantile_release(by_part[m.parts[0]], noise)
        return [{"value": v} for v in values], None
    noisy = release_counts(by_part[m.parts[0]], noise)
    floor_zero = nonnegative and (m.plan.clamp is None or m.plan.clamp[0] >= 0)
    integer = noise.sensitivity.resolution == 1 and fn is not Function.SUM
    return [_cell(e, integer) for e in estimates(noisy, noise, nonnegative=floor_zero)], noisy


def _period_span(plan: QueryPlan, keys: list[Key],
                 additive: list[tuple[_Measure, list[int]]]) -> dict[str, Any] | None:
    """The months that hold data, for a trend's axis: from the first to the last period with
    a cell whose interval excludes zero, the intervals taken at 5% / (number of cells) so
    that they hold together (Bonferroni): with 192 empty months, per-cell 95% intervals would
    find some month "distinguishable" by chance most of the time. Post-processing, free."""
    index = next((i for i, d in enumerate(plan.dimensions) if d.type is FieldType.PERIOD),
                 None)
    if index is None or not additive or not keys:
        return None
    m, noisy = additive[0]
    together = estimates(noisy, _need(m.noise), alpha=0.05 / len(keys), nonnegative=True)
    months = sorted({str(k[index]) for k, e in zip(keys, together, strict=True)
                     if e.low > 0 and k[index] is not None})
    return {"field": plan.dimensions[index].name, "measure": m.name,
            "from": months[0] if months else None, "to": months[-1] if months else None,
            "confidence": 0.95,
            "note": "the first and last periods where the data show something: intervals "
                    "that hold together for all cells exclude zero there"}


def _ranks(rows: list[dict[str, Any]], by: _Measure,
           additive: list[tuple[_Measure, list[int]]], plan: QueryPlan) -> None:
    """Each ranked row's place (the mechanism's order) and its rank interval among the listed
    keys: Bonferroni intervals at (1 - RANK_CONFIDENCE) / n hold together (module doc)."""
    noisy = next(values for m, values in additive if m is by)
    noise = _need(by.noise)
    floor_zero = plan.postprocess.nonnegative and (by.plan.clamp is None
                                                   or by.plan.clamp[0] >= 0)
    wide = estimates(noisy, noise, alpha=(1 - RANK_CONFIDENCE) / max(len(rows), 1),
                     nonnegative=floor_zero)
    bounds = rank_intervals([e.low for e in wide], [e.high for e in wide])
    for i, (row, (low, high)) in enumerate(zip(rows, bounds, strict=True)):
        row["rank"] = {"position": i + 1, "low": low, "high": high,
                       "confidence": RANK_CONFIDENCE}


def _totals(plan: QueryPlan, keys: list[Key],
            additive: list[tuple[_Measure, list[int]]]) -> list[dict[str, Any]]:
    """Totals that add up: per key of each dimension (over the others), and the grand total,
    over the listed keys.

    Each total is the sum of its released cells (:func:`hub.privacy.margin_totals`): no
    extra cost, consistent with the rows by construction, with an honest interval.
    """
    if not additive:
        return []
    out = []
    for by, labels, groups in margins(plan, keys):
        rows: list[dict[str, Any]] = [dict(zip(by, label, strict=True)) for label in labels]
        for m, noisy in additive:
            noise = _need(m.noise)
            floor_zero = plan.postprocess.nonnegative and (
                m.plan.clamp is None or m.plan.clamp[0] >= 0)
            totals = margin_totals(noisy, groups, noise, nonnegative=floor_zero)
            integer = m.plan.function is not Function.SUM
            for row, e in zip(rows, totals, strict=True):
                row[m.name] = _cell(e, integer)
        out.append({"by": by, "rows": rows})
    return out


def margins(plan: QueryPlan, keys: list[Key]
            ) -> list[tuple[list[str], list[Key], list[list[int]]]]:
    """The groups of listed keys that totals add up: for each dimension (when there are two
    or more) the positions of each of its keys, then every position (the grand total); each
    as (the dimensions it is by, its labels, the positions in ``keys`` of each label)."""
    out: list[tuple[list[str], list[Key], list[list[int]]]] = []
    if len(plan.dimensions) > 1:
        for i, d in enumerate(plan.dimensions):
            index: dict[str | None, list[int]] = {}
            for j, k in enumerate(keys):
                index.setdefault(k[i], []).append(j)
            present = [key for key in d.keys if key in index]
            out.append(([d.name], [(key,) for key in present],
                        [index[key] for key in present]))
    out.append(([], [()], [list(range(len(keys)))]))
    return out


def route_json(plan: QueryPlan) -> dict[str, Any] | None:
    if not plan.route:
        return None
    return {"stages": [d.name for d in plan.dimensions],
            "assembly": "each unit's stages are taken from all its kept rows: a stage a row "
            "leaves empty is filled from the unit's other rows when they agree on one "
            "value (an NGO's record of where a person came from and the police's record "
            "of where they were exploited make one route); a unit counts once per route"}


def bounding_json(plan: QueryPlan) -> dict[str, Any]:
    """How rows were bounded, and the bias that remains (docs/privacy.md)."""
    m = plan.max_rows
    if plan.per_period:
        note = (f"each privacy unit counts with at most {m} rows in each of the "
                f"{plan.periods} periods")
    else:
        note = f"each privacy unit counts with at most {m} rows in total"
    if plan.groups_per_row > 1:
        note += (f"; a row falls in up to {plan.groups_per_row} cells (category lists), so "
                 f"the noise covers {m * plan.groups_per_row} (row, cell) pairs per unit")
    note += ("; which rows are kept is decided by a keyed hash of each row, never by arrival "
             "order or time, so the rows left out are spread evenly: values are biased "
             "towards zero by the share of rows left out, a bias that is not in the interval")
    return {"max_rows": m, "per_period": plan.per_period, "periods": plan.periods,
            "groups_per_row": plan.groups_per_row, "note": note}

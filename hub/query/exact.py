"""Exact answers over a policy's public rows: no noise, no cost.

A policy may declare rows that are public facts (``public_rows``: e.g. the incidents that
published news articles told, ``source_type: news``; hub.governance.policies.PublicRows). A
query whose filter keeps only those rows (:attr:`hub.query.plan.QueryPlan.public_rows`) is
answered by :func:`release_exact`: the aggregates of the public rows, released as they are,
in the same JSON shape as a DP release (so every client and view reads it), with intervals
of zero width. Nothing private is in them: a crowd report's incident (``source_type:
crowd``) never reaches such a query, and a query that keeps any non-public row is a DP query
like any other. The engine neither bounds the public rows per unit nor links their units
into persons (:meth:`hub.query.engine.QueryEngine`): which rows a bound keeps, and which
units an identifier joins, depend on the unit's other rows, which may not be public; so the
answer is a function of the public rows alone. Sums are still clamped to the measure's
range (the clamp is part of what the measure is).

What changes against a DP release (docs/queries.md, "Exact answers over public rows"):
    * keys: a grid that a DP query would select keys from lists the keys that hold public
      rows (an absent key has none); a public grid lists every key, zeros included;
    * a ranked query lists the keys with the largest exact values (zeros left out), each
      with its exact rank (tied keys share the interval of their positions);
    * a quantile is the lower empirical quantile of the clamped values (none for an empty
      cell); a mean is the exact sum over the exact count;
    * each measure says ``mechanism: none`` and the answer carries ``exact`` with the
      policy's reason why the rows are public.
Only aggregates are released, never rows.
"""

from __future__ import annotations

import itertools
import math
from fractions import Fraction
from typing import Any

from hub.contracts.model import FieldType
from hub.governance.policies import Function
from hub.privacy.accounting import Cost
from hub.privacy.noise import from_fixed
from hub.query.plan import MeasurePlan, QueryPlan
from hub.query.release import (
    Aggregator,
    Key,
    decimals_for,
    domain_order,
    margins,
    measure_name,
    parts_of,
    route_json,
)

__all__ = ["describe_exact", "release_exact"]

_ADDITIVE = (Function.COUNT, Function.SUM, Function.COUNT_UNITS, Function.LINKED_UNITS)


def _value(m: MeasurePlan, values: list[Any]) -> float | int | None:
    """One cell of ``m`` from its parts' exact values (module docstring)."""
    fn = m.function
    if fn in (Function.COUNT, Function.COUNT_UNITS, Function.LINKED_UNITS):
        return int(values[0])
    if fn is Function.SUM:
        total = from_fixed(int(values[0]), decimals_for(m))
        return int(total) if decimals_for(m) == 0 else total
    if fn is Function.MEAN:
        count = int(values[1])
        return from_fixed(int(values[0]), decimals_for(m)) / count if count else None
    ordered = sorted(float(v) for v in values[0])
    if not ordered:
        return None
    rank = max(math.ceil(Fraction(str(m.quantile)) * len(ordered)), 1)  # lower quantile
    return ordered[rank - 1]


def _cell(m: MeasurePlan, value: float | int | None) -> dict[str, Any]:
    if m.function is Function.QUANTILE:
        return {"value": value}
    cell: dict[str, Any] = {"value": value, "low": value, "high": value}
    if m.function in _ADDITIVE:
        cell["distinguishable"] = bool(value)
    return cell


def _describe(m: MeasurePlan, cost: Cost) -> dict[str, Any]:
    out: dict[str, Any] = {"name": measure_name(m), "function": m.function.value,
                           "field": m.field}
    if m.clamp is not None:
        out["clamp"] = list(m.clamp)
    if m.quantile is not None:
        out["quantile"] = m.quantile
    out.update(mechanism="none", noise_scale=0.0,
               halfwidth_95=0.0 if m.function is not Function.QUANTILE else None,
               note="exact: the policy's public rows, released without noise",
               cost=cost.as_json())
    return out


def release_exact(plan: QueryPlan, engine: Aggregator) -> dict[str, Any]:
    """The exact release of a plan over public rows (module docstring). Runs the engine
    once; nothing is spent (the plan's cost is zero)."""
    if plan.public_rows is None:
        raise ValueError("an exact release needs a plan over the policy's public rows")
    per_measure = [parts_of(m) for m in plan.measures]
    parts = list(dict.fromkeys(p for ps in per_measure for p in ps))
    keys: list[Key]
    if plan.selected:  # a grid too large to list: the keys that hold public rows
        present = dict(engine.groups(plan, parts))
        keys = sorted(present, key=domain_order(plan))
        values = [present[k] for k in keys]
    else:
        exact = engine.aggregate(plan, parts)
        if len(exact) != len(parts) or any(len(v) != plan.cells for v in exact):
            raise RuntimeError("the engine returned cells that do not match the plan")
        keys = list(itertools.product(*(d.keys for d in plan.dimensions)))
        values = [list(cell) for cell in zip(*exact, strict=True)]
    at = {p: i for i, p in enumerate(parts)}
    cells = [[_value(m, [v[at[p]] for p in ps]) for m, ps in zip(plan.measures, per_measure,
                                                                  strict=True)]
             for v in values]
    described = describe_exact(plan)
    scores: list[float] = []
    if plan.top is not None:
        score = [float(c[plan.top.by] or 0) for c in cells]  # additive: never None
        chosen = sorted((i for i in range(len(cells)) if score[i]),
                        key=lambda i: -score[i])[:plan.top.k]  # stable: ties in grid order
        keys, cells = [keys[i] for i in chosen], [cells[i] for i in chosen]
        scores = [score[i] for i in chosen]
    names = [d.name for d in plan.dimensions]
    rows: list[dict[str, Any]] = []
    for key, row_cells in zip(keys, cells, strict=True):
        row: dict[str, Any] = dict(zip(names, key, strict=True))
        for m, value in zip(plan.measures, row_cells, strict=True):
            row[measure_name(m)] = _cell(m, value)
        rows.append(row)
    if plan.top is not None:
        for position, (row, v) in enumerate(zip(rows, scores, strict=True), start=1):
            row["rank"] = {"position": position,
                           "low": 1 + sum(w > v for w in scores),
                           "high": sum(w >= v for w in scores), "confidence": 1.0}
    additive = [(i, m) for i, m in enumerate(plan.measures) if m.function in _ADDITIVE]
    return {
        "dimensions": names,
        "measures": described["measures"],
        "rows": rows,
        "totals": (_totals(plan, keys, cells, additive)
                   if plan.postprocess.consistent_totals and plan.top is None else []),
        "keys": {**described["keys"], "listed": len(rows)},
        "top": described["top"],
        "route": route_json(plan),
        "bounding": described["bounding"],
        "period_span": _period_span(plan, keys, cells, additive),
        "postprocess": {"nonnegative": plan.postprocess.nonnegative,
                        "consistent_totals": plan.postprocess.consistent_totals},
        "cells": plan.cells,
        "exact": {"reason": plan.public_rows,
                  "filters": {f.field: list(f.values) for f in plan.filters},
                  "note": "the filters keep only rows the policy declares public: the "
                          "answer is exact, without noise, and cost nothing"},
    }


def describe_exact(plan: QueryPlan) -> dict[str, Any]:
    """How an exact plan is released (no data): its measures, keys, ranking and bounding."""
    zero = Cost.zero(plan.accounting)
    keys = ({"mode": "present", "candidates": plan.cells,
             "absent": "keys not listed hold no public rows (exact)"} if plan.selected
            else {"mode": "public", "candidates": plan.cells,
                  "absent": "every key of the grid is listed, zeros included"})
    top = None if plan.top is None else {
        "mechanism": "none", "k": plan.top.k, "by": measure_name(plan.measures[plan.top.by]),
        "noise_scale": 0.0, "gap_90": 0.0, "rank_confidence": 1.0, "cost": zero.as_json(),
        "note": "exact ranking of the public rows: the keys with the largest values (keys "
                "with none left out); tied keys share their ranks"}
    bounding = {"max_rows": None, "per_period": False, "periods": 1,
                "groups_per_row": plan.groups_per_row,
                "note": "not bounded: every public row counts (an exact answer depends on the "
                        "public rows alone)"}
    return {"measures": [_describe(m, zero) for m in plan.measures], "keys": keys, "top": top,
            "bounding": bounding}


def _totals(plan: QueryPlan, keys: list[Key], cells: list[list[Any]],
            additive: list[tuple[int, MeasurePlan]]) -> list[dict[str, Any]]:
    """Exact totals per key of each dimension (over the others) and the grand total, over
    the listed keys (the shape of a DP release's totals)."""
    if not additive:
        return []
    out = []
    for by, labels, groups in margins(plan, keys):
        rows: list[dict[str, Any]] = [dict(zip(by, label, strict=True)) for label in labels]
        for i, m in additive:
            for row, group in zip(rows, groups, strict=True):
                row[measure_name(m)] = _cell(m, sum(cells[j][i] for j in group))
        out.append({"by": by, "rows": rows})
    return out


def _period_span(plan: QueryPlan, keys: list[Key], cells: list[list[Any]],
                 additive: list[tuple[int, MeasurePlan]]) -> dict[str, Any] | None:
    """The first and last months with public rows, for a trend's axis."""
    index = next((i for i, d in enumerate(plan.dimensions) if d.type is FieldType.PERIOD),
                 None)
    if index is None or not additive or not keys:
        return None
    i, m = additive[0]
    months = sorted({str(k[index]) for k, c in zip(keys, cells, strict=True)
                     if c[i] and k[index] is not None})
    return {"field": plan.dimensions[index].name, "measure": measure_name(m),
            "from": months[0] if months else None, "to": months[-1] if months else None,
            "confidence": 1.0, "note": "the first and last periods with public rows (exact)"}

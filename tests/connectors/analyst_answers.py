"""Answers of the hub's query API (hub.query.release, hub.query.service) recorded on the demo
data, trimmed to a few rows: keys chosen by a DP threshold, a ranked query, a route, an
estimate of a ranked route. Cells keep the hub's exact shape."""

from __future__ import annotations

from typing import Any

__all__ = ["ESTIMATE_ROUTE", "RANKED", "ROUTE", "SELECTED", "cell"]

BOUNDING_NOTE = (
    "each privacy unit counts with at most {m} rows in total; which rows are kept is decided "
    "by a keyed hash of each row, never by arrival order or time, so the rows left out are "
    "spread evenly: values are biased towards zero by the share of rows left out, a bias that "
    "is not in the interval"
)
ABSENT = (
    "keys not listed had too few distinct units to show: a key is listed with probability "
    "1/2 from {t} units and 95% from {a}; absence says nothing more (it may also mean none)"
)
DELTA = "1/10000000"


def cell(value: float, low: float, high: float) -> dict[str, Any]:
    """An additive cell as the hub releases it (hub.query.release._cell)."""
    return {"value": value, "low": low, "high": high, "distinguishable": low > 0 or high < 0}


def _cost(amount: str, delta: str | None = None) -> dict[str, Any]:
    num, _, den = amount.partition("/")
    out: dict[str, Any] = {"measure": "zcdp", "amount": amount,
                           "value": int(num) / int(den or 1)}
    if delta is not None:
        out["delta"] = delta
    return out


def _bounding(m: int) -> dict[str, Any]:
    return {"max_rows": m, "per_period": False, "periods": 1, "groups_per_row": 1,
            "note": BOUNDING_NOTE.format(m=m)}


def _selected_keys(threshold: int, appears: int, listed: int | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "mode": "selected", "mechanism": "discrete_gaussian_threshold",
        "noise_scale": 3.1622776601683795, "threshold": threshold, "appears_50": threshold,
        "appears_95": appears, "keys_per_unit": 1, "cost": _cost("1/20", DELTA),
        "absent": ABSENT.format(t=threshold, a=appears),
    }
    if listed is not None:
        out["listed"] = listed
    return out


BUDGET = {
    "dataset": "bank_alerts", "measure": "zcdp", "opened": "2026-01-01",
    "member": {"spent": "1/5", "left": "4/5"}, "month": {"spent": "1/5", "left": "3/10"},
    "global": {"spent": "1/5", "left": "14/5"}, "per_query": "1/5", "can_spend": "1/5",
    "cumulative": {"measure": "zcdp", "amount": "1/5", "epsilon": 4.271684254649071,
                   "delta": 1.01e-07},
    "delta": {"member": {"spent": DELTA, "left": "99/10000000"},
              "global": {"spent": DELTA, "left": "299/10000000"},
              "per_query": DELTA, "can_spend": DELTA},
}


def _release(query_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "query_id": query_id, "contract_version": 1, "accounting": "zcdp",
        "totals": [], "top": None, "route": None, "postprocess": {
            "nonnegative": True, "consistent_totals": False},
        "query_key": "ab" * 32, "created_at": "2026-12-06T18:30:28Z", "reused": False,
        "budget": BUDGET, **fields,
    }


def _corridor(destination: str, count: tuple[int, int, int],
              amount: tuple[float, float, float]) -> dict[str, Any]:
    return {"origin_country": "RO", "destination_country": destination,
            "count": cell(*count), "sum_amount": cell(*amount)}


#: Corridors from RO: keys chosen by a DP threshold (62,001 candidates), count and sum.
SELECTED = _release(
    "led_12d6f5d31d4130acb370d2e0",
    dataset="bank_alerts", rule="analysts-corridors",
    cost=_cost("1/5", DELTA), charged=_cost("1/5", DELTA),
    epsilon_delta={"epsilon": 3.4194783526397905, "delta": 2e-07},
    dimensions=["origin_country", "destination_country"],
    measures=[
        {"name": "count", "function": "count", "field": None,
         "mechanism": "discrete_gaussian", "noise_scale": 25.819888974716115,
         "halfwidth_95": 51.0, "cost": _cost("3/40")},
        {"name": "sum_amount", "function": "sum", "field": "amount", "clamp": [0.0, 50000.0],
         "mechanism": "discrete_gaussian", "noise_scale": 1290994.4487358057,
         "halfwidth_95": 2530303.0, "cost": _cost("3/40")},
    ],
    rows=[
        _corridor("AE", (67, 16, 118), (249781.0, 0.0, 2780084.0)),
        _corridor("BE", (40, 0, 91), (0.0, 0.0, 1171691.0)),
        _corridor("DE", (36, 0, 87), (0.0, 0.0, 2484236.0)),
        _corridor("ES", (17, 0, 68), (1507059.0, 0.0, 4037362.0)),
        _corridor("FR", (30, 0, 81), (837880.0, 0.0, 3368183.0)),
        _corridor("GB", (288, 237, 339), (0.0, 0.0, 1008238.0)),
        _corridor("GR", (112, 61, 163), (0.0, 0.0, 1881929.0)),
        _corridor("IT", (85, 34, 136), (0.0, 0.0, 2443121.0)),
        _corridor("NL", (97, 46, 148), (0.0, 0.0, 583134.0)),
        _corridor("US", (55, 4, 106), (535478.0, 0.0, 3065781.0)),
    ],
    keys=_selected_keys(18, 23, 10), bounding=_bounding(10), cells=62001,
)


def _indicator(name: str, count: tuple[int, int, int], position: int) -> dict[str, Any]:
    return {"indicator": name, "count": cell(*count),
            "rank": {"position": position, "low": 1, "high": 5, "confidence": 0.9}}


TOP_NOTE = (
    "keys are chosen by OpenDP's noisy top-k; two keys {g} apart by {by} are put in the right "
    "order with probability 90%. Each rank interval is the key's true rank among the listed "
    "keys; all hold together with probability 90%"
)

#: The 5 indicators OpenDP's noisy top-k ranked by count, in its order (not the values').
RANKED = _release(
    "led_5745a9c0e2e3cb211606943c",
    dataset="bank_alerts", rule="analysts-corridors",
    cost=_cost("1/10"), charged=_cost("1/10"),
    epsilon_delta={"epsilon": 2.3483517323564667, "delta": 1e-07},
    dimensions=["indicator"],
    measures=[{"name": "count", "function": "count", "field": None,
               "mechanism": "discrete_gaussian", "noise_scale": 25.819888974716115,
               "halfwidth_95": 51.0, "cost": _cost("3/40")}],
    rows=[
        _indicator("frequent_prepaid_card_purchases", (1069, 1018, 1120), 1),
        _indicator("several_wages_one_account", (1001, 950, 1052), 2),
        _indicator("rapid_movement_of_funds", (1120, 1069, 1171), 3),
        _indicator("linked_to_commercial_sex_ads", (1023, 972, 1074), 4),
        _indicator("cash_deposits_outside_hours", (1027, 976, 1078), 5),
    ],
    keys={"mode": "public", "candidates": 19,
          "absent": "every key of the grid is listed, zeros included", "listed": 5},
    top={"mechanism": "exponential", "noise_scale": 50.000000000045475, "k": 5,
         "score_sensitivity": 10, "monotonic": True, "gap_90": 109.86122886691089,
         "cost": _cost("1/40"), "by": "count", "rank_confidence": 0.9,
         "note": TOP_NOTE.format(g=110, by="count")},
    bounding=_bounding(10), cells=19,
)

STAGES = ["source_country", "transit_country", "destination_country"]
ASSEMBLY = (
    "each unit's stages are taken from all its kept rows: a stage a row leaves empty is "
    "filled from the unit's other rows when they agree on one value (an NGO's record of where "
    "a person came from and the police's record of where they were exploited make one route); "
    "a unit counts once per route"
)
_UNITS = {"function": None, "field": None, "mechanism": "discrete_gaussian",
          "noise_scale": 6.324555320336759, "halfwidth_95": 12.0, "cost": _cost("1/20")}

#: A ranked route query of case records: NG -> LY -> IT, pooled from an NGO and the police.
#: (The recorded release listed one route; the second, rank 2, is added to show a route
#: whose linked_units cannot be told from zero.)
ROUTE = _release(
    "led_092416f07a041c89df11d9fa",
    dataset="case_records", rule="analysts-routes", contract_version=2,
    cost=_cost("1/5", DELTA), charged=_cost("1/5", DELTA),
    epsilon_delta={"epsilon": 3.4194783526397905, "delta": 2e-07},
    dimensions=STAGES,
    measures=[{**_UNITS, "name": "count_units", "function": "count_units"},
              {**_UNITS, "name": "linked_units", "function": "linked_units"}],
    rows=[
        {"source_country": "NG", "transit_country": "LY", "destination_country": "IT",
         "count_units": cell(69, 57, 81), "linked_units": cell(59, 47, 71),
         "rank": {"position": 1, "low": 1, "high": 1, "confidence": 0.9}},
        {"source_country": "VN", "transit_country": None, "destination_country": "GB",
         "count_units": cell(24, 12, 36), "linked_units": cell(3, 0, 15),
         "rank": {"position": 2, "low": 2, "high": 2, "confidence": 0.9}},
    ],
    keys=_selected_keys(18, 23, 2),
    top={"mechanism": "exponential", "noise_scale": 5.0000000000045475, "k": 10,
         "score_sensitivity": 1, "monotonic": True, "gap_90": 10.98612288669109,
         "cost": _cost("1/20"), "by": "count_units", "rank_confidence": 0.9,
         "note": TOP_NOTE.format(g=11, by="count_units")},
    route={"stages": STAGES, "assembly": ASSEMBLY},
    bounding=_bounding(4), cells=15625000,
)

#: The estimate of a ranked route query asked by its ranking's accuracy (top_gap).
ESTIMATE_ROUTE = {
    "dataset": "case_records", "rule": "analysts-routes", "cells": 15625000,
    "cost": _cost("10477/62500", DELTA),
    "epsilon_delta": {"epsilon": 3.1059056061529167, "delta": 2e-07}, "reused": False,
    "measures": [{"name": "count_units", "mechanism": "discrete_gaussian",
                  "noise_scale": 4.884853375270935, "halfwidth_95": 10.0,
                  "cost": _cost("10477/125000")}],
    "keys": {**_selected_keys(19, 25, None), "noise_scale": 3.454112946756073,
             "cost": _cost("10477/250000", DELTA)},
    "top": {"mechanism": "exponential", "noise_scale": 5.46143210361255, "k": 10,
            "score_sensitivity": 1, "monotonic": True, "gap_90": 11.999992845510546,
            "cost": _cost("10477/250000"), "by": "count_units", "rank_confidence": 0.9,
            "note": TOP_NOTE.format(g=12, by="count_units")},
    "bounding": _bounding(4),
    "budget": {**BUDGET, "dataset": "case_records"},
    "budget_after": {"member_left": "52023/62500", "global_left": "164523/62500"},
    "would_be_refused": None,
}

"""Query requests, authorisation (deny by default) and the immutable plan with its key."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry, FieldType, months_between
from hub.errors import BudgetExceeded, Forbidden, InvalidInput, TahubError, UnknownDataset
from hub.governance.policies import (
    Function,
    Policy,
    PolicySet,
    load_policy_file,
    policy_context,
)
from hub.privacy.accounting import Cost, Measure
from hub.query.authorisation import MAX_CELLS, MAX_QUANTILE_CELLS, authorise
from hub.query.plan import KEY_FORMAT, QueryPlan
from hub.query.release import cost_for
from hub.query.request import QueryRequest
from tests.strategies import policy_documents, query_documents

REGISTRY = ContractRegistry.load()

ANALYST = Actor("cli_a", "org_south", "Southbank plc", frozenset({Role.ANALYST}))
DUAL = Actor("cli_d", "org_north", "Northbank plc", frozenset({Role.ANALYST}))  # both rules
PARTNER = Actor("cli_p", "org_south", "Southbank plc", frozenset({Role.PARTNER}))
POLICE = Actor("cli_m", "org_met", "Metropolitan Police", frozenset({Role.PARTNER}))

# Two rules: the first is narrower; the second (members only) allows indicators and quantiles.
POLICY = Policy.model_validate(
    {
        "dataset": "bank_alerts",
        "opened": "2026-01-01",
        "min_partners": 2,
        "contribution_bounds": {"max_rows": 10},
        "budget": {"global": "2", "per_member": "1/2", "per_query": "1/10"},
        "rules": [
            {
                "name": "analysts",
                "who": {"roles": ["analyst"]},
                "dimensions": ["origin_country", "destination_country", "period",
                               "exploitation_stream"],
                "max_dimensions": 2,
                "filters": ["period", "origin_country"],
                "measures": ["count", {"function": "sum", "field": "amount"},
                             {"function": "mean", "field": "amount", "clamp": [0, 10000]},
                             "linked_units"],
            },
            {
                "name": "police",
                "who": {"members": ["Metropolitan Police", "org_north"]},
                "dimensions": ["indicator", "origin_country", "destination_country", "period"],
                "max_dimensions": 3,
                "filters": ["period", "indicator", "destination_country"],
                "measures": ["count", {"function": "quantile", "field": "amount"}],
            },
        ],
    },
    context=policy_context(REGISTRY),
)
CASES = Policy.model_validate(
    {
        "dataset": "case_records",
        "accounting": "pure",
        "opened": "2026-01-01",
        "min_partners": 2,
        "contribution_bounds": {"max_rows": 4},
        "budget": {"global": "4", "per_member": "1", "per_query": "1/2"},
        "rules": [{"name": "routes", "who": {"roles": ["analyst"]},
                   "dimensions": ["source_country", "transit_country", "destination_country",
                                  "sector", "means_of_control", "period"],
                   "max_dimensions": 3, "filters": ["source_country", "means_of_control"],
                   "measures": ["count", "count_units"]}],
    },
    context=policy_context(REGISTRY),
)
POLICIES = PolicySet.of(POLICY, CASES)


def req(**kw: Any) -> QueryRequest:
    body: dict[str, Any] = {"dataset": "bank_alerts", "measures": [{"function": "count"}],
                            "cost": "1/20"}
    body.update(kw)
    return QueryRequest.parse(body)


def plan(actor: Actor = ANALYST, **kw: Any) -> QueryPlan:
    return authorise(POLICIES, REGISTRY, actor, req(**kw))


# -- the request model -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"cost": 0.05}, "cost", "so that they are exact"),
        ({"cost": "-1"}, "cost", "cannot be negative"),
        ({"cost": "0"}, "cost", "must be positive"),
        ({"cost": None}, None, "either cost or target"),
        ({"target": {"ci_halfwidth": 5}}, None, "either cost or target"),
        ({"cost": None, "target": {"ci_halfwidth": 5, "measure": 1}}, None, "target.measure"),
        ({"cost": None, "target": {"ci_halfwidth": -1}}, "target.ci_halfwidth", "greater than"),
        ({"measures": []}, "measures", "at least 1"),
        ({"measures": [{"function": "median"}]}, "measures.0.function", "Input should be"),
        ({"measures": [{"function": "sum"}]}, "measures.0", "sum needs a field"),
        ({"measures": [{"function": "count", "field": "amount"}]}, "measures.0", "takes no field"),
        ({"measures": [{"function": "quantile", "field": "amount"}]}, "measures.0", "quantile"),
        ({"measures": [{"function": "count", "quantile": 0.5}]}, "measures.0", "quantile"),
        ({"measures": [{"function": "quantile", "field": "amount", "quantile": 1}]},
         "measures.0.quantile", "less than 1"),
        ({"measures": [{"function": "count"}, {"function": "count"}]}, None, "twice"),
        ({"group_by": ["period", "period"]}, None, "group_by lists a field twice"),
        ({"filters": {"period": {"from": "2025-06", "to": "2025-01"}}}, "filters.period",
         "'from' is after 'to'"),
        ({"sql": "select 1"}, "sql", "Extra inputs are not permitted"),
    ],
)
def test_malformed_requests_are_invalid_input_naming_the_field(
    body: dict[str, Any], field: str | None, reason: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        req(**body)
    found = [(e.field, e.reason) for e in err.value.errors]
    assert any(
        (field is None or (f or "").startswith(field)) and reason in r for f, r in found
    ), found
    assert reason in err.value.detail or len(found) > 1


def test_a_request_carries_cost_or_target_and_postprocessing() -> None:
    r = req(cost="1/20", postprocess={"consistent_totals": True})
    assert r.amount == Fraction(1, 20) and r.postprocess.nonnegative
    t = req(cost=None, target={"ci_halfwidth": 25.0})
    assert t.amount is None and t.target is not None and t.target.measure == 0
    assert req(cost=1).amount == 1  # integers are exact too


# -- the denial matrix -------------------------------------------------------------------------
# (actor, request overrides) -> (error class, rule or None, field or None)
DENIALS: dict[str, tuple[Actor, dict[str, Any], type[TahubError], str | None, str | None]] = {
    "unknown dataset": (ANALYST, {"dataset": "passports"}, UnknownDataset, None, "dataset"),
    "no policy": (ANALYST, {"dataset": "corridor_flows"}, Forbidden, "policy:none", None),
    "no matching rule": (PARTNER, {}, Forbidden, "policy:bank_alerts:who", None),
    "dimension not listed": (
        ANALYST, {"group_by": ["typology"]}, Forbidden, "analysts:dimensions", "group_by.0"),
    "identifier as dimension": (
        ANALYST, {"group_by": ["subject"]}, Forbidden, "analysts:dimensions", "group_by.0"),
    "partner as dimension": (
        ANALYST, {"group_by": ["period", "partner"]}, Forbidden, "analysts:dimensions",
        "group_by.1"),
    "measure as dimension": (
        ANALYST, {"group_by": ["amount"]}, Forbidden, "analysts:dimensions", "group_by.0"),
    "too many dimensions": (
        ANALYST, {"group_by": ["origin_country", "destination_country", "period"]},
        Forbidden, "analysts:max_dimensions", "group_by"),
    "function not listed": (
        ANALYST, {"measures": [{"function": "count_units"}]}, Forbidden, "analysts:measures",
        "measures.0"),
    "sum of a dimension": (
        ANALYST, {"measures": [{"function": "sum", "field": "typology"}]}, Forbidden,
        "analysts:measures", "measures.0"),
    "quantile only for police": (
        ANALYST, {"measures": [{"function": "quantile", "field": "amount", "quantile": 0.5}]},
        Forbidden, "analysts:measures", "measures.0"),
    "filter not listed": (
        ANALYST, {"filters": {"destination_country": ["GB"]}}, Forbidden, "analysts:filters",
        "filters.destination_country"),
    "filter on identifier": (
        ANALYST, {"filters": {"subject": ["x"]}}, Forbidden, "analysts:filters",
        "filters.subject"),
    # DUAL matches both rules (by role, and as member org_north); both refuse typology:
    # the refusal reported is the first rule's.
    "first refusal of the first rule": (
        DUAL, {"group_by": ["typology"], "measures": [{"function": "linked_units"}]},
        Forbidden, "analysts:dimensions", "group_by.0"),
    "member rule refuses too": (
        POLICE, {"group_by": ["typology"]}, Forbidden, "police:dimensions", "group_by.0"),
    "unknown field": (
        ANALYST, {"group_by": ["iban"]}, InvalidInput, None, "group_by.0"),
    "sql in a field name": (
        ANALYST, {"group_by": ["period; DROP TABLE extracts--"]}, InvalidInput, None,
        "group_by.0"),
    "unknown measure field": (
        ANALYST, {"measures": [{"function": "sum", "field": "amount) from x; --"}]},
        InvalidInput, None, "measures.0.field"),
    "filter value outside the domain": (
        ANALYST, {"filters": {"origin_country": ["XX"]}}, InvalidInput, None,
        "filters.origin_country"),
    "period outside the domain": (
        ANALYST, {"filters": {"period": {"from": "2014-01", "to": "2015-03"}}}, InvalidInput,
        None, "filters.period"),
    "range on a category": (
        ANALYST, {"filters": {"origin_country": {"from": "2025-01", "to": "2025-02"}}},
        InvalidInput, None, "filters.origin_country"),
    "empty filter": (
        ANALYST, {"filters": {"period": []}}, InvalidInput, None, "filters.period"),
    "cost above the per-query cap": (
        ANALYST, {"cost": "0.2"}, BudgetExceeded, "budget:per_query", "cost"),
    "too many cells": (
        POLICE, {"group_by": ["origin_country", "destination_country", "indicator"]},
        InvalidInput, "cells", "group_by"),
}


@pytest.mark.parametrize("case", list(DENIALS), ids=list(DENIALS))
def test_policy_denial_matrix(case: str) -> None:
    actor, overrides, cls, rule, field = DENIALS[case]
    with pytest.raises(TahubError) as err:
        plan(actor, **overrides)
    assert type(err.value) is cls, err.value
    assert err.value.extra.get("rule") == rule
    assert err.value.field == field
    problem = err.value.problem()
    assert problem["status"] in (403, 404, 422)
    if cls is Forbidden:
        assert (rule or "").split(":")[0] in err.value.detail or rule == "policy:none" or \
            "rule" in err.value.detail


def test_refusals_say_why_and_what_is_allowed() -> None:
    with pytest.raises(Forbidden) as err:
        plan(group_by=["subject"])
    assert "dimension 'subject' is not allowed by rule analysts (allowed: origin_country" in \
        err.value.detail
    assert "privacy unit" in err.value.detail
    with pytest.raises(BudgetExceeded) as spent:
        plan(cost="1/5")
    assert (spent.value.extra["requested"], spent.value.extra["remaining"]) == ("1/5", "1/10")
    with pytest.raises(InvalidInput) as cells:
        plan(POLICE, group_by=["origin_country", "destination_country", "indicator"])
    assert "1,000,000" in cells.value.detail and cells.value.extra["cells"] > MAX_CELLS


def test_quantiles_are_limited_to_a_grid_they_can_finish() -> None:
    quantile = [{"function": "quantile", "field": "amount", "quantile": 0.5}]
    assert plan(POLICE, group_by=["indicator"], measures=quantile).cells == 19
    with pytest.raises(InvalidInput) as err:  # 250 x 250 origin/destination cells
        plan(POLICE, group_by=["origin_country", "destination_country"], measures=quantile)
    assert err.value.field == "measures" and err.value.extra["rule"] == "cells:quantile"
    assert err.value.extra["max_cells"] == MAX_QUANTILE_CELLS


def test_a_later_rule_allows_what_the_first_refuses() -> None:
    # org_north is also named in the police rule: it may group by indicator there.
    p = plan(DUAL, group_by=["indicator"], measures=[{"function": "quantile", "field": "amount",
                                                "quantile": 0.9}])
    assert p.rule == "police"
    assert p.measures[0].quantile == 0.9
    assert plan(DUAL, group_by=["period"]).rule == "analysts"


# -- the plan --------------------------------------------------------------------------------
def test_the_plan_holds_public_keys_bounds_and_limits() -> None:
    p = plan(
        group_by=["origin_country", "period"],
        measures=["count", {"function": "sum", "field": "amount"},
                  {"function": "mean", "field": "amount"}],
        filters={"period": {"from": "2025-01", "to": "2025-12"}},
    )
    countries = REGISTRY.get("bank_alerts").field("origin_country").codes
    assert p.dimensions[0].keys == countries  # every public key, in domain order, no null
    assert p.dimensions[1].keys == tuple(months_between("2025-01", "2025-12"))
    assert p.cells == len(countries) * 12 and p.groups_per_row == 1
    assert [(m.function, m.field, m.clamp) for m in p.measures] == [
        (Function.COUNT, None, None),
        (Function.SUM, "amount", (0, 50000)),  # the contract's clamp
        (Function.MEAN, "amount", (0, 10000)),  # narrowed by the policy
    ]
    assert p.filters[0].values == tuple(months_between("2025-01", "2025-12"))
    assert (p.max_rows, p.min_partners, p.accounting) == (10, 2, Measure.ZCDP)
    assert p.cost == Cost(Measure.ZCDP, Fraction(1, 20))
    assert p.limits.per_query == Fraction(1, 10)
    assert (p.unit_field, p.partner_field, p.contract_version) == ("subject", "partner", 2)
    assert isinstance(hash(p), int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.rule = "other"  # type: ignore[misc]


def test_optional_fields_get_a_null_key_unless_filtered() -> None:
    p = plan(group_by=["exploitation_stream"])
    assert p.dimensions[0].keys[-1] is None and p.dimensions[0].size == 4
    route = authorise(POLICIES, REGISTRY, ANALYST, QueryRequest.parse({
        "dataset": "case_records", "group_by": ["source_country", "sector"],
        "measures": [{"function": "count"}], "cost": "1/4",
        "filters": {"source_country": ["NG", "RO", "NG"]},
    }))
    assert route.dimensions[0].keys == ("NG", "RO")  # filtered: no null key, domain order
    assert route.dimensions[1].keys[-1] is None  # sector: new in v2, v1 rows are unknown
    assert route.accounting is Measure.PURE and route.contract_version == 2


def test_a_category_list_dimension_puts_a_row_in_several_cells() -> None:
    p = authorise(POLICIES, REGISTRY, ANALYST, QueryRequest.parse({
        "dataset": "case_records", "group_by": ["means_of_control"],
        "measures": [{"function": "count_units"}], "cost": "1/4"}))
    d = p.dimensions[0]
    assert d.type is FieldType.CATEGORY_LIST and d.max_items == 18 and p.groups_per_row == 18
    narrowed = authorise(POLICIES, REGISTRY, ANALYST, QueryRequest.parse({
        "dataset": "case_records", "group_by": ["means_of_control"],
        "filters": {"means_of_control": ["DebtBondage", "FalsePromises"]},
        "measures": [{"function": "count"}], "cost": "1/4"}))
    assert narrowed.dimensions[0].keys == ("DebtBondage", "FalsePromises")
    assert narrowed.dimensions[0].max_items == 2


# -- the key ---------------------------------------------------------------------------------
BASE_Q: dict[str, Any] = {
    "group_by": ["origin_country", "period"],
    "measures": ["count", {"function": "sum", "field": "amount"}],
    "filters": {"period": {"from": "2025-01", "to": "2025-03"}, "origin_country": ["RO", "BG"]},
    "cost": "0.05",
}


def _key(**changes: Any) -> str:
    body = {**BASE_Q, **changes}
    body["measures"] = [m if isinstance(m, dict) else {"function": m} for m in body["measures"]]
    return plan(**body).key


@pytest.mark.parametrize(
    "same",
    [
        {"cost": "1/20"},
        {"cost": " 0.050 "},
        {"filters": {"origin_country": ["BG", "RO", "RO"],
                     "period": ["2025-03", "2025-01", "2025-02"]}},
        {"postprocess": {"nonnegative": True, "consistent_totals": False}},
    ],
)
def test_equivalent_requests_have_equal_keys(same: dict[str, Any]) -> None:
    assert _key(**same) == _key()


@pytest.mark.parametrize(
    "different",
    [
        {"group_by": ["period", "origin_country"]},
        {"measures": [{"function": "sum", "field": "amount"}, "count"]},
        {"measures": ["count"]},
        {"cost": "0.06"},
        {"filters": {"period": {"from": "2025-01", "to": "2025-04"},
                     "origin_country": ["RO", "BG"]}},
        {"filters": {"period": {"from": "2025-01", "to": "2025-03"}}},
        {"postprocess": {"nonnegative": False}},
        {"postprocess": {"consistent_totals": True}},
        {"cost": None, "target": {"ci_halfwidth": 10.0}},
        {"measures": ["count", {"function": "mean", "field": "amount"}]},
    ],
)
def test_different_requests_have_different_keys(different: dict[str, Any]) -> None:
    assert _key(**different) != _key()


def test_the_key_ignores_who_asked_and_which_rule_allowed_it() -> None:
    body = {"group_by": ["origin_country"], "measures": [{"function": "count"}]}
    by_role = plan(ANALYST, **body)
    by_member = plan(POLICE, **body)
    assert (by_role.rule, by_member.rule) == ("analysts", "police")
    assert by_role.key == by_member.key
    assert len(by_role.key) == 64 and by_role.canonical()["format"] == KEY_FORMAT


# -- property: nothing a matching rule does not list ---------------------------------------
def _allows(policy: Policy, actor: Actor, request: QueryRequest) -> str | None:
    """An independent, set-based reading of the policy: the first rule allowing it all."""
    for rule in policy.rules_for(actor):
        if (
            set(request.group_by) <= set(rule.dimensions)
            and len(request.group_by) <= rule.max_dimensions
            and set(request.filters) <= set(rule.filters)
            and all(rule.measure(m.function, m.field) for m in request.measures)
        ):
            return rule.name
    return None


ACTORS = st.builds(
    Actor,
    st.just("cli"),
    st.sampled_from(["org_north", "org_met"]),
    st.sampled_from(["Northbank plc", "Metropolitan Police"]),
    st.frozensets(st.sampled_from([Role.ANALYST, Role.GOVERNANCE, Role.PARTNER]), min_size=1),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_authorise_never_accepts_what_no_matching_rule_lists(data: st.DataObject) -> None:
    dataset = data.draw(st.sampled_from(["bank_alerts", "corridor_flows", "case_records"]))
    contract = REGISTRY.get(dataset)
    doc = data.draw(policy_documents(contract))
    policy = Policy.model_validate(doc, context=policy_context(REGISTRY))
    actor = data.draw(ACTORS)
    request = QueryRequest.parse(data.draw(query_documents(contract, doc)))
    expected = _allows(policy, actor, request)
    try:
        p = authorise(PolicySet.of(policy), REGISTRY, actor, request)
    except (Forbidden, InvalidInput) as exc:
        if isinstance(exc, Forbidden) and not isinstance(exc, BudgetExceeded):
            assert expected is None
        return
    assert p.rule == expected
    rule = next(r for r in policy.rules if r.name == p.rule)
    assert rule.who.matches(actor)
    assert {d.name for d in p.dimensions} <= set(rule.dimensions)
    assert {f.field for f in p.filters} <= set(rule.filters)
    assert all(rule.measure(m.function, m.field) for m in p.measures)
    unit = contract.privacy_unit.name
    assert unit not in {d.name for d in p.dimensions} | {f.field for f in p.filters}
    assert p.cells <= MAX_CELLS


# -- selected keys, ranked queries, routes, per-period bounds (the shipped policies) ---------
SHIPPED = PolicySet.of(*(
    load_policy_file(Path(__file__).resolve().parents[2] / "policies" / f"{d}.yaml", REGISTRY)
    for d in ("bank_alerts", "case_records", "corridor_flows")))


def shipped(**body: Any) -> QueryPlan:
    return authorise(SHIPPED, REGISTRY, ANALYST, QueryRequest.parse(
        {"measures": ["count"], "cost": "1/10", **body}))


def test_keys_are_selected_only_beyond_the_policys_public_grid() -> None:
    pairs = shipped(dataset="bank_alerts", group_by=["origin_country", "destination_country"])
    assert pairs.selected and pairs.cells == 249 * 249
    assert pairs.selection_share == Fraction(1, 4) and pairs.selection_keys == 1
    one = shipped(dataset="bank_alerts", group_by=["destination_country"])
    assert not one.selected  # 249 cells: every key, zeros included
    forced = shipped(dataset="bank_alerts", group_by=["destination_country"], keys="selected")
    assert forced.selected
    full = shipped(dataset="bank_alerts", group_by=["origin_country", "destination_country"],
                   keys="public")
    assert not full.selected
    assert pairs.key != full.key  # different releases, never served for one another
    # a triple of countries exists only as selected keys (15.6 million cells)
    triple = shipped(dataset="case_records", route=True, measures=["count_units"])
    assert triple.selected and triple.cells == 250**3
    with pytest.raises(InvalidInput) as err:
        shipped(dataset="case_records", route=True, measures=["count_units"], keys="public")
    assert err.value.extra["rule"] == "cells"


def test_a_route_groups_by_its_stages_in_order() -> None:
    plan = shipped(dataset="case_records", route=True, measures=["count_units"])
    assert [d.name for d in plan.dimensions] == [
        "source_country", "transit_country", "destination_country"]
    assert plan.route and plan.max_rows == 4 and not plan.per_period
    two = shipped(dataset="case_records", route=True, measures=["linked_units"],
                  group_by=["source_country", "destination_country"],
                  filters={"source_country": ["NG"]})
    assert [d.name for d in two.dimensions] == ["source_country", "destination_country"]
    assert two.dimensions[0].keys == ("NG",)
    for body, rule, field in (
        ({"group_by": ["destination_country", "source_country"]}, "route:stages", "group_by"),
        ({"group_by": ["source_country", "age_band"]}, "route:stages", "group_by.1"),
        ({"group_by": ["source_country"]}, "route:stages", "group_by"),
        ({"measures": ["count"]}, "route:measures", "measures.0"),
        ({"filters": {"transit_country": ["LY"]},
          "group_by": ["source_country", "destination_country"]}, "route:stages",
         "filters.transit_country"),
        ({"bounding": "per_period"}, None, "bounding"),
    ):
        with pytest.raises(InvalidInput) as err:
            shipped(**{"dataset": "case_records", "route": True,
                       "measures": ["count_units"], **body})
        assert err.value.extra.get("rule") == rule and err.value.field == field


def test_ranked_queries_carry_their_score_sensitivity() -> None:
    by_count = shipped(dataset="bank_alerts", group_by=["indicator"], top={"k": 5})
    assert by_count.top is not None and by_count.top.sensitivity == 10  # max_rows
    by_units = shipped(dataset="bank_alerts", group_by=["indicator"], top={"k": 5},
                       measures=["count_units"])
    assert by_units.top is not None and by_units.top.sensitivity == 1
    by_sum = shipped(dataset="bank_alerts", group_by=["indicator"], top={"k": 5},
                     measures=[{"function": "sum", "field": "amount"}])
    assert by_sum.top is not None and by_sum.top.sensitivity == 10 * 50_000  # euros, m rows
    assert by_sum.top.monotonic
    with pytest.raises(Forbidden) as refused:
        shipped(dataset="bank_alerts", group_by=["indicator"], top={"k": 26})
    assert refused.value.extra["rule"] == "analysts-corridors:top"


def test_a_k_no_budget_can_rank_usefully_is_refused_before_anything_is_spent() -> None:
    plan = shipped(dataset="bank_alerts", group_by=["indicator"], top={"k": 25},
                   measures=[{"function": "sum", "field": "amount"}])
    cost_for(plan)  # 25 keys: two keys 17 units' worth apart are ordered right 90% of times
    assert plan.top is not None
    many = dataclasses.replace(plan, top=dataclasses.replace(plan.top, k=100))
    with pytest.raises(InvalidInput) as err:
        cost_for(many)  # 100 keys: 35 units' worth, even at the per-query cap
    assert err.value.extra["rule"] == "top:k" and err.value.field == "top.k"


def test_trends_bound_per_period_when_that_is_not_much_noisier() -> None:
    year = shipped(dataset="bank_alerts", group_by=["period"],
                   filters={"period": {"from": "2025-01", "to": "2025-12"}})
    assert year.per_period and year.max_rows == 4 and year.periods == 12
    everything = shipped(dataset="bank_alerts", group_by=["period"])  # 192 months
    assert not everything.per_period and everything.max_rows == 10
    forced = shipped(dataset="bank_alerts", group_by=["period"], bounding="per_period")
    assert forced.per_period and forced.periods == 192
    total = shipped(dataset="bank_alerts", group_by=["period"], bounding="total",
                    filters={"period": {"from": "2025-01", "to": "2025-12"}})
    assert not total.per_period and total.max_rows == 10
    filtered = shipped(dataset="bank_alerts", group_by=["indicator"], bounding="per_period",
                       filters={"period": {"from": "2025-01", "to": "2025-03"}})
    assert filtered.per_period and filtered.periods == 3
    with pytest.raises(InvalidInput, match="group by or filter"):
        shipped(dataset="bank_alerts", group_by=["indicator"], bounding="per_period")
    with pytest.raises(Forbidden) as refused:
        shipped(dataset="case_records", group_by=["period"], bounding="per_period")
    assert refused.value.extra["rule"] == "policy:case_records:per_period"

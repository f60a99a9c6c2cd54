"""Authorisation: a query request against the sharing policies -> an immutable plan, or the
rule that refuses it (deny by default).

Domain core: no web framework, database or engine. The path of a query is::

    QueryRequest (structured JSON, never SQL)
      -> authorise(policies, registry, actor, request)   deny by default
      -> QueryPlan (frozen; every name checked against the contract, every key public)
      -> hub.privacy (calibration) -> hub.query.ledger (debit) -> the engine (DuckDB) -> release

Field names in a request are only ever *matched* against the contract: a plan holds the
contract's own names and public domain codes, never text taken from the request, so a name
with SQL in it is simply an unknown field.

Refusals, in the order they are checked (the first one met is raised):

1. unknown dataset -> ``UnknownDataset``; no policy for it -> ``Forbidden(rule="policy:none")``;
2. no rule whose ``who`` matches the actor -> ``Forbidden(rule="policy:<dataset>:who")``;
3. a field the contract does not have, or a filter value outside its public domain ->
   ``InvalidInput(field=...)``;
4. the first matching rule that allows the whole request wins; if none does, the first
   refusal of the first matching rule is raised: ``Forbidden(rule="<rule>:dimensions")``,
   ``"<rule>:max_dimensions"``, ``"<rule>:measures"`` or ``"<rule>:filters"``;
5. more than :data:`MAX_CELLS` cells -> ``InvalidInput(field="group_by")`` (with a quantile,
   more than :data:`MAX_QUANTILE_CELLS` -> ``InvalidInput(field="measures")``); a cost above the
   per-query cap -> ``BudgetExceeded(rule="budget:per_query")``.

Then: keys selected or public (:func:`_selected`), route stages (:func:`_check_route`),
ranking (:func:`_top`) and bounding, total or per period (:func:`_bounding`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from hub.actors import Actor
from hub.contracts.model import Contract, ContractField, ContractRegistry, FieldType, months_between
from hub.contracts.model import Role as FieldRole
from hub.errors import BudgetExceeded, Forbidden, InvalidInput
from hub.governance.policies import (
    Function,
    Policy,
    PolicySet,
    Rule,
    closed_domain_refusal,
    contract_clamp,
    shared_field,
)
from hub.privacy.accounting import Cost, Measure
from hub.privacy.noise import sum_decimals, to_fixed
from hub.query.plan import (
    DimensionPlan,
    FilterPlan,
    MeasurePlan,
    PostProcessPlan,
    QueryPlan,
    TargetPlan,
    TopPlan,
)
from hub.query.request import MeasureSpec, PeriodRange, QueryRequest, Top, label

__all__ = ["MAX_CELLS", "MAX_QUANTILE_CELLS", "authorise"]

#: The most cells (product of the dimensions' key counts) one query may release.
MAX_CELLS = 1_000_000
#: Quantiles run one OpenDP exponential mechanism per cell (~1 ms each on 2 cores).
MAX_QUANTILE_CELLS = 2_500


def _shown(name: str) -> str:
    return repr(name if len(name) <= 64 else name[:64] + "...")


@dataclass(frozen=True, slots=True)
class _Refusal:
    rule: str
    detail: str
    field: str


def authorise(
    policies: PolicySet, registry: ContractRegistry, actor: Actor, request: QueryRequest
) -> QueryPlan:
    """The plan of ``request`` for ``actor``, or the refusal of the rule that denies it."""
    contract = registry.get(request.dataset)  # UnknownDataset(field="dataset")
    dataset = contract.dataset
    contracts = [registry.get(dataset, v) for v in registry.versions(dataset)]
    policy = policies.get(dataset)
    if policy is None:
        raise Forbidden(
            f"no sharing policy is active for {dataset}: nothing can be queried (deny by default)",
            rule="policy:none",
        )
    rules = policy.rules_for(actor)
    if not rules:
        raise Forbidden(
            f"no rule of the {dataset} policy applies to {actor.org_name} "
            f"(roles: {', '.join(sorted(actor.roles)) or 'none'})",
            rule=f"policy:{dataset}:who",
        )
    if request.route and not request.group_by:
        request = request.model_copy(update={"group_by": [f.name for f in contract.route]})
    fields = _resolve_fields(contracts, request)
    filters = _filters(request, fields)
    if request.route:
        _check_route(contract, request, fields)

    refusals = [_refusal(rule, request, fields) for rule in rules]
    chosen = next((r for r, why in zip(rules, refusals, strict=True) if why is None), None)
    if chosen is None:  # every matching rule refuses: report the first rule's reason
        first = next(r for r in refusals if r is not None)
        raise Forbidden(first.detail, rule=first.rule, field=first.field)

    dimensions = tuple(
        _dimension(name, fields[name], filters) for name in request.group_by
    )
    cells = math.prod(d.size for d in dimensions)
    selected = _selected(policy, request, cells)
    if not selected and cells > MAX_CELLS:
        sizes = " x ".join(f"{d.size} ({d.name})" for d in dimensions)
        hint = ("; or let the policy's key selection choose the keys (keys: selected)"
                if policy.key_selection is not None else "")
        raise InvalidInput(
            f"the query would release {cells:,} cells ({sizes}); the most one query may release "
            f"is {MAX_CELLS:,}: filter some dimensions or group by fewer{hint}",
            field="group_by", rule="cells", cells=cells, max_cells=MAX_CELLS,
        )
    quantile_cells = MAX_QUANTILE_CELLS if not selected else 0
    if cells > quantile_cells and any(m.function == "quantile" for m in request.measures):
        where = (f"at most {MAX_QUANTILE_CELLS:,} public cells, and this query has {cells:,}"
                 if not selected else "on public keys only, and this query selects its keys")
        raise InvalidInput(
            f"a quantile is computed cell by cell (OpenDP's exponential mechanism, about a "
            f"millisecond each): {where}; filter some dimensions or group by fewer",
            field="measures", rule="cells:quantile", cells=cells, max_cells=MAX_QUANTILE_CELLS,
        )

    limits = policy.limits
    cost = None
    amount = request.amount
    if amount is not None:
        cost = Cost(policy.accounting, amount)
        if amount > limits.per_query:
            cap = Cost(policy.accounting, limits.per_query)
            raise BudgetExceeded(
                f"the query asks for {cost}, above the per-query cap of {cap} "
                f"set by the {dataset} policy",
                field="cost", rule="budget:per_query", requested=str(amount),
                remaining=str(limits.per_query), measure=policy.accounting.value,
            )
    max_rows, periods, per_period = _bounding(policy, request, contract, fields, filters,
                                              dimensions)
    measures = tuple(_measure(m, chosen, fields) for m in request.measures)
    selection = policy.key_selection
    return QueryPlan(
        dataset=dataset,
        contract=contract,
        contract_version=contract.version,
        rule=chosen.name,
        dimensions=dimensions,
        measures=measures,
        filters=tuple(filters[name] for name in sorted(filters)),
        max_rows=max_rows,
        accounting=policy.accounting,
        limits=limits,
        min_partners=policy.min_partners,
        cost=cost,
        target=None if request.target is None else TargetPlan(
            request.target.ci_halfwidth, request.target.measure, request.target.top_gap,
            request.target.confidence),
        postprocess=PostProcessPlan(
            request.postprocess.nonnegative, request.postprocess.consistent_totals
        ),
        selected=selected,
        selection_share=selection.share if selected and selection else Fraction(0),
        selection_votes=selection.keys_per_unit if selected and selection else 1,
        top=None if request.top is None else _top(request.top, measures, max_rows,
                                                  request.route),
        route=request.route,
        periods=periods,
        per_period=per_period,
        public_rows=_public_rows(policy, filters),
    )


def _public_rows(policy: Policy, filters: Mapping[str, FilterPlan]) -> str | None:
    """The policy's reason its public rows are public, when the query's filters keep only
    those rows (a filter on the policy's field listing only public values), else None."""
    public = policy.public_rows
    if public is None:
        return None
    kept = filters.get(public.field)
    if kept is None or not set(kept.values) <= set(public.values):
        return None
    return public.reason


def _selected(policy: Policy, request: QueryRequest, cells: int) -> bool:
    """Whether the plan's keys are chosen by the DP threshold (policy.key_selection)."""
    selection = policy.key_selection
    if request.keys == "public":
        return False
    if selection is None:
        if request.keys == "selected":
            raise Forbidden(
                f"the {policy.dataset} policy has no key selection (it allows no delta > 0): "
                "ask for public keys, or ask governance to add key_selection and a delta "
                "budget", field="keys", rule=f"policy:{policy.dataset}:key_selection")
        return False
    return request.keys == "selected" or cells > selection.public_up_to


def _check_route(contract: Contract, request: QueryRequest,
                 fields: Mapping[str, _Resolved]) -> None:
    """A route query groups by route stages only, in route order, and counts units."""
    stages = contract.route
    if len(stages) < 2:
        raise InvalidInput(f"{contract.dataset} has no route (no fields with route_stage)",
                           field="route", rule="route:stages")
    order = [f.name for f in stages]
    for i, name in enumerate(request.group_by):
        if fields[name].field.route_stage is None:
            raise InvalidInput(
                f"{_shown(name)} is not a route stage of {contract.dataset} (stages: "
                f"{', '.join(order)})", field=f"group_by.{i}", rule="route:stages")
    if len(request.group_by) < 2:
        raise InvalidInput("a route has at least two stages", field="group_by",
                           rule="route:stages")
    if list(request.group_by) != [n for n in order if n in request.group_by]:
        raise InvalidInput(f"route stages go in route order: {' -> '.join(order)}",
                           field="group_by", rule="route:stages")
    for i, m in enumerate(request.measures):
        if m.function not in (Function.COUNT_UNITS, Function.LINKED_UNITS):
            raise InvalidInput(
                "a route counts people (count_units) and people seen by two or more "
                f"partners (linked_units), not {m.label}", field=f"measures.{i}",
                rule="route:measures")
    for name in request.filters:
        if fields[name].field.route_stage is not None and name not in request.group_by:
            raise InvalidInput(f"filter a route on one of its grouped stages, not {name}",
                               field=f"filters.{name}", rule="route:stages")


def _top(top: Top, measures: Sequence[MeasurePlan], max_rows: int, route: bool) -> TopPlan:
    """The ranking of a ``top`` request: its score's sensitivity (hub.privacy.selection)."""
    m = measures[top.by]
    fn = m.function
    if fn in (Function.COUNT_UNITS, Function.LINKED_UNITS):
        return TopPlan(top.k, top.by, 1)
    if fn is Function.COUNT and not route:
        return TopPlan(top.k, top.by, max_rows)
    if fn is Function.SUM and m.clamp is not None:
        decimals = sum_decimals(m.clamp, m.integer)
        per_row = max(abs(to_fixed(x, decimals)) for x in m.clamp)
        return TopPlan(top.k, top.by, max_rows * per_row, monotonic=m.clamp[0] >= 0)
    raise InvalidInput(f"keys are ranked by a count, distinct units or a sum, not {m.label}",
                       field="top.by", rule="top:by")


def _bounding(policy: Policy, request: QueryRequest, contract: Contract,
              fields: Mapping[str, _Resolved], filters: Mapping[str, FilterPlan],
              dimensions: Sequence[DimensionPlan]) -> tuple[int, int, bool]:
    """(max_rows, periods, per_period): the total bound, or per-period bounding for trends.

    ``auto`` bounds per period when the query groups by the period field, the policy sets
    ``max_rows_per_period`` and that is not much noisier: sqrt(P) * m_p (zCDP, an L2 bound)
    or P * m_p (pure, L1) at most twice the total bound m."""
    per_period = policy.contribution_bounds.max_rows_per_period
    period = next((f for f in contract.fields if f.type is FieldType.PERIOD), None)
    grouped = next((d for d in dimensions if period is not None and d.name == period.name),
                   None)
    if request.route and request.bounding == "per_period":
        raise InvalidInput("a route is assembled from all of a unit's rows: route queries "
                           "bound each unit in total", field="bounding")
    if request.bounding == "total" or request.route:
        return policy.max_rows, 1, False
    if request.bounding == "per_period":
        if per_period is None:
            raise Forbidden(f"the {policy.dataset} policy sets no max_rows_per_period",
                            field="bounding", rule=f"policy:{policy.dataset}:per_period")
        chosen = filters.get(period.name) if period is not None else None
        if grouped is None and chosen is None:
            raise InvalidInput("per-period bounding needs the query to group by or filter "
                               "on the period", field="bounding")
        p = grouped.size if grouped is not None else len(chosen.values if chosen else ())
        return per_period, max(p, 1), True
    if per_period is None or grouped is None:
        return policy.max_rows, 1, False
    p = grouped.size
    noisier = (math.sqrt(p) * per_period if policy.accounting is Measure.ZCDP
               else p * per_period)
    if noisier > 2 * policy.max_rows:
        return policy.max_rows, 1, False
    return per_period, p, True


@dataclass(frozen=True, slots=True)
class _Resolved:
    field: ContractField
    nullable: bool  # optional, or absent from an older contract version


def _resolve_fields(contracts: list[Contract], request: QueryRequest) -> dict[str, _Resolved]:
    """Every field the request names, as the contract defines it; unknown -> InvalidInput."""
    named: list[tuple[str, str]] = [(n, f"group_by.{i}") for i, n in enumerate(request.group_by)]
    named += [(n, f"filters.{n}") for n in request.filters]
    named += [
        (m.field, f"measures.{i}.field") for i, m in enumerate(request.measures) if m.field
    ]
    out: dict[str, _Resolved] = {}
    newest = contracts[-1]
    for name, where in named:
        try:
            found = shared_field(contracts, name)
        except ValueError as exc:
            raise InvalidInput(str(exc), field=where) from None
        if found is None:
            known = ", ".join(f.name for f in newest.fields)
            raise InvalidInput(
                f"unknown field {_shown(name)}: {newest.dataset} has no such field "
                f"(fields: {known})",
                field=where,
            )
        f, missing = found
        out[name] = _Resolved(f, missing or not f.required)
    return out


def _domain_keys(f: ContractField) -> tuple[str, ...]:
    """The public keys of a closed-domain field: its codes, or every month of a period."""
    d = f.domain
    if f.type is FieldType.PERIOD and d is not None:
        return tuple(months_between(str(d.min), str(d.max)))
    return f.codes


def _filters(request: QueryRequest, fields: Mapping[str, _Resolved]) -> dict[str, FilterPlan]:
    """Filter values checked against the public domain of fields that have one."""
    out: dict[str, FilterPlan] = {}
    for name, value in request.filters.items():
        f = fields[name].field
        where = f"filters.{name}"
        if closed_domain_refusal(f) is not None:
            continue  # no rule can allow it; the rule check refuses it with its reason
        domain = _domain_keys(f)
        if isinstance(value, PeriodRange):
            if f.type is not FieldType.PERIOD:
                raise InvalidInput(
                    f"a {{from, to}} range only applies to period fields; {name} is a "
                    f"{f.type.value}: list its codes",
                    field=where,
                )
            values: Sequence[str] = [m for m in domain if value.start <= m <= value.end]
            outside = [b for b in (value.start, value.end) if not domain[0] <= b <= domain[-1]]
        else:
            values = value
            allowed = set(domain)
            outside = [v for v in value if v not in allowed]
        if outside:
            span = f"{domain[0]} to {domain[-1]}" if f.type is FieldType.PERIOD else (
                f"{len(domain)} codes, see the contract"
            )
            raise InvalidInput(
                f"filter value {_shown(outside[0])} is not in the public domain of {name} "
                f"({span})",
                field=where,
            )
        if not values:
            raise InvalidInput(f"the filter on {name} selects nothing", field=where)
        out[name] = FilterPlan(name, f.type, tuple(sorted(set(values))))
    return out


def _field_refusal(rule: Rule, kind: str, allowed: Sequence[str], resolved: _Resolved,
                   what: str, field: str) -> _Refusal | None:
    """Why ``rule`` does not let a request group by or filter on a field (``kind``:
    ``dimensions`` or ``filters``), or None: not listed, or no closed public domain."""
    why = closed_domain_refusal(resolved.field)
    if resolved.field.name in allowed and why is None:
        return None
    return _Refusal(
        f"{rule.name}:{kind}",
        f"{what} is not allowed by rule {rule.name} (allowed: {', '.join(allowed) or 'none'})"
        + (f"; {why}" if why else ""),
        field,
    )


def _refusal(rule: Rule, request: QueryRequest, fields: Mapping[str, _Resolved]) -> _Refusal | None:
    """Why ``rule`` does not allow ``request`` (dimensions, count, measures, filters), or None."""
    for i, name in enumerate(request.group_by):
        refused = _field_refusal(rule, "dimensions", rule.dimensions, fields[name],
                                 f"dimension {_shown(name)}", f"group_by.{i}")
        if refused is not None:
            return refused
    if len(request.group_by) > rule.max_dimensions:
        return _Refusal(
            f"{rule.name}:max_dimensions",
            f"{len(request.group_by)} dimensions requested; rule {rule.name} allows at most "
            f"{rule.max_dimensions} per query",
            "group_by",
        )
    for i, m in enumerate(request.measures):
        allowed_measure = rule.measure(m.function, m.field)
        bad_field = m.field is not None and fields[m.field].field.role is not FieldRole.MEASURE
        if allowed_measure is None or bad_field:
            allowed = ", ".join(label(r.function, r.field) for r in rule.measures)
            return _Refusal(
                f"{rule.name}:measures",
                f"measure {m.label} is not allowed by rule {rule.name} (allowed: {allowed})",
                f"measures.{i}",
            )
    if request.top is not None and request.top.k > rule.max_top_k:
        return _Refusal(
            f"{rule.name}:top",
            f"a ranked query of the top {request.top.k} keys is not allowed by rule "
            f"{rule.name} (" + (f"at most {rule.max_top_k}" if rule.max_top_k
                               else "no ranked queries") + ")",
            "top.k",
        )
    for name in request.filters:
        refused = _field_refusal(rule, "filters", rule.filters, fields[name],
                                 f"filter on {_shown(name)}", f"filters.{name}")
        if refused is not None:
            return refused
    return None


def _dimension(
    name: str, resolved: _Resolved, filters: Mapping[str, FilterPlan]
) -> DimensionPlan:
    f = resolved.field
    keys: tuple[str | None, ...] = _domain_keys(f)
    chosen = filters.get(name)
    if chosen is not None:
        wanted = set(chosen.values)
        keys = tuple(k for k in keys if k in wanted)
    elif resolved.nullable:
        keys = (*keys, None)
    max_items = 1
    if f.type is FieldType.CATEGORY_LIST:
        codes = sum(k is not None for k in keys)
        max_items = max(1, min(f.max_items or len(f.codes), codes))
    return DimensionPlan(name, f.type, keys, max_items)


def _measure(m: MeasureSpec, rule: Rule, fields: Mapping[str, _Resolved]) -> MeasurePlan:
    allowed = rule.measure(m.function, m.field)  # not None: the rule allows every measure
    if m.field is None:
        return MeasurePlan(m.function, None, None, m.quantile)
    f = fields[m.field].field
    lo, hi = contract_clamp(f)
    if allowed is not None and allowed.clamp is not None:  # a policy may only narrow it
        lo, hi = max(lo, allowed.clamp[0]), min(hi, allowed.clamp[1])
    return MeasurePlan(m.function, m.field, (lo, hi), m.quantile, f.type is FieldType.INTEGER)

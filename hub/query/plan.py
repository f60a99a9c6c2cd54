"""A query request, its authorisation against the sharing policies, and the immutable plan.

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

The plan's :attr:`QueryPlan.key` is the SHA-256 of a canonical JSON of what the release
means (see :meth:`QueryPlan.canonical`): equal keys, equal questions, so a stored release
can be returned at no cost.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.actors import Actor
from hub.contracts.model import (
    PERIOD_RE,
    Contract,
    ContractField,
    ContractRegistry,
    FieldType,
    months_between,
)
from hub.contracts.model import Role as FieldRole
from hub.errors import BudgetExceeded, Forbidden, InvalidInput, RowError
from hub.governance.policies import (
    Function,
    Policy,
    PolicySet,
    Rule,
    closed_domain_refusal,
    contract_clamp,
    shared_field,
)
from hub.privacy.accounting import BudgetLimits, Cost, Measure, parse_amount
from hub.privacy.noise import sum_decimals, to_fixed

__all__ = [
    "MAX_CELLS",
    "MAX_QUANTILE_CELLS",
    "DimensionPlan",
    "FilterPlan",
    "Function",
    "MeasurePlan",
    "MeasureSpec",
    "PeriodRange",
    "PostProcess",
    "QueryPlan",
    "QueryRequest",
    "Target",
    "TargetPlan",
    "Top",
    "TopPlan",
    "authorise",
]

#: The most cells (product of the dimensions' key counts) one query may release.
MAX_CELLS = 1_000_000
#: Quantiles run one OpenDP exponential mechanism per cell (~1 ms each on 2 cores).
MAX_QUANTILE_CELLS = 2_500
#: Version of the canonical form hashed into :attr:`QueryPlan.key`.
KEY_FORMAT = 2

Name = Annotated[str, Field(min_length=1, max_length=200)]


# -- the request ------------------------------------------------------------------------------
class MeasureSpec(BaseModel):
    """One measure of a request: ``count``, ``sum`` of a field, a ``quantile``..."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: Function
    field: Name | None = Field(default=None, description="The measure field (sum, mean, quantile).")
    quantile: float | None = Field(
        default=None, gt=0, lt=1, allow_inf_nan=False, description="Which quantile, in (0, 1)."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, value: Any) -> Any:
        return {"function": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _coherent(self) -> MeasureSpec:
        if self.function.needs_field and self.field is None:
            raise ValueError(f"{self.function.value} needs a field")
        if not self.function.needs_field and self.field is not None:
            raise ValueError(f"{self.function.value} takes no field")
        if (self.quantile is None) == (self.function is Function.QUANTILE):
            raise ValueError("quantile (in (0, 1)) is given with, and only with, function quantile")
        return self

    @property
    def label(self) -> str:
        return _label(self.function, self.field)


class PeriodRange(BaseModel):
    """A closed range of months, ``{"from": "2025-01", "to": "2025-12"}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: str = Field(alias="from", pattern=PERIOD_RE.pattern)
    end: str = Field(alias="to", pattern=PERIOD_RE.pattern)

    @model_validator(mode="after")
    def _ordered(self) -> PeriodRange:
        if self.start > self.end:
            raise ValueError("'from' is after 'to'")
        return self


class Target(BaseModel):
    """Ask for an accuracy instead of a cost: the hub solves for the cost (hub.privacy).

    Either ``ci_halfwidth`` (the 95% interval half-width wanted on one measure) or, for a
    ranked query, ``top_gap`` and ``confidence`` (two keys whose scores differ by
    ``top_gap`` are ranked in the right order with probability ``confidence``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ci_halfwidth: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="95% interval half-width.")
    measure: int = Field(default=0, ge=0, description="Index of the measure it applies to.")
    top_gap: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="Ranked queries: the score gap to be ordered right.")
    confidence: float = Field(
        default=0.9, gt=0.5, lt=1, description="Ranked queries: with this probability.")

    @model_validator(mode="after")
    def _one_kind(self) -> Target:
        if (self.ci_halfwidth is None) == (self.top_gap is None):
            raise ValueError("give either ci_halfwidth or top_gap (with confidence)")
        return self


class Top(BaseModel):
    """A ranked query: the ``k`` keys with the largest values of measure ``by``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: int = Field(ge=1, le=1000, description="How many keys to rank.")
    by: int = Field(default=0, ge=0, description="Index of the measure that ranks them.")


class PostProcess(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    nonnegative: bool = Field(default=True, description="Counts are never negative.")
    consistent_totals: bool = Field(
        default=False, description="Totals add up across the requested margins."
    )


class QueryRequest(BaseModel):
    """A structured aggregate query. Never SQL: names are matched against the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: Name
    group_by: list[Name] = Field(default_factory=list, description="Dimensions, in output order.")
    measures: list[MeasureSpec] = Field(min_length=1)
    filters: dict[Name, list[str] | PeriodRange] = Field(
        default_factory=dict,
        description="Field -> public codes (or months); periods also {from, to}.",
    )
    cost: str | None = Field(
        default=None,
        description="Exact privacy cost in the policy's measure: a decimal or fraction string "
        "(\"0.1\", \"1/10\") or an integer; floats are refused as inexact.",
    )
    target: Target | None = None
    postprocess: PostProcess = Field(default_factory=PostProcess)
    keys: Literal["auto", "public", "selected"] = Field(
        default="auto",
        description="public: every key of the grid, zeros included; selected: only keys "
        "chosen by a DP threshold on distinct units; auto: the policy decides by grid size.",
    )
    top: Top | None = Field(default=None, description="Rank the k largest keys.")
    route: bool = Field(
        default=False,
        description="Group by route stages assembled per unit across its rows (origin -> "
        "transit -> destination); group_by empty means every stage of the contract.",
    )
    bounding: Literal["auto", "total", "per_period"] = Field(
        default="auto",
        description="total: max_rows per unit; per_period: max_rows_per_period per unit and "
        "period (trends); auto: per_period when grouping by the period, if the policy has it.",
    )

    @field_validator("cost", mode="before")
    @classmethod
    def _exact_cost(cls, value: Any) -> Any:
        if value is None:
            return None
        amount = parse_amount(value)  # ValueError for floats, negatives, junk
        if amount <= 0:
            raise ValueError("cost must be positive")
        return str(amount)

    @model_validator(mode="after")
    def _coherent(self) -> QueryRequest:
        if len(set(self.group_by)) != len(self.group_by):
            raise ValueError("group_by lists a field twice")
        if len(set(self.measures)) != len(self.measures):
            raise ValueError("measures lists the same measure twice")
        if (self.cost is None) == (self.target is None):
            raise ValueError("give either cost or target (an accuracy), not both or neither")
        if self.target is not None and self.target.measure >= len(self.measures):
            raise ValueError("target.measure is not the index of a requested measure")
        if self.target is not None and self.target.top_gap is not None and self.top is None:
            raise ValueError("target.top_gap is for ranked queries (give top)")
        if self.top is not None and self.top.by >= len(self.measures):
            raise ValueError("top.by is not the index of a requested measure")
        return self

    @property
    def amount(self) -> Fraction | None:
        """The requested cost as an exact amount (floats are refused, see parse_amount)."""
        return None if self.cost is None else parse_amount(self.cost)

    @classmethod
    def parse(cls, data: Any) -> QueryRequest:
        """Validate a decoded JSON body; :class:`InvalidInput` lists every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = [
                RowError(".".join(str(p) for p in e["loc"]) or None,
                         e["msg"].removeprefix("Value error, "))
                for e in exc.errors(include_url=False)
            ]
            shown = "; ".join(str(e) for e in errors[:3])
            more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
            raise InvalidInput(
                f"the query is invalid: {shown}{more}",
                field=errors[0].field, errors=errors,
            ) from None


# -- the plan ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DimensionPlan:
    """A group-by field and every key it releases (zeros included), in domain order.

    ``None`` is the unknown key: present when the field is optional or absent from an older
    contract version (whose rows count as unknown), unless a filter restricts the field.
    ``max_items`` is how many keys of this dimension one row can fall in: 1, or a
    category_list's ``max_items`` (bounded by the number of keys).
    """

    name: str
    type: FieldType
    keys: tuple[str | None, ...]
    max_items: int = 1

    @property
    def size(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class MeasurePlan:
    """``clamp`` is the contract's clamp narrowed by the policy (None for counts)."""

    function: Function
    field: str | None
    clamp: tuple[float, float] | None
    quantile: float | None = None
    integer: bool = False  # the field holds integers

    @property
    def label(self) -> str:
        return _label(self.function, self.field)


@dataclass(frozen=True, slots=True)
class FilterPlan:
    """Rows whose ``field`` is one of ``values`` (sorted; period ranges expanded to months).

    For a category_list field a row matches when any of its codes is listed.
    """

    field: str
    type: FieldType
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TargetPlan:
    ci_halfwidth: float | None
    measure: int
    top_gap: float | None = None
    confidence: float = 0.9


@dataclass(frozen=True, slots=True)
class TopPlan:
    """Rank the ``k`` largest keys by measure number ``by``; ``sensitivity`` is how far one
    unit can move one key's score (see hub.privacy.selection)."""

    k: int
    by: int
    sensitivity: int
    monotonic: bool = True


@dataclass(frozen=True, slots=True)
class PostProcessPlan:
    nonnegative: bool = True
    consistent_totals: bool = False


@dataclass(frozen=True)
class QueryPlan:
    """What one authorised query computes, and under which limits. Immutable and hashable.

    Equality and hashing ignore ``contract`` (a pydantic model); ``contract_version`` and
    the keys carry what matters of it.
    """

    dataset: str
    contract: Contract = field(compare=False, hash=False, repr=False)
    contract_version: int
    rule: str
    dimensions: tuple[DimensionPlan, ...]
    measures: tuple[MeasurePlan, ...]
    filters: tuple[FilterPlan, ...]
    max_rows: int
    accounting: Measure
    limits: BudgetLimits
    min_partners: int
    cost: Cost | None
    target: TargetPlan | None
    postprocess: PostProcessPlan
    #: keys chosen by a DP threshold (hub.privacy.selection) instead of the public grid
    selected: bool = False
    selection_share: Fraction = Fraction(0)
    #: keys each unit votes for in the selection (policy key_selection.keys_per_unit)
    selection_votes: int = 1
    top: TopPlan | None = None
    #: group by route stages assembled per unit (the engine completes each unit's stages)
    route: bool = False
    #: per-period bounding: ``max_rows`` per unit in each of ``periods`` periods
    periods: int = 1
    per_period: bool = False

    @property
    def cells(self) -> int:
        """The size of the public key grid (with selected keys, only candidates of it)."""
        return math.prod(d.size for d in self.dimensions)

    @property
    def keys_per_unit(self) -> int:
        """How many keys one unit's kept rows can fall in ((row, key) pairs)."""
        return self.max_rows * self.groups_per_row * self.periods

    @property
    def selection_keys(self) -> int:
        """L0 of key selection: the keys one unit votes for, at most those it can touch."""
        return min(self.selection_votes, self.keys_per_unit)

    @property
    def unit_field(self) -> str:
        return self.contract.privacy_unit.name

    @property
    def partner_field(self) -> str | None:
        return next((f.name for f in self.contract.fields if f.role is FieldRole.PARTNER), None)

    @property
    def groups_per_row(self) -> int:
        """Most cells one row falls in (category_list dimensions put a row in several)."""
        return math.prod(d.max_items for d in self.dimensions)

    def canonical(self) -> dict[str, Any]:
        """The semantic content hashed into :attr:`key`.

        Order matters where it changes the output: dimensions (column order) and measures
        (value order) keep the request's order. Filters are a set: keyed by field, values
        sorted and deduplicated, period ranges expanded to months (so ``{"from": "2025-01",
        "to": "2025-03"}`` equals the three months listed). Numbers that came as floats
        (clamps, quantiles, a target) are written as exact fractions. Left out: the rule
        that allowed it and the budgets (they decide *whether* it runs, not what it
        releases); the actor (a release is the same answer for every member allowed it).
        """
        return {
            "format": KEY_FORMAT,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "dimensions": [[d.name, list(d.keys)] for d in self.dimensions],
            "measures": [
                {
                    "function": m.function.value,
                    "field": m.field,
                    "clamp": None if m.clamp is None else [_exact(x) for x in m.clamp],
                    "quantile": None if m.quantile is None else _exact(m.quantile),
                }
                for m in self.measures
            ],
            "filters": {f.field: list(f.values) for f in self.filters},
            "max_rows": self.max_rows,
            "accounting": self.accounting.value,
            "cost": None if self.cost is None else str(self.cost.amount),
            "target": None if self.target is None else {
                "ci_halfwidth": None if self.target.ci_halfwidth is None
                else _exact(self.target.ci_halfwidth),
                "measure": self.target.measure,
                "top_gap": None if self.target.top_gap is None else _exact(self.target.top_gap),
                "confidence": None if self.target.top_gap is None
                else _exact(self.target.confidence),
            },
            "postprocess": {
                "nonnegative": self.postprocess.nonnegative,
                "consistent_totals": self.postprocess.consistent_totals,
            },
            "keys": "selected" if self.selected else "public",
            "selection_share": str(self.selection_share) if self.selected else None,
            "selection_votes": self.selection_votes if self.selected else None,
            "top": None if self.top is None else {"k": self.top.k, "by": self.top.by},
            "route": self.route,
            "bounding": {"per_period": self.per_period, "periods": self.periods},
        }

    @property
    def key(self) -> str:
        """sha256 (hex) of the canonical JSON (sorted keys, no spaces, ASCII)."""
        text = json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def _exact(x: float) -> str:
    return str(Fraction(x))


def _label(function: Function, field_name: str | None) -> str:
    return function.value + (f" of {field_name}" if field_name else "")


def _shown(name: str) -> str:
    return repr(name if len(name) <= 64 else name[:64] + "...")


# -- authorisation ----------------------------------------------------------------------------
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
    )


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


def _refusal(rule: Rule, request: QueryRequest, fields: Mapping[str, _Resolved]) -> _Refusal | None:
    """Why ``rule`` does not allow ``request`` (dimensions, count, measures, filters), or None."""
    for i, name in enumerate(request.group_by):
        why = closed_domain_refusal(fields[name].field)
        if name not in rule.dimensions or why is not None:
            allowed = ", ".join(rule.dimensions) or "none"
            reason = f"; {why}" if why else ""
            return _Refusal(
                f"{rule.name}:dimensions",
                f"dimension {_shown(name)} is not allowed by rule {rule.name} "
                f"(allowed: {allowed}){reason}",
                f"group_by.{i}",
            )
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
            allowed = ", ".join(_label(r.function, r.field) for r in rule.measures)
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
        why = closed_domain_refusal(fields[name].field)
        if name not in rule.filters or why is not None:
            allowed = ", ".join(rule.filters) or "none"
            reason = f"; {why}" if why else ""
            return _Refusal(
                f"{rule.name}:filters",
                f"filter on {_shown(name)} is not allowed by rule {rule.name} "
                f"(allowed: {allowed}){reason}",
                f"filters.{name}",
            )
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

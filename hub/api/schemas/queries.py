"""Queries: costs, balances, results, estimates, history and the rules that apply (docs/queries.md).

Rows are objects keyed by the dimensions' and the measures' names, which depend on the
query: they are typed as open objects, with each cell's shape described.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "Balance",
    "Bounding",
    "Cost",
    "EpsilonDelta",
    "Estimate",
    "KeysInfo",
    "LedgerEntry",
    "MeasureInfo",
    "MyPolicy",
    "QueryResult",
]


class Cost(BaseModel):
    """An exact privacy amount (``hub.privacy.accounting.Cost``)."""

    measure: str = Field(description="zcdp (rho) or pure (epsilon)")
    amount: str = Field(description="Exact: a decimal or a fraction.", examples=["1/100"])
    value: float = Field(description="The amount as a float, for reading only.")
    delta: str | SkipJsonSchema[None] = Field(
        default=None, description="The exact delta, when not 0 (key selection).")


class EpsilonDelta(BaseModel):
    """The (epsilon, delta)-DP an amount implies, for reading only."""

    epsilon: float
    delta: float


class SpentLeft(BaseModel):
    spent: str | None
    left: str | None = Field(description="null: no such limit.")


class DeltaBalance(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    member: SpentLeft
    global_: SpentLeft = Field(alias="global")
    per_query: str | None
    can_spend: str | None


class Cumulative(BaseModel):
    """All members' loss on the dataset since it opened."""

    measure: str
    amount: str | None
    epsilon: float
    delta: float


class Balance(BaseModel):
    """An organisation's budget on one dataset (``hub.privacy.budget.Balance``): exact."""

    model_config = ConfigDict(populate_by_name=True)

    dataset: str
    measure: str
    opened: str = Field(description="ISO date the dataset's budget opened.")
    member: SpentLeft
    month: SpentLeft
    global_: SpentLeft = Field(alias="global")
    per_query: str | None
    can_spend: str | None = Field(description="The most the next query may cost.")
    cumulative: Cumulative
    delta: DeltaBalance | SkipJsonSchema[None] = Field(
        default=None, description="Present when the policy allows a delta (key selection).")


class MeasureInfo(BaseModel):
    """How one measure is released: mechanism, noise and its share of the cost."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(examples=["count", "sum_amount", "quantile_50_amount"])
    function: str | SkipJsonSchema[None] = None
    field: str | None = None
    clamp: list[float] | SkipJsonSchema[None] = None
    quantile: float | SkipJsonSchema[None] = None
    mechanism: str
    noise_scale: float
    count_noise_scale: float | SkipJsonSchema[None] = None
    halfwidth_95: float | None = Field(
        description="Every cell's 95% half-width; null for means and quantiles.")
    candidates: int | SkipJsonSchema[None] = None
    note: str | SkipJsonSchema[None] = None
    cost: Cost


class KeysInfo(BaseModel):
    """How the keys (rows) were chosen, and what an absent key means."""

    model_config = ConfigDict(extra="allow")

    mode: str = Field(description="public, selected, or present (an exact answer over public "
                      "rows: the keys that hold rows)")
    absent: str
    candidates: int | SkipJsonSchema[None] = None
    listed: int | SkipJsonSchema[None] = Field(
        default=None, description="Rows released (results only).")
    mechanism: str | SkipJsonSchema[None] = None
    noise_scale: float | SkipJsonSchema[None] = None
    threshold: int | SkipJsonSchema[None] = None
    appears_50: int | SkipJsonSchema[None] = None
    appears_95: int | SkipJsonSchema[None] = None
    keys_per_unit: int | SkipJsonSchema[None] = None
    cost: Cost | SkipJsonSchema[None] = None


class TopInfo(BaseModel):
    """A ranked query: OpenDP's noisy top-k (mechanism ``none``: the exact ranking of public
    rows)."""

    model_config = ConfigDict(extra="allow")

    mechanism: str
    k: int
    by: str
    noise_scale: float
    gap_90: float
    rank_confidence: float
    note: str
    cost: Cost


class RouteInfo(BaseModel):
    stages: list[str]
    assembly: str


class Bounding(BaseModel):
    """How rows were bounded per privacy unit, and the bias that remains."""

    model_config = ConfigDict(extra="allow")

    max_rows: int | None = Field(description="null: not bounded (an exact answer over "
                                 "public rows)")
    per_period: bool
    periods: int | None
    groups_per_row: int
    note: str


class PeriodSpan(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    field: str
    measure: str
    from_: str | None = Field(alias="from")
    to: str | None
    confidence: float
    note: str


class PostProcessInfo(BaseModel):
    nonnegative: bool
    consistent_totals: bool


class Totals(BaseModel):
    by: list[str] = Field(description="The dimensions the totals are by; [] is the grand total.")
    rows: list[dict[str, Any]]


_ROWS = ("One object per released key: each dimension's key (null: unknown), then each "
         "measure's cell {value, low, high, distinguishable} (a quantile's: {value}), and for a "
         "ranked query rank {position, low, high, confidence}.")


class ExactInfo(BaseModel):
    """An exact answer: the query's filters keep only rows its policy declares public."""

    reason: str = Field(description="Why the policy declares those rows public.")
    filters: dict[str, list[str]]
    note: str


class QueryResult(BaseModel):
    """A differentially private release (``POST /v1/queries``, ``GET /v1/queries/{id}``)."""

    model_config = ConfigDict(extra="allow")

    query_id: str
    dataset: str
    contract_version: int
    rule: str = Field(description="The policy rule that allowed the query.")
    accounting: str
    reused: bool = Field(description="A stored release answered again, free.")
    cost: Cost = Field(description="What the release cost when it was computed.")
    charged: Cost = Field(description="What this call charged (zero when reused).")
    epsilon_delta: EpsilonDelta
    dimensions: list[str]
    measures: list[MeasureInfo]
    rows: list[dict[str, Any]] = Field(description=_ROWS)
    totals: list[Totals]
    keys: KeysInfo | SkipJsonSchema[None] = None
    top: TopInfo | None = None
    route: RouteInfo | None = None
    bounding: Bounding
    period_span: PeriodSpan | None = None
    postprocess: PostProcessInfo
    cells: int
    exact: ExactInfo | SkipJsonSchema[None] = Field(
        default=None, description="Present when the answer is exact (public rows, no noise, "
        "no cost: docs/queries.md).")
    query_key: str
    budget: Balance | None = Field(description="The caller's balance after this call; null "
                                   "when no policy applies any more.")
    created_at: str


class BudgetAfter(BaseModel):
    member_left: str
    global_left: str


class WouldBeRefused(BaseModel):
    rule: str | None
    detail: str


class Estimate(BaseModel):
    """Cost and expected accuracy of a query (``POST /v1/queries/estimate``); free."""

    dataset: str
    rule: str
    cells: int
    cost: Cost
    epsilon_delta: EpsilonDelta
    reused: bool = Field(description="The query would return a stored release, free.")
    measures: list[MeasureInfo]
    keys: KeysInfo
    top: TopInfo | None
    route: RouteInfo | None
    bounding: Bounding
    budget: Balance
    budget_after: BudgetAfter
    would_be_refused: WouldBeRefused | None = Field(
        description="A budget or min_partners refusal the query would meet.")


class LedgerEntry(BaseModel):
    """One query of the caller's organisation: its shape and cost, never a value."""

    id: str
    dataset: str
    cost: Cost
    status: str = Field(description="charged, released or failed")
    created_at: str
    released_at: str | None
    shape: dict[str, Any] = Field(description="The canonical plan: dimension names and key "
                                  "counts, measures, filters; never a data value.")


class KeySelectionRule(BaseModel):
    public_up_to: int
    share: str
    keys_per_unit: int


class MeasureRule(BaseModel):
    function: str
    field: str | None
    clamp: list[float] | None


class Rule(BaseModel):
    name: str
    dimensions: list[str]
    max_dimensions: int | None
    max_top_k: int | None
    filters: list[str]
    measures: list[MeasureRule]
    accounting: str
    per_query: str
    min_partners: int


class MyPolicy(BaseModel):
    """A dataset's policy as it applies to the caller (``GET /v1/policies/mine``)."""

    dataset: str
    accounting: str
    max_rows: int
    max_rows_per_period: int | None
    min_partners: int
    per_query: str
    delta_per_query: str
    key_selection: KeySelectionRule | None
    route: list[str] = Field(description="The contract's route stages, origin first.")
    opened: str
    rules: list[Rule]

"""What an analyst asks: a structured aggregate query, never SQL (validated, not yet allowed).

Domain core: pydantic models of the JSON body of ``POST /v1/queries`` and
``/v1/queries/estimate`` (docs/queries.md). Field names are only ever *matched* against the
contract later (:mod:`hub.query.authorisation`), so a name with SQL in it is simply unknown.
"""

from __future__ import annotations

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

from hub.contracts.model import PERIOD_RE
from hub.errors import invalid_body
from hub.governance.policies import Function
from hub.privacy.accounting import parse_amount

__all__ = [
    "Function",
    "MeasureSpec",
    "PeriodRange",
    "PostProcess",
    "QueryRequest",
    "Target",
    "Top",
    "label",
]

Name = Annotated[str, Field(min_length=1, max_length=200)]


def label(function: Function, field_name: str | None) -> str:
    """``count``, ``sum of amount``: how refusals name a measure."""
    return function.value + (f" of {field_name}" if field_name else "")


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
        return label(self.function, self.field)


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


def _shorthands(schema: dict[str, Any]) -> None:
    """The JSON schema says what the validators accept: a measure as its function's name
    alone (``"count"``), a cost as an integer too."""
    properties = schema["properties"]
    plain = [f.value for f in Function if not f.needs_field]
    properties["measures"]["items"] = {
        "anyOf": [{"type": "string", "enum": plain}, properties["measures"]["items"]]}
    properties["cost"]["anyOf"].insert(1, {"type": "integer", "minimum": 1})


class QueryRequest(BaseModel):
    """A structured aggregate query. Never SQL: names are matched against the contract."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_shorthands)

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
            raise invalid_body("the query is invalid", exc) from None



"""Sharing policies: who may ask what of which dataset, at what privacy cost (deny by default).

One YAML file per dataset, ``policies/<dataset>.yaml``, validated by :class:`Policy` against
the contract registry (pass ``policy_context(registry)`` as the validation context; the
dataset's contracts are looked up once and every rule is checked against them, so each
error carries the line of the offending entry). ``docs/policies.md`` documents every key.

* :class:`Policy` - one dataset's policy: accounting measure, opening date, minimum number of
  contributing partners, contribution bound, budgets (a
  :class:`hub.privacy.accounting.BudgetLimits`) and rules.
* :class:`Rule` - who (roles and/or members) may group by which dimensions (at most
  ``max_dimensions`` at once), filter on which fields and compute which measures.
* :class:`PolicySet` - an immutable snapshot: the active policy of each dataset plus the
  errors of the files that were refused.

Domain core: no web framework, database or engine. :mod:`hub.governance.policystore` keeps
the active versions loaded and current.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from hub.actors import Actor
from hub.actors import Role as ActorRole
from hub.contracts.model import Contract, ContractField, ContractRegistry, FieldType
from hub.contracts.model import Role as FieldRole
from hub.errors import ConfigError, RowError
from hub.privacy.accounting import BudgetLimits, Measure, parse_amount
from hub.yamlfile import validate_document

__all__ = [
    "MAX_TOP_K",
    "Budget",
    "ContributionBounds",
    "DeltaBudget",
    "Function",
    "KeySelection",
    "MeasureRule",
    "Policy",
    "PolicyError",
    "PolicyProblem",
    "PolicySet",
    "PublicRows",
    "Rule",
    "Who",
    "closed_domain_refusal",
    "contract_clamp",
    "default_policies_dir",
    "load_policy_file",
    "parse_policy_text",
    "policy_context",
    "policy_json_schema",
    "policy_schema_text",
    "shared_field",
]

RULE_NAME_RE = r"^[a-z][a-z0-9_-]*$"
#: Largest per-unit row bound a policy may set: beyond it the noise drowns every cell.
MAX_ROWS_CAP = 1000
#: Most keys a ranked query may ever ask for (each costs a share of the selection).
MAX_TOP_K = 100
_CONTRACTS = "_contracts"  # context key: the dataset's contract versions, oldest first


class PolicyError(ConfigError):
    """A policy file breaks the policy schema or does not fit its dataset's contract."""

    code = "policy_invalid"
    status = 422
    title = "Sharing policy is invalid"


class Function(StrEnum):
    """The aggregate functions a policy can allow and a query can ask for."""

    COUNT = "count"  # rows per group
    SUM = "sum"  # sum of a clamped measure per group
    MEAN = "mean"  # noisy sum / noisy count
    COUNT_UNITS = "count_units"  # distinct privacy units per group
    QUANTILE = "quantile"  # a quantile of a clamped measure (exponential mechanism)
    LINKED_UNITS = "linked_units"  # privacy units seen at >= 2 distinct partners

    @property
    def needs_field(self) -> bool:
        return self in (Function.SUM, Function.MEAN, Function.QUANTILE)


def policy_context(registry: ContractRegistry) -> dict[str, Any]:
    """A fresh validation context for one policy document (never share it between two)."""
    return {"registry": registry}


def _contracts(info: ValidationInfo) -> list[Contract] | None:
    ctx = info.context or {}
    found = ctx.get(_CONTRACTS)
    return list(found) if found else None


# -- the shape of one field across contract versions --------------------------------------
def shared_field(contracts: list[Contract], name: str) -> tuple[ContractField, bool] | None:
    """The newest definition of field ``name`` and whether some version lacks it.

    A field used by a policy or a plan must exist in the newest contract version; a version
    without it (e.g. ``case_records.sector``, new in v2) contributes its rows as unknown
    (null). A field whose type, role or domain differs between versions is refused, since
    one plan must mean the same thing for every extract. Returns None if the newest version
    has no such field; raises ``ValueError`` if the versions disagree.
    """
    newest = contracts[-1]
    try:
        f = newest.field(name)
    except KeyError:
        return None
    missing = False
    for c in contracts[:-1]:
        try:
            old = c.field(name)
        except KeyError:
            missing = True
            continue
        if (old.type, old.role, old.domain, old.max_items) != (
            f.type, f.role, f.domain, f.max_items
        ):
            raise ValueError(
                f"field {name!r} is defined differently in {c.dataset} v{c.version} and "
                f"v{newest.version}; a policy cannot use it across both"
            )
    return f, missing


def contract_clamp(f: ContractField) -> tuple[float, float]:
    """The public clamp range of a measure field (every contract measure has one)."""
    if f.domain is None or f.domain.clamp is None:
        raise ValueError(f"{f.name!r} has no clamp range in its contract")
    return f.domain.clamp


def closed_domain_refusal(f: ContractField) -> str | None:
    """Why ``f`` can never be a dimension or a filter, or None if it can be one."""
    if f.role is FieldRole.PRIVACY_UNIT:
        return (
            f"{f.name!r} is the privacy unit: grouping or filtering by it would release "
            "each unit's own data"
        )
    if f.type is FieldType.TOKEN:
        return f"{f.name!r} is a pseudonymised identifier, not a public category"
    if f.role is FieldRole.PARTNER:
        return (
            f"{f.name!r} is the partner field: per-partner results would reveal each "
            "member's own contribution, which pooling exists to hide"
        )
    if f.role is FieldRole.MEASURE:
        return f"{f.name!r} is a measure, not a dimension; it has no closed list of group keys"
    if f.type not in (FieldType.CATEGORY, FieldType.CATEGORY_LIST, FieldType.PERIOD):
        return f"{f.name!r} has no closed public domain (category, category_list or period)"
    return None


def _dimension_like(name: str, info: ValidationInfo, what: str) -> str:
    contracts = _contracts(info)
    if contracts is None:
        return name
    found = shared_field(contracts, name)
    if found is None:
        raise ValueError(f"{contracts[-1].dataset} has no field {name!r}")
    why = closed_domain_refusal(found[0])
    if why is not None:
        raise ValueError(f"{why}; it can never be a {what}")
    return name


def _as_dimension(name: str, info: ValidationInfo) -> str:
    return _dimension_like(name, info, "dimension")


def _as_filter(name: str, info: ValidationInfo) -> str:
    return _dimension_like(name, info, "filter")


_Dimension = Annotated[str, AfterValidator(_as_dimension)]
_Filter = Annotated[str, AfterValidator(_as_filter)]


# -- amounts --------------------------------------------------------------------------------
def _amount(value: Any) -> Fraction:
    return parse_amount(value)


Amount = Annotated[
    Fraction,
    BeforeValidator(_amount),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?(/[1-9]\d*)?\s*$"},
                {"type": "integer", "minimum": 0},
            ],
            "description": "An exact amount: a decimal or fraction string, or an integer.",
        }
    ),
]


# -- the model ------------------------------------------------------------------------------
class Who(BaseModel):
    """Who a rule applies to: any listed role, or any listed member. Empty means nobody."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    roles: list[ActorRole] = Field(default_factory=list, description="Roles a client holds.")
    members: list[str] = Field(
        default_factory=list,
        description="Member organisations, by organisation id (org_...) or exact name.",
    )

    def matches(self, actor: Actor) -> bool:
        if actor.org in self.members or actor.org_name in self.members:
            return True
        return any(role in actor.roles for role in self.roles)


class MeasureRule(BaseModel):
    """One allowed measure. A plain string (``count``) is a measure without a field."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: Function
    field: str | None = Field(default=None, description="The measure field (sum, mean, quantile).")
    clamp: tuple[float, float] | None = Field(
        default=None, description="Narrows the contract's clamp range for this measure."
    )

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, value: Any) -> Any:
        return {"function": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _fits(self, info: ValidationInfo) -> MeasureRule:
        fn = self.function
        if fn.needs_field and self.field is None:
            raise ValueError(f"{fn.value} needs a field (a measure of the contract)")
        if not fn.needs_field and (self.field is not None or self.clamp is not None):
            raise ValueError(f"{fn.value} takes no field and no clamp")
        if self.clamp is not None and self.clamp[0] > self.clamp[1]:
            raise ValueError("clamp must be [low, high] with low <= high")
        contracts = _contracts(info)
        if contracts is None or self.field is None:
            return self
        found = shared_field(contracts, self.field)
        if found is None:
            raise ValueError(f"{contracts[-1].dataset} has no field {self.field!r}")
        f = found[0]
        if f.role is not FieldRole.MEASURE or f.type not in (FieldType.INTEGER, FieldType.NUMBER):
            raise ValueError(
                f"{fn.value} needs a measure field (integer or number); {f.name!r} is a "
                f"{f.role.value} of type {f.type.value}"
            )
        lo, hi = contract_clamp(f)
        if self.clamp is not None and (self.clamp[0] < lo or self.clamp[1] > hi):
            raise ValueError(
                f"clamp {list(self.clamp)} must lie inside the contract's clamp [{lo:g}, {hi:g}]"
                " (a policy may only narrow it)"
            )
        return self

    @property
    def signature(self) -> tuple[Function, str | None]:
        return (self.function, self.field)


def _plain_measures_in_schema(schema: dict[str, Any]) -> None:
    """Editors should accept ``- count`` as well as ``- {function: count}``."""
    items = schema["properties"]["measures"]["items"]
    plain = [f.value for f in Function if not f.needs_field]
    schema["properties"]["measures"]["items"] = {
        "anyOf": [{"type": "string", "enum": plain}, items]
    }


class Rule(BaseModel):
    """Who may ask which questions. The first rule that allows a whole request is used."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, json_schema_extra=_plain_measures_in_schema
    )

    name: Annotated[str, Field(pattern=RULE_NAME_RE, max_length=63)]
    who: Who = Field(description="Roles and/or members the rule applies to; empty: nobody.")
    dimensions: list[_Dimension] = Field(default_factory=list, description="Fields to group by.")
    max_dimensions: int = Field(ge=1, description="Most dimensions in one query.")
    filters: list[_Filter] = Field(
        default_factory=list, description="Fields a query may filter on."
    )
    measures: list[MeasureRule] = Field(min_length=1)
    max_top_k: int = Field(
        default=0, ge=0, le=MAX_TOP_K,
        description="Most keys a ranked (top) query may ask for; 0: no ranked queries.",
    )

    @field_validator("dimensions", "filters")
    @classmethod
    def _once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a field is listed twice")
        return value

    @field_validator("measures")
    @classmethod
    def _unique_measures(cls, value: list[MeasureRule]) -> list[MeasureRule]:
        seen: set[tuple[Function, str | None]] = set()
        for m in value:
            if m.signature in seen:
                shown = m.function.value + (f" of {m.field}" if m.field else "")
                raise ValueError(f"measure {shown} is listed twice")
            seen.add(m.signature)
        return value

    def measure(self, function: Function, field_name: str | None) -> MeasureRule | None:
        return next((m for m in self.measures if m.signature == (function, field_name)), None)


class ContributionBounds(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_rows: int = Field(
        ge=1,
        le=MAX_ROWS_CAP,
        description="Rows one privacy unit may contribute in total, across all partners; "
        "which rows are kept is decided by a keyed hash of each row, never by arrival order.",
    )
    max_rows_per_period: int | None = Field(
        default=None, ge=1, le=MAX_ROWS_CAP,
        description="For trends (queries grouped by the period field): rows one unit may "
        "contribute per period instead, so that bounding removes no more of late months "
        "than of early ones. Absent: trends use max_rows too.",
    )


class DeltaBudget(BaseModel):
    """Deltas (approximate DP) that key selection may spend; exact, never renewed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    global_total: Amount = Field(alias="global", description="All members together, ever.")
    per_member: Amount = Field(description="One member organisation, ever.")
    per_query: Amount = Field(description="The most one query may spend (the threshold's "
                              "delta: the chance that a key of one unit is shown).")

    @model_validator(mode="after")
    def _ordered(self) -> DeltaBudget:
        if not 0 < self.per_query <= self.per_member <= self.global_total < Fraction(1, 1000):
            raise ValueError("deltas need 0 < per_query <= per_member <= global < 1/1000")
        return self


class KeySelection(BaseModel):
    """When a group-by releases only keys chosen by a DP threshold instead of its whole grid.

    A grid of public keys larger than ``public_up_to`` cells (pairs and triples of
    countries) would be mostly empty cells whose noise looks like data; its keys are then
    selected: thresholded noisy counts of distinct privacy units (OpenDP), paid with
    ``share`` of the query's cost and the policy's per-query delta.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    public_up_to: int = Field(
        default=2500, ge=1, le=1_000_000,
        description="Grids of at most this many cells release every cell (public keys).",
    )
    share: Amount = Field(
        default=Fraction(1, 4),
        description="Fraction of a query's cost spent on choosing its keys, in (0, 1).",
    )
    keys_per_unit: int = Field(
        default=1, ge=1, le=MAX_ROWS_CAP,
        description="Keys one unit may vote for when keys are chosen (its keys with the most "
        "rows); the fewer, the lower the threshold. Its measures still count all its rows.",
    )

    @field_validator("share")
    @classmethod
    def _proper(cls, value: Fraction) -> Fraction:
        if not 0 < value < 1:
            raise ValueError("share must lie strictly between 0 and 1")
        return value


class Budget(BaseModel):
    """Budgets in the policy's accounting measure; exact, finite and never renewed."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    global_total: Amount = Field(
        alias="global", description="What all members together may ever spend on the dataset."
    )
    per_member: Amount = Field(description="What one member organisation may ever spend.")
    per_query: Amount = Field(description="The most one query may cost.")
    per_month: Amount | None = Field(
        default=None, description="What one member may spend in one calendar month (UTC)."
    )
    delta: DeltaBudget | None = Field(
        default=None, description="Deltas for key selection; absent: no key selection."
    )

    @field_validator("per_query")
    @classmethod
    def _positive(cls, value: Fraction) -> Fraction:
        if value <= 0:
            raise ValueError("the per-query cap must be positive (zero would refuse everything)")
        return value


class PublicRows(BaseModel):
    """Rows that are public facts, released exactly: a query whose filter keeps only them is
    answered without noise and costs nothing.

    The rows whose ``field`` (a category field) holds one of ``values`` tell only what was
    published already (e.g. incidents told by news articles, ``source_type: news``); the
    other rows (crowd reports) still leave only through DP aggregates. Only aggregates are
    released, never rows (docs/policies.md, "Public rows")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="A category field of the dataset.")
    values: list[str] = Field(min_length=1, description="The codes of that field whose rows "
                              "are public.")
    reason: str = Field(min_length=10, max_length=500, description="Why those rows are "
                        "public; shown with every exact answer.")

    @model_validator(mode="after")
    def _in_the_contract(self, info: ValidationInfo) -> PublicRows:
        contracts = _contracts(info)
        if contracts is None:
            return self
        found = shared_field(contracts, self.field)
        if found is None:
            raise ValueError(f"{contracts[-1].dataset} has no field {self.field!r}")
        f = found[0]
        if f.type is not FieldType.CATEGORY or f.domain is None or not f.domain.categories:
            raise ValueError(f"public_rows needs a category field with a closed domain; "
                             f"{f.name!r} is of type {f.type.value}")
        codes = {c.code for c in f.domain.categories}
        unknown = [v for v in self.values if v not in codes]
        if unknown:
            raise ValueError(f"{', '.join(unknown)} not in the domain of {f.name} "
                             f"({', '.join(sorted(codes))})")
        return self


class Policy(BaseModel):
    """The sharing policy of one dataset (``policies/<dataset>.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="The dataset (a contract in the registry).")
    accounting: Measure = Field(
        default=Measure.ZCDP,
        description="zcdp: rho, discrete Gaussian noise (default); pure: epsilon, discrete "
        "Laplace noise.",
    )
    opened: date = Field(description="Budgets count from this day; they never renew.")
    min_partners: int = Field(
        ge=1, description="Distinct contributing partners needed before any query runs."
    )
    contribution_bounds: ContributionBounds
    budget: Budget
    key_selection: KeySelection | None = Field(
        default=None,
        description="Select the keys of large grids with a DP threshold (needs budget.delta).",
    )
    public_rows: PublicRows | None = Field(
        default=None,
        description="Rows that are public facts: queries filtered to them are exact and free.",
    )
    rules: list[Rule] = Field(min_length=1)

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str, info: ValidationInfo) -> str:
        ctx = info.context
        if ctx is None or "registry" not in ctx:
            return value
        registry: ContractRegistry = ctx["registry"]
        versions = registry.versions(value)
        if not versions:
            known = ", ".join(registry.datasets())
            raise ValueError(f"unknown dataset {value!r} (known: {known})")
        # The rules below are validated after this field: they read the contracts here.
        ctx[_CONTRACTS] = [registry.get(value, v) for v in versions]
        return value

    @field_validator("rules")
    @classmethod
    def _unique_names(cls, value: list[Rule]) -> list[Rule]:
        names = [r.name for r in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rule names must be unique: {', '.join(dupes)}")
        return value

    @field_validator("budget")
    @classmethod
    def _coherent_budget(cls, value: Budget, info: ValidationInfo) -> Budget:
        accounting, opened = info.data.get("accounting"), info.data.get("opened")
        if accounting is not None and opened is not None:
            _limits(value, accounting, opened)  # global >= per member >= per query / month
        return value

    @model_validator(mode="after")
    def _selection_has_delta(self) -> Policy:
        if self.key_selection is not None and self.budget.delta is None:
            raise ValueError("key_selection needs a delta budget (budget.delta)")
        return self

    @property
    def limits(self) -> BudgetLimits:
        return _limits(self.budget, self.accounting, self.opened)

    @property
    def max_rows(self) -> int:
        return self.contribution_bounds.max_rows

    def rules_for(self, actor: Actor) -> list[Rule]:
        """The rules whose ``who`` matches ``actor``, in file order."""
        return [r for r in self.rules if r.who.matches(actor)]


def _limits(b: Budget, accounting: Measure, opened: date) -> BudgetLimits:
    return BudgetLimits(
        measure=accounting,
        global_total=b.global_total,
        per_member=b.per_member,
        per_query=b.per_query,
        opened=opened,
        per_month=b.per_month,
        delta_global=b.delta.global_total if b.delta else Fraction(0),
        delta_per_member=b.delta.per_member if b.delta else Fraction(0),
        delta_per_query=b.delta.per_query if b.delta else Fraction(0),
    )


# -- files --------------------------------------------------------------------------------
def default_policies_dir() -> Path:
    """The policies shipped with tahub: bundled in the wheel, or the repository's folder."""
    package = Path(__file__).resolve().parents[1]  # hub/
    bundled = package / "_bundled" / "policies"
    return bundled if bundled.is_dir() else package.parent / "policies"


def parse_policy_text(text: str, registry: ContractRegistry, *, source: str,
                      filename: str | None = None) -> Policy:
    """Validate the YAML ``text`` of a policy; :class:`PolicyError` lists every problem with
    its line (``source`` names the text in messages). With ``filename``, the file must be
    named ``<dataset>.yaml``."""
    policy = validate_document(text, Policy, source=source, error=PolicyError,
                               context=policy_context(registry))
    if filename is not None and Path(filename).name != f"{policy.dataset}.yaml":
        line = next((n for n, t in enumerate(text.splitlines(), 1) if t.startswith("dataset:")),
                    1)
        raise PolicyError(
            f"{source}: 1 error(s)",
            errors=[RowError("dataset", f"the policy of {policy.dataset} must be in "
                             f"{policy.dataset}.yaml, not {Path(filename).name}", line=line)],
            file=source,
        )
    return policy


def load_policy_file(path: Path, registry: ContractRegistry) -> Policy:
    """Validate one policy file; :class:`PolicyError` lists every problem with its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot be read ({exc.__class__.__name__})",
                          file=str(path)) from None
    return parse_policy_text(text, registry, source=str(path), filename=path.name)


def policy_json_schema() -> dict[str, Any]:
    """JSON Schema of policy files, for editors (``policies/policy.schema.json``)."""
    schema = Policy.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tahub sharing policy"
    return schema


def policy_schema_text() -> str:
    """The committed text of ``policies/policy.schema.json``."""
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"


# -- snapshot and store -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One reason a policy file was refused (``file`` is the name inside the folder)."""

    file: str
    line: int | None
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "line": self.line, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field + ': ' if self.field else ''}{self.reason}"


@dataclass(frozen=True)
class PolicySet:
    """The active policy of each dataset and the problems of refused files (immutable)."""

    policies: Mapping[str, Policy] = field(default_factory=lambda: MappingProxyType({}))
    problems: tuple[PolicyProblem, ...] = ()

    @classmethod
    def of(cls, *policies: Policy) -> PolicySet:
        return cls(MappingProxyType({p.dataset: p for p in policies}))

    def get(self, dataset: str) -> Policy | None:
        return self.policies.get(dataset)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies[d] for d in sorted(self.policies))

    def datasets(self) -> list[str]:
        return sorted(self.policies)

    def health(self) -> dict[str, Any]:
        """What ``/health`` shows (no secrets: names, lines and reasons only)."""
        return {
            "status": "errors" if self.problems else "ok",
            "active": self.datasets(),
            "errors": [p.as_dict() for p in self.problems],
        }

"""Data contracts: what a shared dataset holds, field by field, and its public domains.

A contract is a YAML file ``contracts/<dataset>.v<version>.yaml`` validated by
:class:`Contract`. Every field declares its type, a description, its role in queries
(privacy unit, dimension, measure, partner), its public domain (a closed category list, or
numeric/period bounds; numeric measures also carry the public clamp range used by the DP
queries) and its sensitivity. Identifiers must be pseudonymised by the connector, and free
text is refused outright: there is no field type that could carry it.

Named domains shared by several contracts (countries, age bands...) live in
``contracts/domains/*.yaml`` and are referenced with ``domain: {ref: <name>}``; they are
frozen copies of the public standards listed in ``../shared/DOMAIN.md``, so that a library
update never changes a contract's domain silently.

This module is part of the domain core: it imports no web framework, database or engine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from hub.errors import ContractError, UnknownDataset
from hub.yamlfile import load_model

__all__ = [
    "Category",
    "Contract",
    "ContractField",
    "ContractRegistry",
    "Domain",
    "FieldType",
    "IdentifierKind",
    "NamedDomain",
    "Role",
    "RouteStage",
    "Sensitivity",
    "contract_json_schema",
    "default_contracts_dir",
    "json_schema_text",
    "months_between",
]

PERIOD_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
NAME_RE = r"^[a-z][a-z0-9_]*$"
#: Pseudonymised tokens as the connector writes them: ``<key id>.<64 hex of HMAC-SHA256>``.
TOKEN_RE = r"^[0-9a-f]{8}\.[0-9a-f]{64}$"  # noqa: S105 - a pattern, not a secret
#: Domain reference resolved by the hub from its registered members (used by partner fields).
MEMBERS_REF = "members"


class FieldType(StrEnum):
    TOKEN = "token"  # noqa: S105 - pseudonymised identifier, not a secret
    CATEGORY = "category"  # one code of a closed list
    CATEGORY_LIST = "category_list"  # several codes of a closed list (HTCDS multi-valued)
    INTEGER = "integer"
    NUMBER = "number"  # float64, finite
    PERIOD = "period"  # calendar month, 'YYYY-MM'


class Role(StrEnum):
    PRIVACY_UNIT = "privacy_unit"
    DIMENSION = "dimension"
    MEASURE = "measure"
    PARTNER = "partner"
    LINK = "link"  # another identifier of the privacy unit's person (hub.ingest.linkage)


class RouteStage(StrEnum):
    """Where a location field sits on a route (HTCDS's trafficking event types)."""

    ORIGIN = "origin"  # recruitment, or where money is sent from
    TRANSIT = "transit"
    DESTINATION = "destination"  # exploitation, or where money is paid out

    @property
    def order(self) -> int:
        return list(RouteStage).index(self)


class Sensitivity(StrEnum):
    IDENTIFIER = "identifier"  # pseudonymised by the connector, never leaves the partner raw
    QUASI_IDENTIFIER = "quasi_identifier"  # public domain, but identifying in combination
    NON_SENSITIVE = "non_sensitive"


class IdentifierKind(StrEnum):
    """How the connector normalises an identifier before keyed hashing."""

    PHONE = "phone"
    IBAN = "iban"
    EMAIL = "email"
    DOCUMENT = "document"  # passport / ID number: upper-case, no spaces or dashes
    GENERIC = "generic"  # case-folded, whitespace collapsed


_FREE_TEXT_WORDS = {"text", "string", "free_text", "freetext", "str", "varchar"}


class Category(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=64)
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_plain_string(cls, value: Any) -> Any:
        return {"code": value} if isinstance(value, str) else value


class NamedDomain(BaseModel):
    """A closed list shared by several contracts (``contracts/domains/<name>.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME_RE)]
    description: str = Field(min_length=1)
    source: str = Field(min_length=1, description="The public standard the list copies.")
    categories: list[Category] = Field(min_length=1)

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: list[Category]) -> list[Category]:
        _check_unique(value)
        return value


def _check_unique(categories: list[Category]) -> None:
    seen: set[str] = set()
    for c in categories:
        if c.code in seen:
            raise ValueError(f"category {c.code!r} is listed twice")
        seen.add(c.code)


class Domain(BaseModel):
    """The public domain of a field: categories (inline or by ``ref``) or bounds."""

    model_config = ConfigDict(extra="forbid")

    categories: list[Category] | None = Field(
        default=None, description="Closed list of codes (the public group keys)."
    )
    ref: str | None = Field(
        default=None, description="Name of a shared domain in contracts/domains/, or 'members'."
    )
    min: float | str | None = Field(
        default=None, description="Smallest valid value (a number, or 'YYYY-MM' for periods)."
    )
    max: float | str | None = Field(
        default=None, description="Largest valid value; omit for no upper limit on measures."
    )
    clamp: tuple[float, float] | None = Field(
        default=None,
        description="Public range every value is clamped to before DP aggregation.",
    )

    @model_validator(mode="after")
    def _resolve_ref(self, info: ValidationInfo) -> Domain:
        if self.ref is not None and self.categories is not None:
            raise ValueError("give either categories or ref, not both")
        if self.ref is not None and self.ref != MEMBERS_REF:
            domains = (info.context or {}).get("domains")
            if domains is not None:
                if self.ref not in domains:
                    known = ", ".join(sorted(domains)) or "none"
                    raise ValueError(f"unknown shared domain {self.ref!r} (known: {known})")
                self.categories = list(domains[self.ref].categories)
        if self.categories is not None:
            _check_unique(self.categories)
        return self


class ContractField(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(pattern=NAME_RE, max_length=63)]
    type: FieldType
    description: str = Field(min_length=1)
    role: Role
    sensitivity: Sensitivity
    required: bool = Field(default=True, description="False lets a row leave it empty (unknown).")
    domain: Domain | None = None
    identifier_kind: IdentifierKind | None = Field(
        default=None, description="Normalisation before pseudonymisation (identifiers only)."
    )
    max_items: int | None = Field(
        default=None, ge=1, description="category_list only: most codes one row may carry."
    )
    unit: str | None = Field(default=None, description="Unit of a measure, e.g. EUR.")
    route_stage: RouteStage | None = Field(
        default=None,
        description="A category dimension that is one stage of a route (origin, transit, "
        "destination): route queries assemble each unit's stages across its rows.",
    )

    @field_validator("type", "sensitivity", mode="before")
    @classmethod
    def _no_free_text(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in _FREE_TEXT_WORDS:
            raise ValueError(
                "free text is never accepted by tahub; use a category with a closed domain"
            )
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ContractField:
        t, d = self.type, self.domain
        if (self.sensitivity is Sensitivity.IDENTIFIER) != (t is FieldType.TOKEN):
            raise ValueError("identifiers must have type token, and tokens must be identifiers")
        if t is FieldType.TOKEN:
            if self.identifier_kind is None:
                raise ValueError("an identifier needs identifier_kind (how to normalise it)")
            if d is not None:
                raise ValueError("a token has no public domain")
        elif self.identifier_kind is not None:
            raise ValueError("identifier_kind is only for identifiers")
        if t in (FieldType.CATEGORY, FieldType.CATEGORY_LIST):
            if d is None or (d.categories is None and d.ref is None):
                raise ValueError(f"a {t.value} field needs domain.categories or domain.ref")
            if d.min is not None or d.max is not None or d.clamp is not None:
                raise ValueError("categories have no bounds")
        if t is FieldType.PERIOD:
            if d is None or not isinstance(d.min, str) or not isinstance(d.max, str):
                raise ValueError("a period needs domain.min and domain.max as 'YYYY-MM'")
            for bound in (d.min, d.max):
                if not PERIOD_RE.match(bound):
                    raise ValueError(f"period bound {bound!r} is not 'YYYY-MM'")
            if d.min > d.max:
                raise ValueError("domain.min is after domain.max")
        if t in (FieldType.INTEGER, FieldType.NUMBER):
            if d is None or not isinstance(d.min, int | float) or isinstance(d.min, bool):
                raise ValueError("a numeric field needs a numeric domain.min")
            if d.max is not None and (isinstance(d.max, str) or d.max < d.min):
                raise ValueError("domain.max must be a number not below domain.min")
            if self.role is Role.MEASURE and d.clamp is None:
                raise ValueError("a measure needs domain.clamp, the public range for DP sums")
            if d.clamp is not None:
                lo, hi = d.clamp
                if lo > hi or lo < d.min or (d.max is not None and hi > d.max):
                    raise ValueError("domain.clamp must lie inside [min, max] with low <= high")
        if self.max_items is not None and t is not FieldType.CATEGORY_LIST:
            raise ValueError("max_items is only for category_list fields")
        if self.route_stage is not None and (t is not FieldType.CATEGORY
                                             or self.role is not Role.DIMENSION):
            raise ValueError("a route stage must be a category dimension")
        if self.role in (Role.PRIVACY_UNIT, Role.LINK) and t is not FieldType.TOKEN:
            raise ValueError(f"a {self.role.value} field must be a pseudonymised token")
        if self.role is Role.MEASURE and t not in (FieldType.INTEGER, FieldType.NUMBER):
            raise ValueError("a measure must be an integer or a number")
        if self.role is Role.PARTNER:
            if t is not FieldType.CATEGORY or d is None or d.ref != MEMBERS_REF:
                raise ValueError(
                    "a partner field must be a category with domain {ref: members}"
                )
        elif d is not None and d.ref == MEMBERS_REF:
            raise ValueError("only the partner field may use the 'members' domain")
        return self

    # -- helpers used by validation and (later) queries -------------------------------
    @property
    def codes(self) -> tuple[str, ...]:
        """The closed list of codes of a category field (empty otherwise)."""
        if self.domain is None or self.domain.categories is None:
            return ()
        return tuple(c.code for c in self.domain.categories)

    @property
    def provided_by_hub(self) -> bool:
        """Partner fields are stamped by the hub from the caller's token, never uploaded."""
        return self.role is Role.PARTNER


class Contract(BaseModel):
    """One version of one shared dataset."""

    model_config = ConfigDict(extra="forbid")

    dataset: Annotated[str, Field(pattern=NAME_RE, max_length=63)]
    version: int = Field(ge=1)
    title: str = Field(min_length=1)
    description: str = Field(min_length=1)
    contributors: list[str] = Field(
        default_factory=list, description="Kinds of member expected to contribute."
    )
    fields: list[ContractField] = Field(min_length=2)

    @model_validator(mode="after")
    def _one_unit(self) -> Contract:
        names = [f.name for f in self.fields]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"field names must be unique: {', '.join(dupes)}")
        units = [f.name for f in self.fields if f.role is Role.PRIVACY_UNIT]
        if len(units) != 1:
            raise ValueError(f"exactly one privacy_unit field is needed, found {len(units)}")
        if sum(f.role is Role.PARTNER for f in self.fields) > 1:
            raise ValueError("at most one partner field")
        unit = next(f for f in self.fields if f.role is Role.PRIVACY_UNIT)
        if not unit.required and not any(f.role is Role.LINK for f in self.fields):
            raise ValueError("an optional privacy unit needs link fields (a row needs at "
                             "least one identifier of its person)")
        stages = [f.route_stage for f in self.fields if f.route_stage is not None]
        if len(set(stages)) != len(stages):
            raise ValueError("each route stage (origin, transit, destination) appears once")
        return self

    @property
    def route(self) -> list[ContractField]:
        """The route stages, origin first (empty when the contract has no route)."""
        staged = [f for f in self.fields if f.route_stage is not None]
        return sorted(staged, key=lambda f: f.route_stage.order if f.route_stage else 0)

    @property
    def key(self) -> tuple[str, int]:
        return (self.dataset, self.version)

    @property
    def privacy_unit(self) -> ContractField:
        return next(f for f in self.fields if f.role is Role.PRIVACY_UNIT)

    @property
    def identity(self) -> list[ContractField]:
        """The fields that identify a row's person: the privacy unit, then the link fields.
        A row carries at least one (its first non-empty one is its unit's anchor)."""
        return [self.privacy_unit, *(f for f in self.fields if f.role is Role.LINK)]

    @property
    def extract_fields(self) -> list[ContractField]:
        """Fields an extract carries, in order (everything but the hub-stamped partner)."""
        return [f for f in self.fields if not f.provided_by_hub]

    def field(self, name: str) -> ContractField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def months_between(first: str, last: str) -> list[str]:
    """Every 'YYYY-MM' from ``first`` to ``last`` inclusive (a period field's closed domain)."""
    y, m = int(first[:4]), int(first[5:])
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def default_contracts_dir() -> Path:
    """The contracts shipped with tahub: bundled in the wheel, or the repository's folder."""
    package = Path(__file__).resolve().parents[1]  # hub/
    bundled = package / "_bundled" / "contracts"
    return bundled if bundled.is_dir() else package.parent / "contracts"


_FILE_RE = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.yaml$")


@dataclass
class ContractRegistry:
    """Every contract version the process knows, loaded once from a folder."""

    contracts: dict[tuple[str, int], Contract] = field(default_factory=dict)
    domains: dict[str, NamedDomain] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path | None = None) -> ContractRegistry:
        directory = directory or default_contracts_dir()
        if not directory.is_dir():
            raise ContractError(f"contracts folder {directory} does not exist")
        domains: dict[str, NamedDomain] = {}
        for path in sorted((directory / "domains").glob("*.yaml")):
            named = load_model(path, NamedDomain, error=ContractError)
            if named.name != path.stem:
                raise ContractError(f"{path}: name {named.name!r} must match the file name")
            domains[named.name] = named
        registry = cls(domains=domains)
        for path in sorted(directory.glob("*.yaml")):
            match = _FILE_RE.match(path.name)
            if match is None:
                raise ContractError(f"{path}: contract files are named <dataset>.v<N>.yaml")
            contract = load_model(path, Contract, error=ContractError, context={"domains": domains})
            if (contract.dataset, contract.version) != (
                match["dataset"], int(match["version"])
            ):
                raise ContractError(
                    f"{path}: declares {contract.dataset} v{contract.version}, "
                    "which does not match its file name"
                )
            registry.contracts[contract.key] = contract
        if not registry.contracts:
            raise ContractError(f"no contracts found in {directory}")
        return registry

    def __iter__(self) -> Iterator[Contract]:
        return iter(sorted(self.contracts.values(), key=lambda c: c.key))

    def datasets(self) -> list[str]:
        return sorted({d for d, _ in self.contracts})

    def versions(self, dataset: str) -> list[int]:
        return sorted(v for d, v in self.contracts if d == dataset)

    def get(self, dataset: str, version: int | None = None) -> Contract:
        """The contract ``dataset`` v``version`` (the newest when ``version`` is None)."""
        versions = self.versions(dataset)
        if not versions:
            raise UnknownDataset(
                f"unknown dataset {dataset!r}; known datasets: {', '.join(self.datasets())}",
                field="dataset",
            )
        if version is None:
            version = versions[-1]
        if version not in versions:
            raise UnknownDataset(
                f"{dataset} has no contract version {version}; "
                f"known versions: {', '.join(map(str, versions))}",
                field="contract_version",
            )
        return self.contracts[(dataset, version)]


def contract_json_schema(kind: str = "contract") -> dict[str, Any]:
    """JSON Schema for editors: ``contract`` (``contracts/contract.schema.json``) or ``domain``
    (``contracts/domain.schema.json``, for the shared lists in ``contracts/domains/``)."""
    models: dict[str, type[BaseModel]] = {"contract": Contract, "domain": NamedDomain}
    model = models[kind]
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"tahub data {kind}"
    return schema


def json_schema_text(kind: str = "contract") -> str:
    """The committed text of a schema file (stable key order, trailing newline)."""
    return json.dumps(contract_json_schema(kind), indent=2, sort_keys=True) + "\n"

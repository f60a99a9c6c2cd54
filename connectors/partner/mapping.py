"""The mapping file: how one partner's export becomes rows of one shared data contract.

A mapping is a YAML file the partner's data engineer writes once per export::

    dataset: bank_alerts
    contract_version: 1
    source:                      # optional; everything has a default
      delimiter: ";"
      encoding: latin-1
    fields:
      subject: IBAN              # shorthand for {column: IBAN}
      indicator:
        column: flag
        recode: {CASH_OOH: cash_deposits_outside_hours}
      typology:
        constant: unknown

It is checked against its contract when it is loaded (:func:`load_mapping`): unknown
contract fields, required fields left unmapped, recode targets outside the contract's
domain and an attempt to map the hub-stamped partner field are each a
:class:`~hub.errors.MappingError` with the line of the offending key.
:func:`mapping_template` writes a commented starting point for any contract.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from hub.contracts.model import Contract, ContractField, ContractRegistry, FieldType, IdentifierKind
from hub.errors import MappingError
from hub.yamlfile import load_model, validate_document

__all__ = [
    "Encoding",
    "FieldMapping",
    "Mapping",
    "SourceFormat",
    "SourceOptions",
    "load_mapping",
    "mapping_template",
    "parse_mapping",
]

_CATEGORY_TYPES = (FieldType.CATEGORY, FieldType.CATEGORY_LIST)
_DEFAULT_SEPARATOR = "|"


class SourceFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    XLSX = "xlsx"
    SQLITE = "sqlite"


class Encoding(StrEnum):
    """Text encodings DuckDB reads without an extension."""

    UTF8 = "utf-8"
    LATIN1 = "latin-1"
    UTF16 = "utf-16"


_ENCODING_ALIASES = {
    "utf8": "utf-8",
    "latin1": "latin-1",
    "iso-8859-1": "latin-1",
    "iso8859-1": "latin-1",
    "cp1252": "latin-1",
    "windows-1252": "latin-1",
    "utf16": "utf-16",
}


class SourceOptions(BaseModel):
    """How to read the partner's export. Every option has a default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: SourceFormat | None = Field(
        default=None, description="csv, parquet, xlsx or sqlite; default: from the file name."
    )
    delimiter: str | None = Field(
        default=None, description="CSV column delimiter; default: detected by DuckDB."
    )
    encoding: Encoding = Field(default=Encoding.UTF8, description="CSV text encoding.")
    sheet: str | None = Field(default=None, description="Excel sheet; default: the first.")
    sql: str | None = Field(
        default=None,
        description="A query whose result is the export: run by SQLite over a SQLite "
        "file, otherwise by DuckDB over local files (the source file is the table `source`).",
    )
    decimal_separator: str = Field(
        default=".", description="'.' or ','; how numbers written as text mark decimals."
    )

    @field_validator("delimiter", mode="before")
    @classmethod
    def _one_character(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"tab": "\t", "\\t": "\t"}.get(value.lower(), value)
            if len(value) != 1:
                raise ValueError("delimiter must be one character (or 'tab')")
        return value

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding_alias(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _ENCODING_ALIASES.get(value.strip().lower(), value.strip().lower())
        return value

    @field_validator("decimal_separator")
    @classmethod
    def _decimal(cls, value: str) -> str:
        if value not in (".", ","):
            raise ValueError("decimal_separator must be '.' or ','")
        return value

    @field_validator("sql")
    @classmethod
    def _query(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("sql must not be empty")
        return value.strip().rstrip(";") if value is not None else None


def _contract_in(info: ValidationInfo) -> Contract | None:
    context = info.context or {}
    contract = context.get("contract")
    return contract if isinstance(contract, Contract) else None


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError("expected text or a number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class FieldMapping(BaseModel):
    """Where one contract field comes from. ``field`` is the key it is written under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="The contract field (the key in `fields:`).")
    column: str | None = Field(default=None, description="The column in the export.")
    constant: str | int | float | None = Field(
        default=None, description="A value every row gets, instead of a column."
    )
    recode: dict[str, str] | None = Field(
        default=None, description="Partner value -> contract code (categories and lists)."
    )
    separator: str = Field(
        default=_DEFAULT_SEPARATOR,
        description="category_list from text: what separates the codes in one cell.",
    )
    default_region: str | None = Field(
        default=None,
        description="Phone identifiers: ISO country of numbers written without +country code.",
    )
    region_column: str | None = Field(
        default=None,
        description="Phone identifiers: a column holding each row's ISO country, for numbers "
        "written without +country code (default_region fills its empty cells).",
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @field_validator("recode", mode="before")
    @classmethod
    def _recode_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {_scalar_text(k): _scalar_text(v) for k, v in value.items()}
        return value

    @field_validator("recode")
    @classmethod
    def _recode_targets(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        contract = _contract_in(info)
        name = info.data.get("field")
        if value is None or contract is None or name is None:
            return value
        try:
            f = contract.field(name)
        except KeyError:
            return value  # reported once, by _against_contract
        if f.type in _CATEGORY_TYPES:
            outside = [code for code in value.values() if code not in f.codes]
            if outside:
                shown = ", ".join(repr(c) for c in dict.fromkeys(outside))
                raise ValueError(
                    f"recode targets {shown} are not in the domain of {name!r} ({_domain_hint(f)})"
                )
        return value

    @field_validator("separator")
    @classmethod
    def _separator(cls, value: str) -> str:
        if not value:
            raise ValueError("separator must not be empty")
        return value

    @field_validator("default_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is None:
            return None
        region = value.strip().upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{value!r} is not a region phonenumbers knows (ISO 3166 alpha-2)")
        return region

    @model_validator(mode="after")
    def _against_contract(self, info: ValidationInfo) -> FieldMapping:
        if (self.column is None) == (self.constant is None):
            raise ValueError("give either column or constant")
        contract = _contract_in(info)
        if contract is None:
            return self
        try:
            f = contract.field(self.field)
        except KeyError:
            names = ", ".join(x.name for x in contract.extract_fields)
            raise ValueError(
                f"{self.field!r} is not a field of {contract.dataset} v{contract.version}; "
                f"its fields are: {names}"
            ) from None
        if f.provided_by_hub:
            raise ValueError(
                f"{f.name!r} is stamped by the hub from your credentials; "
                "remove it from the mapping"
            )
        if self.recode is not None and f.type not in _CATEGORY_TYPES:
            raise ValueError("recode is only for category and category_list fields")
        if self.separator != _DEFAULT_SEPARATOR and f.type is not FieldType.CATEGORY_LIST:
            raise ValueError("separator is only for category_list fields")
        if f.identifier_kind is not IdentifierKind.PHONE and (
            self.default_region is not None or self.region_column is not None
        ):
            raise ValueError("default_region and region_column are only for phone numbers")
        if self.constant is not None:
            if f.type is FieldType.TOKEN:
                raise ValueError(
                    "an identifier cannot be a constant: every row would be the same person"
                )
            if f.type is FieldType.CATEGORY and _scalar_text(self.constant) not in f.codes:
                raise ValueError(
                    f"constant {self.constant!r} is not in the domain of {f.name!r} "
                    f"({_domain_hint(f)})"
                )
        return self


def _domain_hint(f: ContractField, shown: int = 6) -> str:
    codes = f.codes
    listed = ", ".join(codes[:shown])
    more = f", ... {len(codes) - shown} more" if len(codes) > shown else ""
    return f"codes: {listed}{more}"


class Mapping(BaseModel):
    """One partner export mapped onto one contract version (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="The contract's dataset.")
    contract_version: int = Field(ge=1, description="The contract version the mapping targets.")
    source: SourceOptions = Field(default_factory=SourceOptions)
    fields: dict[str, FieldMapping] = Field(min_length=1)

    @field_validator("source", mode="before")
    @classmethod
    def _empty_source(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str, info: ValidationInfo) -> str:
        registry = (info.context or {}).get("registry")
        if isinstance(registry, ContractRegistry) and value not in registry.datasets():
            raise ValueError(
                f"unknown dataset {value!r}; known datasets: {', '.join(registry.datasets())}"
            )
        return value

    @field_validator("contract_version")
    @classmethod
    def _known_version(cls, value: int, info: ValidationInfo) -> int:
        registry = (info.context or {}).get("registry")
        dataset = info.data.get("dataset")
        if isinstance(registry, ContractRegistry) and dataset is not None:
            versions = registry.versions(dataset)
            if value not in versions:
                raise ValueError(
                    f"{dataset} has no contract version {value}; "
                    f"known versions: {', '.join(map(str, versions))}"
                )
        return value

    @field_validator("fields", mode="wrap")
    @classmethod
    def _fields_against_contract(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> dict[str, FieldMapping]:
        """Resolve the contract, validate each entry against it, then look for gaps.

        Each entry learns its own key as ``field``; the contract reaches the entries'
        validators through the validation context (``load_mapping`` owns that dict).
        """
        context = info.context
        registry = (context or {}).get("registry")
        contract = None
        dataset, version = info.data.get("dataset"), info.data.get("contract_version")
        if isinstance(registry, ContractRegistry) and dataset is not None and version:
            contract = registry.contracts.get((dataset, version))
        if context is not None:
            context["contract"] = contract
        if isinstance(value, dict):
            value = {
                key: ({"column": v} if isinstance(v, str) else v) | {"field": str(key)}
                if isinstance(v, str | dict)
                else v
                for key, v in value.items()
            }
        result: dict[str, FieldMapping] = handler(value)
        if contract is not None:
            missing = [
                f.name for f in contract.extract_fields if f.required and f.name not in result
            ]
            if missing:
                raise ValueError(
                    f"required field(s) {', '.join(missing)} of {contract.dataset} "
                    f"v{contract.version} are not mapped (give a column or a constant)"
                )
        return result

    def mapped_columns(self) -> list[str]:
        """The export's columns the mapping reads, in mapping order, without repeats."""
        names = [c for m in self.fields.values() for c in (m.column, m.region_column) if c]
        return list(dict.fromkeys(names))


def _context(registry: ContractRegistry | None) -> dict[str, Any]:
    return {"registry": registry if registry is not None else ContractRegistry.load()}


def load_mapping(path: Path, registry: ContractRegistry | None = None) -> Mapping:
    """Read and check a mapping file against its contract (``MappingError`` with lines)."""
    if not path.is_file():
        raise MappingError(f"mapping file {path} does not exist", file=str(path))
    return load_model(path, Mapping, error=MappingError, context=_context(registry))


def parse_mapping(
    text: str, registry: ContractRegistry | None = None, *, source: str = "<mapping>"
) -> Mapping:
    """Check mapping YAML given as text (see :func:`load_mapping`)."""
    return validate_document(
        text, Mapping, source=source, error=MappingError, context=_context(registry)
    )


def _yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float | str | None) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _describe(f: ContractField) -> list[str]:
    lines = [f"  # {f.description.strip()}"]
    need = "required" if f.required else "optional: leave it out if you do not have it"
    if f.type is FieldType.TOKEN:
        lines.append(f"  # identifier ({f.identifier_kind}), {need}: normalised and pseudonymised")
        lines.append("  # on your machine with the network key; it never leaves it raw.")
    elif f.type in _CATEGORY_TYPES:
        many = (
            " several per row, separated by `separator`,"
            if (f.type is FieldType.CATEGORY_LIST)
            else ""
        )
        lines.append(f"  # {f.type.value},{many} {need}; {_domain_hint(f, 8)}")
    elif f.type is FieldType.PERIOD:
        assert f.domain is not None  # noqa: S101 - guaranteed by ContractField
        lines.append(
            f"  # month 'YYYY-MM' or a date, {need}; from {f.domain.min} to {f.domain.max}"
        )
    else:
        assert f.domain is not None  # noqa: S101 - guaranteed by ContractField
        bounds = f"at least {_number(f.domain.min)}"
        if f.domain.max is not None:
            bounds += f", at most {_number(f.domain.max)}"
        unit = f" {f.unit}" if f.unit else ""
        lines.append(f"  # {f.type.value}{unit}, {need}; {bounds}")
    return lines


def mapping_template(contract: Contract) -> str:
    """A commented mapping for ``contract`` that loads as-is when the export's columns
    carry the contract's names; the partner edits ``column:`` to their own names."""
    out = [
        f"# tahub-connect mapping: {contract.title} ({contract.dataset} v{contract.version})",
        "# Set each `column:` to the name of the column in your export; see docs/connector.md.",
        f"dataset: {contract.dataset}",
        f"contract_version: {contract.version}",
        "# source:                 # how to read the export; every option has a default",
        "#   format: csv           # csv, parquet, xlsx or sqlite (default: from the file name)",
        '#   delimiter: ";"        # csv only (default: detected)',
        "#   encoding: utf-8       # csv only: utf-8, latin-1 or utf-16",
        "#   decimal_separator: .  # numbers written as text: '.' or ','",
        "#   sheet: Sheet1         # xlsx only (default: the first sheet)",
        "#   sql: SELECT * FROM source  # a query that returns the export (see the docs)",
        "fields:",
    ]
    for f in contract.extract_fields:
        out += _describe(f)
        out.append(f"  {f.name}:")
        out.append(f"    column: {_yaml_str(f.name)}")
        if f.identifier_kind is IdentifierKind.PHONE:
            out.append("    # default_region: GB  # for numbers written without +country code")
            out.append("    # region_column: country  # or: each row's country, from a column")
        if f.type in _CATEGORY_TYPES:
            example = f.codes[0] if f.codes else "code"
            out.append(f'    # recode: {{"your value": {_yaml_str(example)}}}')
        if f.type is FieldType.CATEGORY_LIST:
            out.append(f'    # separator: "{_DEFAULT_SEPARATOR}"')
    return "\n".join(out) + "\n"

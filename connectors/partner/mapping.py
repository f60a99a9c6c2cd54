"""The mapping file: how one partner's export becomes rows of one shared data contract.

A mapping is a YAML file the partner's data engineer writes once per export (or has
``tahub-connect mapping suggest`` propose)::

    dataset: bank_alerts
    contract_version: 1
    source:                      # optional; everything has a default
      delimiter: ";"
      encoding: latin-1          # default: detected, and the report says what was assumed
    max_reject_ratio: 5%         # more rejected rows than this and nothing is written
    fields:
      subject: IBAN              # shorthand for {column: IBAN}
      indicator:
        column: flag
        recode: {CASH_OOH: cash_deposits_outside_hours}
      amount:
        column: betrag_cent
        unit: EUR                # required for amounts: the unit the column is written in
        minor_units: true        # ... in cents
      period:
        column: datum
        formats: ["%d.%m.%Y"]
    ignore:                      # columns left out on purpose, and why
      kundenname: a name, never shared

Each field entry is a :class:`~connectors.partner.fieldmapping.FieldMapping`. The mapping
is checked against its contract when it is loaded (:func:`load_mapping`): unknown contract
fields, required fields left unmapped, options that do not fit the field's type, recode
targets outside the contract's domain, an amount whose unit is not declared, a rate table
that cannot be read, and an attempt to map the hub-stamped partner field are each a
:class:`~hub.errors.MappingError` with the line of the offending key.
:func:`~connectors.partner.template.mapping_template` writes a commented starting point.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
)

from connectors.partner.fieldmapping import FieldMapping
from hub.contracts.model import ContractRegistry
from hub.errors import MappingError
from hub.yamlfile import load_model, validate_document

__all__ = [
    "DEFAULT_MAX_REJECT_RATIO",
    "Encoding",
    "FieldMapping",
    "Mapping",
    "SourceFormat",
    "SourceOptions",
    "load_mapping",
    "parse_mapping",
]

#: Share of rejected rows above which a run stops and writes no extract.
DEFAULT_MAX_REJECT_RATIO = 0.05


class SourceFormat(StrEnum):
    CSV = "csv"
    PARQUET = "parquet"
    XLSX = "xlsx"
    SQLITE = "sqlite"


class Encoding(StrEnum):
    """Text encodings DuckDB reads without an extension, or ``auto`` (detected)."""

    AUTO = "auto"
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
        default=None, description="CSV column delimiter; default: detected."
    )
    encoding: Encoding = Field(
        default=Encoding.AUTO, description="CSV text encoding; default: detected."
    )
    sheet: str | None = Field(default=None, description="Excel sheet; default: the first.")
    sql: str | None = Field(
        default=None,
        description="A query whose result is the export: run by SQLite over a SQLite "
        "file, otherwise by DuckDB over local files (the source file is the table `source`).",
    )
    decimal_separator: str = Field(
        default=".",
        description="'.' or ','; how numbers written as text mark decimals (the default of "
        "every number field's `decimal`).",
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


class Mapping(BaseModel):
    """One partner export mapped onto one contract version (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field(description="The contract's dataset.")
    contract_version: int = Field(ge=1, description="The contract version the mapping targets.")
    source: SourceOptions = Field(default_factory=SourceOptions)
    max_reject_ratio: float = Field(
        default=DEFAULT_MAX_REJECT_RATIO,
        ge=0,
        le=1,
        description="Share of rejected rows above which nothing is written (0.05 or '5%').",
    )
    fields: dict[str, FieldMapping] = Field(min_length=1)
    ignore: dict[str, str] = Field(
        default_factory=dict,
        description="Columns of the export left out on purpose: column -> why.",
    )

    @field_validator("max_reject_ratio", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().endswith("%"):
            try:
                return float(value.strip()[:-1]) / 100
            except ValueError:
                raise ValueError(
                    "max_reject_ratio is a share (0.05) or a percentage (5%)"
                ) from None
        return value

    @field_validator("ignore", mode="before")
    @classmethod
    def _reasons(cls, value: Any) -> Any:
        if isinstance(value, list):
            raise ValueError(
                "ignore maps each column to the reason it is left out, e.g. "
                "`ignore: {customer_name: a name, never shared}`"
            )
        if isinstance(value, dict):
            for column, reason in value.items():
                if reason is None or not str(reason).strip():
                    raise ValueError(f"say why column {column!r} is ignored (a short reason)")
            return {str(k): str(v).strip() for k, v in value.items()}
        return value

    @field_validator("ignore")
    @classmethod
    def _not_mapped(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        fields = info.data.get("fields") or {}
        for name, entry in fields.items():
            both = set(entry.source_columns()) & set(value)
            if both:
                raise ValueError(
                    f"column {sorted(both)[0]!r} is both mapped (fields.{name}) and ignored"
                )
        return value

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
        names = [c for m in self.fields.values() for c in m.source_columns()]
        return list(dict.fromkeys(names))


def _context(registry: ContractRegistry | None, base_dir: Path | None) -> dict[str, Any]:
    return {
        "registry": registry if registry is not None else ContractRegistry.load(),
        "base_dir": base_dir if base_dir is not None else Path.cwd(),
    }


def load_mapping(path: Path, registry: ContractRegistry | None = None) -> Mapping:
    """Read and check a mapping file against its contract (``MappingError`` with lines).

    Files the mapping names (rate tables) are read relative to the mapping file's folder.
    """
    if not path.is_file():
        raise MappingError(f"mapping file {path} does not exist", file=str(path))
    context = _context(registry, path.resolve().parent)
    return load_model(path, Mapping, error=MappingError, context=context)


def parse_mapping(
    text: str,
    registry: ContractRegistry | None = None,
    *,
    source: str = "<mapping>",
    base_dir: Path | None = None,
) -> Mapping:
    """Check mapping YAML given as text (see :func:`load_mapping`); files it names are read
    relative to ``base_dir`` (default: the working directory)."""
    return validate_document(
        text, Mapping, source=source, error=MappingError, context=_context(registry, base_dir)
    )

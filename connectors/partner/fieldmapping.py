"""One entry of a mapping's ``fields:``: where a contract field comes from and how to read it.

Every option is checked against the contract field it feeds, when the mapping is loaded,
so that a wrong option is a :class:`~hub.errors.MappingError` naming its line, never a
surprise in the data. What each option does is in docs/connector.md; in short:

=================  ==========================================================================
all fields         ``column`` | ``columns`` (+ ``join``) | ``constant``; ``unknown`` values
categories         ``recode`` (a value -> a code, or null for unknown), ``fold``,
                   ``separator`` (category lists)
numbers            ``decimal``, ``thousands``; with a contract unit: ``unit`` or
                   ``currency_column`` (required), ``minor_units``, ``rates``;
                   ``check_magnitude``
periods            ``formats``, ``timezone``, ``month_in``
phone identifiers  ``default_region``, ``region_column``, ``add_plus``
=================  ==========================================================================

The contract and the mapping file's folder reach the validators through the validation
context (``contract``, ``base_dir``), which :func:`connectors.partner.mapping.load_mapping`
owns.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import zoneinfo
from enum import StrEnum
from pathlib import Path
from typing import Any

import phonenumbers
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from connectors.partner.rates import is_currency, read_rate_table
from hub.contracts.model import Contract, ContractField, FieldType, IdentifierKind

__all__ = [
    "DEFAULT_SEPARATOR",
    "FieldMapping",
    "Fold",
    "MonthIn",
    "RateTable",
    "domain_hint",
    "fold_text",
]

DEFAULT_SEPARATOR = "|"
CATEGORY_TYPES = (FieldType.CATEGORY, FieldType.CATEGORY_LIST)
NUMBER_TYPES = (FieldType.INTEGER, FieldType.NUMBER)
_SPACE_CHARS = " \u00a0\u202f"
_THOUSANDS = {"space": " ", ".": ".", ",": ",", "'": "'", "none": ""}
# strptime directives DuckDB and Python share; a format must name a year and a month.
_DIRECTIVE_RE = re.compile(r"%-?([a-zA-Z%])")
_DIRECTIVES = set("aAwdbBmyYHIpMSfzZjUWGgVuecxX%")
_TIME_DIRECTIVES = set("HIpMSfcX")


class Fold(StrEnum):
    """What category matching ignores (``fold: [case, spaces]``)."""

    CASE = "case"  # Forced Labour = forced labour
    SPACES = "spaces"  # "18 - 20" = "18-20" (every kind of space, no-break ones too)
    ACCENTS = "accents"  # "Côte" = "Cote"
    PUNCTUATION = "punctuation"  # dashes, underscores, dots, slashes, apostrophes


class MonthIn(StrEnum):
    UTC = "utc"
    LOCAL = "local"


# hyphen-minus, underscore, dot, slash, apostrophes, every Unicode dash and the minus sign
_PUNCTUATION_RE = re.compile("[-_./'\u2019\u2010-\u2015\u2212]")
_SPACES_RE = re.compile(r"\s+")


def fold_text(value: str, fold: frozenset[Fold] | set[Fold] | list[Fold]) -> str:
    """``value`` as category matching compares it: trimmed, then folded by ``fold``."""
    text = unicodedata.normalize("NFC", value).strip()
    if Fold.CASE in fold:
        text = text.casefold()
    if Fold.ACCENTS in fold:
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(c for c in decomposed if not unicodedata.combining(c))
    if Fold.PUNCTUATION in fold:
        text = _PUNCTUATION_RE.sub("", text)
    if Fold.SPACES in fold:
        text = _SPACES_RE.sub("", text)
    return text


def domain_hint(f: ContractField, shown: int = 6) -> str:
    codes = f.codes
    listed = ", ".join(codes[:shown])
    more = f", ... {len(codes) - shown} more" if len(codes) > shown else ""
    return f"codes: {listed}{more}"


def scalar_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise ValueError("expected text or a number")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _contract_field(info: ValidationInfo) -> ContractField | None:
    contract = (info.context or {}).get("contract")
    name = info.data.get("field")
    if not isinstance(contract, Contract) or name is None:
        return None
    try:
        return contract.field(name)
    except KeyError:
        return None  # reported once, by FieldMapping._against_contract


def _only_for(info: ValidationInfo, types: tuple[FieldType, ...], what: str) -> None:
    f = _contract_field(info)
    if f is not None and f.type not in types:
        raise ValueError(f"{info.field_name} is only for {what} fields ({f.name} is {f.type})")


class RateTable(BaseModel):
    """Exchange rates from a file (see :mod:`connectors.partner.rates`) and their date."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    file: str = Field(description="CSV file, relative to the mapping file's folder.")
    date: dt.date = Field(description="The date the rates are for (shown in the report).")
    _per_unit: dict[str, float] = PrivateAttr(default_factory=dict)

    @property
    def per_unit(self) -> dict[str, float]:
        """Currency -> units of it per one unit of the contract's unit."""
        return self._per_unit

    def load(self, base_dir: Path, target: str) -> None:
        self._per_unit = read_rate_table(base_dir / self.file, target)


class FieldMapping(BaseModel):
    """Where one contract field comes from. ``field`` is the key it is written under."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="The contract field (the key in `fields:`).")
    column: str | None = Field(default=None, description="The column in the export.")
    columns: list[str] | None = Field(
        default=None, min_length=2, description="Several columns, joined into one value."
    )
    join: str = Field(default=" ", description="What joins `columns` (default a space).")
    constant: str | int | float | None = Field(
        default=None, description="A value every row gets, instead of a column."
    )
    unknown: list[str] = Field(
        default_factory=list, description="Values meaning 'unknown' (empty cells always are)."
    )
    fold: list[Fold] = Field(default_factory=list, description="What category matching ignores.")
    recode: dict[str, str | None] | None = Field(
        default=None, description="Partner value -> contract code, or null for unknown."
    )
    separator: str = Field(
        default=DEFAULT_SEPARATOR,
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
    add_plus: bool = Field(
        default=False,
        description="Phone identifiers: numbers starting with a country code but no + "
        "(447400123456) get their +.",
    )
    formats: list[str] = Field(
        default_factory=list, description="Periods: strptime formats of dates and times."
    )
    timezone: str | None = Field(
        default=None, description="Periods: the IANA time zone local times are written in."
    )
    month_in: MonthIn | None = Field(
        default=None, description="Periods: the month of the time in UTC (default) or local."
    )
    decimal: str | None = Field(default=None, description="Numbers: '.' or ','.")
    thousands: list[str] | None = Field(
        default=None, description="Numbers: thousands separators ('.', ',', \"'\", space)."
    )
    unit: str | None = Field(default=None, description="Numbers: the unit the column is in.")
    minor_units: bool = Field(default=False, description="Amounts written in cents.")
    currency_column: str | None = Field(
        default=None, description="Amounts: a column holding each row's currency."
    )
    rates: RateTable | None = Field(default=None, description="Exchange rates and their date.")
    check_magnitude: bool = Field(
        default=True, description="Stop when most values lie above the contract's clamp."
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"column": value} if isinstance(value, str) else value

    @field_validator("unknown", mode="before")
    @classmethod
    def _unknown_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return ["" if v is None else scalar_text(v) for v in value]
        return [scalar_text(value)] if value is not None else value

    @field_validator("fold", mode="before")
    @classmethod
    def _one_fold(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("fold")
    @classmethod
    def _fold_for_categories(cls, value: list[Fold], info: ValidationInfo) -> list[Fold]:
        if value:
            _only_for(info, CATEGORY_TYPES, "category")
        return value

    @field_validator("recode", mode="before")
    @classmethod
    def _recode_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                ("" if k is None else scalar_text(k)): (None if v is None else scalar_text(v))
                for k, v in value.items()
            }
        return value

    @field_validator("recode")
    @classmethod
    def _recode_targets(
        cls, value: dict[str, str | None] | None, info: ValidationInfo
    ) -> dict[str, str | None] | None:
        f = _contract_field(info)
        if value is None or f is None:
            return value
        if f.type not in CATEGORY_TYPES:
            raise ValueError("recode is only for category and category_list fields")
        outside = [code for code in value.values() if code is not None and code not in f.codes]
        if outside:
            shown = ", ".join(repr(c) for c in dict.fromkeys(outside))
            raise ValueError(
                f"recode targets {shown} are not in the domain of {f.name!r} ({domain_hint(f)})"
            )
        fold = set(info.data.get("fold") or [])
        seen: dict[str, tuple[str, str | None]] = {}
        for key, target in value.items():
            folded = fold_text(key, fold)
            if folded in seen and seen[folded][1] != target:
                raise ValueError(
                    f"recode keys {seen[folded][0]!r} and {key!r} are the same once folded "
                    f"({', '.join(sorted(fold)) or 'trimmed'}) but go to different codes"
                )
            seen[folded] = (key, target)
        return value

    @field_validator("separator")
    @classmethod
    def _separator(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            raise ValueError("separator must not be empty")
        if value != DEFAULT_SEPARATOR:
            _only_for(info, (FieldType.CATEGORY_LIST,), "category_list")
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

    @field_validator("formats", mode="before")
    @classmethod
    def _one_format(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("formats")
    @classmethod
    def _formats(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if not value:
            return value
        _only_for(info, (FieldType.PERIOD,), "period")
        zoned = set()
        for fmt in value:
            found = _DIRECTIVE_RE.findall(fmt)
            unknown = [d for d in found if d not in _DIRECTIVES]
            if unknown:
                raise ValueError(f"format {fmt!r}: %{unknown[0]} is not a strptime directive")
            if not {"Y", "y", "G"} & set(found) or not {"m", "b", "B", "j"} & set(found):
                raise ValueError(f"format {fmt!r} must give a year and a month (e.g. %d.%m.%Y)")
            zoned.add("z" in found)
        if len(zoned) > 1:
            raise ValueError("either every format has a UTC offset (%z) or none has")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _only_for(info, (FieldType.PERIOD,), "period")
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not an IANA time zone (e.g. Europe/Rome, America/New_York, UTC)"
            ) from None
        return value

    @field_validator("month_in")
    @classmethod
    def _month_in(cls, value: MonthIn | None, info: ValidationInfo) -> MonthIn | None:
        if value is not None:
            _only_for(info, (FieldType.PERIOD,), "period")
            if info.data.get("timezone") is None:
                raise ValueError("month_in needs timezone (the zone the times are written in)")
        return value

    @field_validator("decimal")
    @classmethod
    def _decimal(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        _only_for(info, NUMBER_TYPES, "number")
        if value not in (".", ","):
            raise ValueError("decimal must be '.' or ','")
        return value

    @field_validator("thousands", mode="before")
    @classmethod
    def _one_separator(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("thousands")
    @classmethod
    def _thousands(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        _only_for(info, NUMBER_TYPES, "number")
        bad = [v for v in value if v not in _THOUSANDS]
        if bad:
            raise ValueError(
                f"thousands separator {bad[0]!r} is not one of '.', ',', \"'\", space or none"
            )
        if info.data.get("decimal") in value:
            raise ValueError("the thousands separator cannot also be the decimal separator")
        return value

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        f = _contract_field(info)
        if f is not None and f.unit is None:
            raise ValueError(f"{f.name!r} has no unit in the contract: remove `unit`")
        if f is not None and value != f.unit and not (is_currency(f.unit) and is_currency(value)):
            hint = (
                "; for amounts in cents keep the currency and add `minor_units: true`"
                if is_currency(f.unit)
                else ""
            )
            raise ValueError(f"unit {value!r} is not {f.unit!r} (the contract's unit){hint}")
        return value

    @field_validator("minor_units")
    @classmethod
    def _minor(cls, value: bool, info: ValidationInfo) -> bool:
        f = _contract_field(info)
        if value and f is not None and not is_currency(f.unit):
            raise ValueError("minor_units is only for amounts in a currency")
        return value

    @field_validator("currency_column")
    @classmethod
    def _currency_column(cls, value: str | None, info: ValidationInfo) -> str | None:
        f = _contract_field(info)
        if value is not None and f is not None and not is_currency(f.unit):
            raise ValueError("currency_column is only for amounts in a currency")
        if value is not None and info.data.get("unit") is not None:
            raise ValueError("give either unit or currency_column, not both")
        return value

    @field_validator("rates")
    @classmethod
    def _rates(cls, value: RateTable | None, info: ValidationInfo) -> RateTable | None:
        f = _contract_field(info)
        if value is None or f is None:
            return value
        unit, per_row = info.data.get("unit"), info.data.get("currency_column")
        if unit == f.unit and per_row is None:
            raise ValueError(f"the column is in {f.unit}, the contract's unit: remove `rates`")
        if not is_currency(f.unit):
            raise ValueError("rates are only for amounts in a currency")
        base = (info.context or {}).get("base_dir")
        value.load(Path(base) if base is not None else Path.cwd(), str(f.unit))
        if unit is not None and unit not in value.per_unit:
            raise ValueError(f"the rate table {value.file} has no rate for {unit}")
        return value

    @field_validator("check_magnitude")
    @classmethod
    def _magnitude(cls, value: bool, info: ValidationInfo) -> bool:
        if not value:
            _only_for(info, NUMBER_TYPES, "number")
        return value

    @model_validator(mode="after")
    def _against_contract(self, info: ValidationInfo) -> FieldMapping:
        sources = sum(x is not None for x in (self.column, self.columns, self.constant))
        if sources != 1:
            raise ValueError("give one of column, columns or constant")
        if self.join != " " and self.columns is None:
            raise ValueError("join is only for columns")
        contract = (info.context or {}).get("contract")
        if not isinstance(contract, Contract):
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
        phone = f.identifier_kind is IdentifierKind.PHONE
        if not phone and (self.default_region or self.region_column or self.add_plus):
            raise ValueError("default_region, region_column and add_plus are only for phones")
        if self.constant is not None:
            self._check_constant(f)
            return self
        if is_currency(f.unit) and self.unit is None and self.currency_column is None:
            raise ValueError(
                f"the unit of {f.name!r} is not declared: say what the column holds, e.g. "
                f"`unit: {f.unit}` (add `minor_units: true` if the amounts are in cents), or "
                "another currency with `rates:`, or `currency_column:` with `rates:`"
            )
        if f.unit is not None and not is_currency(f.unit) and self.unit is None:
            raise ValueError(f"the unit of {f.name!r} is not declared: add `unit: {f.unit}`")
        converts = self.currency_column is not None or (
            self.unit is not None and self.unit != f.unit
        )
        if converts and self.rates is None:
            raise ValueError(
                f"amounts not in {f.unit} need `rates:` (a rate table file and its date)"
            )
        return self

    def _check_constant(self, f: ContractField) -> None:
        assert self.constant is not None  # noqa: S101 - the caller checked
        if f.type is FieldType.TOKEN:
            raise ValueError(
                "an identifier cannot be a constant: every row would be the same person"
            )
        if f.type is FieldType.CATEGORY and scalar_text(self.constant) not in f.codes:
            raise ValueError(
                f"constant {self.constant!r} is not in the domain of {f.name!r} ({domain_hint(f)})"
            )

    # -- what the pipeline asks -----------------------------------------------------------
    def source_columns(self) -> list[str]:
        """The export's columns this entry reads."""
        names = [self.column] if self.column else list(self.columns or [])
        names += [c for c in (self.region_column, self.currency_column) if c]
        return names

    def decimal_mark(self, default: str) -> str:
        return self.decimal or default

    def thousands_marks(self, decimal: str) -> str:
        """The thousands separators as characters (spaces: every kind of space)."""
        if self.thousands is None:
            return "." if decimal == "," else ""
        marks = "".join(_THOUSANDS[t] for t in self.thousands)
        return marks.replace(" ", _SPACE_CHARS)

    def timed_formats(self) -> tuple[list[str], list[str]]:
        """(formats with a time of day, date-only formats)."""
        timed = [f for f in self.formats if set(_DIRECTIVE_RE.findall(f)) & _TIME_DIRECTIVES]
        return timed, [f for f in self.formats if f not in timed]

    def month_rule(self) -> MonthIn | None:
        if self.timezone is None:
            return None
        return self.month_in or MonthIn.UTC

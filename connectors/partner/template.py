"""``tahub-connect mapping template``: a commented mapping for one contract, to fill in.

The template loads as-is when the export's columns carry the contract's names (amounts in
the contract's own unit); each field lists the options that apply to it, commented out.
"""

from __future__ import annotations

from connectors.partner.fieldmapping import CATEGORY_TYPES, DEFAULT_SEPARATOR, domain_hint
from connectors.partner.mapping import DEFAULT_MAX_REJECT_RATIO
from connectors.partner.rates import is_currency
from hub.contracts.model import Contract, ContractField, FieldType, IdentifierKind

__all__ = ["describe_field", "mapping_template", "yaml_str"]


def yaml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _number(value: float | str | None) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def describe_field(f: ContractField) -> list[str]:
    """Comment lines saying what a contract field is and what it accepts."""
    lines = [f"  # {f.description.strip()}"]
    need = "required" if f.required else "optional: leave it out if you do not have it"
    if f.type is FieldType.TOKEN:
        lines.append(f"  # identifier ({f.identifier_kind}), {need}: normalised and pseudonymised")
        lines.append("  # on your machine with the network key; it never leaves it raw.")
    elif f.type in CATEGORY_TYPES:
        many = (
            " several per row, separated by `separator`,"
            if (f.type is FieldType.CATEGORY_LIST)
            else ""
        )
        lines.append(f"  # {f.type.value},{many} {need}; {domain_hint(f, 8)}")
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
        if f.domain.clamp is not None:
            bounds += f"; usually at most {_number(f.domain.clamp[1])}"
        unit = f" {f.unit}" if f.unit else ""
        lines.append(f"  # {f.type.value}{unit}, {need}; {bounds}")
    return lines


def _options(f: ContractField) -> list[str]:
    out = []
    if f.identifier_kind is IdentifierKind.PHONE:
        out.append("    # default_region: GB  # for numbers written without +country code")
        out.append("    # region_column: country  # or: each row's country, from a column")
        out.append("    # add_plus: true  # numbers written 447400123456, without their +")
    if f.type in CATEGORY_TYPES:
        example = f.codes[0] if f.codes else "code"
        out.append(f'    # recode: {{"your value": {yaml_str(example)}, "n/a": null}}')
        out.append("    # fold: [case, spaces]  # match values and codes ignoring these")
    if f.type is FieldType.CATEGORY_LIST:
        out.append(f'    # separator: "{DEFAULT_SEPARATOR}"')
    if f.type is FieldType.PERIOD:
        out.append('    # formats: ["%d.%m.%Y"]  # day-first dates (ISO dates need none)')
        out.append("    # timezone: Europe/Rome  # local times: the month is taken in UTC")
    if f.type in (FieldType.INTEGER, FieldType.NUMBER):
        out.append('    # decimal: ","  # and thousands: [".", space] for 1.234,50')
        out.append('    # unknown: ["-99", "n/a"]')
    if is_currency(f.unit):
        out.append(f"    unit: {f.unit}  # the unit the column is written in (required)")
        out.append("    # minor_units: true  # amounts in cents")
        out.append("    # currency_column: ccy  # each row's currency, converted with rates:")
        out.append("    # rates: {file: fx_rates.csv, date: 2025-06-30}")
    elif f.unit is not None:
        out.append(f"    unit: {f.unit}")
    return out


def mapping_template(contract: Contract) -> str:
    """A commented mapping for ``contract`` that loads as-is when the export's columns
    carry the contract's names; the partner edits ``column:`` to their own names."""
    out = [
        f"# tahub-connect mapping: {contract.title} ({contract.dataset} v{contract.version})",
        "# Set each `column:` to the name of the column in your export; see docs/connector.md.",
        "# (`tahub-connect mapping suggest EXPORT` proposes one from the export itself.)",
        f"dataset: {contract.dataset}",
        f"contract_version: {contract.version}",
        "# source:                 # how to read the export; every option has a default",
        "#   format: csv           # csv, parquet, xlsx or sqlite (default: from the file name)",
        '#   delimiter: ";"        # csv only (default: detected)',
        "#   encoding: utf-8       # csv only: utf-8, latin-1 or utf-16 (default: detected)",
        "#   decimal_separator: .  # numbers written as text: '.' or ','",
        "#   sheet: Sheet1         # xlsx only (default: the first sheet)",
        "#   sql: SELECT * FROM source  # a query that returns the export (see the docs)",
        f"# max_reject_ratio: {DEFAULT_MAX_REJECT_RATIO:.0%}  # more rejected rows: nothing "
        "is written",
        "fields:",
    ]
    for f in contract.extract_fields:
        out += describe_field(f)
        out.append(f"  {f.name}:")
        out.append(f"    column: {yaml_str(f.name)}")
        out += _options(f)
    out += [
        "# ignore:                 # columns of your export left out on purpose, and why",
        "#   customer_name: a name, never shared",
    ]
    return "\n".join(out) + "\n"

"""Implausible magnitudes: amounts 100 times too large are caught before anything leaves.

A contract's measure has a public clamp range: every value is clamped to it before the hub
adds values up, so the contract's authors set it to hold nearly every genuine value. When
more than :data:`SHARE` of a field's values lie above its upper end (and at least
:data:`AT_LEAST` of them), the unit is almost certainly wrong: amounts in cents read as
euros, a currency not converted. The warning says what would fix it: when dividing by the
currency's minor unit brings the values back inside the range, that the amounts are
probably in minor units (``minor_units: true``).

``tahub-connect check`` prints these warnings; ``prepare_extract`` (``push``, ``validate``)
stops on them unless the field says ``check_magnitude: false``.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from connectors.partner.convert import ParsedExport
from connectors.partner.fieldmapping import NUMBER_TYPES
from connectors.partner.mapping import Mapping
from connectors.partner.rates import is_currency, minor_digits
from hub.contracts.model import Contract
from hub.contracts.validation import quote_ident

__all__ = ["AT_LEAST", "SHARE", "MagnitudeWarning", "magnitude_warnings"]

SHARE = 0.10
AT_LEAST = 2


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


@dataclass(frozen=True)
class MagnitudeWarning:
    field: str
    above: int
    values: int
    limit: float
    median: float
    unit: str | None
    hint: str
    enforced: bool = True

    @property
    def share(self) -> float:
        return self.above / self.values if self.values else 0.0

    def __str__(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return (
            f"{self.field}: {self.share:.0%} of the values ({self.above:,} of {self.values:,}) "
            f"are above {_num(self.limit)}{unit}, the top of the contract's range for it "
            f"(median {_num(self.median)}); {self.hint}"
        )


def magnitude_warnings(
    con: duckdb.DuckDBPyConnection, contract: Contract, mapping: Mapping, parsed: ParsedExport
) -> list[MagnitudeWarning]:
    """One warning per mapped number field whose values mostly exceed the contract's range."""
    out: list[MagnitudeWarning] = []
    for f in contract.extract_fields:
        fm = mapping.fields.get(f.name)
        if f.type not in NUMBER_TYPES or fm is None or fm.constant is not None:
            continue
        assert f.domain is not None  # noqa: S101 - guaranteed by ContractField
        top = f.domain.clamp[1] if f.domain.clamp is not None else f.domain.max
        if not isinstance(top, int | float) or isinstance(top, bool):
            continue
        currency = fm.unit if is_currency(fm.unit) else None
        scale = 10 ** minor_digits(currency) if currency and not fm.minor_units else None
        v = quote_ident(f.name)
        scaled = f"count(*) FILTER (WHERE {v} / {scale} <= {top!r})" if scale else "0"
        ((values, above, median, whole, back),) = con.execute(
            f"SELECT count({v}), count(*) FILTER (WHERE {v} > {top!r}), median({v}), "
            f"bool_and({v} = trunc({v})), {scaled} FROM {parsed.table} "
            f"WHERE {v} IS NOT NULL AND NOT isnan({v})"
        ).fetchall()
        if not values or above < AT_LEAST or above / values <= SHARE:
            continue
        if scale and back >= 0.9 * values:
            hint = (
                f"divided by {scale} they would fit: "
                + ("all are whole numbers; " if whole else "")
                + f"are they in cents? add `minor_units: true` to fields.{f.name}"
            )
        elif fm.minor_units or fm.rates is not None:
            hint = f"check `unit`, `minor_units` and `rates` of fields.{f.name}"
        else:
            hint = f"check the column and the unit of fields.{f.name}"
        hint += " (or `check_magnitude: false` if the values are right)"
        out.append(
            MagnitudeWarning(
                field=f.name,
                above=int(above),
                values=int(values),
                limit=float(top),
                median=float(median),
                unit=f.unit,
                hint=hint,
                enforced=fm.check_magnitude,
            )
        )
    return out

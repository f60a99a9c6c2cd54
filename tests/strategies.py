"""Hypothesis strategies shared by the test suite (kept in one module, as STYLE.md asks).

Rows are generated as the *partner* writes them: text cells keyed by contract field name,
identifiers raw (IBANs, phone numbers, passport numbers) and periods as months or dates.
:func:`valid_rows` only makes rows that the partner-side checks accept; :func:`corruptions`
makes one bad cell together with the field and the reason the checks must report.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import phonenumbers
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban

from hub.contracts import Contract, ContractField, FieldType, IdentifierKind, months_between

__all__ = [
    "Corruption",
    "corruptions",
    "documents",
    "ibans",
    "network_keys",
    "phone_numbers",
    "spellings",
    "valid_rows",
]

Row = dict[str, str | None]

# BBAN layout (upper-case letters, then digits) of a few countries' IBANs.
_BBAN = {"GB": (4, 14), "DE": (0, 18), "FR": (0, 23), "NL": (4, 10), "IT": (1, 22)}
_PHONE_REGIONS = ("GB", "DE", "IT", "FR", "NG", "RO", "US")


def network_keys() -> st.SearchStrategy[bytes]:
    return st.binary(min_size=32, max_size=64)


@st.composite
def ibans(draw: st.DrawFn) -> str:
    """A valid IBAN, compact and upper-case."""
    country = draw(st.sampled_from(sorted(_BBAN)))
    letters, digits = _BBAN[country]
    bban = draw(st.text(string.ascii_uppercase, min_size=letters, max_size=letters)) + draw(
        st.text(string.digits, min_size=digits, max_size=digits)
    )
    return country + stdnum_iban.calc_check_digits(country + "00" + bban) + bban


@st.composite
def phone_numbers(draw: st.DrawFn) -> str:
    """A valid mobile number in E.164, built from phonenumbers' own example numbers."""
    region = draw(st.sampled_from(_PHONE_REGIONS))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    national = str(example.national_number)
    tail = draw(st.text(string.digits, min_size=3, max_size=3))
    number = phonenumbers.parse(f"+{example.country_code}{national[:-3]}{tail}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def documents() -> st.SearchStrategy[str]:
    """A passport-like document number: two letters and seven digits."""
    return st.from_regex(r"\A[A-Z]{2}[0-9]{7}\Z")


@st.composite
def spellings(draw: st.DrawFn, kind: IdentifierKind, canonical: str) -> str:
    """Another way a partner's system may write the identifier ``canonical``."""
    if kind is IdentifierKind.IBAN:
        spaced = " ".join(canonical[i : i + 4] for i in range(0, len(canonical), 4))
        return draw(st.sampled_from([canonical, canonical.lower(), spaced, spaced.lower()]))
    if kind is IdentifierKind.PHONE:
        number = phonenumbers.parse(canonical)
        fmt = draw(
            st.sampled_from(
                [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL]
            )
        )
        return phonenumbers.format_number(number, fmt)
    if kind is IdentifierKind.DOCUMENT:
        return draw(
            st.sampled_from(
                [
                    canonical,
                    canonical.lower(),
                    f"{canonical[:2]} {canonical[2:]}",
                    f"{canonical[:2]}-{canonical[2:]}",
                ]
            )
        )
    if kind is IdentifierKind.EMAIL:
        return draw(st.sampled_from([canonical, canonical.upper(), f"  {canonical} "]))
    return draw(st.sampled_from([canonical, canonical.upper(), f" {canonical}  "]))


def _identifier(kind: IdentifierKind) -> st.SearchStrategy[str]:
    if kind is IdentifierKind.IBAN:
        return ibans()
    if kind is IdentifierKind.PHONE:
        return phone_numbers()
    if kind is IdentifierKind.DOCUMENT:
        return documents()
    if kind is IdentifierKind.EMAIL:
        return st.from_regex(r"\A[a-z]{1,8}\.[a-z]{1,8}@example\.(org|net)\Z")
    return st.from_regex(r"\A[A-Za-z0-9]{4,12}\Z")


def _bounds(f: ContractField) -> tuple[float, float]:
    assert f.domain is not None and isinstance(f.domain.min, int | float)
    lo = float(f.domain.min)
    hi = float(f.domain.max) if isinstance(f.domain.max, int | float) else lo + 100_000
    return lo, hi


def _valid_cell(f: ContractField) -> st.SearchStrategy[str]:
    if f.type is FieldType.TOKEN:
        assert f.identifier_kind is not None
        kind = f.identifier_kind
        return _identifier(kind).flatmap(lambda canonical: spellings(kind, canonical))
    if f.type is FieldType.CATEGORY:
        return st.sampled_from(f.codes)
    if f.type is FieldType.CATEGORY_LIST:
        most = min(3, f.max_items or 3)
        return st.lists(st.sampled_from(f.codes), min_size=1, max_size=most, unique=True).map(
            "|".join
        )
    if f.type is FieldType.INTEGER:
        lo, hi = _bounds(f)
        return st.integers(math.ceil(lo), math.floor(hi)).map(str)
    if f.type is FieldType.NUMBER:
        lo, hi = _bounds(f)
        return st.integers(math.ceil(lo * 100), math.floor(hi * 100)).map(
            lambda n: f"{n / 100:.2f}"
        )
    assert f.domain is not None
    months = months_between(str(f.domain.min), str(f.domain.max))
    return st.sampled_from(months).flatmap(lambda m: st.sampled_from([m, f"{m}-01", f"{m}-28"]))


@st.composite
def valid_rows(draw: st.DrawFn, contract: Contract) -> Row:
    """One row the partner-side checks accept (optional fields sometimes left empty)."""
    row: Row = {}
    for f in contract.extract_fields:
        cell = _valid_cell(f)
        row[f.name] = draw(cell if f.required else st.none() | cell)
    return row


@dataclass(frozen=True)
class Corruption:
    field: str
    value: str
    reason: str  # a fragment of the reason the checks must give


def _corruptions_of(f: ContractField) -> list[Corruption]:
    out = []
    if f.required:
        out.append(Corruption(f.name, "", "required"))
    if f.type is FieldType.TOKEN:
        if f.identifier_kind is IdentifierKind.IBAN:
            out.append(Corruption(f.name, "GB00NWBK60161331926819", "check digits"))
            out.append(Corruption(f.name, "not an iban", "not an IBAN"))
        elif f.identifier_kind is IdentifierKind.PHONE:
            out.append(Corruption(f.name, "+44 12", "too short"))
            out.append(Corruption(f.name, "call me", "not a phone number"))
        elif f.identifier_kind is IdentifierKind.DOCUMENT:
            out.append(Corruption(f.name, " - . ", "empty"))
        elif f.identifier_kind is IdentifierKind.EMAIL:
            out.append(Corruption(f.name, "nobody.example.org", "not an e-mail"))
    elif f.type is FieldType.CATEGORY:
        out.append(Corruption(f.name, "NotACode", "not in the contract's domain"))
    elif f.type is FieldType.CATEGORY_LIST:
        out.append(Corruption(f.name, f"{f.codes[0]}|NotACode", "not in the contract's domain"))
        out.append(Corruption(f.name, f"{f.codes[0]}|{f.codes[0]}", "listed twice"))
    elif f.type in (FieldType.INTEGER, FieldType.NUMBER):
        lo, _hi = _bounds(f)
        out.append(Corruption(f.name, "twelve", "not a number"))
        out.append(Corruption(f.name, "nan", "NaN and infinity"))
        out.append(Corruption(f.name, "-inf", "NaN and infinity"))
        below = "negative" if lo == 0 else "below the minimum"
        out.append(Corruption(f.name, str(math.floor(lo) - 1), below))
        if f.type is FieldType.INTEGER:
            out.append(Corruption(f.name, f"{math.ceil(lo)}.5", "not a whole number"))
    else:
        out.append(Corruption(f.name, "2024-13", "not a month"))
        out.append(Corruption(f.name, "1990-01", "outside the contract's months"))
    return out


def corruptions(contract: Contract) -> st.SearchStrategy[Corruption]:
    """One bad cell of ``contract``, with the field and the reason the checks must report."""
    return st.sampled_from([c for f in contract.extract_fields for c in _corruptions_of(f)])

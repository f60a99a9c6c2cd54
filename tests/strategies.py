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
from fractions import Fraction
from typing import Any

import phonenumbers
from hypothesis import strategies as st
from stdnum import iban as stdnum_iban

from hub.contracts.model import Contract, ContractField, FieldType, IdentifierKind, months_between

__all__ = [
    "Corruption",
    "corruptions",
    "documents",
    "ibans",
    "network_keys",
    "phone_numbers",
    "policy_documents",
    "privacy_amounts",
    "query_documents",
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
    if all(row[f.name] is None for f in contract.identity):  # a row needs one identifier
        unit = contract.privacy_unit
        row[unit.name] = draw(_valid_cell(unit))
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


# -- sharing policies and query requests ------------------------------------------------------
_JUNK_NAMES = ("iban", "period; DROP TABLE extracts", "Period", "amount)--")


def _closed(contract: Contract) -> list[str]:
    from hub.governance.policies import closed_domain_refusal

    return [f.name for f in contract.fields if closed_domain_refusal(f) is None]


def _measure_rules(contract: Contract) -> list[Any]:
    from hub.contracts.model import Role as FieldRole

    plain: list[Any] = ["count", "count_units", "linked_units"]
    for f in contract.fields:
        if f.role is FieldRole.MEASURE:
            plain += [{"function": fn, "field": f.name} for fn in ("sum", "mean", "quantile")]
    return plain


@st.composite
def policy_documents(draw: st.DrawFn, contract: Contract) -> dict[str, Any]:
    """Valid policy documents for ``contract``: random rules over its closed-domain fields."""
    closed = _closed(contract)
    measures = _measure_rules(contract)
    rules = []
    for i in range(draw(st.integers(1, 3))):
        rules.append({
            "name": f"rule-{i}",
            "who": {
                "roles": draw(st.lists(st.sampled_from(["analyst", "analyst", "governance"]),
                                       unique=True, min_size=1, max_size=2)),
                "members": draw(st.lists(st.sampled_from(["org_met", "Northbank plc"]),
                                         unique=True, max_size=1)),
            },
            "dimensions": draw(st.lists(st.sampled_from(closed), unique=True, max_size=4)),
            "max_dimensions": draw(st.integers(1, 3)),
            "filters": draw(st.lists(st.sampled_from(closed), unique=True, max_size=3)),
            "measures": draw(st.lists(st.sampled_from(measures), min_size=1, max_size=4,
                                      unique_by=lambda m: str(m))),
        })
    return {
        "dataset": contract.dataset,
        "accounting": draw(st.sampled_from(["zcdp", "pure"])),
        "opened": "2026-01-01",
        "min_partners": 2,
        "contribution_bounds": {"max_rows": draw(st.integers(1, 50))},
        "budget": {"global": "4", "per_member": "2", "per_query": "1/2"},
        "rules": rules,
    }


def _spec(m: Any) -> dict[str, Any]:
    if isinstance(m, str):
        return {"function": m}
    extra = {"quantile": 0.5} if m["function"] == "quantile" else {}
    return {"function": m["function"], "field": m["field"], **extra}


@st.composite
def query_documents(
    draw: st.DrawFn, contract: Contract, policy: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Query bodies for ``contract`` that name *any* field (identifiers, partner, measures,
    unknown names with SQL in them), so that authorisation has something to refuse. Given
    a policy document, names its rules list are drawn more often, so that some succeed."""
    names = [f.name for f in contract.fields] + list(_JUNK_NAMES)
    specs = [{"function": fn} for fn in ("count", "count_units", "linked_units")] + [
        {"function": fn, "field": name, **({"quantile": 0.5} if fn == "quantile" else {})}
        for fn in ("sum", "mean", "quantile") for name in names
    ]
    dims, filter_names = list(names), list(names)
    if policy is not None:
        rule = draw(st.sampled_from(policy["rules"]))
        dims += rule["dimensions"] * 8
        filter_names += rule["filters"] * 8
        specs += [_spec(m) for m in rule["measures"]] * 20
    filters: dict[str, Any] = {}
    for name in draw(st.lists(st.sampled_from(filter_names), unique=True, max_size=2)):
        try:
            f = contract.field(name)
        except KeyError:
            filters[name] = ["x"]
            continue
        if f.type is FieldType.PERIOD:
            filters[name] = {"from": "2025-01", "to": "2025-06"}
        else:
            filters[name] = list(f.codes[:2]) or ["x"]
    return {
        "dataset": contract.dataset,
        "group_by": draw(st.lists(st.sampled_from(dims), unique=True, max_size=3)),
        "measures": draw(st.lists(st.sampled_from(specs), min_size=1, max_size=3,
                                  unique_by=lambda m: str(m))),
        "filters": filters,
        "cost": draw(st.sampled_from(["1/100", "1/2", "3/4"])),
    }


def privacy_amounts() -> st.SearchStrategy[str]:
    """Exact amounts as the hub writes them: ``"n/d"`` or a whole number, from 1/10^12 to
    10^6 (tiny per-query deltas to whole budgets)."""
    return st.builds(lambda n, d: str(Fraction(n, d)), st.integers(0, 10**6),
                     st.sampled_from([1, 2, 3, 7, 20, 25, 50, 100, 250, 3000, 10**4, 10**7,
                                      10**12]) | st.integers(1, 10**9))


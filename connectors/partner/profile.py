"""What a column's values are, from a sample: the evidence ``mapping suggest`` weighs.

Pure functions over lists of cell texts: which date format parses them (and whether
day-first was only assumed), which decimal mark and thousands separators they use, whether
they are identifiers of a kind, unknown markers, and the contract code a partner's spelling
most likely means.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections import Counter
from collections.abc import Callable

from connectors.partner.fieldmapping import Fold, fold_text
from connectors.partner.pseudonymise import InvalidIdentifier, normalise
from hub.contracts.model import ContractField, IdentifierKind

__all__ = [
    "CURRENCIES",
    "DOCUMENT_RE",
    "TIME_RE",
    "UNKNOWN_MARKERS",
    "date_formats",
    "guess_code",
    "normalises",
    "number_format",
    "share",
]

UNKNOWN_MARKERS = {
    "n/a", "na", "n.a.", "n/d", "nd", "unknown", "unk", "?", "-", "--", "none", "null", "nil",
    "k.a.", "unbekannt", "sconosciuto", "inconnu", "desconocido", "not known", "-99", "-999",
    "-9", "99", "999", "n/k", "nk", "not recorded",
}  # fmt: skip
_DATE_FORMATS = ["%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y", "%m/%d/%Y", "%Y%m%d", "%d.%m.%y",
                 "%d/%m/%y", "%Y/%m/%d"]  # fmt: skip
_TIME_FORMATS = ["", " %H:%M", " %H:%M:%S", "T%H:%M:%S", " %H.%M"]
_ISO_RE = re.compile(
    r"^\d{4}-\d{2}(-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?)?$"
)
_NUMBER_RE = re.compile(r"^[+-]?[\d.,'\s\u00a0\u202f]*\d$")
DOCUMENT_RE = re.compile(r"^[A-Za-z]{0,3}[ -]?\d{5,9}[A-Za-z]?$")
CURRENCIES = {"EUR", "USD", "GBP", "CHF", "JPY", "CNY", "INR", "NGN", "RON", "BGN", "PLN",
               "CZK", "HUF", "SEK", "NOK", "DKK", "TRY", "AED", "SAR", "PHP", "VND", "BRL",
               "MXN", "ZAR", "UAH", "MDL", "ALL", "RSD", "KES", "GHS", "XOF", "CAD",
               "AUD"}  # fmt: skip
TIME_RE = re.compile(r"^\d{1,2}[:.]\d{2}([:.]\d{2})?$")


def share(values: list[str], test: Callable[[str], bool]) -> float:
    """The share of ``values`` that pass ``test``."""
    if not values:
        return 0.0
    return sum(1 for v in values if test(v)) / len(values)


def normalises(kind: IdentifierKind, value: str, region: str | None = None) -> bool:
    """Whether ``value`` is an identifier of ``kind`` the connector can normalise."""
    try:
        normalise(kind, value, default_region=region)
    except InvalidIdentifier:
        return False
    return True


def date_formats(values: list[str]) -> tuple[list[str] | None, float, str | None]:
    """(formats, share parsed, a note) for date-like values; ([], ...) for ISO."""
    if not values:
        return None, 0.0, None
    sample = values[:300]
    if share(sample, lambda v: bool(_ISO_RE.match(v))) >= 0.9:
        return [], 1.0, None
    best: tuple[float, list[str]] = (0.0, [])
    for date in _DATE_FORMATS:
        formats = [date + t for t in _TIME_FORMATS]
        parsed = share(sample, _any_of(formats))
        if parsed > best[0]:
            used = [f for f in formats if any(_parses(v, f) for v in sample)]
            best = (parsed, used)
    parsed_share, formats = best
    if parsed_share < 0.5:
        return None, parsed_share, None
    note = None
    if formats and formats[0].startswith("%d") and "%m/%d" not in formats[0]:
        us = [f.replace("%d/%m", "%m/%d") for f in formats]
        month_first = share(sample, lambda v: any(_parses(v, f) for f in us))
        if us != formats and month_first >= parsed_share:
            note = "day-first assumed: every day in the sample is 12 or less; check"
    return formats, parsed_share, note


def _any_of(formats: list[str]) -> Callable[[str], bool]:
    return lambda v: any(_parses(v, f) for f in formats)


def _parses(value: str, fmt: str) -> bool:
    try:
        dt.datetime.strptime(value, fmt)
    except ValueError:
        return False
    return True


def number_format(values: list[str]) -> tuple[str, list[str], float]:
    """(decimal mark, thousands separators, share of values that are numbers)."""
    marks: Counter[str] = Counter()
    groups: set[str] = set()
    numeric = [v for v in values if _NUMBER_RE.match(v) and v.lower() not in UNKNOWN_MARKERS]
    for v in numeric:
        last = re.search(r"([.,])(\d+)$", v)
        if last and len(last.group(2)) != 3:
            marks[last.group(1)] += 1
        for sep, _digits in re.findall(r"(?<=\d)([.,'\s\u00a0\u202f])(\d{3})(?=\D|$)", v):
            groups.add(sep)
    decimal = "," if marks[","] > marks["."] else "."
    thousands = sorted(
        {"space" if s.isspace() or s in "\u00a0\u202f" else s for s in groups} - {decimal}
    )
    return decimal, thousands, len(numeric) / len(values) if values else 0.0


def _initials(code: str) -> str:
    words = re.sub(r"([a-z])([A-Z])", r"\1 \2", code).replace("_", " ").split()
    return "".join(w[0] for w in words).casefold()


def guess_code(value: str, f: ContractField) -> str | None:
    """The code ``value`` most likely means: the only code it starts, the only one it is
    part of, the only one it is the initials of, or the closest spelling."""
    every = list(Fold)
    key = fold_text(value, every)
    codes = {fold_text(c, every): c for c in f.codes}
    if not key:
        return None
    starts = [c for k, c in codes.items() if k.startswith(key)]
    if len(starts) == 1:
        return starts[0]
    inside = [c for k, c in codes.items() if key in k]
    if len(key) >= 3 and len(inside) == 1:
        return inside[0]
    initials = [c for c in f.codes if len(key) >= 2 and _initials(c) == key]
    if len(initials) == 1:  # FA: funnel_account
        return initials[0]
    close = difflib.get_close_matches(key, list(codes), n=1, cutoff=0.6)
    return codes[close[0]] if close else None

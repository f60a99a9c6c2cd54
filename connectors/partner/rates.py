"""Currencies: minor units (ISO 4217) and exchange-rate table files.

An amount written in minor units (cents) is divided by ``10 ** minor_digits(currency)``:
100 for most currencies, 1 for the yen, 1000 for the Kuwaiti dinar. An amount in another
currency than the contract's unit is converted with a rate table the mapping names, read
by :func:`read_rate_table`: a CSV file whose header says which way its rates go::

    currency,units_per_EUR        # how many units of the currency one EUR buys (ECB style)
    USD,1.0823
    GBP,0.8457

or ``currency,EUR_per_unit`` (what one unit of the currency is worth in EUR). The table is
normalised to units per target unit; the mapping states the date the rates are for, and the
report repeats it.
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path

__all__ = ["CURRENCY_RE", "is_currency", "minor_digits", "read_rate_table"]

CURRENCY_RE = re.compile(r"^[A-Z]{3}$")

# ISO 4217 currencies whose minor unit is not 1/100 (list of 2024; the others have two).
_MINOR_DIGITS = {
    **dict.fromkeys(
        ["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    "CLF": 4,
    "UYW": 4,
}  # fmt: skip


def is_currency(unit: str | None) -> bool:
    """True for an ISO 4217-shaped code (three capital letters)."""
    return unit is not None and bool(CURRENCY_RE.match(unit))


def minor_digits(currency: str) -> int:
    """Digits of the currency's minor unit (2 for EUR: 100 cents to the euro)."""
    return _MINOR_DIGITS.get(currency, 2)


def read_rate_table(path: Path, target: str) -> dict[str, float]:
    """Currency -> units of it per one ``target`` (see the module docstring).

    Raises ``ValueError`` naming the file's line for anything wrong in it.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ValueError(f"rate table {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"rate table {path} cannot be read ({exc.__class__.__name__})") from None
    rows = [r for r in csv.reader(text.splitlines()) if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"rate table {path.name} is empty")
    header = [c.strip() for c in rows[0]]
    per_target, target_per = f"units_per_{target}".lower(), f"{target}_per_unit".lower()
    if len(header) != 2 or header[0].lower() != "currency" or header[1].lower() not in (
        per_target,
        target_per,
    ):
        raise ValueError(
            f"{path.name} line 1: the header must be `currency,units_per_{target}` (units "
            f"of the currency one {target} buys) or `currency,{target}_per_unit`"
        )
    invert = header[1].lower() == target_per
    table: dict[str, float] = {}
    for number, row in enumerate(rows[1:], 2):
        if len(row) != 2:
            raise ValueError(f"{path.name} line {number}: expected 2 fields, found {len(row)}")
        code, text_rate = row[0].strip().upper(), row[1].strip()
        if not CURRENCY_RE.match(code):
            raise ValueError(f"{path.name} line {number}: {code!r} is not a currency code")
        try:
            rate = float(text_rate)
        except ValueError:
            rate = math.nan
        if not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"{path.name} line {number}: the rate is not a positive number")
        if code in table:
            raise ValueError(f"{path.name} line {number}: {code} is listed twice")
        table[code] = 1 / rate if invert else rate
    table.setdefault(target, 1.0)
    return table

"""Privacy amounts as people read them: decimals, from the hub's exact fractions.

The hub's amounts are exact strings (``"37/25"``); people read decimals (``rho 1.48``). The
decimal keeps three significant digits and the whole integer part, rounded half up, computed
exactly from the fraction -- digit for digit the web interface's
(``hub/web/static/amounts.js``)::

    >>> decimal("37/25"), decimal("9/20"), decimal("1/10000"), decimal("1/3"), decimal("100/3")
    ('1.48', '0.45', '0.0001', '0.333', '33.3')
    >>> amount("1/10", "zcdp"), amount("9/20", "pure"), amount("1/3", "zcdp", exact=True)
    ('rho 0.1', 'epsilon 0.45', 'rho 0.333 (exact 1/3)')

The exact value stays in the API, in ``--json`` and in downloads; a command line, which has
no hover, adds it when the decimal is rounded (``exact=True``). Sizes in bytes read the same
way everywhere (:func:`size_text`: ``1.5 MB``).
"""

from __future__ import annotations

from fractions import Fraction

__all__ = ["amount", "decimal", "size_text", "symbol"]

_SYMBOLS = {"zcdp": "rho", "pure": "epsilon"}
_DIGITS = 3


def symbol(measure: str | None) -> str:
    """The privacy parameter a policy's accounting spends: zcdp -> rho, pure -> epsilon."""
    return _SYMBOLS.get(measure or "", measure or "")


def decimal(text: str | Fraction | int | None) -> str:
    """The decimal of an exact amount ("" for none; a text that is no number, as it is)."""
    if text is None or text == "":
        return ""
    try:
        value = Fraction(text)
    except (ValueError, ZeroDivisionError):
        return str(text)
    n, den = abs(value.numerator), value.denominator
    if n == 0:
        return "0"
    if n >= den:
        places = max(0, _DIGITS - len(str(n // den)))
    else:
        zeros = 0  # zeros right after the point
        while n * 10 ** (zeros + 1) < den:
            zeros += 1
        places = _DIGITS + zeros
    rounded = (2 * n * 10**places + den) // (2 * den)  # half up
    digits = str(rounded)
    if places:
        digits = digits.rjust(places + 1, "0")
        digits = f"{digits[:-places]}.{digits[-places:]}".rstrip("0").rstrip(".")
    return ("-" if value < 0 and digits != "0" else "") + digits


def amount(text: str | Fraction | int | None, measure: str | None = None, *,
           exact: bool = False) -> str:
    """``rho 0.1``: the decimal after its symbol (given a measure); ``-`` for none. With
    ``exact``, the exact value follows when the decimal is rounded: ``rho 0.333 (exact 1/3)``."""
    if text is None or text == "":
        return "-"
    shown = decimal(text)
    out = f"{symbol(measure)} {shown}" if measure else shown
    if exact:
        try:
            rounded = Fraction(shown) != Fraction(text)
        except (ValueError, ZeroDivisionError):
            rounded = False
        if rounded:
            out += f" (exact {text})"
    return out


def size_text(n: int) -> str:
    """A size in bytes as people read it, in decimal units to a tenth, rounded half up in
    integers (the web interface's ``sizeText`` gives the same text): ``512 bytes``,
    ``1.0 KB``, ``2.5 GB``."""
    for unit, scale in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= scale:
            tenths = (int(n) * 10 + scale // 2) // scale
            return f"{tenths // 10:,}.{tenths % 10} {unit}"
    return f"{n:,} bytes"

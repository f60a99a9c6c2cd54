"""Masking: no identifier-shaped value is ever written to a report, a rejects file or a screen.

The connector echoes a cell's value when it helps the data engineer (why a row was
rejected, what a column left behind holds, a parsed value beside its raw text). A value can
hold an identifier even when its column is not an identifier column: a ragged row shifts an
IBAN into the amount column, a phone number is typed into a notes cell. So every echoed
value goes through :func:`mask_identifiers`, which replaces whatever *looks like* an
identifier, wherever it sits in the text:

* e-mail addresses;
* IBAN-shaped runs (two letters, two digits, then at least ten letters or digits, spaced
  or not);
* runs of digits and separators holding seven digits or more, or plain digit strings of
  eight or more (phone, account, card and document numbers), unless the run is a date, a
  time, or an amount (a decimal part, or thousands groups);
* words mixing letters with five digits or more, also as ``AB 1234567`` (passport and ID
  numbers).

Each masked run keeps its first two characters and its layout (``GB82 **** **** ****``),
so that the engineer can still tell which value it was in their own system. Values from
columns that look identifying as a whole (names, notes) are masked entirely with
:func:`mask_all`.
"""

from __future__ import annotations

import re

__all__ = ["mask_all", "mask_identifiers"]

_EMAIL_RE = re.compile(r"[^\s@,;]+@[^\s@,;]+\.[^\s@,;]+")
_IBAN_RE = re.compile(
    r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?:[ \-][A-Z0-9]{4}){2,7}(?:[ \-][A-Z0-9]{1,3})?)\b",
    re.IGNORECASE,
)
_DIGITS_RE = re.compile(r"\+?\d[\d\s().:\-/]*\d")
_MIXED_RE = re.compile(
    r"\b(?:(?=[A-Za-z0-9]*[A-Za-z])(?=(?:[A-Za-z]*\d){5})[A-Za-z0-9]{6,}"
    r"|[A-Za-z]{1,3}[ \-]\d{5,}[A-Za-z]?)\b"
)
_DATE_RE = re.compile(
    r"^(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4})"
    r"(?:[ T]\d{1,2}[:.]\d{2}(?:[:.]\d{2}(?:\.\d+)?)?)?$"
)
# An amount: digits with a decimal part of one or two digits, or grouped in thousands.
_NUMBER_RE = re.compile(
    r"^-?(?:[1-9]\d{0,2}(?:[ .,'\u00a0\u202f]\d{3})+|\d+)(?:[.,]\d{1,2})?$"
)
_MIN_DIGITS = 7  # in a run with separators (07400 123456); plain digit strings: 8


def _star(text: str, keep: int = 2) -> str:
    """``text`` with every letter and digit after the first ``keep`` ones replaced by '*'."""
    out, kept = [], 0
    for ch in text:
        if ch.isalnum():
            out.append(ch if kept < keep else "*")
            kept += 1
        else:
            out.append(ch)
    return "".join(out)


def _digit_run(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = sum(c.isdigit() for c in run)
    if digits < _MIN_DIGITS:
        return run
    if run.lstrip("+").isdigit():  # 447400123456, +447400123456; 1234567 may be an amount
        return _star(run) if run.startswith("+") or digits > _MIN_DIGITS else run
    if _DATE_RE.match(run) or _NUMBER_RE.match(run):
        return run  # a date, a time or an amount, not an identifier
    return _star(run)


def mask_identifiers(text: str) -> str:
    """``text`` with every identifier-shaped run masked (see the module docstring)."""
    if not text:
        return text
    masked = _EMAIL_RE.sub(lambda m: _star(m.group(0), 1), text)
    masked = _IBAN_RE.sub(lambda m: _star(m.group(0)), masked)
    masked = _MIXED_RE.sub(lambda m: _star(m.group(0)), masked)
    return _DIGITS_RE.sub(_digit_run, masked)


def mask_all(text: str) -> str:
    """Every word reduced to its first character (``Jane Doe`` -> ``J*** D**``)."""
    return re.sub(r"\w+", lambda m: m.group(0)[0] + "*" * (len(m.group(0)) - 1), text)

"""The columns no field takes: what was left behind, said out loud.

A column the mapping does not read never leaves the partner's machine, but it may hide a
defect the partner never hears about: a ``citizenship`` column filled where ``nationality``
is empty, a second date column, a free-text note with names in it. Each such column is
listed with a few of its values and a flag when it looks identifying or free text
(:func:`~connectors.partner.report.column_hint`) or when its values fit a contract field's
domain (then it may belong in the mapping). The engineer either maps it or acknowledges it
under ``ignore:`` with a reason; acknowledged columns are listed with that reason.

Samples are masked: whole values for columns flagged as identifying or free text and for
values of several words (a name is two words), identifier-shaped runs in the others
(:mod:`connectors.partner.masking`): a code like ``RO`` or ``R01`` stays readable.
"""

from __future__ import annotations

import re

import duckdb

from connectors.partner.fieldmapping import CATEGORY_TYPES, Fold
from connectors.partner.mapping import Mapping
from connectors.partner.masking import mask_all, mask_identifiers
from connectors.partner.recode import match_codes
from connectors.partner.report import DroppedColumn, column_hint
from connectors.partner.sources import SourceTable
from hub.contracts.model import Contract
from hub.contracts.validation import quote_ident

__all__ = ["left_behind"]

_SCANNED = 200
_SHOWN = 3
_FITS = 0.8
_WORDS_RE = re.compile(r"[^\W\d_]\w*\s+\S")  # a word, then another


def _domain_hint(contract: Contract, values: list[str]) -> str | None:
    """A flag when most values are codes of one of the contract's category fields."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) < 2:
        return None
    for f in contract.extract_fields:
        if f.type not in CATEGORY_TYPES:
            continue
        matched, _rest = match_codes(distinct, f, (Fold.CASE, Fold.SPACES))
        fits = sum(v in matched for v in values) / len(values)
        if fits >= _FITS:
            return (
                f"{fits:.0%} of its values are codes of {f.name}: map it, or list it under "
                "`ignore:` with the reason"
            )
    return None


def left_behind(
    con: duckdb.DuckDBPyConnection, contract: Contract, mapping: Mapping, src: SourceTable
) -> list[DroppedColumn]:
    """Every column of ``src`` the mapping does not read, in the export's order."""
    used = set(mapping.mapped_columns())
    out = []
    for name in src.columns:
        if name in used:
            continue
        col = quote_ident(name)
        rows = con.execute(
            f"SELECT CAST({col} AS VARCHAR) FROM {quote_ident(src.samples)} "
            f"WHERE {col} IS NOT NULL AND trim(CAST({col} AS VARCHAR)) <> '' LIMIT {_SCANNED}"
        ).fetchall()
        values = [str(r[0]).strip() for r in rows]
        hint = column_hint(name, values) or _domain_hint(contract, values)
        identifying = hint is not None and ("identifier" in hint or "free text" in hint or (
            "look like" in hint
        ))
        sample = tuple(
            (mask_all(v) if identifying or _WORDS_RE.search(v) else mask_identifiers(v))[:40]
            for v in list(dict.fromkeys(values))[:_SHOWN]
        )
        out.append(DroppedColumn(name, hint, sample, mapping.ignore.get(name)))
    return out

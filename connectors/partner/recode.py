"""Category values to contract codes: recode tables and folding, on the distinct values.

A category column holds few distinct values, so each is looked up once, here, in Python,
and the result is written back into the SQL pass (:mod:`connectors.partner.convert`). A
value is, in order: one of the field's ``recode`` keys (its target code, or unknown for
``null``), else one of the contract's codes (when ``fold`` is set, compared folded, so that
``forced labour`` finds ``ForcedLabour`` with ``fold: [case, spaces]``), else left as it is
for the contract's check to reject. :func:`match_codes` tells ``mapping suggest`` how much
of a column a field's domain covers.
"""

from __future__ import annotations

from collections.abc import Iterable

from connectors.partner.fieldmapping import FieldMapping, Fold, fold_text
from hub.contracts.model import ContractField

__all__ = ["CategoryLookup", "match_codes"]


class CategoryLookup:
    """How one category field's values become codes (see the module docstring)."""

    def __init__(self, f: ContractField, fm: FieldMapping) -> None:
        self.fold = frozenset(fm.fold)
        self.recode = {fold_text(k, self.fold): v for k, v in (fm.recode or {}).items()}
        self.codes = {fold_text(c, self.fold): c for c in f.codes} if self.fold else {}
        self.active = bool(self.recode) or bool(self.fold)

    def code(self, raw: str) -> str | None:
        """The code for ``raw`` (trimmed), ``None`` for unknown, else ``raw`` unchanged."""
        key = fold_text(raw, self.fold)
        if key in self.recode:
            return self.recode[key]
        return self.codes.get(key, raw)

    def table(self, values: Iterable[str]) -> dict[str, str | None]:
        """raw -> code for the values the lookup changes (the others pass unchanged)."""
        out: dict[str, str | None] = {}
        for raw in values:
            code = self.code(raw)
            if code != raw:
                out[raw] = code
        return out


def match_codes(
    values: Iterable[str], f: ContractField, fold: Iterable[Fold] = ()
) -> tuple[dict[str, str], list[str]]:
    """(value -> code for the values that match a code of ``f`` under ``fold``, the rest)."""
    folded = frozenset(fold)
    codes = {fold_text(c, folded): c for c in f.codes}
    matched: dict[str, str] = {}
    rest: list[str] = []
    for value in values:
        code = codes.get(fold_text(value, folded))
        if code is None:
            rest.append(value)
        else:
            matched[value] = code
    return matched, rest

"""The immutable plan of an authorised query: what one release computes, under which limits.

Domain core: no web framework, database or engine. A plan holds the contract's own names and
public domain codes (never text taken from a request), made by
:func:`hub.query.authorisation.authorise`, and is what calibration (hub.query.release), the
ledger and the engine (DuckDB) work from.

The plan's :attr:`QueryPlan.key` is the SHA-256 of a canonical JSON of what the release
means (see :meth:`QueryPlan.canonical`): equal keys, equal questions, so a stored release
can be returned at no cost.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from hub.contracts.model import Contract, FieldType
from hub.contracts.model import Role as FieldRole
from hub.governance.policies import Function
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.query.request import label

__all__ = [
    "KEY_FORMAT",
    "DimensionPlan",
    "FilterPlan",
    "MeasurePlan",
    "PostProcessPlan",
    "QueryPlan",
    "TargetPlan",
    "TopPlan",
]

#: Version of the canonical form hashed into :attr:`QueryPlan.key`.
KEY_FORMAT = 2


@dataclass(frozen=True, slots=True)
class DimensionPlan:
    """A group-by field and every key it releases (zeros included), in domain order.

    ``None`` is the unknown key: present when the field is optional or absent from an older
    contract version (whose rows count as unknown), unless a filter restricts the field.
    ``max_items`` is how many keys of this dimension one row can fall in: 1, or a
    category_list's ``max_items`` (bounded by the number of keys).
    """

    name: str
    type: FieldType
    keys: tuple[str | None, ...]
    max_items: int = 1

    @property
    def size(self) -> int:
        return len(self.keys)


@dataclass(frozen=True, slots=True)
class MeasurePlan:
    """``clamp`` is the contract's clamp narrowed by the policy (None for counts)."""

    function: Function
    field: str | None
    clamp: tuple[float, float] | None
    quantile: float | None = None
    integer: bool = False  # the field holds integers

    @property
    def label(self) -> str:
        return label(self.function, self.field)


@dataclass(frozen=True, slots=True)
class FilterPlan:
    """Rows whose ``field`` is one of ``values`` (sorted; period ranges expanded to months).

    For a category_list field a row matches when any of its codes is listed.
    """

    field: str
    type: FieldType
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TargetPlan:
    ci_halfwidth: float | None
    measure: int
    top_gap: float | None = None
    confidence: float = 0.9


@dataclass(frozen=True, slots=True)
class TopPlan:
    """Rank the ``k`` largest keys by measure number ``by``; ``sensitivity`` is how far one
    unit can move one key's score (see hub.privacy.selection)."""

    k: int
    by: int
    sensitivity: int
    monotonic: bool = True


@dataclass(frozen=True, slots=True)
class PostProcessPlan:
    nonnegative: bool = True
    consistent_totals: bool = False


@dataclass(frozen=True)
class QueryPlan:
    """What one authorised query computes, and under which limits. Immutable and hashable.

    Equality and hashing ignore ``contract`` (a pydantic model); ``contract_version`` and
    the keys carry what matters of it.
    """

    dataset: str
    contract: Contract = field(compare=False, hash=False, repr=False)
    contract_version: int
    rule: str
    dimensions: tuple[DimensionPlan, ...]
    measures: tuple[MeasurePlan, ...]
    filters: tuple[FilterPlan, ...]
    max_rows: int
    accounting: Measure
    limits: BudgetLimits
    min_partners: int
    cost: Cost | None
    target: TargetPlan | None
    postprocess: PostProcessPlan
    #: keys chosen by a DP threshold (hub.privacy.selection) instead of the public grid
    selected: bool = False
    selection_share: Fraction = Fraction(0)
    #: keys each unit votes for in the selection (policy key_selection.keys_per_unit)
    selection_votes: int = 1
    top: TopPlan | None = None
    #: group by route stages assembled per unit (the engine completes each unit's stages)
    route: bool = False
    #: per-period bounding: ``max_rows`` per unit in each of ``periods`` periods
    periods: int = 1
    per_period: bool = False
    #: the filters keep only the policy's public rows: released exactly, for free
    #: (hub.query.exact); the policy's reason why they are public
    public_rows: str | None = None

    @property
    def cells(self) -> int:
        """The size of the public key grid (with selected keys, only candidates of it)."""
        return math.prod(d.size for d in self.dimensions)

    @property
    def keys_per_unit(self) -> int:
        """How many keys one unit's kept rows can fall in ((row, key) pairs)."""
        return self.max_rows * self.groups_per_row * self.periods

    @property
    def selection_keys(self) -> int:
        """L0 of key selection: the keys one unit votes for, at most those it can touch."""
        return min(self.selection_votes, self.keys_per_unit)

    @property
    def unit_field(self) -> str:
        return self.contract.privacy_unit.name

    @property
    def partner_field(self) -> str | None:
        return next((f.name for f in self.contract.fields if f.role is FieldRole.PARTNER), None)

    @property
    def groups_per_row(self) -> int:
        """Most cells one row falls in (category_list dimensions put a row in several)."""
        return math.prod(d.max_items for d in self.dimensions)

    def canonical(self) -> dict[str, Any]:
        """The semantic content hashed into :attr:`key`.

        Order matters where it changes the output: dimensions (column order) and measures
        (value order) keep the request's order. Filters are a set: keyed by field, values
        sorted and deduplicated, period ranges expanded to months (so ``{"from": "2025-01",
        "to": "2025-03"}`` equals the three months listed). Numbers that came as floats
        (clamps, quantiles, a target) are written as exact fractions. Left out: the rule
        that allowed it and the budgets (they decide *whether* it runs, not what it
        releases); the actor (a release is the same answer for every member allowed it).
        """
        out = {
            "format": KEY_FORMAT,
            "dataset": self.dataset,
            "contract_version": self.contract_version,
            "dimensions": [[d.name, list(d.keys)] for d in self.dimensions],
            "measures": [
                {
                    "function": m.function.value,
                    "field": m.field,
                    "clamp": None if m.clamp is None else [_exact(x) for x in m.clamp],
                    "quantile": None if m.quantile is None else _exact(m.quantile),
                }
                for m in self.measures
            ],
            "filters": {f.field: list(f.values) for f in self.filters},
            "max_rows": self.max_rows,
            "accounting": self.accounting.value,
            "cost": None if self.cost is None else str(self.cost.amount),
            "target": None if self.target is None else {
                "ci_halfwidth": None if self.target.ci_halfwidth is None
                else _exact(self.target.ci_halfwidth),
                "measure": self.target.measure,
                "top_gap": None if self.target.top_gap is None else _exact(self.target.top_gap),
                "confidence": None if self.target.top_gap is None
                else _exact(self.target.confidence),
            },
            "postprocess": {
                "nonnegative": self.postprocess.nonnegative,
                "consistent_totals": self.postprocess.consistent_totals,
            },
            "keys": "selected" if self.selected else "public",
            "selection_share": str(self.selection_share) if self.selected else None,
            "selection_votes": self.selection_votes if self.selected else None,
            "top": None if self.top is None else {"k": self.top.k, "by": self.top.by},
            "route": self.route,
            "bounding": {"per_period": self.per_period, "periods": self.periods},
        }
        if self.public_rows is not None:  # only then: every other plan keeps its key
            out["exact"] = True
        return out

    @functools.cached_property
    def key(self) -> str:
        """sha256 (hex) of the canonical JSON (sorted keys, no spaces, ASCII); computed once
        (a plan is immutable)."""
        text = json.dumps(
            self.canonical(), sort_keys=True, separators=(",", ":"), ensure_ascii=True
        )
        return hashlib.sha256(text.encode("ascii")).hexdigest()


def _exact(x: float) -> str:
    return str(Fraction(x))



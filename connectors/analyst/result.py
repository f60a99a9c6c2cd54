"""What the hub answers an analyst, as immutable models, and the honest ways to read a release.

A release (:class:`QueryResult`) lists its rows in the hub's order: the order of the public
key grid (or of the keys a DP threshold selected), or, for a ranked query, the order of
OpenDP's noisy top-k. Never by noisy value, and nothing here sorts by one::

    result.rows              the hub's JSON rows: each dimension's key, per measure
                             {"value", "low", "high", "distinguishable"}, and "rank"
    result.records()         the same rows, typed: ResultRow(keys, cells, rank)
    result.top(10, "linked_units")
                             a top list: a ranked release in rank order; any other by the
                             lower end of the 95% interval, leaving out cells whose interval
                             holds zero (``include_uncertain=True`` keeps them)
    result.by_chance()       how many listed cells noise alone would make look
                             distinguishable from zero if nothing were there (at most)
    result.keys              how the keys were chosen, and what an absent key means
    result.ranking           a ranked query's ranking (the hub's ``top``): k, gap_90, note
    result.route             a route query's stages and how a person's route is assembled
    result.bounding          how each unit's rows were bounded, and the bias left
    result.to_arrow() / .to_pandas()
                             dimensions, [rank, rank_low, rank_high,] then per measure
                             <m>, <m>_low, <m>_high, <m>_distinguishable

Why the lower end and not the value: the largest of many noisy values is mostly the largest
noise (among 249 empty corridors, the largest noisy zero is about 2.7 noise scales). A cell
whose 95% interval holds zero is *not distinguishable from zero*: the data may well be
nothing there. The lower end orders cells by the least the data show, at 95%.

pandas is needed only by :meth:`QueryResult.to_pandas` and imported there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date, datetime
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from connectors.common.amounts import amount
from hub.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "ADDITIVE",
    "Bounding",
    "BudgetBalance",
    "Cell",
    "Cumulative",
    "DeltaBalance",
    "Exact",
    "KeySelection",
    "MeasureInfo",
    "PrivacyCost",
    "PublishedRelease",
    "QueryEstimate",
    "QueryRecord",
    "QueryResult",
    "Rank",
    "Ranking",
    "Refusal",
    "ResultRow",
    "Route",
    "Spending",
    "format_number",
]

#: Measures whose cells add up: each cell says whether its interval excludes zero.
ADDITIVE = frozenset({"count", "sum", "count_units", "linked_units"})
_RANK_COLUMNS = ("rank", "rank_low", "rank_high")


def format_number(value: Any) -> str:
    """A released number for display: integers as they are, others to 4 significant digits
    (whole numbers from 1,000 up)."""
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    number = float(value)
    return f"{number:.0f}" if abs(number) >= 1000 else f"{number:.4g}"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class _Open(BaseModel):
    """A block of the hub's answer that keeps fields this client does not know yet."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


# -- costs and budgets --------------------------------------------------------------------------
class PrivacyCost(_Model):
    """A privacy cost in the policy's measure (``zcdp``: rho; ``pure``: epsilon), exact.

    ``delta`` (exact) is set when part of the query is approximate DP: key selection by a
    DP threshold fails its guarantee with probability delta.
    """

    measure: str
    amount: str  # an exact fraction, "1/100"
    value: float | None = None  # the same as a float, for display
    delta: str | None = None  # an exact fraction, "1/10000000"

    @property
    def exact(self) -> Fraction:
        return Fraction(self.amount)

    @property
    def exact_delta(self) -> Fraction:
        return Fraction(self.delta or "0")

    def __str__(self) -> str:
        """``rho 0.1``; the exact amount follows a rounded decimal (``rho 0.333 (exact
        1/3)``), as does the delta of approximate DP."""
        text = amount(self.amount, self.measure, exact=True)
        if self.exact_delta:
            text += f", delta {amount(self.delta, exact=True)}"
        return text


class Spending(_Model):
    spent: str | None = None
    left: str | None = None  # None: no such limit (e.g. no monthly cap)


class Cumulative(_Model):
    """The dataset's whole privacy loss since it opened (all members), and its (eps, delta)."""

    measure: str
    amount: str | None = None
    epsilon: float | None = None
    delta: float | None = None


class DeltaBalance(_Model):
    """The delta budget of approximate-DP parts (key selection), exact strings."""

    member: Spending = Spending()
    global_: Spending = Field(default=Spending(), alias="global")
    per_query: str | None = None
    can_spend: str | None = None


class BudgetBalance(_Model):
    """What the caller's organisation has spent and has left on one dataset (exact strings)."""

    dataset: str
    measure: str
    opened: date | None = None
    member: Spending
    month: Spending = Spending()
    global_: Spending = Field(alias="global")
    per_query: str | None = None
    can_spend: str | None = None  # the most the next query may cost
    cumulative: Cumulative | None = None
    delta: DeltaBalance | None = None  # None: the policy allows no delta


# -- how a release was made ---------------------------------------------------------------------
class MeasureInfo(_Model):
    """How one measure was released: its mechanism, noise scale and share of the cost."""

    name: str
    function: str | None = None
    field: str | None = None
    mechanism: str | None = None
    noise_scale: float | None = None
    halfwidth_95: float | None = None  # None for quantiles and means (see ``note``)
    cost: PrivacyCost | None = None
    clamp: list[float] | None = None  # values were clamped to this range
    quantile: float | None = None
    count_noise_scale: float | None = None  # a mean's noisy count
    candidates: int | None = None  # a quantile's candidate values
    note: str | None = None


class KeySelection(_Open):
    """How the listed keys were chosen. ``public``: every key of the grid, zeros included.
    ``selected``: only keys whose noisy count of distinct units passed ``threshold``; a key
    is listed with probability 1/2 from ``appears_50`` units and 95% from ``appears_95``;
    ``absent`` says what an absent key means (nothing more than "too few to show")."""

    mode: str
    candidates: int | None = None  # public: the grid's size
    mechanism: str | None = None
    noise_scale: float | None = None
    threshold: int | None = None
    appears_50: int | None = None
    appears_95: int | None = None
    keys_per_unit: int | None = None
    cost: PrivacyCost | None = None
    absent: str | None = None
    listed: int | None = None  # keys in this release (not in an estimate)

    @property
    def selected(self) -> bool:
        return self.mode == "selected"


class Ranking(_Open):
    """A ranked query (the hub's ``top``): the ``k`` keys OpenDP's noisy top-k chose by
    measure ``by``. Two keys ``gap_90`` apart are put in the right order with probability
    90%; each row's rank interval holds, all together, with ``rank_confidence``."""

    k: int
    by: str  # the measure's name
    mechanism: str | None = None
    noise_scale: float | None = None
    score_sensitivity: float | None = None
    monotonic: bool | None = None
    gap_90: float | None = None
    cost: PrivacyCost | None = None
    rank_confidence: float | None = None
    note: str | None = None


class Route(_Open):
    """A route query: the stages grouped by, and how each person's route is assembled."""

    stages: list[str]
    assembly: str | None = None


class Exact(_Open):
    """An exact answer: the query's filters keep only rows that the policy declares public
    (``reason``); no noise, no cost."""

    reason: str
    filters: dict[str, list[str]] = {}


class Bounding(_Open):
    """How each privacy unit's rows were bounded: ``max_rows`` in total, or per period for
    trends. The rows left out bias values towards zero; ``note`` says so (not in the
    interval). ``max_rows`` None: not bounded (an exact answer over public rows)."""

    max_rows: int | None = None
    per_period: bool = False
    periods: int = 1
    groups_per_row: int = 1
    note: str | None = None


class Refusal(_Model):
    rule: str | None = None
    detail: str = ""


class QueryEstimate(_Model):
    """What a query would cost and how accurate it would be; nothing was spent."""

    dataset: str
    rule: str | None = None  # the policy rule that allows the query
    cells: int
    cost: PrivacyCost
    epsilon_delta: dict[str, float] | None = None
    reused: bool = False  # asked before: running it would return that release, free
    measures: list[MeasureInfo] = []
    keys: KeySelection | None = None
    ranking: Ranking | None = Field(default=None, alias="top")
    bounding: Bounding | None = None
    budget: BudgetBalance | None = None
    budget_after: dict[str, str | None] = {}
    would_be_refused: Refusal | None = None


class QueryRecord(_Model):
    """One past query of the caller's organisation: what was asked and spent, never values."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: str
    dataset: str
    cost: PrivacyCost | None = None
    status: str | None = None  # released, charged (being computed) or failed (spent)
    created_at: datetime | None = None
    released_at: datetime | None = None
    shape: dict[str, Any] | None = None


class PublishedRelease(_Model):
    """A release published to the caller's organisation: one entry of the catalogue.

    ``query`` is its shape (``dimensions``, ``measures`` with their mechanisms, ``filters``,
    ``cells``), never a value; ``cost`` is what the publisher paid for it once; reading it
    costs nothing. ``audience`` is ``"all"``, or for the publisher the organisation ids it
    reaches, for anyone else ``"named"``. ``outcome`` is set by ``AnalystClient.publish``:
    ``published``, ``updated`` (a wider audience, a new title or note) or ``unchanged``.
    """

    id: str
    title: str
    note: str | None = None
    dataset: str
    query_id: str | None = None
    query: dict[str, Any] = {}
    cost: PrivacyCost | None = None
    epsilon_delta: dict[str, float] | None = None
    mechanisms: list[str] = []
    computed_at: datetime | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None
    publisher: str | None = None
    yours: bool = False
    audience: str | list[str] = "all"
    outcome: str | None = None


# -- one row of a release -----------------------------------------------------------------------
class Cell(_Model):
    """One measure in one row: the noisy ``value`` and its 95% interval [``low``, ``high``]
    (none for quantiles). ``distinguishable``: the interval excludes zero; None where the
    question does not apply (means, quantiles)."""

    value: int | float | None = None
    low: int | float | None = None
    high: int | float | None = None
    distinguishable: bool | None = None

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def __str__(self) -> str:
        if not self.has_interval:
            return format_number(self.value)
        return (f"{format_number(self.value)} [{format_number(self.low)}, "
                f"{format_number(self.high)}]")


class Rank(_Model):
    """A ranked row's place: ``position`` in the mechanism's order, and the interval
    [``low``, ``high``] of its true rank among the listed keys (all rows' intervals hold
    together with probability ``confidence``)."""

    position: int
    low: int
    high: int
    confidence: float | None = None

    def __str__(self) -> str:
        if self.low == self.high == self.position:
            return str(self.position)
        return f"{self.position} ({self.low}-{self.high})"


class ResultRow(_Model):
    """One row of a release, typed: its ``keys`` (dimension -> key, None for unknown), its
    ``cells`` (measure name -> :class:`Cell`) and, in a ranked release, its ``rank``."""

    keys: dict[str, str | None]
    cells: dict[str, Cell]
    rank: Rank | None = None
    route: bool = False  # the keys are route stages

    def __getitem__(self, measure: str) -> Cell:
        return self.cells[measure]

    @property
    def label(self) -> str:
        """The keys as text: ``NG -> LY -> IT`` for a route, ``RO, GB`` otherwise."""
        names = ["(unknown)" if k is None else k for k in self.keys.values()]
        return (" -> " if self.route else ", ").join(names) or "(all)"


def _cell(raw: Any, additive: bool) -> Cell:
    cell = Cell.model_validate(raw) if isinstance(raw, Mapping) else Cell()
    if additive and cell.distinguishable is None and cell.has_interval:
        # a release stored before cells carried it: the same rule, from its interval
        low, high = float(cell.low or 0), float(cell.high or 0)
        cell = cell.model_copy(update={"distinguishable": low > 0 or high < 0})
    return cell


def _lower(cell: Cell) -> float:
    return -math.inf if cell.low is None else float(cell.low)


# -- a release ----------------------------------------------------------------------------------
class QueryResult(_Model):
    """A differentially private release: one row per listed key.

    ``rows`` are the hub's JSON rows, in the hub's order (module docstring): each
    dimension's key (``None`` is "unknown"), per measure name ``{"value", "low", "high",
    "distinguishable"}`` (quantiles carry only a value) and, when ranked, ``"rank"``.
    :meth:`records` types them, :meth:`top` makes an honest top list, :meth:`to_arrow` and
    :meth:`to_pandas` flatten them to columns.

    ``cost`` is what the release cost when it was made; ``charged`` is what *this* call
    spent: zero when the hub returned a stored release (``reused``).
    """

    query_id: str
    dataset: str
    contract_version: int | None = None
    rule: str | None = None
    accounting: str | None = None
    reused: bool = False
    cost: PrivacyCost
    charged: PrivacyCost | None = None
    epsilon_delta: dict[str, float] | None = None
    dimensions: list[str]
    measures: list[MeasureInfo]
    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]] = []  # margins that add up (postprocess consistent_totals)
    keys: KeySelection | None = None
    ranking: Ranking | None = Field(default=None, alias="top")
    route: Route | None = None
    bounding: Bounding | None = None
    postprocess: dict[str, bool] | None = None
    cells: int | None = None  # the size of the key grid (listed keys: ``keys.listed``)
    exact: Exact | None = None  # public rows: no noise, no cost
    query_key: str | None = None
    budget: BudgetBalance | None = None
    created_at: datetime | None = None
    publication: PublishedRelease | None = None  # set when read from the catalogue

    def measure(self, name: str) -> MeasureInfo:
        for m in self.measures:
            if m.name == name:
                return m
        raise KeyError(f"no measure {name!r} in this release ({self.measure_names})")

    @property
    def measure_names(self) -> list[str]:
        return [m.name for m in self.measures]

    @property
    def ranked(self) -> bool:
        return self.ranking is not None

    def describe(self) -> dict[str, Any]:
        """Everything but the rows: what was released, how, and at what cost."""
        return self.model_dump(mode="json", by_alias=True, exclude={"rows"})

    def records(self) -> list[ResultRow]:
        """The rows, typed and in the hub's order (:class:`ResultRow`)."""
        additive = {m.name: m.function in ADDITIVE for m in self.measures}
        route = self.route is not None
        out = []
        for raw in self.rows:
            rank = raw.get("rank")
            out.append(ResultRow(
                keys={d: None if raw.get(d) is None else str(raw[d]) for d in self.dimensions},
                cells={n: _cell(raw.get(n), a) for n, a in additive.items()},
                rank=Rank.model_validate(rank) if isinstance(rank, Mapping) else None,
                route=route,
            ))
        return out

    def top(self, n: int | None = 10, measure: str | None = None, *,
            include_uncertain: bool = False) -> list[ResultRow]:
        """An honest top list of at most ``n`` rows (``None`` or 0: all).

        A ranked release keeps its rank order (the ranking measure is the default
        ``measure``). Any other release is ordered by the lower end of ``measure``'s 95%
        interval, largest first (ties keep the hub's order); the default is the first
        measure with an interval. Either way, rows whose ``measure`` cell is not
        distinguishable from zero are left out unless ``include_uncertain``. Never ordered
        by the noisy value: the largest noisy values of many cells are mostly noise.
        """
        name = self._top_measure(measure)
        rows = self.records()
        if self.ranking is not None:
            rows.sort(key=lambda r: r.rank.position if r.rank is not None else math.inf)
        else:
            rows.sort(key=lambda r: _lower(r[name]), reverse=True)
        if not include_uncertain:
            rows = [r for r in rows if r[name].distinguishable is not False]
        return rows if not n else rows[:n]

    def by_chance(self, measure: str | None = None) -> float:
        """How many listed cells of ``measure`` would look distinguishable from zero by noise
        alone if nothing were there (at most): each 95% interval holds on its own, not all
        together, so a zero cell's interval misses zero with probability 5%, or 2.5% when
        counts are floored at zero (only the upper tail is left)."""
        name = self._top_measure(measure)
        floored = (self.postprocess or {}).get("nonnegative", True) and (
            self.measure(name).function in ADDITIVE - {"sum"}
            or (self.measure(name).clamp or [-1.0])[0] >= 0)
        return (0.025 if floored else 0.05) * len(self.rows)

    def _top_measure(self, measure: str | None) -> str:
        if measure is None:
            if self.ranking is not None:
                return self.ranking.by
            measure = next((m.name for m in self.measures if m.function != "quantile"), None)
            if measure is None:
                raise InvalidInput("no measure of this release has an interval: a top list "
                                   "needs one (quantiles have none)", field="measure")
            return measure
        if measure not in self.measure_names:
            raise InvalidInput(f"{measure!r} is not a measure of this release "
                               f"({', '.join(self.measure_names)})", field="measure")
        if self.ranking is None and self.measure(measure).function == "quantile":
            raise InvalidInput(f"{measure} is a quantile: it has no interval, so no honest "
                               "order (its error depends on the data)", field="measure")
        return measure

    def to_arrow(self) -> pa.Table:
        """Dimension columns (strings, null = unknown); for a ranked release ``rank``,
        ``rank_low``, ``rank_high``; then per measure ``<name>``, ``<name>_low``,
        ``<name>_high`` (null for quantiles, which have no interval) and, for counts and
        sums, ``<name>_distinguishable`` (the interval excludes zero).

        Counts and ranks are int64, other measures float64. Each measure column's field
        metadata has its mechanism and noise scale; the schema metadata ``tahub`` holds
        :meth:`describe`.
        """
        from hub.query.resultfile import result_table

        table: pa.Table = result_table(self.model_dump(mode="json", by_alias=True))
        return self._with_judgements(table)

    def _with_judgements(self, table: pa.Table) -> pa.Table:
        """Add what the hub's result file may not carry: each additive measure's
        ``_distinguishable`` column and a ranked release's rank columns (kept as they are
        when the file has them already)."""
        import pyarrow as pa

        records = self.records()
        for m in self.measures:
            column = f"{m.name}_distinguishable"
            if m.function not in ADDITIVE or column in table.column_names:
                continue
            at = table.column_names.index(f"{m.name}_high") + 1
            values = [r[m.name].distinguishable for r in records]
            table = table.add_column(at, pa.field(column, pa.bool_(), metadata={
                "meaning": "the 95% interval excludes zero"}), pa.array(values, pa.bool_()))
        if self.ranking is not None and "rank" not in table.column_names:
            at = len(self.dimensions)
            confidence = ("" if self.ranking.rank_confidence is None
                          else repr(self.ranking.rank_confidence))
            for offset, name in enumerate(_RANK_COLUMNS):
                part = name.removeprefix("rank").removeprefix("_") or "position"
                values = [None if r.rank is None else getattr(r.rank, part) for r in records]
                table = table.add_column(at + offset, pa.field(name, pa.int64(), metadata={
                    "confidence": confidence}), pa.array(values, pa.int64()))
        return table

    def to_pandas(self) -> pd.DataFrame:
        """The :meth:`to_arrow` columns as a DataFrame; ``attrs`` holds :meth:`describe`."""
        try:
            import pandas  # noqa: F401 - pyarrow's to_pandas needs it
        except ImportError:
            raise InvalidInput(
                "QueryResult.to_pandas needs pandas (pip install pandas); "
                "to_arrow() works without it"
            ) from None
        frame = self.to_arrow().to_pandas()
        frame.attrs.update(self.describe())
        return frame

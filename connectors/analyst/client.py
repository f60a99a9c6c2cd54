"""Client of the hub's query API for member analysts: differentially private aggregates.

An analyst asks structured questions (never SQL) and gets, for every cell of the public key
grid, a noisy value with its 95% interval, the privacy cost charged and the budget left::

    from connectors import AnalystClient

    with AnalystClient.from_env() as hub:          # TAHUB_HUB_URL, TAHUB_CLIENT_ID, ..._SECRET
        result = hub.query(
            "bank_alerts",
            group_by=["origin_country", "destination_country"],
            measures=["count", "sum:amount", "linked_units"],
            filters={"period": {"from": "2025-01", "to": "2025-12"}, "origin_country": "RO"},
            cost="1/10",                           # exact: a string or an int, never a float
        )
        frame = result.to_pandas()                 # dimensions, then <m>, <m>_low, <m>_high
        print(result.cost, result.budget.member.left)

    hub.estimate(...)    same arguments: cost, expected accuracy, refusal; spends nothing
    hub.budgets()        the caller's balance on every dataset it may query
    hub.policies()       the rules of each dataset's policy that apply to the caller
    hub.history()        the organisation's past queries (shapes and costs, never values)
    hub.release(id)      a past release again, free: a query id of your organisation, or a
                         published release (``pub_...``) from the catalogue
    hub.releases()       the catalogue: releases published to your organisation
    hub.publish(query_id, title=..., audience="all" | ["org_..."])   governance clients
    hub.withdraw(pub_id) governance clients: withdraw a publication

Measures are the hub's JSON (``"count"``, ``{"function": "sum", "field": "amount"}``) or a
short text: ``count``, ``count_units``, ``linked_units``, ``sum:amount``, ``mean:amount``,
``quantile:amount:0.5``. Filters map a field to public codes (a string or a list) or, for a
period, to ``{"from": ..., "to": ...}`` (the text ``"2025-01..2025-12"`` is the same).

A query spends budget, so it is never sent twice behind the caller's back: it is retried
only when the connection could not even be opened (:mod:`connectors.common.session`). A repeated
identical question is free anyway: the hub returns the stored release (``reused``).

Errors are ``hub.errors``. A refusal by the hub is a ``HubRequestError`` whose message names
the rule that refused (``budget:member``, ``analysts-corridors:measures``...), the field, and
for budgets the amount requested against the amount remaining; ``problem_body`` has the whole
problem document. Mistakes the client can see alone (a float cost, neither cost nor target)
are ``InvalidInput`` before anything is sent.

pandas is needed only by :meth:`QueryResult.to_pandas` and imported there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from connectors.common.session import HubSession
from hub.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = [
    "AnalystClient",
    "BudgetBalance",
    "Cumulative",
    "MeasureInfo",
    "PrivacyCost",
    "PublishedRelease",
    "QueryEstimate",
    "QueryRecord",
    "QueryResult",
    "Refusal",
    "Spending",
    "parse_filter",
    "parse_measure",
]

_PERIOD_RANGE = re.compile(r"^(\d{4}-\d{2})\.\.(\d{4}-\d{2})$")
#: The prefix of a published release's id (a query id is ``led_...``).
_PUBLISHED_PREFIX = "pub_"


# -- what the hub answers -------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class PrivacyCost(_Model):
    """A privacy cost in the policy's measure (``zcdp``: rho; ``pure``: epsilon), exact."""

    measure: str
    amount: str  # an exact fraction, "1/100"
    value: float | None = None  # the same as a float, for display

    @property
    def exact(self) -> Fraction:
        return Fraction(self.amount)

    def __str__(self) -> str:
        symbol = {"zcdp": "rho", "pure": "epsilon"}.get(self.measure, self.measure)
        shown = f" (~{float(self.exact):.6g})" if "/" in self.amount else ""
        return f"{symbol} = {self.amount}{shown}"


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
    note: str | None = None


class Spending(_Model):
    spent: str | None = None
    left: str | None = None  # None: no such limit (e.g. no monthly cap)


class Cumulative(_Model):
    """The dataset's whole privacy loss since it opened (all members), and its (eps, delta)."""

    measure: str
    amount: str | None = None
    epsilon: float | None = None
    delta: float | None = None


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
    bounding: dict[str, Any] | None = None
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
    reaches, for anyone else ``"named"``. ``outcome`` is set by :meth:`AnalystClient.publish`:
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


class QueryResult(_Model):
    """A differentially private release: one row per cell of the public key grid.

    ``rows`` are the hub's JSON rows: each dimension's key (``None`` is "unknown") and, per
    measure name, ``{"value", "low", "high"}`` (the 95% interval; quantiles carry only a
    value). :meth:`to_arrow` and :meth:`to_pandas` flatten them to columns.

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
    bounding: dict[str, Any] | None = None
    postprocess: dict[str, bool] | None = None
    cells: int | None = None
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

    def describe(self) -> dict[str, Any]:
        """Everything but the rows: what was released, how, and at what cost."""
        return self.model_dump(mode="json", by_alias=True, exclude={"rows"})

    def to_arrow(self) -> pa.Table:
        """Dimension columns (strings, null = unknown), then per measure ``<name>``,
        ``<name>_low``, ``<name>_high`` (null for quantiles, which have no interval).

        Counts are int64, other measures float64. Each measure column's field metadata has
        its mechanism and noise scale; the schema metadata ``tahub`` holds :meth:`describe`.
        """
        from hub.query.resultfile import result_table

        table: pa.Table = result_table(self.model_dump(mode="json", by_alias=True))
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


# -- building a request ---------------------------------------------------------------------
def parse_measure(text: str) -> str | dict[str, Any]:
    """``count`` -> ``"count"``; ``sum:amount`` -> ``{"function": "sum", "field": "amount"}``;
    ``quantile:amount:0.5`` adds ``"quantile": 0.5``."""
    parts = [p.strip() for p in text.split(":")]
    if not parts[0] or any(not p for p in parts) or len(parts) > 3:
        raise InvalidInput(
            f"measure {text!r} is not function[:field[:quantile]], e.g. count, sum:amount, "
            "quantile:amount:0.5",
            field="measures",
        )
    if len(parts) == 1:
        return parts[0]
    spec: dict[str, Any] = {"function": parts[0], "field": parts[1]}
    if len(parts) == 3:
        try:
            spec["quantile"] = float(parts[2])
        except ValueError:
            raise InvalidInput(
                f"measure {text!r}: the quantile {parts[2]!r} is not a number in (0, 1)",
                field="measures",
            ) from None
    return spec


def parse_filter(text: str) -> tuple[str, list[str] | dict[str, str]]:
    """``origin_country=RO,BG`` -> (field, codes); ``period=2025-01..2025-12`` -> a range."""
    name, sep, value = text.partition("=")
    name, value = name.strip(), value.strip()
    if not sep or not name or not value:
        raise InvalidInput(
            f"filter {text!r} is not field=value[,value...] or field=YYYY-MM..YYYY-MM",
            field="filters",
        )
    return name, _filter_value(value)


def _filter_value(value: Any) -> Any:
    if isinstance(value, str):
        found = _PERIOD_RANGE.match(value.strip())
        if found:
            return {"from": found[1], "to": found[2]}
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Mapping):
        return dict(value)
    return [str(v) for v in value]


def _exact_cost(cost: Any) -> str | None:
    """The cost as the hub's exact text; floats are refused here, before anything is sent."""
    if cost is None:
        return None
    if isinstance(cost, float):
        raise InvalidInput(
            f"cost={cost!r}: a privacy cost must be exact, so floats are refused; pass a "
            f"string such as \"0.01\" or \"1/100\" (or an int, a Fraction or a Decimal)",
            field="cost",
        )
    if isinstance(cost, int | Fraction | Decimal) and not isinstance(cost, bool):
        return str(cost)
    if isinstance(cost, str) and cost.strip():
        return cost.strip()
    raise InvalidInput(
        f"cost={cost!r} is not a privacy cost: pass a string such as \"0.01\" or \"1/100\"",
        field="cost",
    )


def _body(
    dataset: str,
    group_by: str | Sequence[str],
    measures: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
    filters: Mapping[str, Any] | None,
    cost: Any,
    target: float | int | Mapping[str, Any] | None,
    postprocess: Mapping[str, bool] | None,
) -> dict[str, Any]:
    """The QueryRequest JSON (hub.query.plan) for these arguments."""
    exact = _exact_cost(cost)
    if (exact is None) == (target is None):
        raise InvalidInput(
            "give either cost= (exact, e.g. \"1/100\") or target= (an accuracy: the 95% "
            "interval half-width the hub solves the cost for), not both or neither",
            field="cost",
        )
    if isinstance(measures, str | Mapping):
        measures = [measures]
    body: dict[str, Any] = {
        "dataset": dataset,
        "group_by": [group_by] if isinstance(group_by, str) else list(group_by),
        "measures": [parse_measure(m) if isinstance(m, str) else dict(m) for m in measures],
        "filters": {name: _filter_value(v) for name, v in (filters or {}).items()},
    }
    if exact is not None:
        body["cost"] = exact
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, int | float | Mapping):
            raise InvalidInput(
                f"target={target!r}: give the half-width of the 95% interval (a number) or "
                "{\"ci_halfwidth\": ..., \"measure\": index}",
                field="target",
            )
        body["target"] = (
            dict(target) if isinstance(target, Mapping) else {"ci_halfwidth": target, "measure": 0}
        )
    if postprocess is not None:
        body["postprocess"] = dict(postprocess)
    return body


# -- the client -----------------------------------------------------------------------------
class AnalystClient(HubSession):
    """An analyst's client of one hub (its client needs the ``analyst`` role).

    Use as a context manager, or call :meth:`close`. ``from_env()`` reads ``TAHUB_HUB_URL``,
    ``TAHUB_CLIENT_ID`` and ``TAHUB_CLIENT_SECRET``.
    """

    def query(
        self,
        dataset: str,
        *,
        group_by: str | Sequence[str] = (),
        measures: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] = ("count",),
        filters: Mapping[str, Any] | None = None,
        cost: str | int | Fraction | Decimal | None = None,
        target: float | int | Mapping[str, Any] | None = None,
        postprocess: Mapping[str, bool] | None = None,
    ) -> QueryResult:
        """Run a DP query: debits ``cost`` (or the cost the hub solves for ``target``).

        Sent once: on a failure after sending, the error says so and nothing is repeated
        (check :meth:`history`); asking the same question again is free once released.
        """
        body = _body(dataset, group_by, measures, filters, cost, target, postprocess)
        response = self._request("POST", "/v1/queries", json=body, resend=False)
        return self._model(QueryResult, response.json())

    def estimate(
        self,
        dataset: str,
        *,
        group_by: str | Sequence[str] = (),
        measures: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]] = ("count",),
        filters: Mapping[str, Any] | None = None,
        cost: str | int | Fraction | Decimal | None = None,
        target: float | int | Mapping[str, Any] | None = None,
        postprocess: Mapping[str, bool] | None = None,
    ) -> QueryEstimate:
        """The cost, expected accuracy and any refusal of a query; spends nothing."""
        body = _body(dataset, group_by, measures, filters, cost, target, postprocess)
        response = self._request("POST", "/v1/queries/estimate", json=body)
        return self._model(QueryEstimate, response.json())

    def budgets(self) -> list[BudgetBalance]:
        """The caller's balance on every dataset a policy lets it query."""
        data = self._request("GET", "/v1/budgets").json()
        return [self._model(BudgetBalance, item) for item in data]

    def budget(self, dataset: str) -> BudgetBalance:
        data = self._request("GET", f"/v1/budgets/{quote(dataset, safe='')}").json()
        return self._model(BudgetBalance, data)

    def policies(self) -> list[dict[str, Any]]:
        """Per dataset, the policy rules that apply to the caller (the hub's JSON): name,
        dimensions, max_dimensions, filters, measures with fields and clamps, accounting,
        per-query cap, min_partners."""
        return list(self._request("GET", "/v1/policies/mine").json())

    def history(self) -> list[QueryRecord]:
        """The caller organisation's queries, newest as the hub orders them; never values."""
        data = self._request("GET", "/v1/queries").json()
        return [self._model(QueryRecord, item) for item in data]

    def release(self, release_id: str) -> QueryResult:
        """A release again, at no cost: a published release from :meth:`releases`
        (``pub_...``, with its ``publication``) or a past query of the caller's organisation
        (its query id)."""
        path = "/v1/releases/" if release_id.startswith(_PUBLISHED_PREFIX) else "/v1/queries/"
        data = self._request("GET", path + quote(release_id, safe="")).json()
        return self._model(QueryResult, data)

    def releases(self) -> list[PublishedRelease]:
        """The catalogue: releases published to the caller's organisation, newest first."""
        data = self._request("GET", "/v1/releases").json()
        return [self._model(PublishedRelease, item) for item in data]

    def publish(
        self,
        query_id: str,
        *,
        title: str,
        audience: str | Sequence[str] = "all",
        note: str | None = None,
    ) -> PublishedRelease:
        """Publish a release the caller's organisation paid for (a ``governance`` client):
        to ``"all"`` members or to the listed organisation ids. Publishing it again to the
        same audience returns that publication; a wider audience updates it."""
        body: dict[str, Any] = {
            "query_id": query_id,
            "audience": audience if isinstance(audience, str) else list(audience),
            "title": title,
        }
        if note is not None:
            body["note"] = note
        data = self._request("POST", "/v1/releases", json=body).json()
        return self._model(PublishedRelease, data)

    def withdraw(self, release_id: str) -> None:
        """Withdraw a publication of the caller's organisation (a ``governance`` client)."""
        self._request("DELETE", f"/v1/releases/{quote(release_id, safe='')}")

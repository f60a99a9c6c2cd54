"""Client of the hub's query API for member analysts: differentially private aggregates.

An analyst asks structured questions (never SQL) and gets, for every listed key, a noisy value
with its 95% interval, the privacy cost charged and the budget left::

    from connectors import AnalystClient

    with AnalystClient.from_env() as hub:          # TAHUB_HUB_URL, TAHUB_CLIENT_ID, ..._SECRET
        result = hub.query(
            "bank_alerts",
            group_by=["origin_country", "destination_country"],
            measures=["linked_units"],
            top=5,                                 # rank the 5 largest (OpenDP's noisy top-k)
            cost="1/5",                            # exact: a string or an int, never a float
        )
    for row in result.top():                       # rank order; noise-only cells left out
        print(row.label, row["linked_units"], row.rank)
    frame = result.to_pandas()                     # dimensions, rank, then per measure
                                                   # <m>, <m>_low, <m>_high, <m>_distinguishable

    hub.estimate(...)    same arguments: cost, expected accuracy, threshold, refusal; spends
                         nothing
    hub.budgets()        the caller's balance on every dataset it may query
    hub.policies()       the rules of each dataset's policy that apply to the caller
    hub.history()        the organisation's past queries (shapes and costs, never values)
    hub.release(id)      a past release again, free: a query id of your organisation, or a
                         published release (``pub_...``) from the catalogue
    hub.releases()       the catalogue: releases published to your organisation
    hub.publish(query_id, title=..., audience="all" | ["org_..."])   governance clients
    hub.withdraw(pub_id) governance clients: withdraw a publication
    hub.directory()      the names behind ids: organisations, and your organisation's people

The question (docs/queries.md)
    ``measures`` are the hub's JSON (``"count"``, ``{"function": "sum", "field": "amount"}``)
    or a short text: ``count``, ``count_units``, ``linked_units``, ``sum:amount``,
    ``mean:amount``, ``quantile:amount:0.5``. ``filters`` map a field to public codes (a
    string or a list) or, for a period, to ``{"from": ..., "to": ...}`` (the text
    ``"2025-01..2025-12"`` is the same).

    ``keys``: ``"public"`` lists every key of the grid, zeros included; ``"selected"`` only
    keys a DP threshold on distinct units chose (a large, mostly empty grid such as
    origin x destination); ``"auto"`` (the hub's default) lets the policy decide by grid size.
    ``top=K`` (or ``{"k": K, "by": i}``) ranks the K largest keys by measure ``by`` (a
    name such as ``"linked_units"``, or an index; default the first). ``route=True`` groups
    by route stages assembled per person across partners (``group_by`` empty: every stage;
    measures ``count_units`` and ``linked_units``). ``bounding``: ``"total"``,
    ``"per_period"`` (trends) or ``"auto"``.

    Give either ``cost`` or ``target``: a number is the 95% half-width wanted on the first
    measure (``{"ci_halfwidth": h, "measure": i}`` for another); for a ranked query
    ``{"top_gap": g, "confidence": p}`` asks that two keys ``g`` apart be put in the right
    order with probability ``p``. The hub solves for the cost, refused above the per-query cap.

A query spends budget, so it is never sent twice behind the caller's back: it is retried
only when the connection could not even be opened (:mod:`connectors.common.session`). A repeated
identical question is free anyway: the hub returns the stored release (``reused``).

Errors are ``hub.errors``. A refusal by the hub is a ``HubRequestError`` whose message names
the rule that refused (``budget:member``, ``analysts-corridors:measures``...), the field, and
for budgets the amount requested against the amount remaining; ``problem_body`` has the whole
problem document and ``http_status`` the HTTP status. Mistakes the client can see alone (a
float cost, neither cost nor target, an unknown ``keys`` mode, ``by`` naming no requested
measure) are ``InvalidInput`` before anything is sent.

The answers are the models of :mod:`connectors.analyst.result` (re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from typing import Any
from urllib.parse import quote

from connectors.analyst.result import (
    Bounding,
    BudgetBalance,
    Cell,
    Cumulative,
    DeltaBalance,
    KeySelection,
    MeasureInfo,
    PrivacyCost,
    PublishedRelease,
    QueryEstimate,
    QueryRecord,
    QueryResult,
    Rank,
    Ranking,
    Refusal,
    ResultRow,
    Route,
    Spending,
)
from connectors.common.session import HubSession
from hub.errors import InvalidInput

__all__ = [
    "AnalystClient",
    "Bounding",
    "BudgetBalance",
    "Cell",
    "Cumulative",
    "DeltaBalance",
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
    "measure_name",
    "parse_filter",
    "parse_measure",
]

KEY_MODES = ("auto", "public", "selected")
BOUNDINGS = ("auto", "total", "per_period")
_PERIOD_RANGE = re.compile(r"^(\d{4}-\d{2})\.\.(\d{4}-\d{2})$")
#: The prefix of a published release's id (a query id is ``led_...``).
_PUBLISHED_PREFIX = "pub_"


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


def measure_name(spec: str | Mapping[str, Any]) -> str:
    """The name the hub gives a measure's cells: ``count``, ``sum_amount``,
    ``quantile_50_amount`` (for ``count``, ``sum:amount``, ``quantile:amount:0.5``)."""
    parsed = parse_measure(spec) if isinstance(spec, str) else dict(spec)
    if isinstance(parsed, str):
        return parsed
    name = str(parsed.get("function"))
    if parsed.get("quantile") is not None:
        name += f"_{float(parsed['quantile']) * 100:g}"
    return name + (f"_{parsed['field']}" if parsed.get("field") else "")


def _choice(value: str | None, allowed: Sequence[str], field: str) -> str | None:
    if value is None or value in allowed:
        return value
    raise InvalidInput(f"{field}={value!r} is not one of {', '.join(allowed)}", field=field)


def _measure_index(by: str | int, specs: Sequence[str | Mapping[str, Any]],
                   field: str) -> int:
    """The index of measure ``by`` (an index, or a name: ``linked_units``, ``sum_amount``
    or ``sum:amount``) among the requested ``specs``."""
    if isinstance(by, int) and not isinstance(by, bool):
        if 0 <= by < len(specs):
            return by
    elif isinstance(by, str):
        wanted = measure_name(by) if ":" in by else by
        names = [measure_name(m) for m in specs]
        if wanted in names:
            return names.index(wanted)
    shown = ", ".join(f"{i}: {measure_name(m)}" for i, m in enumerate(specs))
    raise InvalidInput(f"{field}={by!r} is not one of the requested measures ({shown})",
                       field=field)


def _top(top: int | Mapping[str, Any] | None, by: str | int | None,
         specs: Sequence[str | Mapping[str, Any]]) -> dict[str, Any] | None:
    """The request's ``top``: ``{"k": K, "by": index}``."""
    if top is None:
        if by is not None:
            raise InvalidInput("by= names the measure that ranks a top= query: give top=K too",
                               field="by")
        return None
    if isinstance(top, Mapping):
        if by is not None and "by" in top:
            raise InvalidInput("give the ranking measure once: by= or top={'by': ...}",
                               field="by")
        k, by = top.get("k"), top.get("by", by)
    else:
        k = top
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise InvalidInput(f"top={top!r}: give how many keys to rank, a positive integer "
                           "(or {\"k\": K, \"by\": measure})", field="top")
    return {"k": k, "by": 0 if by is None else _measure_index(by, specs, "by")}


def _target(target: float | int | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(target, Mapping):
        if ("ci_halfwidth" in target) == ("top_gap" in target):
            raise InvalidInput(f"target={dict(target)!r}: give ci_halfwidth (with measure) "
                               "or, for a ranked query, top_gap (with confidence)",
                               field="target")
        return dict(target)
    if isinstance(target, bool) or not isinstance(target, int | float):
        raise InvalidInput(
            f"target={target!r}: give the half-width of the 95% interval (a number), "
            "{\"ci_halfwidth\": ..., \"measure\": index} or, for a ranked query, "
            "{\"top_gap\": ..., \"confidence\": ...}",
            field="target",
        )
    return {"ci_halfwidth": target, "measure": 0}


def _body(
    dataset: str,
    *,
    group_by: str | Sequence[str],
    measures: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
    filters: Mapping[str, Any] | None,
    cost: Any,
    target: float | int | Mapping[str, Any] | None,
    postprocess: Mapping[str, bool] | None,
    keys: str | None = None,
    top: int | Mapping[str, Any] | None = None,
    by: str | int | None = None,
    route: bool = False,
    bounding: str | None = None,
) -> dict[str, Any]:
    """The QueryRequest JSON (hub.query.request) for these arguments."""
    exact = _exact_cost(cost)
    if (exact is None) == (target is None):
        raise InvalidInput(
            "give either cost= (exact, e.g. \"1/100\") or target= (an accuracy: the 95% "
            "interval half-width, or a ranked query's top_gap, the hub solves the cost for), "
            "not both or neither",
            field="cost",
        )
    if isinstance(measures, str | Mapping):
        measures = [measures]
    specs = [parse_measure(m) if isinstance(m, str) else dict(m) for m in measures]
    body: dict[str, Any] = {
        "dataset": dataset,
        "group_by": [group_by] if isinstance(group_by, str) else list(group_by),
        "measures": specs,
        "filters": {name: _filter_value(v) for name, v in (filters or {}).items()},
    }
    if exact is not None:
        body["cost"] = exact
    ranked = _top(top, by, specs)
    if target is not None:
        body["target"] = _target(target)
        if "top_gap" in body["target"] and ranked is None:
            raise InvalidInput("target top_gap is the accuracy of a ranked query: give top=K",
                               field="target")
    if ranked is not None:
        body["top"] = ranked
    if route:
        body["route"] = True
    for name, value, allowed in (("keys", keys, KEY_MODES), ("bounding", bounding, BOUNDINGS)):
        if _choice(value, allowed, name) is not None:
            body[name] = value
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
        keys: str | None = None,
        top: int | Mapping[str, Any] | None = None,
        by: str | int | None = None,
        route: bool = False,
        bounding: str | None = None,
    ) -> QueryResult:
        """Run a DP query: debits ``cost`` (or the cost the hub solves for ``target``).

        ``keys``, ``top`` (with ``by``), ``route`` and ``bounding``: the module docstring.
        Sent once: on a failure after sending, the error says so and nothing is repeated
        (check :meth:`history`); asking the same question again is free once released.
        """
        body = _body(dataset, group_by=group_by, measures=measures, filters=filters,
                     cost=cost, target=target, postprocess=postprocess, keys=keys, top=top,
                     by=by, route=route, bounding=bounding)
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
        keys: str | None = None,
        top: int | Mapping[str, Any] | None = None,
        by: str | int | None = None,
        route: bool = False,
        bounding: str | None = None,
    ) -> QueryEstimate:
        """The cost, expected accuracy, key threshold, ranking gap and any refusal of a
        query; spends nothing."""
        body = _body(dataset, group_by=group_by, measures=measures, filters=filters,
                     cost=cost, target=target, postprocess=postprocess, keys=keys, top=top,
                     by=by, route=route, bounding=bounding)
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

    def directory(self) -> dict[str, Any]:
        """The names behind ids (``GET /v1/directory``): every organisation, and the people
        of the caller's organisation (connectors.common.names.Names.from_directory)."""
        return dict(self._request("GET", "/v1/directory").json())

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

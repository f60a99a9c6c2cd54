"""Differentially private queries for analysts: answer, estimate, history, budgets, policies.

Thin: each route takes the analyst actor and the JSON body, calls one
:class:`~hub.query.service.QueryService` method (sync, so FastAPI runs it in its threadpool)
and returns its JSON. The shapes are documented in docs/queries.md. Querying needs the
``analyst`` role (403 ``role:analyst``); any member may read its own budgets and the rules
that apply to it. Every refusal is problem+json naming its ``rule`` or ``field``.

A release (a query's answer, new or repeated, and ``GET /v1/queries/{id}``) goes out as its
stored bytes (:func:`answered`): ``Content-Encoding: zstd`` to a client that accepts it,
else decompressed; never decoded and encoded again.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from hub.api.deps import AnalystActor, CurrentActor, Queries
from hub.api.openapi import AUTHENTICATED, declared_as, files, problems
from hub.api.schemas.queries import Balance, Estimate, LedgerEntry, MyPolicy, QueryResult
from hub.errors import InvalidInput
from hub.query.answer import Answer
from hub.query.request import QueryRequest
from hub.query.resultfile import FORMATS, encode

__all__ = ["answered", "budgets_router", "download", "policies_router", "router"]

router = APIRouter(prefix="/v1/queries", tags=["queries"],
                   responses=problems(*AUTHENTICATED, 403))  # analyst (history: or governance)
budgets_router = APIRouter(prefix="/v1/budgets", tags=["queries"],
                           responses=problems(*AUTHENTICATED))
policies_router = APIRouter(prefix="/v1/policies", tags=["queries"],
                            responses=problems(*AUTHENTICATED))

_QUERY_EXAMPLE = {
    "dataset": "bank_alerts",
    "group_by": ["origin_country", "destination_country"],
    "measures": ["count", {"function": "sum", "field": "amount"}],
    "filters": {"period": {"from": "2025-01", "to": "2025-12"}},
    "cost": "0.01",
}
QueryBody = Annotated[
    Any,
    declared_as(QueryRequest),  # parsed by QueryRequest.parse, after the role check
    Body(
        description="A QueryRequest (docs/queries.md): structured JSON, never SQL.",
        examples=[_QUERY_EXAMPLE],
    ),
]
#: A refusal of a query: the role or a policy rule or a budget (403), an unknown dataset
#: (404), spending in another measure (409), an invalid query (422), too big for the hub's
#: memory limit (507).
_QUERY_REFUSALS = problems(404, 409, 413, 422, 507)


class _JSON(JSONResponse):
    """Plain ``json.dumps`` (results can hold a million cells: no per-value re-encoding).

    Routes declare the shape (``response_model``, hub.api.schemas) and return the service's
    JSON in this response as it is, unvalidated."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, separators=(",", ":"), allow_nan=False).encode()


def _accepts_zstd(accept_encoding: str) -> bool:
    """Whether an ``Accept-Encoding`` value lists zstd with a weight above 0 (RFC 9110,
    12.5.3; ``*`` is not taken for it)."""
    for item in accept_encoding.split(","):
        coding, _, weight = item.partition(";")
        if coding.strip().lower() == "zstd":
            name, _, value = weight.strip().partition("=")
            if name.strip().lower() != "q":
                return True
            try:
                return float(value) > 0
            except ValueError:
                return False
    return False


def answered(answer: Answer, request: Request) -> Response:
    """A release's answer (hub.query.answer): its stored zstd bytes as they are, closed by
    this answer's fields, to a client that accepts zstd; else the same JSON decompressed."""
    if _accepts_zstd(request.headers.get("accept-encoding", "")):
        return Response(answer.zstd(), media_type="application/json",
                        headers={"Content-Encoding": "zstd", "Vary": "Accept-Encoding"})
    return Response(answer.json(), media_type="application/json",
                    headers={"Vary": "Accept-Encoding"})


@router.post("", summary="Run a DP query (spends budget)", response_class=_JSON,
             response_model=QueryResult, responses=_QUERY_REFUSALS)
def run_query(actor: AnalystActor, queries: Queries, body: QueryBody,
              request: Request) -> Response:
    return answered(queries.answer(actor, body), request)


@router.post("/estimate", summary="Cost and accuracy of a query (spends nothing)",
             response_class=_JSON, response_model=Estimate, responses=_QUERY_REFUSALS)
def estimate_query(actor: AnalystActor, queries: Queries, body: QueryBody) -> _JSON:
    return _JSON(queries.estimate(actor, body))


@router.get("", summary="Your organisation's query history (never values)",
            response_class=_JSON, response_model=list[LedgerEntry])
def list_queries(actor: CurrentActor, queries: Queries, dataset: str | None = None) -> _JSON:
    return _JSON(queries.history(actor, dataset))


@router.get("/{query_id}", summary="One of your organisation's releases again (free)",
            response_class=_JSON, response_model=QueryResult, responses=problems(404, 409))
def get_query(query_id: str, actor: AnalystActor, queries: Queries,
              request: Request) -> Response:
    return answered(queries.get(actor, query_id), request)


#: A release as a file (hub.query.resultfile).
RESULT_FILES = files("The release's cells as a table.", text=(FORMATS["csv"],),
                     binary=(FORMATS["parquet"],))


@router.get("/{query_id}/export", summary="One of your releases as CSV or Parquet (free)",
            response_class=Response, responses={**RESULT_FILES, **problems(404, 422)})
def export_query(query_id: str, actor: AnalystActor, queries: Queries,
                 format: str = "csv") -> Response:
    return download(queries.get(actor, query_id).as_dict(), format, query_id)


def download(result: dict[str, Any], fmt: str, name: str) -> Response:
    """A release's cells as a file (hub.query.resultfile): CSV or Parquet."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use csv or parquet", field="format")
    return Response(encode(result, fmt), media_type=FORMATS[fmt], headers={
        "Content-Disposition": f'attachment; filename="{name}.{fmt}"'})


@budgets_router.get("", summary="Your budget on every dataset you may query",
                    response_class=_JSON, response_model=list[Balance],
                    responses=problems(409))
def list_budgets(actor: CurrentActor, queries: Queries) -> _JSON:
    return _JSON(queries.budgets(actor))


@budgets_router.get("/{dataset}", summary="Your budget on one dataset", response_class=_JSON,
                    response_model=Balance, responses=problems(404, 409))
def get_budget(dataset: str, actor: CurrentActor, queries: Queries) -> _JSON:
    return _JSON(queries.budget(actor, dataset))


@policies_router.get("/mine", summary="The policy rules that apply to you",
                     response_class=_JSON, response_model=list[MyPolicy])
def my_policies(actor: CurrentActor, queries: Queries) -> _JSON:
    return _JSON(queries.my_policies(actor))

"""The one place errors become HTTP answers: RFC 9457 ``application/problem+json``.

* every :class:`~hub.errors.TahubError` -> its ``problem()`` body plus ``instance`` (the
  request path) and ``request_id``; a 401 adds ``WWW-Authenticate: Bearer``, a 503
  ``Retry-After`` (the error's ``retry_after``, else :data:`RETRY_AFTER_SECONDS`), a 429
  ``Retry-After`` (its ``retry_after``, else 1); fields such as
  ``field``, ``errors`` and a conflict's ``offset`` come from the error itself;
* FastAPI's request validation -> 422 ``invalid_input`` with ``field`` and ``errors``
  (``[{field, reason}]``; the offending input is never echoed: it could be an identifier);
* Starlette's HTTP errors (no such route, wrong method) -> the same shape; a body FastAPI
  cannot decode (its 400) -> 422 ``invalid_input`` with ``field: body``;
* a metadata-store connection that no service translated (the database restarting, a
  failover, a dropped connection: SQLAlchemy's ``OperationalError``, ``InterfaceError``,
  pool timeout, or any driver error that invalidated its connection) -> 503
  ``unavailable`` with ``Retry-After``, never a 500; the pool's pre-ping reconnects on the
  next request once the database is back;
* anything else is a bug: :class:`RequestContext` logs it with its traceback and answers a
  generic 500 ``internal_error`` carrying only the request id, never the exception's text.

:class:`RequestContext` also gives every request an id (``X-Request-ID``, taken from the
caller when it is sane, else generated), bound into structlog's context so that every log
line of that request carries it, and echoed on the response; and it counts and times every
request in :mod:`hub.metrics` by method, route template and status.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import InvalidInput, NotFound, RowError, TahubError, Unavailable
from hub.governance.refusals import Refusal, RefusalLog
from hub.metrics import UNMATCHED_ROUTE, Metrics

__all__ = [
    "PROBLEM_JSON",
    "REQUEST_ID_HEADER",
    "RETRY_AFTER_SECONDS",
    "RequestContext",
    "install_problem_handlers",
    "problem_response",
]

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"
RETRY_AFTER_SECONDS = 5  # Retry-After of a 503 whose error names no ``retry_after``
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id(scope: Scope) -> str:
    state = scope.get("state") or {}
    return str(state.get("request_id", ""))


def problem_response(
    scope: Scope, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """A problem+json response: ``body`` plus ``instance`` and ``request_id``."""
    full = {**body, "instance": scope.get("path", ""), "request_id": _request_id(scope)}
    return JSONResponse(
        full, status_code=int(body["status"]), headers=headers, media_type=PROBLEM_JSON
    )


def _tahub_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TahubError)  # noqa: S101 - registered for TahubError only
    body = exc.problem()
    status = int(body["status"])
    level = log.warning if status >= 500 else log.info
    level("request refused", code=exc.code, status=status)
    headers = {"WWW-Authenticate": 'Bearer realm="tahub"'} if status == 401 else None
    if status == 503:  # a dependency is down: tell clients (and load balancers) when to retry
        headers = {"Retry-After": str(exc.extra.get("retry_after", RETRY_AFTER_SECONDS))}
    if status == 429:  # over a rate limit: seconds until a request can pass (hub.api.ratelimit)
        headers = {"Retry-After": str(exc.extra.get("retry_after", 1))}
    return problem_response(request.scope, body, headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _invalid_input(exc: RequestValidationError) -> InvalidInput:
    """FastAPI's validation errors as one :class:`InvalidInput` naming every field."""
    errors = [
        RowError(field=_field_of(tuple(e.get("loc", ()))), reason=str(e.get("msg", "invalid")))
        for e in exc.errors()
    ]
    first = errors[0] if errors else RowError(field="body", reason="invalid request")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return InvalidInput(
        f"invalid request: {first.field}: {first.reason}{more}", field=first.field, errors=errors
    )


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if exc.status_code == 404:
        return _tahub_error(request, NotFound(f"no route {request.url.path}"))
    if exc.status_code == 400:  # FastAPI cannot decode the body: invalid input like any other
        return _tahub_error(request, InvalidInput(
            "the request body cannot be read: not UTF-8 JSON, or a broken form", field="body"))
    code = "method_not_allowed" if exc.status_code == 405 else "http_error"
    body = {
        "type": f"urn:tahub:problem:{code}",
        "title": str(exc.detail) if exc.status_code == 405 else "HTTP error",
        "status": exc.status_code,
        "detail": f"{request.method} is not allowed on {request.url.path}"
        if exc.status_code == 405
        else str(exc.detail),
        "code": code,
    }
    return problem_response(request.scope, body, dict(exc.headers or {}))


def _internal_error_body() -> dict[str, Any]:
    return {
        "type": "urn:tahub:problem:internal_error",
        "title": "Internal error",
        "status": 500,
        "detail": "internal error; quote the request id when you report it",
        "code": "internal_error",
    }


def _database_error(request: Request, exc: Exception) -> JSONResponse:
    """The metadata store unreachable or the connection lost -> 503; other driver errors are
    bugs (re-raised: the generic 500 of :class:`RequestContext`)."""
    lost = isinstance(exc, OperationalError | InterfaceError | PoolTimeout) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)
    if not lost:
        raise exc
    log.warning("metadata store unavailable", error=type(exc).__name__)
    return _tahub_error(request, Unavailable("the metadata store is unavailable; retry later"))


async def _dataset_of(request: Request) -> str | None:
    """The dataset a request named (path, query string or JSON body), if the hub knows it."""
    found: list[object] = [request.path_params.get("dataset"),
                           request.query_params.get("dataset")]
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if isinstance(body, dict):
            found.append(body.get("dataset"))
    known = request.app.state.services.registry.datasets()
    return next((d for d in found if isinstance(d, str) and d in known), None)


async def _refused(request: Request, exc: Exception) -> JSONResponse:
    """A refusal's problem+json; for an authenticated request refused with a 4xx other than
    401 (that one is ``auth.bearer_refused``) and 429 (asking too fast, no probe), its
    ``request.refused`` audit entry too (:mod:`hub.governance.refusals`)."""
    error = _invalid_input(exc) if isinstance(exc, RequestValidationError) else exc
    assert isinstance(error, TahubError)  # noqa: S101 - registered for these two only
    response = _tahub_error(request, error)
    actor = getattr(request.state, "actor", None)
    refusals: RefusalLog | None = getattr(request.app.state, "refusals", None)
    if actor is None or refusals is None or not 400 <= error.status < 500 or (
            error.status in (401, 429)):
        return response
    refusal = Refusal(
        actor=actor.client_id, org=actor.org, method=request.method,
        route=getattr(request.scope.get("route"), "path", UNMATCHED_ROUTE),
        status=error.status, code=error.code, rule=error.extra.get("rule"),
        field=error.field, dataset=await _dataset_of(request))
    await run_in_threadpool(refusals.record, refusal)
    return response


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every refusal into problem+json."""
    app.add_exception_handler(TahubError, _refused)
    app.add_exception_handler(RequestValidationError, _refused)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)


class RequestContext:
    """ASGI middleware: request id in and out, one log line and metrics per request,
    generic 500s."""

    def __init__(self, app: ASGIApp, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        sent: dict[str, int] = {}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        started = time.perf_counter()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:
                log.exception("unhandled error", method=scope["method"], path=scope["path"])
                if "status" in sent:
                    raise
                response = problem_response(scope, _internal_error_body())
                await response(scope, receive, send_with_id)
            finally:
                seconds = time.perf_counter() - started
                # The router put the matched route in the scope: its template, never ids.
                route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    route=route,
                    status=sent.get("status"),
                    duration_ms=round(seconds * 1000, 1),
                )
                if self.metrics is not None:
                    self.metrics.request(scope["method"], route, sent.get("status", 500),
                                         seconds)

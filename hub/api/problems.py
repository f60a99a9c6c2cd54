"""The one place errors become HTTP answers: RFC 9457 ``application/problem+json``.

* every :class:`~hub.errors.TahubError` -> its ``problem()`` body plus ``instance`` (the
  request path) and ``request_id``; a 401 adds ``WWW-Authenticate: Bearer``; fields such as
  ``field``, ``errors`` and a conflict's ``offset`` come from the error itself;
* FastAPI's request validation -> 422 ``invalid_input`` with ``field`` and ``errors``
  (``[{field, reason}]``; the offending input is never echoed: it could be an identifier);
* Starlette's HTTP errors (no such route, wrong method) -> the same shape;
* anything else is a bug: :class:`RequestContext` logs it with its traceback and answers a
  generic 500 ``internal_error`` carrying only the request id, never the exception's text.

:class:`RequestContext` also gives every request an id (``X-Request-ID``, taken from the
caller when it is sane, else generated), bound into structlog's context so that every log
line of that request carries it, and echoed on the response.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.errors import InvalidInput, NotFound, RowError, TahubError

__all__ = [
    "PROBLEM_JSON",
    "REQUEST_ID_HEADER",
    "RequestContext",
    "install_problem_handlers",
    "problem_response",
]

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"
REQUEST_ID_HEADER = "X-Request-ID"
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
    return problem_response(request.scope, body, headers)


def _field_of(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = [
        RowError(field=_field_of(tuple(e.get("loc", ()))), reason=str(e.get("msg", "invalid")))
        for e in exc.errors()
    ]
    first = errors[0] if errors else RowError(field="body", reason="invalid request")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    err = InvalidInput(
        f"invalid request: {first.field}: {first.reason}{more}", field=first.field, errors=errors
    )
    return _tahub_error(request, err)


def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if exc.status_code == 404:
        return _tahub_error(request, NotFound(f"no route {request.url.path}"))
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


def install_problem_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every refusal into problem+json."""
    app.add_exception_handler(TahubError, _tahub_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


class RequestContext:
    """ASGI middleware: request id in and out, one log line per request, generic 500s."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

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
                log.info(
                    "request",
                    method=scope["method"],
                    path=scope["path"],
                    status=sent.get("status"),
                    duration_ms=round((time.perf_counter() - started) * 1000, 1),
                )

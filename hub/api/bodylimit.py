"""ASGI middleware: request bodies over ``TAHUB_MAX_JSON_BYTES`` are refused with 413.

The JSON endpoints parse their whole body in memory, so the hub bounds it before any
parsing: a declared ``Content-Length`` over the limit is refused at once, and the body is
read chunk by chunk (also when it is sent without a length) and refused as soon as it
passes the limit; a body within the limit is handed on to the app unchanged. The answer is
a :class:`~hub.errors.TooLarge` problem (``field: body``); no route runs, nothing changes.

Upload chunks (``PATCH /v1/uploads/{id}``) are left alone: they stream into staging under
their own limit, ``TAHUB_CHUNK_BYTES`` (hub.api.routes.uploads).
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hub.api.problems import problem_response
from hub.errors import TooLarge

__all__ = ["BodyLimit"]

log = structlog.get_logger(__name__)

_UPLOADS = "/v1/uploads/"


def _is_chunk(scope: Scope) -> bool:
    return scope["method"] == "PATCH" and str(scope["path"]).startswith(_UPLOADS)


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` (except upload chunks) with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_chunk(scope):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        first: Message | None = None
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: let the app see it
                first = message
                break
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        if first is None:
            first = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = TooLarge(
            f"the request body is over the {self.max_bytes} bytes the hub accepts "
            "(TAHUB_MAX_JSON_BYTES)",
            field="body",
            max_json_bytes=self.max_bytes,
        )
        log.info("request refused", code=err.code, status=err.status)
        await problem_response(scope, err.problem())(scope, receive, send)

"""ASGI middleware: request bodies over ``TAHUB_MAX_JSON_BYTES`` are refused with 413.

The JSON endpoints parse their whole body in memory, so the hub bounds it before any
parsing: a declared ``Content-Length`` over the limit is refused at once, and the body is
read chunk by chunk (also when it is sent without a length) and refused as soon as it
passes the limit; a body within the limit is handed on to the app unchanged. The answer is
a :class:`~hub.errors.TooLarge` problem (``field: body``); no route runs, nothing changes.

Upload chunks (``PATCH /v1/uploads/{id}``) are left alone: they stream into staging under
their own limit, ``TAHUB_CHUNK_BYTES`` (hub.api.routes.uploads). A few paths have a smaller
limit of their own (``paths``: the public crowd reports, bounded by
``TAHUB_REPORTS_MAX_CHARS``), refused the same way and naming their setting.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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

    def __init__(self, app: ASGIApp, max_bytes: int,
                 paths: Mapping[str, tuple[int, str]] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.paths = dict(paths or {})  # path -> (its own limit, the setting behind it)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_chunk(scope):
            await self.app(scope, receive, send)
            return
        limit, setting = self.paths.get(str(scope["path"]),
                                        (self.max_bytes, "TAHUB_MAX_JSON_BYTES"))
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit, setting)
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
            if size > limit:
                await self._refuse(scope, receive, send, limit, setting)
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

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int,
                      setting: str) -> None:
        extra: dict[str, Any] = {
            "max_json_bytes" if setting == "TAHUB_MAX_JSON_BYTES" else "max_bytes": limit}
        err = TooLarge(
            f"the request body is over the {limit} bytes the hub accepts ({setting})",
            field="body", **extra,
        )
        log.info("request refused", code=err.code, status=err.status)
        await problem_response(scope, err.problem())(scope, receive, send)

"""Logging: structlog, as console text or JSON lines, with the request id on every line.

``configure_logging(settings)`` is called by the app's lifespan and the CLI, never at import.
The standard library's loggers (uvicorn, alembic) go through the same renderer, so one
deployment writes one format. The HTTP layer binds ``request_id`` into structlog's
context variables; every line logged while serving that request carries it. With several
worker processes (``TAHUB_WORKERS`` > 1) every line also carries the worker's ``pid``.

Secrets never reach a log line: a processor replaces the value of any key that names a
secret, token or credential (``client_secret``, ``access_token``, ``authorization``...),
and the code logs client ids and token ids (``jti``), never the tokens themselves.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from hub.settings import Settings

__all__ = ["REDACTED", "configure_logging", "redact_secrets"]

REDACTED = "[redacted]"
_SECRET_WORDS = ("secret", "token", "password", "authorization", "credential", "network_key")
_HANDLER_NAME = "tahub"


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record is emitted (runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr  # under the handler's lock (Handler.handle holds it)
        super().emit(record)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank every value whose key names a secret."""
    for key in list(event_dict):
        lowered = key.lower()
        if any(word in lowered for word in _SECRET_WORDS):
            event_dict[key] = REDACTED
    return event_dict


def _add_pid(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: the process id (``tahub serve --workers N``)."""
    event_dict.setdefault("pid", os.getpid())
    return event_dict


def configure_logging(settings: Settings) -> None:
    """Route structlog and the standard library's logging through one renderer (idempotent)."""
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    if settings.workers > 1:  # which worker process wrote the line
        shared.insert(-1, _add_pid)
    renderer: Any
    if settings.log_json:
        renderer = structlog.processors.JSONRenderer()
        final: list[Any] = [structlog.processors.format_exc_info, renderer]
    else:
        # Plain tracebacks: a rich traceback would print every frame's local variables,
        # which can hold secrets or identifiers.
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        final = [renderer]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *final],
    )
    handler = _StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Alembic narrates every migration step, and httpx every request (the demo's connector
    # runs in the hub's process), at INFO; keep their warnings only.
    for chatty in ("alembic", "httpx"):
        logging.getLogger(chatty).setLevel(max(level, logging.WARNING))

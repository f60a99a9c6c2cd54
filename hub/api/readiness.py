"""Readiness: can this hub process serve requests now? (``GET /readyz``)

Two checks, both cheap and both run on every call: the metadata store answers
``SELECT 1``, and the object store can be written (:meth:`hub.storage.objects.ObjectStore.ping`).
A failing check makes the whole answer :class:`~hub.errors.Unavailable` (503 with
``Retry-After``), naming the check; the reason is the error's type, never its text (a
driver message can carry a URL or a password). Liveness (``GET /livez``) checks nothing:
a process that answers is alive, and restarting it would not mend a database.
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import TahubError, Unavailable
from hub.storage.objects import ObjectStore

__all__ = ["RETRY_AFTER_SECONDS", "check_readiness"]

log = structlog.get_logger(__name__)

RETRY_AFTER_SECONDS = 5
OK = "ok"


def _database(engine: sa.Engine) -> str:
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return f"unavailable ({type(exc).__name__})"
    return OK


def _storage(store: ObjectStore) -> str:
    try:
        store.ping()
    except (TahubError, OSError) as exc:
        return f"unavailable ({type(exc).__name__})"
    return OK


def check_readiness(engine: sa.Engine, store: ObjectStore) -> dict[str, str]:
    """``{"database": "ok", "storage": "ok"}``, or :class:`Unavailable` naming what fails."""
    checks = {"database": _database(engine), "storage": _storage(store)}
    failing = [name for name, state in checks.items() if state != OK]
    if failing:
        log.warning("not ready", checks=checks)
        raise Unavailable(
            f"not ready: {' and '.join(failing)} unavailable",
            checks=checks,
            failing=failing,
            retry_after=RETRY_AFTER_SECONDS,
        )
    return checks

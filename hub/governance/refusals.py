"""Refused requests in the audit log, folded so that a burst cannot flood it.

Every refusal of an authenticated request (403 role, policy and budget refusals, 404 of
someone else's object, 409, 422 invalid queries, proposals and extracts; a 401 is
``auth.bearer_refused``, written by ``hub.identity``; a 429 only says the member asked too
fast, and is counted in the metrics, not written) becomes a ``request.refused``
entry: who (client and organisation), what (method and route template, never the raw path
with its ids), which dataset when the request named one, and why (the problem's ``code``,
``rule`` and ``field``; never its ``detail``, which may quote what was sent). A data owner
thus sees who probed its datasets for what (``GET /v1/audit/usage``).

Folding: the first refusal of a kind (same actor, route, status, code, rule, field and
dataset) is written at once with ``count: 1``. The identical refusals that follow within
``window`` seconds are counted in memory and written as one more entry when the window
closes (a timer), with ``count``, ``first_at``, ``last_at`` and ``window_seconds``; a burst
of 190 budget refusals is two entries. Folding is per process: with N workers, a burst
spread over them gives at most N + N entries per window. :meth:`RefusalLog.flush` writes
what is pending (at shutdown). A failure to write is logged, never turned into an error
of the refused request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import structlog

from hub.errors import TahubError
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.storage.db import utcnow

__all__ = ["Refusal", "RefusalLog"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request, as it is folded (equal refusals fold together)."""

    actor: str
    org: str
    method: str
    route: str
    status: int
    code: str
    rule: str | None = None
    field: str | None = None
    dataset: str | None = None


@dataclass(slots=True)
class _Fold:
    started: float  # monotonic
    first_at: datetime
    last_at: datetime
    repeats: int = 0
    timer: threading.Timer | None = field(default=None, repr=False)


class RefusalLog:
    """Writes refusals to ``audit``, folding repeats within ``window`` seconds."""

    def __init__(self, audit: AuditLog, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._audit, self._window, self._clock = audit, window, clock
        self._folds: dict[Refusal, _Fold] = {}
        self._lock = threading.Lock()

    def record(self, refusal: Refusal) -> None:
        """Write ``refusal`` now, or count it into the open fold of its kind."""
        now, at = self._clock(), utcnow()
        with self._lock:
            fold = self._folds.get(refusal)
            if fold is not None and now - fold.started < self._window:
                fold.repeats += 1
                fold.last_at = at
                if fold.timer is None:
                    fold.timer = threading.Timer(self._window - (now - fold.started),
                                                 self._close, [refusal])
                    fold.timer.daemon = True
                    fold.timer.start()
                return
            self._folds[refusal] = _Fold(now, at, at)
        if fold is not None:  # an expired fold whose timer has not run yet
            if fold.timer is not None:
                fold.timer.cancel()
            self._write(refusal, fold)
        self._write(refusal, None)

    def flush(self) -> None:
        """Write every pending fold now (shutdown)."""
        with self._lock:
            folds, self._folds = self._folds, {}
        for refusal, fold in folds.items():
            if fold.timer is not None:
                fold.timer.cancel()
            self._write(refusal, fold)

    def _close(self, refusal: Refusal) -> None:
        with self._lock:
            fold = self._folds.get(refusal)
            if fold is None or self._clock() - fold.started < self._window:
                return
            del self._folds[refusal]
        self._write(refusal, fold)

    def _write(self, refusal: Refusal, fold: _Fold | None) -> None:
        if fold is not None and not fold.repeats:
            return
        details: dict[str, object] = {
            "method": refusal.method, "route": refusal.route, "status": refusal.status,
            "code": refusal.code, "rule": refusal.rule, "field": refusal.field,
            "count": 1 if fold is None else fold.repeats,
        }
        if fold is not None:
            details |= {"folded": True, "window_seconds": self._window,
                        "first_at": fold.first_at.isoformat(),
                        "last_at": fold.last_at.isoformat()}
        try:
            self._audit.append(AuditEvent(
                Action.REQUEST_REFUSED, actor=refusal.actor, org=refusal.org,
                object_type="request", dataset=refusal.dataset, details=details))
        except TahubError as exc:  # the store is down: the refusal still goes out
            log.warning("audit.refusal_not_written", error=exc.code, refusal=details)

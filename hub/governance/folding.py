"""Repeated identical audit events, folded so that a burst cannot flood the log.

Used for refused requests (:mod:`hub.governance.refusals`) and for repeated queries answered
from their stored release (``query.reused``, :mod:`hub.query.service`): both can come in
bursts that say nothing new after the first.

The first event of a kind (equal action, actor, organisation, object, dataset and details)
is written at once with ``count: 1``. The identical events that follow within ``window``
seconds are counted in memory and written as one more entry when the window closes (a
timer), with ``count``, ``folded: true``, ``first_at``, ``last_at`` and ``window_seconds``;
a burst of 190 is two entries. Folding is per process: with N workers, a burst spread over
them gives at most N + N entries per window. :meth:`FoldedAudit.flush` writes what is
pending (at shutdown). A failure to write is logged, never turned into an error of the
request that caused the event.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from hub.errors import TahubError
from hub.governance.audit import AuditEvent, AuditLog
from hub.storage.db import utcnow

__all__ = ["FoldedAudit"]

log = structlog.get_logger(__name__)

_Key = tuple[str, str | None, str | None, str | None, str | None, str | None, str]


def _key(event: AuditEvent) -> _Key:
    return (event.action, event.actor, event.org, event.object_type, event.object_id,
            event.dataset, json.dumps(dict(event.details), sort_keys=True, default=str))


@dataclass(slots=True)
class _Fold:
    event: AuditEvent
    started: float  # monotonic
    first_at: datetime
    last_at: datetime
    repeats: int = 0
    timer: threading.Timer | None = field(default=None, repr=False)


class FoldedAudit:
    """Writes events to ``audit``, folding identical repeats within ``window`` seconds."""

    def __init__(self, audit: AuditLog, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._audit, self._window, self._clock = audit, window, clock
        self._folds: dict[_Key, _Fold] = {}
        self._lock = threading.Lock()

    def record(self, event: AuditEvent) -> None:
        """Write ``event`` now, or count it into the open fold of its kind."""
        key, now, at = _key(event), self._clock(), utcnow()
        with self._lock:
            fold = self._folds.get(key)
            if fold is not None and now - fold.started < self._window:
                fold.repeats += 1
                fold.last_at = at
                if fold.timer is None:
                    fold.timer = threading.Timer(self._window - (now - fold.started),
                                                 self._close, [key])
                    fold.timer.daemon = True
                    fold.timer.start()
                return
            self._folds[key] = _Fold(event, now, at, at)
        if fold is not None:  # an expired fold whose timer has not run yet
            if fold.timer is not None:
                fold.timer.cancel()
            self._write(fold)
        self._write(_Fold(event, now, at, at), first=True)

    def flush(self) -> None:
        """Write every pending fold now (shutdown)."""
        with self._lock:
            folds, self._folds = self._folds, {}
        for fold in folds.values():
            if fold.timer is not None:
                fold.timer.cancel()
            self._write(fold)

    def _close(self, key: _Key) -> None:
        with self._lock:
            fold = self._folds.get(key)
            if fold is None or self._clock() - fold.started < self._window:
                return
            del self._folds[key]
        self._write(fold)

    def _write(self, fold: _Fold, *, first: bool = False) -> None:
        if not first and not fold.repeats:
            return
        event = fold.event
        details: dict[str, Any] = {**event.details, "count": 1 if first else fold.repeats}
        if not first:
            details |= {"folded": True, "window_seconds": self._window,
                        "first_at": fold.first_at.isoformat(),
                        "last_at": fold.last_at.isoformat()}
        try:
            self._audit.append(AuditEvent(
                event.action, actor=event.actor, org=event.org, object_type=event.object_type,
                object_id=event.object_id, dataset=event.dataset, details=details))
        except TahubError as exc:  # the store is down: the request still goes out
            log.warning("audit.folded_not_written", error=exc.code, action=event.action,
                        details=details)

"""The schedule: fetch each enabled source when it is due, in every process that polls.

A :class:`Poller` looks for due sources every ``interval`` seconds and fetches each one it
claims (:meth:`~hub.osint.sources.service.Sources.claim_due`: one poller per due slot, in
any number of hub processes or ``tahub collect`` commands). It runs in a background thread
of the hub (``TAHUB_COLLECT=true``, started and stopped by the app's lifespan) or in the
foreground (``tahub collect``). A fetch never raises for what a source did (it is recorded
as failed); a store that is down is logged and tried again at the next look.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from hub.errors import Conflict, TahubError

from .fetcher import Fetcher, Progress
from .model import FetchRecord, Source
from .service import Sources

__all__ = ["Poller"]

log = structlog.get_logger(__name__)

#: ``on_fetch(source, progress)``: a fetch is about to start; returns the progress callback
#: of that fetch (the CLI's display), or None.
OnFetch = Callable[[Source], Progress | None]
#: ``on_done(record)``: a fetch ended.
OnDone = Callable[[FetchRecord], None]


class Poller:
    """Fetches due sources (module docstring)."""

    def __init__(self, sources: Sources, fetcher: Fetcher, *, interval: float) -> None:
        self._sources = sources
        self._fetcher = fetcher
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_due(self, on_fetch: OnFetch | None = None,
                on_done: OnDone | None = None) -> list[FetchRecord]:
        """Fetch every source due now, one after the other (until none is left or the poller
        stops); the records of the fetches made here."""
        done: list[FetchRecord] = []
        while not self._stop.is_set():
            source = self._sources.claim_due()
            if source is None:
                break
            progress = on_fetch(source) if on_fetch else None
            try:
                done.append(self._fetcher.fetch(source.id, progress))
                if on_done:
                    on_done(done[-1])
            except Conflict:  # being fetched by hand (the fetch route) right now
                log.info("source skipped: being fetched", source=source.id)
        return done

    def run_forever(self, on_fetch: OnFetch | None = None,
                    on_done: OnDone | None = None) -> None:
        """Poll until :meth:`stop`: due sources, then wait ``interval`` seconds."""
        while not self._stop.is_set():
            try:
                self.run_due(on_fetch, on_done)
            except TahubError as exc:  # the metadata store is down: try again later
                log.warning("polling failed", error=exc.detail)
            except Exception:  # a bug: keep polling, say so
                log.exception("polling failed")
            self._stop.wait(self._interval)

    def start(self) -> None:
        """Poll in a background thread (the hub's lifespan)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run_forever, name="tahub-poller",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling: the running fetch ends after its current entry."""
        self._stop.set()
        self._fetcher.interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

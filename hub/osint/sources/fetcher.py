"""One fetch of one source: read it, collect each new article, record what happened.

::

    begin        a fetch row, outcome "running" (409 if one of this source is running)
    feed         GET (conditional: ETag / Last-Modified) -> 304: "not_modified"
                 not a feed type, malformed, too large, timed out... -> "failed", the reason
                 each entry (at most TAHUB_FETCH_MAX_ENTRIES):
                     link already collected from this source   -> a duplicate, not fetched
                     summary short? its page (same host only)   -> text by trafilatura,
                                                                   or skipped: the reason
    folder       each new or changed file (hub.osint.sources.folders) -> its entries
    every entry  language the tagger reads? (py3langid)     -> or skipped: the reason
                 Collection.add(NewItem(kind="article"))     -> added, joined or duplicate
    end          the row: outcome, HTTP status, found / added / duplicates, every skipped
                 entry with its reason, the error; the feed's validators or the folder's
                 files read are kept only when the fetch succeeded

Nothing a source sends can crash the caller (the poller, ``tahub collect``, the fetch
route): a problem of the source is a failed fetch with its reason, and an unexpected error
is logged and recorded as a failed fetch too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import Engine

from hub.errors import Conflict, InvalidInput, NotFound, TahubError, Unavailable
from hub.osint.collection import MAX_TEXT, Collection, NewItem
from hub.storage.db import (
    osint_fetches,
    osint_items,
    osint_sources,
    read_connection,
    utcnow,
    writing,
)

from .feeds import FEED_TYPES, is_feed_type, read_feed
from .folders import read_folder
from .model import LANGUAGES, Entry, FetchRecord, Outcome
from .pages import article_of, is_html
from .service import fetch_record
from .web import Hosts, Refused, Web

__all__ = ["Fetcher", "Limits", "Progress"]

log = structlog.get_logger(__name__)

_MAX_SKIPS = 500
_REASON = 300
_PAGE_TYPES = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"
# a fetch still "running" after this long is taken for one whose process died
_STALE = dt.timedelta(hours=1)

#: ``progress(done, total)``: entries handled so far, of how many (None: not known yet).
Progress = Callable[[int, int | None], None]


@dataclass(frozen=True, slots=True)
class Limits:
    """Per fetch: most entries read, and the summary length under which a feed entry's
    page is fetched; the largest folder file (the decoded-bytes limit)."""

    max_entries: int = 200
    short_text: int = 600
    max_file_bytes: int = 20 * 1024 * 1024


@dataclass
class _Tally:
    found: int = 0
    added: int = 0
    duplicates: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    dropped: int = 0  # skipped entries beyond _MAX_SKIPS, counted only

    def skip(self, ref: str, reason: str) -> None:
        if len(self.skipped) < _MAX_SKIPS:
            self.skipped.append({"ref": ref[:500], "reason": reason[:_REASON]})
        else:
            self.dropped += 1

    def listed(self) -> list[dict[str, str]]:
        if not self.dropped:
            return self.skipped
        return [*self.skipped, {"ref": "...", "reason": f"and {self.dropped} more skipped"}]


class _Stopped(Exception):
    pass


class Fetcher:
    """Fetches sources (module docstring). One per process: it shares the
    :class:`~hub.osint.sources.web.Web` (and its per-host pace), the collection and the
    language identifier. :meth:`start` runs a fetch in a background thread of its own
    (the fetch route); :meth:`close` stops between two entries."""

    def __init__(self, engine: Engine, collection: Collection, web: Web, *,
                 limits: Limits = Limits(),
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._engine = engine
        self._collection = collection
        self._web = web
        self._limits = limits
        self._clock = clock
        self._identifier: Any = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pool: ThreadPoolExecutor | None = None

    # -- entry points ----------------------------------------------------------------------
    def fetch(self, ref: str, progress: Progress | None = None) -> FetchRecord:
        """Fetch the source ``ref`` (id or name) now and return the record."""
        source, fetch_id = self.begin(ref)
        return self.run(source, fetch_id, progress)

    def start(self, ref: str) -> FetchRecord:
        """Begin a fetch now, run it in the background, and return its record ("running")."""
        source, fetch_id = self.begin(ref)
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fetch")
            self._pool.submit(self.run, source, fetch_id)
        return self._record(fetch_id)

    def interrupt(self) -> None:
        """Running fetches end after their current entry (recorded as failed, what they
        collected kept); no fetch starts any more."""
        self._stopping.set()

    def close(self) -> None:
        """:meth:`interrupt`, wait for the background fetches, close the connections."""
        self._stopping.set()
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        self._web.close()

    # -- one fetch -------------------------------------------------------------------------
    def begin(self, ref: str) -> tuple[Any, str]:
        """The source's row and a new fetch row ("running"); its next fetch is then
        ``every_minutes`` away. 409 if one is running, 503 if the fetcher was stopped."""
        if self._stopping.is_set():
            raise Unavailable("the hub is stopping: no fetch starts now")
        s, f = osint_sources.c, osint_fetches.c
        now = self._clock()
        fetch_id = "fet_" + secrets.token_hex(12)
        with writing(self._engine) as conn:
            source = conn.execute(sa.select(osint_sources)
                                  .where(sa.or_(s.id == ref, s.name == ref))
                                  .order_by((s.id == ref).desc()).limit(1)).first()
            if source is None:
                raise NotFound(f"no source {ref!r}", field="source")
            running = conn.execute(sa.select(f.id, f.started_at).where(
                f.source_id == source.id, f.outcome == "running",
                f.started_at > now - _STALE)).first()
            if running is not None:
                raise Conflict(f"the source {source.name!r} is being fetched (since "
                               f"{running.started_at:%H:%M:%S} UTC)", rule="source:fetching")
            conn.execute(sa.update(osint_sources).where(s.id == source.id).values(
                next_fetch_at=now + dt.timedelta(minutes=source.every_minutes)))
            conn.execute(sa.insert(osint_fetches).values(
                id=fetch_id, source_id=source.id, started_at=now, finished_at=None,
                outcome="running", http_status=None, found=0, added=0, duplicates=0,
                skipped=[], error=None))
        return source, fetch_id

    def run(self, source: Any, fetch_id: str, progress: Progress | None = None) -> FetchRecord:
        """Fetch ``source`` under the fetch row ``fetch_id`` (from :meth:`begin`) and record
        the outcome; never raises for anything the source did."""
        tally = _Tally()
        outcome: Outcome = "ok"
        status: int | None = None
        error: str | None = None
        keep: dict[str, Any] = {}
        try:
            if source.kind == "feed":
                status, keep = self._feed(source, fetch_id, tally, progress)
                if status == 304:
                    outcome = "not_modified"
            else:
                keep = self._folder(source, fetch_id, tally, progress)
        except Refused as refused:
            outcome, status, error = "failed", refused.status or status, refused.reason
        except _Stopped:
            outcome, error = "failed", "interrupted: the hub was stopping (what was " \
                                       "collected is kept; the rest comes at the next fetch)"
        except TahubError as exc:  # the metadata store, mostly
            outcome, error = "failed", exc.detail
        except Exception as exc:  # a bug: the poller goes on, the record says so
            log.exception("fetch failed", source=source.id, fetch=fetch_id)
            outcome, error = "failed", f"internal error ({type(exc).__name__}); see the " \
                                       "hub's log"
        return self._finish(source, fetch_id, tally, outcome, status, error,
                            keep if outcome == "ok" else {})

    # -- feeds -----------------------------------------------------------------------------
    def _feed(self, source: Any, fetch_id: str, tally: _Tally,
              progress: Progress | None) -> tuple[int, dict[str, Any]]:
        hosts = Hosts.of(source.location, source.hosts or ())
        page = self._web.get(source.location, allowed=hosts, accept=FEED_TYPES,
                             etag=source.etag, last_modified=source.last_modified)
        if page.not_modified:
            return 304, {}
        if not is_feed_type(page.content_type):
            raise Refused(f"the answer is {page.content_type}, not a feed (RSS or Atom)",
                          page.status)
        try:
            feed = read_feed(page.body, url=page.url, content_type=page.content_type)
        except Refused as refused:
            raise Refused(refused.reason, page.status) from None
        entries = self._capped(feed.entries, tally, "entries")
        known = self._known(source.id, [e.url for e in entries if e.url])
        for done, entry in enumerate(entries):
            self._check_stop()
            if progress:
                progress(done, len(entries))
            if entry.url and entry.url in known:
                tally.duplicates += 1
                continue
            if len(entry.text) < self._limits.short_text and entry.url:
                fetched = self._article(entry, hosts, tally)
                if fetched is None:
                    continue
                entry = fetched
            self._collect(source, fetch_id, entry, tally)
        if progress:
            progress(len(entries), len(entries))
        return page.status, {"etag": page.etag, "last_modified": page.last_modified}

    def _article(self, entry: Entry, hosts: Hosts, tally: _Tally) -> Entry | None:
        """The entry with its page's text, or None (skipped, with the reason)."""
        url = entry.url or ""
        try:
            hosts.check(url, "a link")
            page = self._web.get(url, allowed=hosts, accept=_PAGE_TYPES)
        except Refused as refused:
            tally.skip(entry.ref, f"article page: {refused.reason}")
            return None
        if not is_html(page.content_type):
            tally.skip(entry.ref, f"article page: {page.content_type or 'no type'} is not "
                       "HTML")
            return None
        body: bytes | str = page.body
        if page.charset:  # else (or an unknown charset) trafilatura guesses from the bytes
            with contextlib.suppress(LookupError):
                body = page.body.decode(page.charset, errors="replace")
        article = article_of(body, page.url)
        if article is None:
            tally.skip(entry.ref, "article page: no article text found")
            return None
        return Entry(ref=entry.ref, title=entry.title or article.title, text=article.text,
                     url=entry.url, published=entry.published or article.published,
                     language=entry.language)

    # -- folders ---------------------------------------------------------------------------
    def _folder(self, source: Any, fetch_id: str, tally: _Tally,
                progress: Progress | None) -> dict[str, Any]:
        seen: dict[str, str] = dict(source.seen or {})
        limit = self._limits.max_entries
        for file in read_folder(Path(source.location), seen, self._limits.max_file_bytes):
            self._check_stop()
            if tally.found >= limit:
                tally.skip(file.name, f"not read yet: {limit} entries were read in this "
                           "fetch (TAHUB_FETCH_MAX_ENTRIES); read at the next fetch")
                continue
            if file.problem is not None:
                tally.skip(file.name, file.problem)
            room = limit - tally.found
            for entry in file.entries[:room]:
                self._check_stop()
                tally.found += 1
                if progress:
                    progress(tally.found, None)
                self._collect(source, fetch_id, entry, tally)
            if len(file.entries) > room:
                tally.skip(file.name, f"{len(file.entries) - room} more records not read "
                           f"(TAHUB_FETCH_MAX_ENTRIES: {limit} a fetch)")
            seen[file.name] = file.stamp
        return {"seen": seen}

    # -- one entry -------------------------------------------------------------------------
    def _collect(self, source: Any, fetch_id: str, entry: Entry, tally: _Tally) -> None:
        if entry.problem is not None:
            tally.skip(entry.ref, entry.problem)
            return
        title, text = entry.title.strip()[:1000], entry.text.strip()[:MAX_TEXT]
        if not text:
            tally.skip(entry.ref, "no text")
            return
        declared = source.language or entry.language or "und"
        check = self._languages().check(f"{title}\n{text}" if title else text, declared)
        if not check.supported or check.used is None:
            said = check.detected or declared
            tally.skip(entry.ref, f"written in {said!r}, a language the tagger does not "
                       f"read ({', '.join(LANGUAGES)})")
            return
        try:
            added = self._collection.add(NewItem(
                kind="article", title=title, text=text, language=check.used,
                published=entry.published, url=(entry.url or None) and entry.url[:2000],
                source_id=source.id, fetch_id=fetch_id))
        except InvalidInput as exc:
            tally.skip(entry.ref, exc.detail)
            return
        if added.outcome == "duplicate":
            tally.duplicates += 1
        else:
            tally.added += 1

    # -- helpers ---------------------------------------------------------------------------
    def _capped(self, entries: list[Entry], tally: _Tally, what: str) -> list[Entry]:
        limit = self._limits.max_entries
        tally.found = len(entries)
        if len(entries) > limit:
            tally.skip("...", f"{len(entries) - limit} more {what} not read "
                       f"(TAHUB_FETCH_MAX_ENTRIES: {limit} a fetch)")
        return entries[:limit]

    def _known(self, source_id: str, urls: list[str]) -> set[str]:
        """The links of these entries already collected from this source."""
        if not urls:
            return set()
        with read_connection(self._engine) as conn:
            return {r.url for r in conn.execute(
                sa.select(osint_items.c.url).where(osint_items.c.source_id == source_id,
                                                   osint_items.c.url.in_(urls)))}

    def _languages(self) -> Any:
        with self._lock:
            if self._identifier is None:
                from hub.osint.tagging.language import LanguageIdentifier

                self._identifier = LanguageIdentifier()
            return self._identifier

    def _check_stop(self) -> None:
        if self._stopping.is_set():
            raise _Stopped

    def _finish(self, source: Any, fetch_id: str, tally: _Tally, outcome: Outcome,
                status: int | None, error: str | None, keep: dict[str, Any]) -> FetchRecord:
        values: dict[str, Any] = {
            "finished_at": self._clock(), "outcome": outcome, "http_status": status,
            "found": tally.found, "added": tally.added, "duplicates": tally.duplicates,
            "skipped": tally.listed(), "error": error[:1000] if error else None}
        try:
            with writing(self._engine) as conn:
                conn.execute(sa.update(osint_fetches)
                             .where(osint_fetches.c.id == fetch_id).values(**values))
                if keep:
                    conn.execute(sa.update(osint_sources)
                                 .where(osint_sources.c.id == source.id).values(**keep))
        except TahubError:
            log.warning("fetch not recorded: the metadata store is unavailable",
                        source=source.id, fetch=fetch_id, outcome=outcome)
        log.info("fetched", source=source.id, fetch=fetch_id, outcome=outcome,
                 http_status=status, found=tally.found, added=tally.added,
                 duplicates=tally.duplicates, skipped=len(tally.skipped) + tally.dropped)
        return FetchRecord(id=fetch_id, source_id=source.id, started_at=self._started(
            fetch_id), **values)

    def _started(self, fetch_id: str) -> dt.datetime:
        try:
            return self._record(fetch_id).started_at
        except TahubError:
            return self._clock()

    def _record(self, fetch_id: str) -> FetchRecord:
        with read_connection(self._engine) as conn:
            row = conn.execute(sa.select(osint_fetches)
                               .where(osint_fetches.c.id == fetch_id)).first()
        if row is None:
            raise NotFound(f"no fetch {fetch_id!r}")
        return fetch_record(row)

"""Collection: every article and crowd report enters the hub here, once, as an item of an
incident, with the tagger's suggestions.

::

    NewItem ──add()──> exact copy from the same source or URL?  -> skipped ("duplicate")
                      tag it (hub.osint.tagging)
                      near-duplicate of an earlier item? (hub.osint.dedup)
                          yes -> one more source of that item's incident
                          no  -> a new incident, queued for review
                      stored: an article's text in clear, a report's only sealed

Sources (feeds, folders) and the public report form call :meth:`Collection.add`; the
reviewers' queue reads the incidents it makes. Every item is stored in one transaction with
its incident: there is never an item without an incident, nor a half-made incident.

A report's text is sealed (encrypted) by the ``seal`` function given to the collection
(:mod:`hub.osint.sealing`) before it is stored; its tags, fingerprint and MinHash are
computed from the text in memory (:mod:`hub.osint.dedup` says what they reveal), and its
suggestions are stored :func:`redacted`: each evidence's span without its words, which
:func:`with_evidence` fills in again from the opened text for a reviewer.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Engine

from hub.errors import InvalidInput
from hub.osint.dedup import NearDuplicates, fingerprint, signature
from hub.osint.tagging import Tagger, Tagging
from hub.storage.db import (
    osint_incidents,
    osint_items,
    read_connection,
    utcnow,
    writing,
)

__all__ = ["MAX_TEXT", "Added", "Collection", "NewItem", "redacted", "with_evidence"]

#: The longest text an item may have (characters): a long feature is cut by its source.
MAX_TEXT = 100_000
ItemKind = Literal["article", "report"]


@dataclass(frozen=True, slots=True)
class NewItem:
    """One article (from a source's fetch) or crowd report, as collected."""

    kind: ItemKind
    title: str
    text: str
    language: str | None = None  # declared; None: identified from the text
    published: dt.datetime | None = None
    url: str | None = None
    source_id: str | None = None
    fetch_id: str | None = None
    purge_after: dt.datetime | None = None  # a report's text is deleted then


@dataclass(frozen=True, slots=True)
class Added:
    """What :meth:`Collection.add` did with an item.

    ``outcome``: ``added`` (a new incident), ``joined`` (one more source of an existing
    incident: ``like`` is the near-duplicate item, ``similarity`` their estimated Jaccard
    similarity) or ``duplicate`` (the same text from the same source or URL: not stored,
    ``item`` is the stored one)."""

    outcome: Literal["added", "joined", "duplicate"]
    item: str
    incident: str
    like: str | None = None
    similarity: float | None = None
    tagging: Tagging | None = None


def redacted(tagging: Tagging) -> Tagging:
    """``tagging`` without the words of its evidence (their spans kept): what is stored of
    a report's suggestions, which must not hold its text in the clear."""
    return Tagging.model_validate(_walk(tagging.model_dump(mode="json"), None))


def with_evidence(tagging: dict[str, Any], text: str) -> dict[str, Any]:
    """A report's stored suggestions (JSON, :func:`redacted`) with the words of their
    evidence filled in again from its opened ``text`` (matched words and sentence, by the
    spans): what a reviewer's page shows next to the report."""
    filled: dict[str, Any] = _walk(tagging, text)
    return filled


def _walk(value: Any, text: str | None) -> Any:
    """Evidence dicts blanked (``text`` None) or refilled from ``text`` by their spans."""
    if isinstance(value, list):
        return [_walk(v, text) for v in value]
    if not isinstance(value, dict):
        return value
    if {"part", "start", "end", "text", "sentence"} <= value.keys():
        if text is None:
            return {**value, "text": "", "sentence": ""}
        start, end = int(value["start"]), int(value["end"])
        return {**value, "text": text[start:end], "sentence": _sentence(text, start, end)}
    return {k: _walk(v, text) for k, v in value.items()}


_BOUNDARY = re.compile(r"[.!?。]\s|\n")


def _sentence(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` around ``text[start:end]``."""
    begin = max((m.end() for m in _BOUNDARY.finditer(text, 0, start)), default=0)
    after = _BOUNDARY.search(text, end)
    return text[begin:after.start() + 1 if after else len(text)].strip()


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class Collection:
    """Items and incidents in the metadata store (module docstring).

    ``tagger``: built on first use (loading its vocabularies takes a few seconds) unless
    given; ``seal``: encrypts a report's text (None: reports are refused); ``clock``: now.
    """

    def __init__(self, engine: Engine, *, tagger: Tagger | None = None,
                 seal: Callable[[str], bytes] | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._engine = engine
        self._tagger = tagger
        self._seal = seal
        self._clock = clock
        self._near: NearDuplicates | None = None
        self._lock = threading.Lock()

    @property
    def tagger(self) -> Tagger:
        with self._lock:
            if self._tagger is None:
                self._tagger = Tagger()
            return self._tagger

    def add(self, item: NewItem) -> Added:
        """Store ``item`` (module docstring). An empty or oversized text, or a report with no
        way to seal it, is :class:`InvalidInput` and stores nothing."""
        text, title = item.text.strip(), item.title.strip()
        if not text:
            raise InvalidInput("the item has no text", field="text")
        if len(text) > MAX_TEXT or len(title) > 1000:
            raise InvalidInput(f"the item is longer than {MAX_TEXT:,} characters",
                               field="text")
        if item.kind == "report" and self._seal is None:
            raise InvalidInput("crowd reports are not accepted: the hub has no key to seal "
                               "them (TAHUB_REPORTS_KEYS)", field="kind")
        print_ = fingerprint(title, text)
        same = self._same_copy(item, print_)
        if same is not None:
            return Added("duplicate", same[0], same[1])
        sig = signature(title, text)
        published = item.published.date() if item.published else self._clock().date()
        tagging = self.tagger.tag(text, language=item.language or "und", published=published,
                                  title=title)
        near = self._index().match(sig)
        now = self._clock()
        item_id = _new_id("itm_")
        row: dict[str, Any] = {
            "id": item_id, "kind": item.kind, "source_id": item.source_id,
            "fetch_id": item.fetch_id, "url": item.url, "title": title or None,
            "text": text if item.kind == "article" else None,
            "sealed": self._seal(text) if item.kind == "report" and self._seal else None,
            "language": item.language or tagging.language.used,
            "published_at": item.published, "collected_at": now, "fingerprint": print_,
            "minhash": sig, "tagging": (redacted(tagging) if item.kind == "report"
                                        else tagging).model_dump(mode="json"),
            "purge_after": item.purge_after,
        }
        with writing(self._engine) as conn:
            incident = self._live(conn, near[1]) if near else None
            if incident is None:
                incident = _new_id("inc_")
                conn.execute(sa.insert(osint_incidents).values(
                    id=incident, created_at=now, updated_at=now, state="queued"))
            else:
                conn.execute(sa.update(osint_incidents)
                             .where(osint_incidents.c.id == incident).values(updated_at=now))
            conn.execute(sa.insert(osint_items).values(**row, incident_id=incident))
        self._index().add(item_id, incident, sig)
        if near is not None and incident is not None:
            return Added("joined", item_id, incident, like=near[0], similarity=near[2],
                         tagging=tagging)
        return Added("added", item_id, incident, tagging=tagging)

    def merged(self, incident: str, into: str) -> None:
        """Tell the near-duplicate index that a reviewer merged ``incident`` into ``into``
        (the merge itself is the reviewers' queue's transaction)."""
        self._index().move(incident, into)

    # -- helpers ---------------------------------------------------------------------------
    def _same_copy(self, item: NewItem, print_: str) -> tuple[str, str] | None:
        """(item, incident) of the same text already stored from the same source, from the
        same URL, or (reports) at all."""
        same = [osint_items.c.fingerprint == print_]
        if item.kind == "article":
            alike = [osint_items.c.source_id == item.source_id] if item.source_id else []
            if item.url:
                alike.append(osint_items.c.url == item.url)
            if not alike:
                return None
            same.append(sa.or_(*alike))
        else:
            same.append(osint_items.c.kind == "report")
        with read_connection(self._engine) as conn:
            row = conn.execute(sa.select(osint_items.c.id, osint_items.c.incident_id)
                               .where(*same).limit(1)).first()
        return (row.id, row.incident_id) if row else None

    @staticmethod
    def _live(conn: sa.Connection, incident: str) -> str | None:
        """``incident``, or the incident it was merged into (followed to the end)."""
        seen: set[str] = set()
        current: str | None = incident
        while current is not None and current not in seen:
            seen.add(current)
            row = conn.execute(sa.select(osint_incidents.c.state,
                                         osint_incidents.c.merged_into)
                               .where(osint_incidents.c.id == current)).first()
            if row is None:
                return None
            if row.state != "merged":
                return current
            current = row.merged_into
        return None

    def _index(self) -> NearDuplicates:
        """The near-duplicate index, built from every stored item on first use."""
        with self._lock:
            if self._near is None:
                near = NearDuplicates()
                with read_connection(self._engine) as conn:
                    near.load((r.id, r.incident_id, r.minhash) for r in conn.execute(
                        sa.select(osint_items.c.id, osint_items.c.incident_id,
                                  osint_items.c.minhash)
                        .where(osint_items.c.minhash.is_not(None))
                        .order_by(osint_items.c.collected_at)))
                self._near = near
            return self._near

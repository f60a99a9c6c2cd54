"""Crowd reports: what members of the public saw, received without an account, kept sealed,
read by reviewers only, and deleted after review.

::

    GET  /v1/public/reports/challenge   -> Reports.challenge()   (hub.osint.challenges)
    POST /v1/public/reports             -> Reports.submit()
         rate limit per address (the HTTP layer: hub.api.ratelimit, shared by every hub
         process in the metadata store under a keyed hash of the address that rotates
         daily; never the address) -> honeypot empty? -> text, where, when checked ->
         proof of work checked -> challenge spent (a receipt row, once per challenge) ->
         Collection.add(report): tagged from the text in memory, stored sealed -> receipt
    reviewers: the review queue opens the sealed text for the reviewer holding its incident
    (hub.osint.review)
    every few minutes, and `tahub admin purge-reports`: Reports.purge()

What is stored of a report (``osint_items``): its text, and the place and date the sender
gave, sealed together (:mod:`hub.osint.sealing`); its language; the date as
``published_at``; the fingerprint and MinHash (:mod:`hub.osint.dedup`: one-way); and the
tagger's suggestions *without their evidence's words* (the spans are kept, so that a
reviewer who opens the report sees each tag's sentence again, hub.osint.review).
A receipt (``osint_receipts``) ties the random id the sender was given to the item, and
records the spent challenge's hash. No address, no browser detail, no HTTP header is
stored anywhere; nothing of the text is ever logged or audited.

A report with markup or scripts in it is stored as the text it is (sealed) and must be
escaped wherever it is shown (the reviewers' pages set it as text, never as HTML).

Retention: once a report's incident is reviewed (accepted, rejected or merged, with its
``reviewed_at``), its text is kept ``TAHUB_REPORTS_RETENTION_DAYS`` more days, then
:meth:`Reports.purge` deletes it (``sealed`` set to NULL; an item whose ``purge_after`` has
passed goes too). Only the reviewed tags remain. Each purge that deletes anything is an
audit entry ``reports.purged`` with its counts. The purge is one UPDATE: any number of hub
processes may run it at once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy import Engine

from hub.errors import Conflict, InvalidInput, Unavailable
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.osint.challenges import LIFETIME, Challenge, Challenges, secrets_from_keys
from hub.osint.collection import Collection, NewItem
from hub.osint.sealing import Sealer
from hub.osint.tagging import Tagger
from hub.storage.db import (
    osint_incidents,
    osint_items,
    osint_receipts,
    utcnow,
    writing,
)

__all__ = ["LANGUAGES", "MAX_WHERE", "PublicReport", "Purged", "Receipt", "Reports"]

#: The languages of the public report page (and the ones a report may declare).
LANGUAGES = ("en", "fr", "es")
#: The longest "where" a sender may give, in characters.
MAX_WHERE = 200
_REVIEWED = ("accepted", "rejected", "merged")
_NO_KEYS = ("crowd reports are not accepted: the hub has no key to seal them "
            "(TAHUB_REPORTS_KEYS; make one with `tahub admin reports-key`)")


@dataclass(frozen=True, slots=True)
class PublicReport:
    """A report as the public sent it. ``website`` is the honeypot: a field the page hides
    from people, which only a program filling every field fills."""

    text: str
    language: Literal["en", "fr", "es"] | None = None
    where: str | None = None
    when: dt.date | None = None
    website: str | None = None


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the sender gets: a random id that says nothing of the report, nor whether
    someone sent the same text before."""

    id: str


@dataclass(frozen=True, slots=True)
class Purged:
    """What one purge deleted: report texts, and receipts of spent challenges that never
    became a report (their challenges have expired)."""

    texts: int
    receipts: int


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


class Reports:
    """The crowd reports' service (module docstring).

    ``keys``: the reports keys (none: reports are refused, purges still run); ``collection``:
    the process's collection, which seals reports with the first of the same keys (None:
    one of its own); ``bits``: the proof of work's difficulty.
    """

    def __init__(self, engine: Engine, audit: AuditLog, *, keys: list[str], bits: int,
                 max_chars: int, retention_days: int, collection: Collection | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self.max_chars = max_chars
        self.retention = dt.timedelta(days=retention_days)
        self._sealer = Sealer(keys) if keys else None
        self._challenges = (Challenges(secrets_from_keys(keys), bits, clock=clock)
                            if keys else None)
        self._collection = collection or Collection(
            engine, seal=self._sealer.seal if self._sealer else None, clock=clock)

    @property
    def tagger(self) -> Tagger:
        """The tagger reports are tagged with (the collection's: built on first use)."""
        return self._collection.tagger

    @property
    def collection(self) -> Collection:
        """Where reports are stored (sealed), with the articles."""
        return self._collection

    @property
    def accepting(self) -> bool:
        """Whether the hub has a key to seal reports with."""
        return self._sealer is not None

    def challenge(self) -> Challenge:
        """A new proof-of-work challenge (:mod:`hub.osint.challenges`)."""
        if self._challenges is None:
            raise Unavailable(_NO_KEYS, rule="reports_keys")
        return self._challenges.issue()

    def submit(self, report: PublicReport, *, challenge: str, nonce: str) -> Receipt:
        """Store ``report`` sealed and answer its receipt (module docstring). Every check
        comes before anything is stored; a refused report stores nothing and spends
        nothing, except a report refused after its challenge was spent (the store went
        away): the sender asks a new challenge."""
        if self._challenges is None:
            raise Unavailable(_NO_KEYS, rule="reports_keys")
        if report.website:
            raise InvalidInput("this field is hidden from people and must stay empty: a "
                               "report that fills it looks automated", field="website")
        text = self._checked(report)
        digest = self._challenges.check(challenge, nonce)
        receipt = _new_id("rcp_")
        with writing(self._engine, conflict=Conflict(
                "this challenge was already used for a report; get a new one",
                field="challenge")) as conn:
            conn.execute(sa.insert(osint_receipts).values(
                id=receipt, challenge=digest, item_id=None, received_at=self._clock()))
        published = (dt.datetime.combine(report.when, dt.time(), dt.UTC)
                     if report.when else None)
        added = self._collection.add(NewItem("report", "", text, language=report.language,
                                             published=published))
        with writing(self._engine) as conn:
            conn.execute(sa.update(osint_receipts).where(osint_receipts.c.id == receipt)
                         .values(item_id=added.item))
        return Receipt(receipt)

    def _checked(self, report: PublicReport) -> str:
        """The text to seal: the report, then the place and date given (labelled), as
        sent; or :class:`InvalidInput` naming the field."""
        text = report.text.strip()
        if not text:
            raise InvalidInput("the report is empty", field="text")
        if len(text) > self.max_chars:
            raise InvalidInput(f"the report is {len(text):,} characters; at most "
                               f"{self.max_chars:,} are accepted (TAHUB_REPORTS_MAX_CHARS)",
                               field="text", max_chars=self.max_chars)
        where = (report.where or "").strip()
        if len(where) > MAX_WHERE:
            raise InvalidInput(f"the place is at most {MAX_WHERE} characters", field="where")
        if report.language is not None and report.language not in LANGUAGES:
            raise InvalidInput(f"the language is one of {', '.join(LANGUAGES)}",
                               field="language")
        today = self._clock().date()
        if report.when is not None and not (dt.date(1950, 1, 1) <= report.when
                                            <= today + dt.timedelta(days=1)):
            raise InvalidInput("the date is between 1950-01-01 and today", field="when")
        lines = [text]
        if where:
            lines.append(f"\nWhere: {where}")
        if report.when is not None:
            lines.append(("" if where else "\n") + f"When: {report.when.isoformat()}")
        return "\n".join(lines)

    # -- retention ---------------------------------------------------------------------------
    def purge(self, actor: str | None = None) -> Purged:
        """Delete the texts whose retention ended (module docstring); ``actor``: who asked
        (None: the hub's own schedule). One audit entry when anything was deleted."""
        now = self._clock()
        reviewed = (sa.select(osint_incidents.c.id)
                    .where(osint_incidents.c.state.in_(_REVIEWED),
                           osint_incidents.c.reviewed_at.is_not(None),
                           osint_incidents.c.reviewed_at <= now - self.retention))
        due = sa.or_(sa.and_(osint_items.c.purge_after.is_not(None),
                             osint_items.c.purge_after <= now),
                     osint_items.c.incident_id.in_(reviewed.scalar_subquery()))
        with writing(self._engine) as conn:
            texts = conn.execute(
                sa.update(osint_items)
                .where(osint_items.c.kind == "report", osint_items.c.sealed.is_not(None), due)
                .values(sealed=None)).rowcount
            receipts = conn.execute(
                sa.delete(osint_receipts)
                .where(osint_receipts.c.item_id.is_(None),
                       osint_receipts.c.received_at < now - LIFETIME)).rowcount
            if texts:
                self._audit.append(AuditEvent(
                    Action.REPORTS_PURGED, actor=actor, object_type="crowd_reports",
                    details={"texts": texts,
                             "retention_days": self.retention.days}), conn=conn)
        return Purged(texts, receipts)

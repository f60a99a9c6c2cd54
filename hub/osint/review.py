"""The reviewers' queue: incidents from open sources and the public, coded by people.

::

    queued ──claim()──> claimed (by one reviewer, until the claim expires)
                          │ decide(): accept | correct | reject | merge
                          ▼
                 accepted (coded tags) | rejected (a reason) | merged (into another)

* :meth:`ReviewQueue.queue` - what is waiting (queued, and claimed ones with their holder),
  oldest first; how many incidents are in each state; how long the oldest has waited; for
  each, incidents that may be the same (:meth:`ReviewQueue.possibly_same`).
* :meth:`ReviewQueue.claim` - one incident for the reviewer: the one named, or the oldest
  waiting. A claim is one ``UPDATE ... WHERE state = 'queued' OR <the claim expired>``, so two
  reviewers never hold the same incident (the database decides; the loser tries the next
  one). A claim lasts ``claim_minutes`` (``TAHUB_REVIEW_CLAIM_MINUTES``): an abandoned one
  goes back to the queue by itself. A reviewer who already holds a claim gets it again.
* :meth:`ReviewQueue.incident` - the claimed incident with its items (articles: title, URL,
  source, text; crowd reports: their sealed text opened with the hub's reports keys, only
  for the reviewer holding the claim, and the words of their suggestions' evidence, which
  are stored blank, filled in again from it: :func:`hub.osint.collection.with_evidence`) and
  the suggested tags merged across its items (:func:`hub.osint.coding.suggestions`: per
  field and code, the best confidence and the evidence of each item, with its span, for
  the page to highlight).
* :meth:`ReviewQueue.decide` - one transaction: the incident's state, ``coded`` (the
  record the incidents dataset reads, :func:`hub.osint.coding.record`),
  ``reviewed_by`` and ``reviewed_at``; an ``osint_decisions`` row (what was suggested and
  what was coded); an audit entry (``incident.accepted|corrected|rejected|merged``). Refused
  (409, ``rule: review:claim``) unless the reviewer holds an unexpired claim. A merge moves
  the items into the other incident, marks this one ``merged`` with ``merged_into``, and
  tells the collection's near-duplicate index (``Collection.merged``) once committed.

Every method needs the ``reviewer`` role (403 ``role:reviewer``), checked before the input.
Per-tag precision of the suggestions, from the decisions, is :mod:`hub.osint.precision`.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Connection, Engine

from hub.actors import Actor, Role
from hub.errors import Conflict, InvalidInput, NotFound, TahubError, invalid_body
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.osint.coding import (
    FIELDS,
    CodedTag,
    CodeLists,
    coded,
    key_of,
    record,
    single_valued,
    suggestions,
    tags_of,
)
from hub.osint.collection import with_evidence
from hub.osint.precision import precision_report
from hub.osint.sealing import Sealer
from hub.storage.db import (
    iso_utc,
    osint_decisions,
    osint_incidents,
    osint_items,
    osint_sources,
    read_connection,
    utcnow,
    writing,
)

__all__ = ["ClaimRequest", "DecisionRequest", "ReviewQueue"]

#: Incidents waiting for a reviewer (a claim that expired is waiting again).
_UNDECIDED = ("queued", "claimed")
#: Incidents another may be merged into, and that may be the same as one in the queue.
_LIVE = ("queued", "claimed", "accepted")
_ACTIONS = {"accept": Action.INCIDENT_ACCEPTED, "correct": Action.INCIDENT_CORRECTED,
            "reject": Action.INCIDENT_REJECTED, "merge": Action.INCIDENT_MERGED}
_STATE = {"accept": "accepted", "correct": "accepted", "reject": "rejected",
          "merge": "merged"}
#: How far apart (days of collection) two incidents may be and still be offered as the same.
_SAME_WINDOW = dt.timedelta(days=120)
_MAX_SAME = 5


class ClaimRequest(BaseModel):
    """Claim the incident named, or (none named) the oldest waiting."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    incident: str | None = Field(default=None, max_length=64,
                                 description="An incident id; none: the oldest waiting.")


class DecisionRequest(BaseModel):
    """A reviewer's decision on the incident they hold (docs/osint.md#review)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["accept", "correct", "reject", "merge"] = Field(
        description="accept: the suggested tags as they are; correct: the tags given; "
        "reject: not a trafficking incident (a reason); merge: the same incident as `into`.")
    tags: list[dict[str, Any]] | None = Field(
        default=None, max_length=100,
        description="correct: every tag the incident is coded with ({field, code, role}).")
    reason: str | None = Field(default=None, max_length=1000,
                               description="reject: why the incident is irrelevant.")
    into: str | None = Field(default=None, max_length=64,
                             description="merge: the incident this one is the same as.")
    note: str | None = Field(default=None, max_length=1000,
                             description="Anything the next reviewer should know.")


@dataclass(frozen=True, slots=True)
class _Profile:
    """What two incidents are compared on to be offered as possibly the same."""

    months: frozenset[int]  # year * 12 + month - 1
    destinations: frozenset[str]
    exploitation: frozenset[str]

    def like(self, other: _Profile) -> bool:
        return bool(self.destinations & other.destinations
                    and self.exploitation & other.exploitation
                    and any(abs(a - b) <= 1 for a in self.months for b in other.months))


def _month(code: str) -> int | None:
    try:
        year, month = code.split("-")
        return int(year) * 12 + int(month) - 1
    except ValueError:
        return None


def _seconds(since: dt.datetime, now: dt.datetime) -> int:
    return max(0, int((now - since).total_seconds()))


class ReviewQueue:
    """The reviewers' queue over the metadata store (module docstring).

    ``reports_keys``: the keys crowd reports are sealed with (``TAHUB_REPORTS_KEYS``; none:
    a report's text is shown as unavailable); ``merged``: called with (incident, into) after
    a merge commits (``Collection.merged``).
    """

    def __init__(self, engine: Engine, audit: AuditLog, *, lists: CodeLists | None = None,
                 claim_minutes: int = 30, reports_keys: Iterable[str] = (),
                 merged: Callable[[str, str], None] | None = None,
                 decided: Callable[[], None] | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._engine = engine
        self._audit = audit
        self._lists = lists or CodeLists()
        self.claim_time = dt.timedelta(minutes=claim_minutes)
        keys = [k for k in reports_keys if k.strip()]
        self._sealer = Sealer(keys) if keys else None
        self._merged = merged
        self._decided = decided
        self._clock = clock

    # -- the queue ---------------------------------------------------------------------------
    def queue(self, actor: Actor, *, limit: int = 50) -> dict[str, Any]:
        """What is waiting, oldest first (at most ``limit``), counts by state, and how long
        the oldest has waited."""
        actor.require(Role.REVIEWER)
        if not 1 <= limit <= 500:
            raise InvalidInput("limit is between 1 and 500", field="limit")
        now = self._clock()
        cutoff = now - self.claim_time
        i = osint_incidents
        with read_connection(self._engine) as conn:
            counts = {state: 0 for state in ("queued", "claimed", "accepted", "rejected",
                                             "merged")}
            for state, n in conn.execute(sa.select(i.c.state, sa.func.count())
                                         .group_by(i.c.state)):
                counts[state] = counts.get(state, 0) + int(n)
            expired = int(conn.execute(sa.select(sa.func.count()).where(
                i.c.state == "claimed", i.c.claimed_at < cutoff)).scalar_one())
            counts["claimed"] -= expired
            counts["queued"] += expired
            oldest = conn.execute(sa.select(sa.func.min(i.c.created_at))
                                  .where(i.c.state.in_(_UNDECIDED))).scalar_one()
            rows = list(conn.execute(sa.select(i).where(i.c.state.in_(_UNDECIDED))
                                     .order_by(i.c.created_at, i.c.id).limit(limit)))
            items = self._items(conn, [r.id for r in rows], text=False)
            same = self._same(conn, rows, items)
        waiting = [self._summary(r, items.get(r.id, []), now, actor) | {
            "possibly_same": same.get(r.id, [])} for r in rows]
        return {"counts": counts, "waiting": counts["queued"] + counts["claimed"],
                "oldest_waiting_seconds": _seconds(oldest, now) if oldest else None,
                "claim_minutes": int(self.claim_time.total_seconds() // 60),
                "incidents": waiting}

    def _summary(self, row: Any, items: list[dict[str, Any]], now: dt.datetime,
                 actor: Actor) -> dict[str, Any]:
        held = self._held(row, now)
        suggested = suggestions([(it["id"], it["tagging"]) for it in items])
        return {
            "id": row.id, "state": "claimed" if held else "queued",
            "created_at": iso_utc(row.created_at),
            "waiting_seconds": _seconds(row.created_at, now),
            "claimed_by": row.claimed_by if held else None,
            "mine": bool(held and row.claimed_by == actor.client_id),
            "claim_expires_at": iso_utc(row.claimed_at + self.claim_time) if held else None,
            "items": len(items),
            "kinds": sorted({it["kind"] for it in items}),
            "titles": [it["title"] for it in items if it["kind"] == "article" and it["title"]],
            "suggested": [{k: t[k] for k in ("field", "code", "role", "confidence") if k in t}
                          for t in suggested if t["field"] in ("exploitation_type", "location")],
        }

    def _held(self, row: Any, now: dt.datetime) -> bool:
        """Whether ``row`` is claimed by someone whose claim has not expired."""
        return bool(row.state == "claimed" and row.claimed_at is not None
                    and row.claimed_at + self.claim_time > now)

    # -- claiming ----------------------------------------------------------------------------
    def claim(self, actor: Actor, body: Any = None) -> dict[str, Any]:
        """Claim the incident ``body["incident"]`` names, or the oldest waiting; the claim
        (incident, claimed_at, expires_at). Nothing waiting: 404; the incident named held
        by another reviewer or decided: 409."""
        actor.require(Role.REVIEWER)
        try:
            request = ClaimRequest.model_validate(body or {})
        except ValidationError as exc:
            raise invalid_body("the claim is invalid", exc) from None
        now = self._clock()
        i = osint_incidents
        me = actor.client_id
        if request.incident is not None:
            if self._take(request.incident, me, now):
                return self._claim_view(request.incident, now)
            with read_connection(self._engine) as conn:
                row = conn.execute(sa.select(i).where(i.c.id == request.incident)).first()
            if row is None:
                raise NotFound(f"no incident {request.incident}")
            if row.state == "claimed":
                raise Conflict(f"incident {row.id} is held by another reviewer until "
                               f"{iso_utc(row.claimed_at + self.claim_time)}",
                               rule="review:claimed")
            raise Conflict(f"incident {row.id} was already reviewed ({row.state})",
                           rule="review:decided")
        with read_connection(self._engine) as conn:  # one's own claim first, if any
            mine = conn.execute(sa.select(i.c.id).where(
                i.c.state == "claimed", i.c.claimed_by == me,
                i.c.claimed_at > now - self.claim_time).order_by(i.c.claimed_at)).first()
        if mine is not None and self._take(mine.id, me, now):
            return self._claim_view(mine.id, now)
        for _ in range(20):  # each lost race moves on to the next incident
            with read_connection(self._engine) as conn:
                candidates = [r.id for r in conn.execute(
                    sa.select(i.c.id).where(self._claimable(me, now))
                    .order_by(i.c.created_at, i.c.id).limit(10))]
            if not candidates:
                break
            for incident in candidates:
                if self._take(incident, me, now):
                    return self._claim_view(incident, now)
        raise NotFound("no incident is waiting for review", rule="review:empty")

    def _claimable(self, me: str, now: dt.datetime) -> Any:
        i = osint_incidents
        return sa.or_(i.c.state == "queued",
                      sa.and_(i.c.state == "claimed",
                              sa.or_(i.c.claimed_at < now - self.claim_time,
                                     i.c.claimed_by == me)))

    def _take(self, incident: str, me: str, now: dt.datetime) -> bool:
        """The atomic claim: one UPDATE, guarded by the claimable condition."""
        i = osint_incidents
        with writing(self._engine) as conn:
            done = conn.execute(sa.update(i).where(i.c.id == incident,
                                                   self._claimable(me, now))
                                .values(state="claimed", claimed_by=me, claimed_at=now))
        return bool(done.rowcount == 1)

    def _claim_view(self, incident: str, now: dt.datetime) -> dict[str, Any]:
        return {"incident": incident, "claimed_at": iso_utc(now),
                "expires_at": iso_utc(now + self.claim_time)}

    # -- reading -----------------------------------------------------------------------------
    def incident(self, actor: Actor, incident_id: str) -> dict[str, Any]:
        """The incident the reviewer holds, with its items' texts and the suggested tags
        (module docstring); the code lists of the correction form; possibly the same."""
        actor.require(Role.REVIEWER)
        now = self._clock()
        with read_connection(self._engine) as conn:
            row = conn.execute(sa.select(osint_incidents)
                               .where(osint_incidents.c.id == incident_id)).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            self._require_claim(row, actor, now)
            items = self._items(conn, [row.id], text=True).get(row.id, [])
            same = self._same(conn, [row], {row.id: items}).get(row.id, [])
        for item in items:  # a report's text opened, its suggestions' evidence filled in
            item["text_unavailable"] = None
            if item["kind"] == "report":
                item["text"], item["text_unavailable"] = self._open(item["sealed"])
                if item["text"] is not None and item["tagging"] is not None:
                    item["tagging"] = with_evidence(item["tagging"], item["text"])
        return {
            "id": row.id, "state": row.state, "created_at": iso_utc(row.created_at),
            "waiting_seconds": _seconds(row.created_at, now),
            "claimed_by": row.claimed_by, "claimed_at": iso_utc(row.claimed_at),
            "claim_expires_at": iso_utc(row.claimed_at + self.claim_time),
            "items": [self._item_view(it) for it in items],
            "suggested": suggestions([(it["id"], it["tagging"]) for it in items]),
            "possibly_same": same,
            "fields": {f: sorted(c) if (c := self._lists.codes(f)) is not None else None
                       for f in FIELDS},
        }

    def _require_claim(self, row: Any, actor: Actor, now: dt.datetime) -> None:
        if row.state != "claimed" or row.claimed_by != actor.client_id:
            raise Conflict(f"incident {row.id} is not claimed by you: claim it first "
                           "(POST /v1/review/claim)", rule="review:claim")
        if not self._held(row, now):
            raise Conflict(f"your claim on incident {row.id} expired at "
                           f"{iso_utc(row.claimed_at + self.claim_time)}; claim it again",
                           rule="review:claim")

    @staticmethod
    def _item_view(item: dict[str, Any]) -> dict[str, Any]:
        tagging = item["tagging"] or {}
        return {
            "id": item["id"], "kind": item["kind"], "title": item["title"] or "",
            "url": item["url"], "source": item["source"], "language": item["language"],
            "published_at": iso_utc(item["published_at"]) if item["published_at"] else None,
            "collected_at": iso_utc(item["collected_at"]),
            "text": item["text"], "text_unavailable": item["text_unavailable"],
            "relevance": tagging.get("relevance"), "language_check": tagging.get("language"),
        }

    def _open(self, sealed: bytes | None) -> tuple[str | None, str | None]:
        if sealed is None:
            return None, "the report's text was deleted after its retention period"
        if self._sealer is None:
            return None, "the hub has no reports keys to open it (TAHUB_REPORTS_KEYS)"
        try:
            return self._sealer.open(sealed), None
        except TahubError as exc:
            return None, exc.detail

    def _items(self, conn: Connection, incidents: list[str], *, text: bool
               ) -> dict[str, list[dict[str, Any]]]:
        """The items of ``incidents`` (oldest first), with their source's name; texts and
        sealed texts only when ``text``."""
        if not incidents:
            return {}
        it, src = osint_items, osint_sources
        columns: list[Any] = [it.c.id, it.c.incident_id, it.c.kind, it.c.title, it.c.url,
                              it.c.language, it.c.published_at, it.c.collected_at,
                              it.c.tagging, it.c.source_id, src.c.name.label("source_name")]
        if text:
            columns += [it.c.text, it.c.sealed]
        query = (sa.select(*columns).select_from(it.outerjoin(src, src.c.id == it.c.source_id))
                 .where(it.c.incident_id.in_(incidents))
                 .order_by(it.c.collected_at, it.c.id))
        out: dict[str, list[dict[str, Any]]] = {}
        for r in conn.execute(query):
            out.setdefault(r.incident_id, []).append({
                "id": r.id, "kind": r.kind, "title": r.title, "url": r.url,
                "language": r.language, "published_at": r.published_at,
                "collected_at": r.collected_at, "tagging": r.tagging,
                "source": {"id": r.source_id, "name": r.source_name} if r.source_id else None,
                "text": r.text if text else None, "sealed": r.sealed if text else None})
        return out

    # -- possibly the same -------------------------------------------------------------------
    def _same(self, conn: Connection, rows: list[Any],
              items: Mapping[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        """For each of ``rows``, live incidents of the same period (± one month) sharing a
        destination country and an exploitation type, collected within
        ``_SAME_WINDOW`` of it (at most ``_MAX_SAME``, oldest first)."""
        if not rows:
            return {}
        i = osint_incidents
        start = min(r.created_at for r in rows) - _SAME_WINDOW
        end = max(r.created_at for r in rows) + _SAME_WINDOW
        others = conn.execute(sa.select(i.c.id, i.c.state, i.c.coded, i.c.created_at).where(
            i.c.state.in_(_LIVE), i.c.created_at >= start, i.c.created_at <= end)
            .order_by(i.c.created_at, i.c.id)).all()
        other_items = self._items(conn, [o.id for o in others if o.state != "accepted"],
                                  text=False)
        profiles = {o.id: self._profile(o, other_items.get(o.id, [])) for o in others}
        titles = {o: [it["title"] for it in its if it["kind"] == "article" and it["title"]]
                  for o, its in other_items.items()}
        out: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            mine = self._profile(row, items.get(row.id, []))
            found = []
            for o in others:
                if o.id == row.id or abs(o.created_at - row.created_at) > _SAME_WINDOW:
                    continue
                theirs = profiles[o.id]
                if mine.like(theirs):
                    found.append({
                        "id": o.id, "state": o.state, "titles": titles.get(o.id, [])[:3],
                        "destinations": sorted(mine.destinations & theirs.destinations),
                        "exploitation_type": sorted(mine.exploitation & theirs.exploitation)})
                    if len(found) == _MAX_SAME:
                        break
            out[row.id] = found
        return out

    @staticmethod
    def _profile(row: Any, items: list[dict[str, Any]]) -> _Profile:
        if row.state == "accepted" and row.coded is not None:
            tags: list[dict[str, Any]] = [t.as_json() for t in tags_of(row.coded)]
        else:
            tags = suggestions([(it["id"], it["tagging"]) for it in items])
        months = {m for t in tags if t["field"] == "incident_period"
                  if (m := _month(str(t["code"]))) is not None}
        if not months:  # no month stated: when it was published, else collected
            for it in items:
                when = it["published_at"] or it["collected_at"]
                months.add(when.year * 12 + when.month - 1)
        if not months:
            months.add(row.created_at.year * 12 + row.created_at.month - 1)
        return _Profile(
            frozenset(months),
            frozenset(str(t["code"]) for t in tags
                      if t["field"] == "location" and t.get("role") == "destination"),
            frozenset(str(t["code"]) for t in tags if t["field"] == "exploitation_type"))

    # -- precision ---------------------------------------------------------------------------
    def precision(self, actor: Actor, *, since: str | None = None,
                  until: str | None = None) -> dict[str, Any]:
        """The per-tag precision of the suggestions (:mod:`hub.osint.precision`)."""
        return precision_report(self._engine, actor, since=since, until=until)

    # -- deciding ----------------------------------------------------------------------------
    def decide(self, actor: Actor, incident_id: str, body: Any) -> dict[str, Any]:
        """Accept, correct, reject or merge the incident the reviewer holds (module
        docstring); the incident as decided."""
        actor.require(Role.REVIEWER)
        try:
            request = DecisionRequest.model_validate(body)
        except ValidationError as exc:
            raise invalid_body("the decision is invalid", exc) from None
        tags = self._check(request)
        now = self._clock()
        me = actor.client_id
        i, it = osint_incidents, osint_items
        with writing(self._engine) as conn:
            row = conn.execute(self._locked(sa.select(i).where(i.c.id == incident_id))).first()
            if row is None:
                raise NotFound(f"no incident {incident_id}")
            self._require_claim(row, actor, now)
            items = self._items(conn, [row.id], text=False).get(row.id, [])
            suggested: list[dict[str, Any]] = [
                {k: t[k] for k in ("field", "code", "role", "confidence") if k in t}
                for t in suggestions([(x["id"], x["tagging"]) for x in items])]
            if request.action == "accept":
                tags = single_valued(CodedTag(t["field"], t["code"], t.get("role"))
                                     for t in suggested)
            details: dict[str, Any] = {"suggested": len(suggested)}
            values: dict[str, Any] = {"state": _STATE[request.action], "updated_at": now,
                                      "reviewed_by": me, "reviewed_at": now}
            if request.action in ("accept", "correct"):
                values["coded"] = record(tags)
                kept = {key_of(t) for t in suggested} & {t.key for t in tags}
                details |= {"coded": len(tags)}
                if request.action == "correct":
                    details |= {"kept": len(kept), "added": len(tags) - len(kept),
                                "removed": len(suggested) - len(kept)}
            elif request.action == "reject":
                details |= {"reason": request.reason}
            else:
                into = self._merge_target(conn, row.id, str(request.into))
                values["merged_into"] = into
                details |= {"into": into, "items": len(items)}
                conn.execute(sa.update(it).where(it.c.incident_id == row.id)
                             .values(incident_id=into))
                conn.execute(sa.update(i).where(i.c.id == into).values(updated_at=now))
            done = conn.execute(sa.update(i).where(
                i.c.id == row.id, i.c.state == "claimed", i.c.claimed_by == me,
                i.c.claimed_at > now - self.claim_time).values(**values))
            if done.rowcount != 1:  # pragma: no cover - the row is locked (or SQLite's writer)
                raise Conflict(f"incident {row.id} is not claimed by you", rule="review:claim")
            decision = "dec_" + secrets.token_hex(12)
            conn.execute(sa.insert(osint_decisions).values(
                id=decision, incident_id=row.id, reviewer=me, decided_at=now,
                action=request.action, suggested=suggested,
                coded=[t.as_json() for t in tags] if "coded" in values else None,
                note=request.reason if request.action == "reject" else request.note))
            self._audit.append(AuditEvent(
                _ACTIONS[request.action], actor=me, org=actor.org, object_type="incident",
                object_id=row.id, details=details | {"decision": decision}), conn=conn)
        if request.action == "merge" and self._merged is not None:
            self._merged(row.id, values["merged_into"])
        if self._decided is not None:  # e.g. publish the incidents dataset again
            self._decided()
        return {"id": row.id, "state": values["state"], "decision": decision,
                "action": request.action,
                "coded": [t.as_json() for t in tags] if "coded" in values else None,
                "merged_into": values.get("merged_into"), "reviewed_by": me,
                "reviewed_at": iso_utc(now)}

    def _check(self, request: DecisionRequest) -> tuple[CodedTag, ...]:
        """The decision's own rules (before any store is read): tags only with correct, a
        reason with reject, the other incident with merge."""
        given = {"tags": request.tags is not None, "reason": bool(request.reason),
                 "into": bool(request.into)}
        needs = {"accept": None, "correct": "tags", "reject": "reason", "merge": "into"}
        need = needs[request.action]
        if need is not None and not given[need]:
            what = {"tags": "the coded tags", "reason": "a reason (why it is irrelevant)",
                    "into": "the incident it is the same as"}[need]
            raise InvalidInput(f"{request.action} needs {what}", field=need)
        extra = [k for k, v in given.items() if v and k != need]
        if extra:
            raise InvalidInput(f"{request.action} takes no {extra[0]}", field=extra[0])
        if request.action == "correct":
            return coded(request.tags, self._lists)
        if request.action == "reject" and not str(request.reason).strip():
            raise InvalidInput("reject needs a reason", field="reason")
        return ()

    def _locked(self, query: Any) -> Any:
        """``query`` taking its rows' locks on PostgreSQL (SQLite's writer lock is held
        already: ``write_transaction``)."""
        return query.with_for_update() if self._engine.dialect.name == "postgresql" else query

    def _merge_target(self, conn: Connection, incident: str, into: str) -> str:
        i = osint_incidents
        if into == incident:
            raise InvalidInput("an incident cannot be merged into itself", field="into")
        target = conn.execute(self._locked(sa.select(i.c.id, i.c.state)
                                           .where(i.c.id == into))).first()
        if target is None:
            raise InvalidInput(f"no incident {into} to merge into", field="into")
        if target.state not in _LIVE:
            raise Conflict(f"incident {into} was {target.state}: merge into a live incident",
                           rule="review:merge")
        return str(target.id)

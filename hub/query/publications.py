"""Published releases: a governance officer shares a release its organisation paid for.

A release (hub.query.ledger) is a DP result stored with the ledger entry that paid for it, and
only the organisation that paid sees it (``GET /v1/queries/{id}``). A governance officer of
that organisation can *publish* it, to every member or to named member organisations; the
members it reaches read it from the catalogue (``GET /v1/releases``) at no cost: publishing
spends nothing and reading spends nothing, because the result is already differentially
private (post-processing), and the ledger entry that paid for it stays the publisher's.

The rules::

    publish(actor, {query_id, audience, title, note})     governance role
      the ledger entry is the actor's organisation's      else NotFound (existence hidden)
      and released                                         charged/failed: Conflict release:status
      every audience organisation exists                   else InvalidInput field=audience
      an active publication of the same release?
        same audience, title and note  -> it, unchanged (idempotent)
        a wider audience               -> it, updated ("all" is wider than any list)
        a narrower one                 -> Conflict release:audience (withdraw, publish again)
    withdraw(actor, id)                                    governance of the publisher
    catalogue(actor) / get(actor, id)                      analyst or governance role
      visible: audience all, or the caller's organisation named, or its own publication;
      anything else is NotFound, exactly like a missing id

A publication keeps a *summary* of its release (dimensions, measures with mechanisms,
filters, cost), copied when published, so that the catalogue never reads the stored cells.
Withdrawn publications stay in the table (status ``withdrawn``) and are no longer visible.
Every refusal is raised before anything is written.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hub.actors import Actor, Role
from hub.errors import Conflict, Forbidden, InvalidInput, NotFound, RowError, Unavailable
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.privacy.accounting import Cost, Measure
from hub.query.answer import Answer, stored_result
from hub.storage.db import (
    iso_utc,
    ledger_entries,
    organisations,
    publication_audience,
    publications,
    read_connection,
    releases,
    utcnow,
    write_transaction,
)

__all__ = ["Audience", "Publications", "PublishRequest", "summary_of"]

log = structlog.get_logger(__name__)

ACTIVE, WITHDRAWN = "active", "withdrawn"
_READERS = frozenset({Role.ANALYST, Role.GOVERNANCE})
_MAX_AUDIENCE = 500

#: ``None`` is every member; otherwise the named organisations' ids.
Audience = frozenset[str] | None


class PublishRequest(BaseModel):
    """The body of ``POST /v1/releases`` (docs/releases.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    query_id: str = Field(min_length=1, max_length=64)
    audience: Literal["all"] | list[str] = Field(min_length=1)
    title: str = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=4000)

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("a title needs at least one visible character")
        return value

    @field_validator("audience")
    @classmethod
    def _audience(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if len(value) > _MAX_AUDIENCE:
                raise ValueError(f"at most {_MAX_AUDIENCE} organisations; or use \"all\"")
            if any(not v or len(v) > 64 for v in value):
                raise ValueError("each organisation is its id, e.g. org_3f9a...")
        return value

    @property
    def members(self) -> Audience:
        return None if self.audience == "all" else frozenset(self.audience)

    @classmethod
    def parse(cls, data: Any) -> PublishRequest:
        """Validate a decoded JSON body; :class:`InvalidInput` lists every problem."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            errors = [
                RowError(_field(e["loc"]), e["msg"].removeprefix("Value error, "))
                for e in exc.errors(include_url=False)
            ]
            shown = "; ".join(str(e) for e in errors[:3])
            raise InvalidInput(f"the publication is invalid: {shown}", field=errors[0].field,
                               errors=errors) from None


def _field(loc: tuple[Any, ...]) -> str | None:
    """``audience`` for any error inside it (pydantic adds the union branch tried)."""
    if not loc:
        return None
    if loc[0] == "audience":
        return "audience"
    return ".".join(str(p) for p in loc)


def _widens(new: Audience, old: Audience) -> bool:
    """Whether ``new`` reaches at least every organisation ``old`` reached."""
    if new is None:
        return True
    return old is not None and old <= new


def summary_of(result: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
    """The public shape of a stored release: what was asked, how and at what cost.

    ``result`` is the stored QueryResult JSON; ``shape`` the ledger entry's (for filters).
    No cell value is copied.
    """
    return {
        "query_id": result.get("query_id"),
        "dataset": result.get("dataset"),
        "contract_version": result.get("contract_version"),
        "dimensions": list(result.get("dimensions", [])),
        "measures": [{k: m.get(k) for k in ("name", "function", "field", "mechanism")}
                     for m in result.get("measures", [])],
        "filters": shape.get("filters", {}),
        "cells": result.get("cells"),
        "accounting": result.get("accounting"),
        "cost": result.get("cost"),
        "epsilon_delta": result.get("epsilon_delta"),
        "computed_at": result.get("created_at"),
    }



@dataclass(frozen=True, slots=True)
class _Row:
    id: str
    release_id: str
    org_id: str
    publisher: str
    title: str
    note: str | None
    members: Audience
    summary: dict[str, Any]
    published_at: datetime
    updated_at: datetime

    def view(self, org: str) -> dict[str, Any]:
        """The catalogue entry as organisation ``org`` sees it (docs/releases.md).

        Only the publisher sees whom a named publication reaches; the others see
        ``"named"`` (they were named).
        """
        s = self.summary
        audience: str | list[str] = "all" if self.members is None else (
            sorted(self.members) if org == self.org_id else "named")
        return {
            "id": self.id,
            "title": self.title,
            "note": self.note,
            "dataset": s.get("dataset"),
            "query_id": s.get("query_id"),
            "query": {k: s.get(k) for k in ("contract_version", "dimensions", "measures",
                                            "filters", "cells")},
            "cost": s.get("cost"),
            "epsilon_delta": s.get("epsilon_delta"),
            "mechanisms": sorted({m["mechanism"] for m in s.get("measures", [])
                                  if m.get("mechanism")}),
            "computed_at": s.get("computed_at"),
            "published_at": iso_utc(self.published_at),
            "updated_at": iso_utc(self.updated_at),
            "publisher": self.publisher,
            "yours": org == self.org_id,
            "audience": audience,
        }


def _audience(members: frozenset[str] | None) -> str | list[str]:
    return "all" if members is None else sorted(members)


class Publications:
    """Published releases in the metadata store (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, audit: AuditLog | None = None) -> None:
        self.engine = engine
        self._audit = audit

    def _audited(self, conn: Connection, action: Action, actor: Actor, pub_id: str,
                 dataset: str | None, **details: Any) -> None:
        """The audit entry of a publication change, last in its transaction."""
        if self._audit is not None:
            self._audit.append(AuditEvent(
                action, actor=actor.client_id, org=actor.org, object_type="publication",
                object_id=pub_id, dataset=dataset, details=details), conn=conn)

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the writer lock first thing."""
        try:
            with write_transaction(self.engine) as conn:
                yield conn
        except IntegrityError:
            raise  # publish() retries once: a concurrent publish of the same release won
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc

    def _reading(self) -> AbstractContextManager[Connection]:
        return read_connection(self.engine)

    # -- reading rows ---------------------------------------------------------------------
    @staticmethod
    def _rows(conn: Connection, where: Any) -> list[_Row]:
        p, a, o = publications, publication_audience, organisations
        found = conn.execute(
            sa.select(p, o.c.name.label("publisher"))
            .join(o, o.c.id == p.c.org_id)
            .where(where)
            .order_by(p.c.published_at.desc(), p.c.id)
        ).all()
        named = [r.id for r in found if not r.audience_all]
        members: dict[str, set[str]] = {i: set() for i in named}
        if named:
            for m in conn.execute(sa.select(a).where(a.c.publication_id.in_(named))):
                members[m.publication_id].add(m.org_id)
        return [
            _Row(id=r.id, release_id=r.release_id, org_id=r.org_id, publisher=r.publisher,
                 title=r.title, note=r.note,
                 members=None if r.audience_all else frozenset(members[r.id]),
                 summary=r.summary, published_at=r.published_at, updated_at=r.updated_at)
            for r in found
        ]

    @staticmethod
    def _visible(org: str) -> Any:
        p, a = publications, publication_audience
        return sa.and_(p.c.status == ACTIVE, sa.or_(
            p.c.audience_all.is_(True),
            p.c.org_id == org,
            sa.exists().where(a.c.publication_id == p.c.id, a.c.org_id == org),
        ))

    # -- publishing -----------------------------------------------------------------------
    def publish(self, actor: Actor, data: Any) -> tuple[dict[str, Any], str]:
        """Publish (or widen) a release; returns its view and ``published``, ``updated`` or
        ``unchanged``. Every refusal is raised before anything is written."""
        actor.require(Role.GOVERNANCE)
        request = PublishRequest.parse(data)
        try:
            return self._publish(actor, request)
        except IntegrityError:  # a concurrent publish of the same release won: see it now
            try:
                return self._publish(actor, request)
            except IntegrityError:
                raise Conflict("the release is being published concurrently; retry",
                               rule="release:concurrent") from None

    def _publish(self, actor: Actor, request: PublishRequest) -> tuple[dict[str, Any], str]:
        le, rel, p = ledger_entries, releases, publications
        members = request.members
        with self._writing() as conn:
            entry = conn.execute(sa.select(le.c.id, le.c.status, le.c.shape).where(
                le.c.id == request.query_id, le.c.org_id == actor.org)).first()
            if entry is None:
                raise NotFound(f"no query {request.query_id!r} of your organisation: only a "
                               "release your organisation paid for can be published",
                               field="query_id")
            stored = conn.execute(sa.select(rel.c.id, rel.c.body).where(
                rel.c.entry_id == entry.id)).first()
            if entry.status != "released" or stored is None:
                raise Conflict(
                    f"query {entry.id} is {entry.status}: nothing was released, so there is "
                    "nothing to publish", field="query_id", rule="release:status",
                    entry_status=entry.status)
            if members is not None:
                known = set(conn.execute(sa.select(organisations.c.id).where(
                    organisations.c.id.in_(sorted(members)))).scalars())
                unknown = sorted(members - known)
                if unknown:
                    raise InvalidInput(
                        f"no member organisation {', '.join(map(repr, unknown))}",
                        field="audience",
                        errors=[RowError("audience", f"unknown organisation {u!r}")
                                for u in unknown])
            current = self._rows(conn, sa.and_(p.c.release_id == stored.id,
                                               p.c.status == ACTIVE))
            now = utcnow()
            if current:
                return self._update(conn, actor, current[0], request, now)
            pub_id = "pub_" + secrets.token_hex(12)
            result = stored_result(stored.body)
            conn.execute(sa.insert(p).values(
                id=pub_id, release_id=stored.id, org_id=actor.org,
                dataset=result.get("dataset", ""), title=request.title,
                note=request.note, audience_all=members is None,
                summary=summary_of(result, entry.shape), status=ACTIVE,
                published_by=actor.client_id, published_at=now, updated_at=now,
                withdrawn_at=None))
            self._add_members(conn, pub_id, members or frozenset())
            row = self._rows(conn, p.c.id == pub_id)[0]
            self._audited(conn, Action.RELEASE_PUBLISHED, actor, pub_id, row.summary["dataset"],
                          query_id=entry.id, audience=_audience(members))
        log.info("release.published", publication=pub_id, query_id=entry.id, org=actor.org,
                 client_id=actor.client_id, audience="all" if members is None else len(members))
        return row.view(actor.org), "published"

    def _update(self, conn: Connection, actor: Actor, row: _Row, request: PublishRequest,
                now: datetime) -> tuple[dict[str, Any], str]:
        members, p = request.members, publications
        if not _widens(members, row.members):
            raise Conflict(
                f"release {row.id} already reaches "
                f"{'every member' if row.members is None else ', '.join(sorted(row.members))}"
                "; publishing again can only widen its audience. To narrow it, withdraw it "
                "(DELETE /v1/releases/{id}) and publish it again",
                field="audience", rule="release:audience", release_id=row.id)
        if members == row.members and (request.title, request.note) == (row.title, row.note):
            return row.view(actor.org), "unchanged"
        conn.execute(sa.update(p).where(p.c.id == row.id).values(
            title=request.title, note=request.note, audience_all=members is None,
            updated_at=now))
        if members is None:
            conn.execute(sa.delete(publication_audience).where(
                publication_audience.c.publication_id == row.id))
        else:
            self._add_members(conn, row.id, members - (row.members or frozenset()))
        updated = self._rows(conn, p.c.id == row.id)[0]
        self._audited(conn, Action.RELEASE_UPDATED, actor, row.id, updated.summary["dataset"],
                      audience=_audience(members))
        log.info("release.updated", publication=row.id, org=actor.org,
                 client_id=actor.client_id, audience="all" if members is None else len(members))
        return updated.view(actor.org), "updated"

    @staticmethod
    def _add_members(conn: Connection, pub_id: str, members: frozenset[str]) -> None:
        if members:
            conn.execute(sa.insert(publication_audience),
                         [{"publication_id": pub_id, "org_id": m} for m in sorted(members)])

    def withdraw(self, actor: Actor, publication_id: str) -> None:
        """Withdraw a publication of the actor's organisation (again: harmless)."""
        actor.require(Role.GOVERNANCE)
        p = publications
        with self._writing() as conn:
            row = conn.execute(sa.select(p.c.status, p.c.dataset).where(
                p.c.id == publication_id, p.c.org_id == actor.org)).first()
            if row is None:
                raise NotFound(f"no published release {publication_id!r} of your "
                               "organisation", field="id")
            if row.status == ACTIVE:
                conn.execute(sa.update(p).where(p.c.id == publication_id).values(
                    status=WITHDRAWN, withdrawn_at=utcnow()))
                self._audited(conn, Action.RELEASE_WITHDRAWN, actor, publication_id,
                              row.dataset)
        log.info("release.withdrawn", publication=publication_id, org=actor.org,
                 client_id=actor.client_id)

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _require_reader(actor: Actor) -> None:
        if not actor.roles & _READERS:
            raise Forbidden(
                "reading published releases needs the 'analyst' or 'governance' role; "
                f"client {actor.client_id} has {', '.join(sorted(actor.roles)) or 'none'}",
                rule="role:analyst|governance")

    def catalogue(self, actor: Actor) -> list[dict[str, Any]]:
        """The publications visible to the actor's organisation, newest first (no cells)."""
        self._require_reader(actor)
        with self._reading() as conn:
            rows = self._rows(conn, self._visible(actor.org))
        return [r.view(actor.org) for r in rows]

    def get(self, actor: Actor, publication_id: str) -> Answer:
        """A visible publication's full stored result (the QueryResult JSON, its stored
        bytes never decoded: :class:`~hub.query.answer.Answer`), at no cost."""
        self._require_reader(actor)
        rel, le = releases, ledger_entries
        with self._reading() as conn:
            found = self._rows(conn, sa.and_(publications.c.id == publication_id,
                                             self._visible(actor.org)))
            stored = None if not found else conn.execute(
                sa.select(rel.c.body, le.c.measure)
                .join(le, le.c.id == rel.c.entry_id)
                .where(rel.c.id == found[0].release_id)
            ).first()
        if not found or stored is None:
            raise NotFound(f"no published release {publication_id!r}", field="id")
        return Answer(stored.body, {
            "reused": True, "charged": Cost.zero(Measure(stored.measure)).as_json(),
            "budget": None, "publication": found[0].view(actor.org)})

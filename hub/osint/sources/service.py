"""The configured sources and the record of their fetches, in the metadata store.

:class:`Sources` adds, lists, changes, enables, disables and removes sources (each change
checked whole: :func:`~hub.osint.sources.model.spec_of`), reads their fetches, and lets the
pollers of every hub process share the schedule: :meth:`Sources.claim_due` takes one due
source by moving its ``next_fetch_at`` forward in one conditional ``UPDATE`` (``WHERE
next_fetch_at <= now``): of two pollers that saw the same source due, the database lets one
update the row and tells the other that it updated nothing, on SQLite and PostgreSQL alike.
No lock is held while fetching.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy import Engine

from hub.errors import Conflict, InvalidInput, NotFound
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.storage.db import (
    osint_fetches,
    osint_items,
    osint_sources,
    read_connection,
    utcnow,
    writing,
)

from .model import FetchRecord, Skip, Source, SourceSpec, spec_of

__all__ = ["Sources", "fetch_record"]

_MAX_LISTED_FETCHES = 500


def fetch_record(row: Any) -> FetchRecord:
    return FetchRecord(
        id=row.id, source_id=row.source_id, started_at=row.started_at,
        finished_at=row.finished_at, outcome=row.outcome, http_status=row.http_status,
        found=row.found, added=row.added, duplicates=row.duplicates,
        skipped=[Skip(ref=str(s.get("ref", "")), reason=str(s.get("reason", "")))
                 for s in row.skipped or [] if isinstance(s, dict)],
        error=row.error)


def _source(row: Any, last: FetchRecord | None = None) -> Source:
    return Source(id=row.id, name=row.name, kind=row.kind, location=row.location,
                  language=row.language, every_minutes=row.every_minutes, trust=row.trust,
                  enabled=row.enabled, hosts=list(row.hosts or []),
                  next_fetch_at=row.next_fetch_at, created_at=row.created_at, last_fetch=last)


def _shown(source: Mapping[str, Any]) -> dict[str, Any]:
    """A source's settings as the audit log keeps them: a URL without its user, password and
    query (they may carry a feed's access token)."""
    out = {k: source[k] for k in ("name", "kind", "location", "language", "every_minutes",
                                  "trust", "enabled") if k in source}
    if source.get("kind") == "feed" and isinstance(out.get("location"), str):
        url = urlsplit(out["location"])
        host = url.hostname or ""
        port = f":{url.port}" if url.port else ""
        query = "?..." if url.query else ""
        out["location"] = f"{url.scheme}://{host}{port}{url.path}{query}"
    return out


class Sources:
    """The sources of open-source collection (module docstring). ``ref`` is a source's id
    (``src_...``) or its name. Each change is audited (``source.added``, ``source.changed``,
    ``source.removed``) in its own transaction, with ``actor`` (a client id, ``cli:<user>``,
    or None for the hub itself) and the settings (:func:`_shown`)."""

    def __init__(self, engine: Engine, *, audit: AuditLog | None = None,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._engine = engine
        self._audit = audit or AuditLog(engine)
        self._clock = clock

    def _audited(self, conn: Any, action: Action, source_id: str, details: dict[str, Any],
                 actor: str | None, org: str | None) -> None:
        self._audit.append(AuditEvent(action, actor=actor, org=org, object_type="source",
                                      object_id=source_id, details=details), conn=conn)

    # -- configuration ----------------------------------------------------------------------
    def add(self, data: Any, *, actor: str | None = None, org: str | None = None) -> Source:
        """A new source, due at once (when enabled). Its name must be new (409)."""
        if isinstance(data, SourceSpec):
            data = data.model_dump()
        spec = spec_of(data)
        now = self._clock()
        source_id = "src_" + secrets.token_hex(8)
        taken = Conflict(f"a source named {spec.name!r} exists already", field="name")
        with writing(self._engine, conflict=taken) as conn:
            if self._row(conn, spec.name) is not None:
                raise taken
            conn.execute(sa.insert(osint_sources).values(
                id=source_id, **spec.model_dump(), etag=None, last_modified=None,
                next_fetch_at=now, created_at=now, seen=None))
            self._audited(conn, Action.SOURCE_ADDED, source_id, _shown(spec.model_dump()),
                          actor, org)
        return self.get(source_id)

    def all(self) -> list[Source]:
        """Every source by name, each with its last fetch."""
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(osint_sources).order_by(osint_sources.c.name)).all()
            latest = self._latest(conn, [r.id for r in rows])
        return [_source(r, latest.get(r.id)) for r in rows]

    def get(self, ref: str) -> Source:
        with read_connection(self._engine) as conn:
            row = self._row(conn, ref)
            if row is None:
                raise NotFound(f"no source {ref!r}", field="source")
            return _source(row, self._latest(conn, [row.id]).get(row.id))

    def change(self, ref: str, data: Mapping[str, Any], *, actor: str | None = None,
               org: str | None = None) -> Source:
        """Change some of a source's settings (the rest stay); the result is checked whole.
        A new location forgets the feed's validators and the folder's files read."""
        if not isinstance(data, Mapping):
            raise InvalidInput("the change is a JSON object of the settings to change",
                               field=None)
        current = self.get(ref)
        if "kind" in data and data["kind"] != current.kind:
            raise InvalidInput("a source's kind cannot change: add another source",
                               field="kind")
        spec = spec_of({**current.spec(), **data}, "the changed source")
        values: dict[str, Any] = spec.model_dump()
        if spec.location != current.location:
            values.update(etag=None, last_modified=None, seen=None)
        if spec.enabled and not current.enabled:
            values["next_fetch_at"] = self._clock()
        taken = Conflict(f"a source named {spec.name!r} exists already", field="name")
        with writing(self._engine, conflict=taken) as conn:
            other = self._row(conn, spec.name)
            if other is not None and other.id != current.id:
                raise taken
            conn.execute(sa.update(osint_sources)
                         .where(osint_sources.c.id == current.id).values(**values))
            before, after = _shown(current.spec()), _shown(spec.model_dump())
            changed = {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}
            if changed:
                self._audited(conn, Action.SOURCE_CHANGED, current.id,
                              {"name": spec.name, "changed": changed}, actor, org)
        return self.get(current.id)

    def enable(self, ref: str, enabled: bool = True, *, actor: str | None = None,
               org: str | None = None) -> Source:
        """Enable (due at once) or disable (no longer fetched; kept with its record)."""
        return self.change(ref, {"enabled": enabled}, actor=actor, org=org)

    def remove(self, ref: str, *, actor: str | None = None, org: str | None = None) -> Source:
        """Remove a source and the record of its fetches. A source whose articles were
        collected stays (its incidents name it): disable it instead (409)."""
        source = self.get(ref)
        with writing(self._engine) as conn:
            used = conn.execute(sa.select(sa.func.count()).select_from(osint_items)
                                .where(osint_items.c.source_id == source.id)).scalar_one()
            if used:
                raise Conflict(f"{used} collected articles come from the source "
                               f"{source.name!r}; disable it instead", rule="source:in_use")
            conn.execute(sa.delete(osint_fetches).where(osint_fetches.c.source_id == source.id))
            conn.execute(sa.delete(osint_sources).where(osint_sources.c.id == source.id))
            self._audited(conn, Action.SOURCE_REMOVED, source.id, _shown(source.spec()),
                          actor, org)
        return source

    # -- fetches ----------------------------------------------------------------------------
    def fetches(self, ref: str, limit: int = 20) -> list[FetchRecord]:
        """The source's latest fetches, newest first."""
        if not 1 <= limit <= _MAX_LISTED_FETCHES:
            raise InvalidInput(f"limit is between 1 and {_MAX_LISTED_FETCHES}", field="limit")
        source = self.get(ref)
        with read_connection(self._engine) as conn:
            rows = conn.execute(sa.select(osint_fetches)
                                .where(osint_fetches.c.source_id == source.id)
                                .order_by(osint_fetches.c.started_at.desc(),
                                          osint_fetches.c.id.desc())
                                .limit(limit)).all()
        return [fetch_record(r) for r in rows]

    def fetch(self, fetch_id: str) -> FetchRecord:
        with read_connection(self._engine) as conn:
            row = conn.execute(sa.select(osint_fetches)
                               .where(osint_fetches.c.id == fetch_id)).first()
        if row is None:
            raise NotFound(f"no fetch {fetch_id!r}", field="fetch")
        return fetch_record(row)

    def claim_due(self, now: dt.datetime | None = None) -> Source | None:
        """Take the enabled source that has been due longest, moving its next fetch to
        ``now + every_minutes``; None when none is due (module docstring: once per slot,
        whatever the number of pollers)."""
        now = now or self._clock()
        s = osint_sources.c
        due = sa.and_(s.enabled.is_(True), sa.or_(s.next_fetch_at.is_(None),
                                                   s.next_fetch_at <= now))
        for _ in range(20):  # another poller may take each candidate first
            with read_connection(self._engine) as conn:
                row = conn.execute(sa.select(s.id, s.every_minutes).where(due)
                                   .order_by(s.next_fetch_at.is_not(None), s.next_fetch_at,
                                             s.id).limit(1)).first()
            if row is None:
                return None
            later = now + dt.timedelta(minutes=row.every_minutes)
            with writing(self._engine) as conn:
                claimed = conn.execute(sa.update(osint_sources)
                                       .where(s.id == row.id, due)
                                       .values(next_fetch_at=later)).rowcount
            if claimed == 1:
                return self.get(row.id)
        return None

    # -- helpers ----------------------------------------------------------------------------
    @staticmethod
    def _row(conn: sa.Connection, ref: str) -> Any:
        s = osint_sources.c
        return conn.execute(sa.select(osint_sources)
                            .where(sa.or_(s.id == ref, s.name == ref))
                            .order_by((s.id == ref).desc()).limit(1)).first()

    @staticmethod
    def _latest(conn: sa.Connection, ids: list[str]) -> dict[str, FetchRecord]:
        if not ids:
            return {}
        f = osint_fetches.c
        newest = (sa.select(f.source_id, sa.func.max(f.started_at).label("at"))
                  .where(f.source_id.in_(ids)).group_by(f.source_id).subquery())
        rows = conn.execute(sa.select(osint_fetches).join(
            newest, sa.and_(f.source_id == newest.c.source_id, f.started_at == newest.c.at))
            .order_by(f.id)).all()
        return {r.source_id: fetch_record(r) for r in rows}

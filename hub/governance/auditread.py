"""Reading the audit log: filters, who may read what, and the JSONL and CSV exports.

* the governance role reads every entry (``GET /v1/audit``, ``GET /v1/audit/export``);
* the partner role reads the query entries (:data:`hub.governance.audit.QUERY_ACTIONS`) of the
  datasets its organisation contributes to -- those of which it has a visible extract --
  (``GET /v1/audit/usage``): who asked what shape, at what cost; never a value (the
  entries hold none). Another dataset is answered like a missing one (404);
* every other caller: 403.

Filters arrive as strings (query parameters, CLI options) and are checked here, each
failure an :class:`~hub.errors.InvalidInput` naming its field; nothing is read before they
all pass.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

import sqlalchemy as sa

from hub.actors import Actor, Role
from hub.errors import InvalidInput, NotFound
from hub.governance.audit import QUERY_ACTIONS, Action, AuditEntry, AuditLog
from hub.storage.db import audit_entries, extracts

__all__ = ["CSV_COLUMNS", "FORMATS", "AuditFilter", "AuditReader", "Page", "render"]

FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = ("seq", "at", "actor", "org", "action", "object_type", "object_id", "dataset",
               "details", "prev_hash", "hash")
MAX_LIMIT = 1000


def _when(value: str | None, name: str) -> datetime | None:
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{name} must be an ISO 8601 date or time, such as "
                           "2025-06-01 or 2025-06-01T12:00:00Z", field=name) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _actions(value: str | None) -> tuple[str, ...] | None:
    """An exact action (``query.charged``) or a family (``query`` or ``query.*``)."""
    if value is None or value == "":
        return None
    known = [a.value for a in Action]
    if value in known:
        return (value,)
    family = value.removesuffix(".*")
    matched = tuple(a for a in known if a.split(".")[0] == family)
    if not matched:
        raise InvalidInput(f"unknown action {value!r}; known actions: {', '.join(known)} "
                           "(or a family such as 'query.*')", field="action")
    return matched


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries: every given condition must hold."""

    org: str | None = None
    actor: str | None = None
    actions: tuple[str, ...] | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    dataset: str | None = None

    @classmethod
    def parse(cls, *, org: str | None = None, member: str | None = None,
              actor: str | None = None, action: str | None = None, since: str | None = None,
              until: str | None = None, dataset: str | None = None) -> AuditFilter:
        if org and member and org != member:
            raise InvalidInput("member and org name the same filter; give one",
                               field="member")
        for name, text in (("org", org or member), ("actor", actor), ("dataset", dataset)):
            if text is not None and not 0 < len(text) <= 128:
                raise InvalidInput(f"{name} must have 1 to 128 characters", field=name)
        start, end = _when(since, "since"), _when(until, "until")
        if start is not None and end is not None and end <= start:
            raise InvalidInput("until must come after since", field="until")
        return cls(org=org or member or None, actor=actor or None, actions=_actions(action),
                   since=start, until=end, dataset=dataset or None)

    def where(self) -> Any:
        c = audit_entries.c
        conditions = []
        if self.org is not None:
            conditions.append(c.org_id == self.org)
        if self.actor is not None:
            conditions.append(c.actor == self.actor)
        if self.actions is not None:
            conditions.append(c.action.in_(self.actions))
        if self.since is not None:
            conditions.append(c.at >= self.since)
        if self.until is not None:
            conditions.append(c.at < self.until)
        if self.dataset is not None:
            conditions.append(c.dataset == self.dataset)
        return sa.and_(sa.true(), *conditions)


@dataclass(frozen=True, slots=True)
class Page:
    entries: list[AuditEntry]
    next_cursor: str | None

    def as_json(self) -> dict[str, Any]:
        return {"entries": [e.as_json() for e in self.entries], "next_cursor": self.next_cursor}


def _limit(value: int | str | None) -> int:
    try:
        limit = 100 if value is None else int(value)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}", field="limit")
    return limit


def _cursor(value: str | None) -> int:
    if value is None or value == "":
        return 0
    if not value.isdigit() or len(value) > 19:
        raise InvalidInput("cursor must be the next_cursor of an earlier page", field="cursor")
    return int(value)


def check_format(value: str | None) -> str:
    fmt = value or "jsonl"
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}; use jsonl or csv", field="format")
    return fmt


def render(entries: Iterable[AuditEntry], fmt: str) -> Iterator[str]:
    """The entries as JSONL lines, or CSV with a header (``details`` as a JSON cell)."""
    if fmt == "jsonl":
        for entry in entries:
            yield json.dumps(entry.as_json(), sort_keys=True, ensure_ascii=False) + "\n"
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        row = entry.as_json()
        row["details"] = json.dumps(row["details"], sort_keys=True, ensure_ascii=False)
        writer.writerow(["" if row[c] is None else row[c] for c in CSV_COLUMNS])
        if buf.tell() > 64 * 1024:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


class AuditReader:
    """The audit log as callers may read it (authorisation on the entries themselves)."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def _page(self, where: Any, cursor: str | None, limit: int | str | None) -> Page:
        size = _limit(limit)
        after = _cursor(cursor)
        entries = list(self.log.scan(where, after=after, limit=size + 1))
        more = len(entries) > size
        entries = entries[:size]
        return Page(entries, str(entries[-1].seq) if more else None)

    def search(self, caller: Actor, /, *, cursor: str | None = None,
               limit: int | str | None = None, **filters: str | None) -> Page:
        """Governance: any entries, filtered (:meth:`AuditFilter.parse`), a page at a time."""
        caller.require(Role.GOVERNANCE)
        return self._page(AuditFilter.parse(**filters).where(), cursor, limit)

    def export(self, caller: Actor, fmt: str | None, /, **filters: str | None
               ) -> Iterator[str]:
        """Governance: the filtered entries in ``fmt``; checks everything before streaming."""
        caller.require(Role.GOVERNANCE)
        fmt = check_format(fmt)
        return render(self.log.scan(AuditFilter.parse(**filters).where()), fmt)

    def contributed(self, org: str) -> set[str]:
        """Datasets of which ``org`` has a visible extract."""
        with self.log.reading() as conn:
            rows = conn.execute(sa.select(extracts.c.dataset).distinct().where(
                extracts.c.org_id == org, extracts.c.status == "visible")).scalars().all()
        return set(rows)

    def usage(self, actor: Actor, *, cursor: str | None = None,
              limit: int | str | None = None, dataset: str | None = None,
              action: str | None = None, since: str | None = None,
              until: str | None = None) -> Page:
        """A data owner: the query entries of the datasets its organisation contributes to.

        Filters: a dataset, times and an action among the query actions; a dataset it does
        not contribute to is NotFound, like an unknown one.
        """
        actor.require(Role.PARTNER)
        flt = AuditFilter.parse(dataset=dataset, action=action, since=since, until=until)
        owned = self.contributed(actor.org)
        if flt.dataset is not None and flt.dataset not in owned:
            raise NotFound(f"your organisation contributes no extract to {flt.dataset!r}",
                           field="dataset")
        actions = [a.value for a in QUERY_ACTIONS]
        if flt.actions is not None:
            actions = [a for a in actions if a in flt.actions]
            if not actions:
                raise InvalidInput("the usage view holds only the query actions: "
                                   + ", ".join(a.value for a in QUERY_ACTIONS), field="action")
        c = audit_entries.c
        where = sa.and_(flt.where(), c.action.in_(actions), c.dataset.in_(sorted(owned)))
        return self._page(where, cursor, limit)

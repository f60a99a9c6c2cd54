"""Per-tag precision of the tagger's suggestions, from the reviewers' decisions.

For every decision that judged the tags (accept, correct, reject; a merge judges none) and
every tag ``(field, code, role)``::

    suggested  decisions whose incident had the tag suggested
    kept       ... whose coded tags still hold it (accept keeps every one; a correction the
               ones the reviewer left; a rejection none: the incident was not one)
    precision  kept / suggested
    added      decisions whose coded tags hold the tag although it was not suggested: the
               tagger's misses (what recall the decisions can show)

Over every decision, or those decided in ``[since, until)``. The numbers come from the
``osint_decisions`` rows alone (what was suggested and what was coded), so they stay true
after items are purged or incidents merged.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from hub.actors import Actor, Role
from hub.errors import InvalidInput
from hub.osint.coding import FIELDS, TagKey, key_of
from hub.storage.db import iso_utc, osint_decisions, read_connection

__all__ = ["precision", "precision_report"]

_JUDGED = ("accept", "correct", "reject")


def _day(value: str | dt.date | None, name: str) -> dt.datetime | None:
    if value is None or value == "":
        return None
    try:
        day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{name} is a date (YYYY-MM-DD), not {value!r}",
                           field=name) from None
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)


def precision(rows: list[tuple[str, list[Any], list[Any] | None]]) -> list[dict[str, Any]]:
    """The per-tag report (module docstring) of decisions ``(action, suggested, coded)``,
    one row per tag, by field (:data:`FIELDS` order) then code and role."""
    suggested: Counter[TagKey] = Counter()
    kept: Counter[TagKey] = Counter()
    added: Counter[TagKey] = Counter()
    for action, was, now in rows:
        before = {key_of(t) for t in was or ()}
        after = {key_of(t) for t in now or ()} if action != "reject" else set()
        suggested.update(before)
        kept.update(before & after)
        added.update(after - before)
    order = {f: i for i, f in enumerate(FIELDS)}
    out = []
    for key in sorted(set(suggested) | set(added),
                      key=lambda k: (order.get(k[0], 99), k[0], k[1], k[2] or "")):
        n = suggested[key]
        share = Fraction(kept[key], n) if n else None
        out.append({"field": key[0], "code": key[1], "role": key[2], "suggested": n,
                    "kept": kept[key], "added": added[key],
                    "precision": None if share is None else round(float(share), 4)})
    return out


def precision_report(engine: Engine, actor: Actor | None, *,
                     since: str | dt.date | None = None,
                     until: str | dt.date | None = None) -> dict[str, Any]:
    """The report over the decisions taken in ``[since, until)`` (dates; none: every one),
    with totals per field. ``actor`` needs the reviewer role (None: the hub's command line).
    """
    if actor is not None:
        actor.require(Role.REVIEWER)
    start, end = _day(since, "since"), _day(until, "until")
    if start and end and end <= start:
        raise InvalidInput("until must come after since", field="until")
    d = osint_decisions
    query = sa.select(d.c.action, d.c.suggested, d.c.coded).where(d.c.action.in_(_JUDGED))
    if start:
        query = query.where(d.c.decided_at >= start)
    if end:
        query = query.where(d.c.decided_at < end)
    with read_connection(engine) as conn:
        rows = [(r.action, r.suggested, r.coded) for r in conn.execute(query)]
    tags = precision(rows)
    fields = []
    for field in FIELDS:
        mine = [t for t in tags if t["field"] == field]
        if not mine:
            continue
        n, k = sum(t["suggested"] for t in mine), sum(t["kept"] for t in mine)
        fields.append({"field": field, "suggested": n, "kept": k,
                       "added": sum(t["added"] for t in mine),
                       "precision": round(k / n, 4) if n else None})
    actions = Counter(action for action, _, _ in rows)
    return {"since": iso_utc(start) if start else None, "until": iso_utc(end) if end else None,
            "decisions": len(rows), "by_action": {a: actions[a] for a in _JUDGED},
            "fields": fields, "tags": tags}

"""The directory: the names behind the ids a caller meets (``GET /v1/directory``).

The API speaks in ids (``org_...``, ``usr_...``, ``tahub_...``) and keeps doing so: ids are
stable, names are not. People read names, so the web interface and the command lines look
ids up here, once per page or command. What a caller may learn:

* **organisations**: every member organisation's id, name and kind, to any member. The
  network's members are not secret to each other: a release names its publisher, a data
  owner's usage view names the members asking, and publishing to named members needs them.
* **people**: a person's name is personal data of its organisation. A caller reads the
  names of its own organisation's people; a governance officer reads everyone's, since the
  audit log it oversees names every actor. Anyone else's person stays its organisation.
* **clients** (``tahub_...``, a system, not a person) have no name: their organisation's
  is shown, and the audit entries that name a client also name its organisation.

Nothing else (no e-mail address, role or sign-in detail) is in it.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine

from hub.actors import Actor, Role
from hub.storage.db import organisations, people, read_connection

__all__ = ["Directory"]


class Directory:
    """Names of organisations and people, as a caller may read them."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def visible_to(self, actor: Actor) -> dict[str, list[dict[str, Any]]]:
        """``{"organisations": [{id, name, kind}], "people": [{id, name, org}]}``: every
        organisation; the people of the caller's organisation, or everyone's for the
        governance role (module docstring)."""
        o, p = organisations, people
        who = sa.select(p.c.id, p.c.name, p.c.org_id).order_by(p.c.org_id, p.c.name, p.c.id)
        if Role.GOVERNANCE not in actor.roles:
            who = who.where(p.c.org_id == actor.org)
        with read_connection(self.engine) as conn:
            orgs = conn.execute(sa.select(o.c.id, o.c.name, o.c.kind)
                                .order_by(o.c.name, o.c.id)).all()
            persons = conn.execute(who).all()
        return {
            "organisations": [{"id": r.id, "name": r.name, "kind": r.kind} for r in orgs],
            "people": [{"id": r.id, "name": r.name, "org": r.org_id} for r in persons],
        }

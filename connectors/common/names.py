"""Names for ids: the hub speaks in ids (``org_...``, ``usr_...``, ``tahub_...``), people read
names.

:class:`Names` is built from the hub's directory (``GET /v1/directory``, what the caller may
see: every organisation's name; the names of people of its own organisation, or of everyone
for a governance officer) or, on the hub's own machine, from its identity store. A person it
does not know is shown as its organisation (``someone at Banca Italia``), a client as its
organisation's (``a client of Banca Italia``). Ids stay in ``--json`` and in exports.
Mirrors ``hub/web/static/names.js``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["Names"]


class Names:
    """Organisation and person names by id."""

    def __init__(self, organisations: Mapping[str, str] | None = None,
                 people: Mapping[str, tuple[str, str]] | None = None) -> None:
        self.organisations = dict(organisations or {})  # id -> name
        self.people = dict(people or {})  # id -> (name, organisation id)

    @classmethod
    def from_directory(cls, directory: Mapping[str, Iterable[Mapping[str, Any]]]) -> Names:
        """From the JSON of ``GET /v1/directory``."""
        return cls({o["id"]: o["name"] for o in directory.get("organisations", [])},
                   {p["id"]: (p["name"], p["org"]) for p in directory.get("people", [])})

    def org(self, org_id: str | None) -> str:
        """An organisation's name, or its id when unknown ("" for none)."""
        if not org_id:
            return ""
        return self.organisations.get(org_id, org_id)

    def who(self, actor: str | None, org: str | None = None) -> str:
        """Who acted, in words: a person's name and organisation, a client's organisation,
        the hub or its administrator."""
        if not actor:
            return self.org(org) if org else "the hub"
        if actor.startswith("hub:"):
            return "the hub"
        if actor.startswith("cli:"):
            return f"the hub's administrator ({actor[4:]})"
        if actor.startswith("usr_"):
            person = self.people.get(actor)
            if person is not None:
                return f"{person[0]} ({self.org(person[1] or org)})"
            return f"someone at {self.org(org)}" if org else "someone"
        if actor.startswith("tahub_"):
            return f"a client of {self.org(org)}" if org else "a client"
        return actor

"""Who is asking: every request resolves to an explicit :class:`Actor` before any service runs.

Domain core: no web framework. The HTTP layer builds an ``Actor`` from a verified token and
passes it to the services, which check authorisation on the object itself (a partner sees
only its own uploads and extracts), not only on the route.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from hub.errors import Forbidden, InvalidInput

__all__ = ["Actor", "MemberKind", "Role", "parse_roles"]


class Role(StrEnum):
    PARTNER = "partner"  # uploads extracts (a partner data engineer's client)
    ANALYST = "analyst"  # queries aggregates (issue: DP queries)
    GOVERNANCE = "governance"  # edits policies and budgets
    ADMIN = "admin"  # registers members
    REVIEWER = "reviewer"  # codes incidents from open sources (hub.osint.review)


class MemberKind(StrEnum):
    BANK = "bank"
    MONEY_TRANSFER = "money_transfer"
    NGO = "ngo"
    LAW_ENFORCEMENT = "law_enforcement"
    OTHER = "other"


def parse_roles(roles: Iterable[Role | str], holder: str) -> tuple[str, ...]:
    """The role values of ``roles``, sorted and unique; a ``holder`` (a client, a person)
    needs at least one, and an unknown role is an :class:`InvalidInput` naming the known."""
    out: set[str] = set()
    for role in roles:
        try:
            out.add(Role(role).value)
        except ValueError:
            known = ", ".join(r.value for r in Role)
            raise InvalidInput(f"unknown role {role!r}; known roles: {known}",
                               field="roles") from None
    if not out:
        raise InvalidInput(f"a {holder} needs at least one role", field="roles")
    return tuple(sorted(out))


@dataclass(frozen=True, slots=True)
class Actor:
    client_id: str
    org: str  # organisation id, e.g. "org_3f9a..."
    org_name: str
    roles: frozenset[Role]

    def require(self, role: Role) -> None:
        """Refuse unless this actor holds ``role``."""
        if role not in self.roles:
            raise Forbidden(
                f"this action needs the {role.value!r} role; "
                f"client {self.client_id} has {', '.join(sorted(self.roles)) or 'none'}",
                rule=f"role:{role.value}",
            )

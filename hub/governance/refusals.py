"""Refused requests in the audit log, folded so that a burst cannot flood it.

Every refusal of an authenticated request (403 role, policy and budget refusals, 404 of
someone else's object, 409, 422 invalid queries, proposals and extracts; a 401 is
``auth.bearer_refused``, written by ``hub.identity``; a 429 only says the member asked too
fast, and is counted in the metrics, not written) becomes a ``request.refused``
entry: who (client and organisation), what (method and route template, never the raw path
with its ids), which dataset when the request named one, and why (the problem's ``code``,
``rule`` and ``field``; never its ``detail``, which may quote what was sent). A data owner
thus sees who probed its datasets for what (``GET /v1/audit/usage``).

Identical refusals are folded (:mod:`hub.governance.folding`): the first of a kind (same
actor, route, status, code, rule, field and dataset) is written at once with ``count: 1``,
the repeats within the window as one more entry with their ``count``; a burst of 190 budget
refusals is two entries. A failure to write is logged, never turned into an error of the
refused request.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.governance.audit import Action, AuditEvent
from hub.governance.folding import FoldedAudit

__all__ = ["Refusal", "RefusalLog"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request, as it is folded (equal refusals fold together)."""

    actor: str
    org: str
    method: str
    route: str
    status: int
    code: str
    rule: str | None = None
    field: str | None = None
    dataset: str | None = None


class RefusalLog:
    """Writes refusals to the audit log through ``folded`` (repeats folded)."""

    def __init__(self, folded: FoldedAudit) -> None:
        self._folded = folded

    def record(self, refusal: Refusal) -> None:
        """Write ``refusal`` now, or count it into the open fold of its kind."""
        self._folded.record(AuditEvent(
            Action.REQUEST_REFUSED, actor=refusal.actor, org=refusal.org,
            object_type="request", dataset=refusal.dataset,
            details={"method": refusal.method, "route": refusal.route,
                     "status": refusal.status, "code": refusal.code, "rule": refusal.rule,
                     "field": refusal.field}))

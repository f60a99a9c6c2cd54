"""The reviewers' queue (docs/osint.md#review): list, claim, read, decide; the precision of
the suggested tags.

Thin: each route takes the actor and calls one :class:`~hub.osint.review.ReviewQueue` method,
which checks the ``reviewer`` role (403 ``role:reviewer``) before it reads any input, then
the claim (409 ``rule: review:claim``). Bodies are parsed by the service after the role check
(:func:`hub.api.openapi.declared_as`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query

from hub.api.deps import CurrentActor, Review
from hub.api.openapi import AUTHENTICATED, declared_as, problems
from hub.api.routes.queries import _JSON
from hub.api.schemas.review import Claim, Decided, Precision, Queue, ReviewIncident
from hub.osint.review import ClaimRequest, DecisionRequest

__all__ = ["router"]

router = APIRouter(prefix="/v1/review", tags=["review"],
                   responses=problems(*AUTHENTICATED, 403))  # the reviewer role

ClaimBody = Annotated[Any, declared_as(ClaimRequest), Body(
    description="The incident to claim; none (or no body): the oldest waiting.",
    examples=[{}, {"incident": "inc_0123456789abcdef01234567"}])]
DecisionBody = Annotated[Any, declared_as(DecisionRequest), Body(
    description="accept, correct (with every tag), reject (with a reason) or merge (into "
                "another incident).",
    examples=[{"action": "accept"},
              {"action": "correct", "tags": [
                  {"field": "exploitation_type", "code": "SexualExploitation"},
                  {"field": "location", "code": "NG", "role": "origin"},
                  {"field": "location", "code": "IT", "role": "destination"},
                  {"field": "incident_period", "code": "2026-03"}]},
              {"action": "reject", "reason": "wildlife trafficking, not people"},
              {"action": "merge", "into": "inc_0123456789abcdef01234567"}])]


@router.get("/queue", summary="Incidents waiting for review, oldest first",
            response_class=_JSON, response_model=Queue, responses=problems(422))
def queue(actor: CurrentActor, review: Review,
          limit: Annotated[int, Query(description="At most this many (1-500)")] = 50
          ) -> _JSON:
    return _JSON(review.queue(actor, limit=limit))


@router.post("/claim", summary="Claim an incident (the oldest waiting, or the one named)",
             response_class=_JSON, response_model=Claim,
             responses=problems(404, 409, 413, 422))
def claim(actor: CurrentActor, review: Review, body: ClaimBody = None) -> _JSON:
    return _JSON(review.claim(actor, body))


@router.get("/incidents/{incident_id}", summary="The incident you hold: items, texts, "
            "suggested tags with their evidence", response_class=_JSON,
            response_model=ReviewIncident, responses=problems(404, 409))
def incident(incident_id: str, actor: CurrentActor, review: Review) -> _JSON:
    return _JSON(review.incident(actor, incident_id))


@router.post("/incidents/{incident_id}/decision", summary="Accept, correct, reject or merge "
             "the incident you hold", response_class=_JSON, response_model=Decided,
             responses=problems(404, 409, 413, 422))
def decide(incident_id: str, actor: CurrentActor, review: Review,
           body: DecisionBody = None) -> _JSON:
    return _JSON(review.decide(actor, incident_id, body))


@router.get("/precision", summary="Per-tag precision of the suggested tags, from the "
            "reviewers' decisions", response_class=_JSON, response_model=Precision,
            responses=problems(422))
def precision(actor: CurrentActor, review: Review,
              since: Annotated[str | None, Query(description="YYYY-MM-DD, inclusive")] = None,
              until: Annotated[str | None, Query(description="YYYY-MM-DD, exclusive")] = None
              ) -> _JSON:
    return _JSON(review.precision(actor, since=since, until=until))

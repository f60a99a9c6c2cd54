"""Governance: four-eyes policy changes, the active policies and budget use (docs/governance.md).

Thin: each route takes the actor, calls one
:class:`~hub.governance.policychanges.PolicyChanges` method
(which checks the governance role, then the input: 422 naming the field or the YAML line)
and serialises. A policy file can be sent as JSON (``yaml``) or uploaded as a multipart file
(``POST /v1/governance/proposals/file``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Form, UploadFile, status
from starlette.concurrency import run_in_threadpool

from hub.api.deps import Changes, CurrentActor, Queries
from hub.api.openapi import AUTHENTICATED, declared_as, problems
from hub.api.routes.queries import _JSON
from hub.api.schemas.governance import (
    ActivePolicy,
    BoundsSuggestion,
    Proposal,
    ProposalDetail,
    ProposalOutcome,
    SpendingPoint,
    SpendingView,
)
from hub.errors import InvalidInput, TooLarge
from hub.governance.proposals import Decision, ProposalRequest
from hub.query.contributions import BoundsRequest

__all__ = ["router"]

router = APIRouter(prefix="/v1/governance", tags=["governance"],
                   responses=problems(*AUTHENTICATED, 403))  # the governance role

_MAX_FILE = 256 * 1024
ProposalBody = Annotated[
    Any,
    declared_as(ProposalRequest),  # parsed by ProposalRequest.parse, after the role check
    Body(description="A proposal (docs/governance.md): the whole new policy text, or an "
         "earlier version to restore.",
         examples=[{"yaml": "dataset: bank_alerts\n...", "effective_at": "2027-01-01",
                    "note": "raise the per-member budget for the pilot"},
                   {"dataset": "bank_alerts", "restore": 1, "note": "back to the original"}]),
]
DecisionBody = Annotated[Any, declared_as(Decision),
                         Body(examples=[{"note": "checked against the DPIA"},
                                        {"reason": "too many dimensions at once"}])]
#: A proposal's answers besides 201: the same text already pending, or a dry run (200).
_PROPOSED: dict[int | str, dict[str, Any]] = {200: {
    "model": ProposalOutcome,
    "description": "existing (the same text is pending) or valid (a dry run: nothing stored)"}}


def _created(view: dict[str, Any], outcome: str) -> _JSON:
    code = status.HTTP_201_CREATED if outcome == "proposed" else status.HTTP_200_OK
    return _JSON({**view, "outcome": outcome}, status_code=code)


@router.post("/proposals", summary="Propose a policy change (governance)",
             response_class=_JSON, status_code=status.HTTP_201_CREATED,
             response_model=ProposalOutcome,
             responses={**_PROPOSED, **problems(404, 409, 413, 422)})
def propose(actor: CurrentActor, changes: Changes, body: ProposalBody) -> _JSON:
    return _created(*changes.propose(actor, body))


@router.post("/proposals/file", summary="Propose a policy change by uploading its file",
             response_class=_JSON, status_code=status.HTTP_201_CREATED,
             response_model=ProposalOutcome,
             responses={**_PROPOSED, **problems(404, 409, 413, 422)})
async def propose_file(actor: CurrentActor, changes: Changes, file: UploadFile,
                       effective_at: Annotated[str | None, Form()] = None,
                       note: Annotated[str | None, Form()] = None,
                       dry_run: Annotated[bool, Form()] = False) -> _JSON:
    data = await file.read(_MAX_FILE + 1)
    if len(data) > _MAX_FILE:
        raise TooLarge(f"a policy file is at most {_MAX_FILE} bytes", field="file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the policy file is not UTF-8 text", field="file") from None
    body = {"yaml": text, "filename": file.filename or None, "effective_at": effective_at,
            "note": note, "dry_run": dry_run}
    return _created(*await run_in_threadpool(changes.propose, actor, body))


@router.get("/proposals", summary="Policy versions by status (default: pending)",
            response_class=_JSON, response_model=list[Proposal], responses=problems(422))
def proposals(actor: CurrentActor, changes: Changes, dataset: str | None = None,
              status: str | None = None) -> _JSON:
    return _JSON(changes.proposals(actor, dataset=dataset, status=status))


@router.get("/proposals/{proposal_id}", summary="One proposal: text, diff, approvals",
            response_class=_JSON, response_model=ProposalDetail, responses=problems(404))
def proposal(proposal_id: str, actor: CurrentActor, changes: Changes) -> _JSON:
    return _JSON(changes.proposal(actor, proposal_id))


@router.post("/proposals/{proposal_id}/approve", summary="Approve (another officer)",
             response_class=_JSON, response_model=Proposal,
             responses=problems(404, 409, 413, 422))
def approve(proposal_id: str, actor: CurrentActor, changes: Changes,
            body: DecisionBody = None) -> _JSON:
    return _JSON(changes.approve(actor, proposal_id, body))


@router.post("/proposals/{proposal_id}/reject", summary="Reject with a reason",
             response_class=_JSON, response_model=Proposal,
             responses=problems(404, 409, 413, 422))
def reject(proposal_id: str, actor: CurrentActor, changes: Changes,
           body: DecisionBody = None) -> _JSON:
    return _JSON(changes.reject(actor, proposal_id, body))


@router.post("/proposals/{proposal_id}/withdraw", summary="Withdraw (the proposer)",
             response_class=_JSON, response_model=Proposal, responses=problems(404, 409))
def withdraw(proposal_id: str, actor: CurrentActor, changes: Changes) -> _JSON:
    return _JSON(changes.withdraw(actor, proposal_id))


@router.get("/policies", summary="The active (and scheduled) policy of every dataset",
            response_class=_JSON, response_model=list[ActivePolicy])
def active_policies(actor: CurrentActor, changes: Changes) -> _JSON:
    return _JSON(changes.active(actor))


@router.get("/policies/{dataset}/versions/{number}", summary="One version of a policy",
            response_class=_JSON, response_model=ProposalDetail,
            responses=problems(404, 422))
def version(dataset: str, number: int, actor: CurrentActor, changes: Changes) -> _JSON:
    return _JSON(changes.version(actor, dataset, number))


@router.get("/budgets/history", summary="Each member's cumulative spending over time",
            response_class=_JSON, response_model=list[SpendingPoint])
def budget_history(actor: CurrentActor, queries: Queries, dataset: str | None = None) -> _JSON:
    return _JSON(queries.spending_over_time(actor, dataset))


@router.get("/budgets", summary="Budget spent per dataset and member (governance)",
            response_class=_JSON, response_model=list[SpendingView], responses=problems(409))
def budgets(actor: CurrentActor, queries: Queries, dataset: str | None = None) -> _JSON:
    return _JSON(queries.spending(actor, dataset))


BoundsBody = Annotated[Any, declared_as(BoundsRequest), Body(
    description="The dataset, the cost (charged to your organisation on the dataset's "
    "budget) and optionally the quantile levels (default 0.5, 0.9, 0.95, 0.99).",
    examples=[{"dataset": "bank_alerts", "cost": "1/20"}])]


@router.post("/bounds", summary="Suggest contribution bounds from DP quantiles (charged)",
             response_class=_JSON, response_model=BoundsSuggestion,
             responses=problems(404, 409, 413, 422))
def suggest_bounds(actor: CurrentActor, queries: Queries, body: BoundsBody) -> _JSON:
    return _JSON(queries.suggest_bounds(actor, body))

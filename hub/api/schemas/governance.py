"""Governance: policy proposals and versions, budget spending, suggested bounds
(docs/governance.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from hub.api.schemas.queries import Balance, Cost

__all__ = [
    "ActivePolicy",
    "BoundsSuggestion",
    "Proposal",
    "ProposalDetail",
    "ProposalOutcome",
    "SpendingPoint",
    "SpendingView",
]


class Approval(BaseModel):
    actor: str
    org: str | None
    at: str | None
    note: str | None


class StillNeeded(BaseModel):
    officers: int
    organisations: int


class Proposal(BaseModel):
    """A policy version and its review (``hub.governance.policychanges.Proposal.view``)."""

    id: str | None = Field(description="null for a dry run (nothing stored).")
    dataset: str
    version: int
    status: str = Field(description="pending, scheduled, active, retired, rejected, "
                        "withdrawn, superseded; valid for a dry run")
    sha256: str
    base_version: int | None
    restores: int | None
    note: str | None
    proposed_by: str
    proposed_org: str | None
    proposed_at: str | None
    effective_at: str | None
    approvals: list[Approval]
    still_needed: StillNeeded | None = Field(description="While pending: who must still "
                                             "approve.")
    decided_by: str | None
    decided_at: str | None
    reason: str | None
    activated_at: str | None
    retired_at: str | None


class Limits(BaseModel):
    """A policy's budget limits, exact (``hub.governance.proposals.limits_json``)."""

    measure: str
    global_total: str
    per_member: str
    per_query: str
    per_month: str | None
    opened: str


class Change(BaseModel):
    path: str = Field(description="A dotted key; rules by name (rules.<name>).")
    before: Any
    after: Any


class ProposalDetail(Proposal):
    """A proposal with its diff against its base (and its text, when read)."""

    diff: str = Field(description="A unified diff of the YAML texts.")
    changes: list[Change]
    budget_changed: bool
    limits: Limits
    limits_before: Limits | None
    yaml: str | SkipJsonSchema[None] = Field(default=None, description="The policy text.")


class ProposalOutcome(ProposalDetail):
    outcome: str = Field(description="proposed (201); existing (the same text is pending) or "
                         "valid (a dry run): 200")


class ScheduledVersion(BaseModel):
    version: int
    id: str
    effective_at: str | None


class ActivePolicy(BaseModel):
    """A dataset's active version (with its text) and the versions scheduled after it."""

    dataset: str
    version: int | SkipJsonSchema[None] = None
    id: str | SkipJsonSchema[None] = None
    sha256: str | SkipJsonSchema[None] = None
    yaml: str | SkipJsonSchema[None] = None
    activated_at: str | SkipJsonSchema[None] = None
    scheduled: list[ScheduledVersion]
    pending: int = Field(description="Proposals waiting for review.")


class MemberBalance(Balance):
    org: str


class SpendingView(BaseModel):
    """A dataset's global budget and each member's balance."""

    model_config = ConfigDict(populate_by_name=True)

    dataset: str
    accounting: str
    global_: str = Field(alias="global")
    per_member: str
    members: list[MemberBalance]


class SpendingPoint(BaseModel):
    """A member's cumulative spending after one charge."""

    dataset: str
    org: str
    measure: str
    at: str
    spent: str


class Share(BaseModel):
    value: float
    low: float
    high: float


class BoundView(BaseModel):
    quantiles: dict[str, int] = Field(description="Level (\"0.9\") -> released rows.")
    current: int | None = Field(description="The policy's current bound.")
    left_out_share: Share | SkipJsonSchema[None] = Field(
        default=None, description="Rows the current bound leaves out, with a 95% interval.")
    note: str


class BoundsSuggestion(BaseModel):
    """DP quantiles of each unit's rows, to size the policy's contribution bounds."""

    model_config = ConfigDict(extra="allow")

    dataset: str
    cost: Cost
    mechanism: str
    candidates: list[int]
    rows_per_unit: BoundView
    rows_per_unit_per_period: BoundView | SkipJsonSchema[None] = None
    query_id: str
    created_at: str
    reused: bool
    charged: Cost
    budget: Balance

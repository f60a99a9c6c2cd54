"""The reviewers' queue (docs/osint.md#review): the queue, a claim, one incident with its items
and suggested tags, a decision, and the per-tag precision report."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

__all__ = ["Claim", "Decided", "Precision", "Queue", "ReviewIncident"]


class ShortTag(BaseModel):
    field: str
    code: str
    role: str | None = None
    confidence: float | None = None


class CodedTagOut(BaseModel):
    field: str
    code: str
    role: str | None = None


class SameIncident(BaseModel):
    """An incident that may be the same: same period (one month either way), a destination
    country and an exploitation type in common."""

    id: str
    state: str
    titles: list[str]
    destinations: list[str]
    exploitation_type: list[str]


class Waiting(BaseModel):
    id: str
    state: Literal["queued", "claimed"]
    created_at: str
    waiting_seconds: int
    claimed_by: str | None = Field(description="Who holds the claim (a person or client id).")
    mine: bool
    claim_expires_at: str | None
    items: int = Field(description="Articles and reports that told it.")
    kinds: list[str]
    titles: list[str] = Field(description="The articles' titles (a report's never).")
    suggested: list[ShortTag] = Field(description="Suggested exploitation types and places.")
    possibly_same: list[SameIncident]


class Queue(BaseModel):
    counts: dict[str, int] = Field(description="Incidents per state; an expired claim counts "
                                   "as queued.")
    waiting: int
    oldest_waiting_seconds: int | None
    claim_minutes: int
    incidents: list[Waiting]


class Claim(BaseModel):
    incident: str
    claimed_at: str
    expires_at: str


class Evidence(BaseModel):
    item: str
    part: Literal["title", "text"] | None
    start: int | None = Field(description="Character offsets into the item's title or text.")
    end: int | None
    text: str | None
    sentence: str | None


class SuggestedTag(BaseModel):
    field: str
    code: str
    role: str | None = None
    confidence: float
    items: list[str]
    evidence: list[Evidence]
    ages: list[str] | None = Field(default=None, description="age_band: the ages stated.")


class Source(BaseModel):
    id: str
    name: str | None


class Item(BaseModel):
    id: str
    kind: Literal["article", "report"]
    title: str
    url: str | None
    source: Source | None
    language: str | None
    published_at: str | None
    collected_at: str
    text: str | None = Field(description="An article's text, or a crowd report's, opened for "
                             "the reviewer holding the claim.")
    text_unavailable: str | None = Field(description="Why the text is not shown.")
    relevance: dict[str, Any] | None
    language_check: dict[str, Any] | None


class ReviewIncident(BaseModel):
    id: str
    state: str
    created_at: str
    waiting_seconds: int
    claimed_by: str | None
    claimed_at: str | None
    claim_expires_at: str | None
    items: list[Item]
    suggested: list[SuggestedTag]
    possibly_same: list[SameIncident]
    fields: dict[str, list[str] | None] = Field(
        description="The codes each field may take (null: a month, YYYY-MM).")


class Decided(BaseModel):
    id: str
    state: Literal["accepted", "rejected", "merged"]
    decision: str
    action: Literal["accept", "correct", "reject", "merge"]
    coded: list[CodedTagOut] | None
    merged_into: str | None
    reviewed_by: str
    reviewed_at: str


class TagPrecision(BaseModel):
    field: str
    code: str
    role: str | None
    suggested: int
    kept: int
    added: int = Field(description="Coded by reviewers without being suggested (misses).")
    precision: float | None = Field(description="kept / suggested; null when never suggested.")


class FieldPrecision(BaseModel):
    field: str
    suggested: int
    kept: int
    added: int
    precision: float | None


class Precision(BaseModel):
    since: str | None
    until: str | None
    decisions: int
    by_action: dict[str, int]
    fields: list[FieldPrecision]
    tags: list[TagPrecision]

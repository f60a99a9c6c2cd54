"""The audit log's entries, a page at a time (docs/audit.md)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

__all__ = ["AuditEntry", "AuditPage"]


class AuditEntry(BaseModel):
    """One hash-chained entry (``hub.governance.audit.AuditEntry``)."""

    seq: int
    at: str
    actor: str | None
    org: str | None
    action: str = Field(examples=["query.charged"])
    object_type: str | None
    object_id: str | None
    dataset: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null at "
                                    "the end.")

"""Published releases: the catalogue entry and a release with its cells (docs/releases.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.api.schemas.queries import Cost, EpsilonDelta, QueryResult

__all__ = ["Publication", "PublicationOutcome", "PublishedRelease"]


class PublishedMeasure(BaseModel):
    name: str | None
    function: str | None
    field: str | None
    mechanism: str | None


class PublishedQuery(BaseModel):
    """What was asked: never a cell value."""

    contract_version: int | None
    dimensions: list[str] | None
    measures: list[PublishedMeasure] | None
    filters: dict[str, Any] | None
    cells: int | None


class Publication(BaseModel):
    """A catalogue entry (``GET /v1/releases``): what was asked, how, at what cost."""

    id: str
    title: str
    note: str | None
    dataset: str | None
    query_id: str | None
    query: PublishedQuery
    cost: Cost | None
    epsilon_delta: EpsilonDelta | None
    mechanisms: list[str]
    computed_at: str | None
    published_at: str
    updated_at: str
    publisher: str = Field(description="The name of the organisation that published it.")
    yours: bool = Field(description="Published by your organisation.")
    audience: Literal["all", "named"] | list[str] = Field(
        description="all; or, to the publisher, the organisations it is shared with; to "
        "them, named.")


class PublicationOutcome(Publication):
    """``POST /v1/releases``: the entry, and whether it was new or updated."""

    outcome: str = Field(description="published (201), or updated / unchanged (200)")


class PublishedRelease(QueryResult):
    """A published release with every cell (``GET /v1/releases/{id}``), free to read."""

    model_config = ConfigDict(extra="allow")

    publication: Publication

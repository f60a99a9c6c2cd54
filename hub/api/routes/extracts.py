"""The caller's own committed extracts: list, read, withdraw."""

from __future__ import annotations

from fastapi import APIRouter

from hub.api.deps import Ingest, PartnerActor
from hub.api.openapi import AUTHENTICATED, problems
from hub.ingest.service import ExtractView

__all__ = ["router"]

router = APIRouter(prefix="/v1/extracts", tags=["extracts"],
                   responses=problems(*AUTHENTICATED, 403))  # the partner role


@router.get("", summary="Own extracts")
def list_extracts(
    actor: PartnerActor,
    ingest: Ingest,
    dataset: str | None = None,
    include_withdrawn: bool = False,
) -> list[ExtractView]:
    return ingest.list_extracts(actor, dataset=dataset, include_withdrawn=include_withdrawn)


@router.get("/{extract_id}", summary="One own extract", responses=problems(404))
def get_extract(extract_id: str, actor: PartnerActor, ingest: Ingest) -> ExtractView:
    return ingest.get_extract(actor, extract_id)


@router.delete("/{extract_id}", summary="Withdraw an own extract",
               responses=problems(404))
def withdraw_extract(extract_id: str, actor: PartnerActor, ingest: Ingest) -> ExtractView:
    return ingest.withdraw_extract(actor, extract_id)

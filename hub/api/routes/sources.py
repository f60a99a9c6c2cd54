"""Sources of open-source collection: news feeds and folders (the admin role).

Thin: each route checks the admin role, calls one method of
:class:`~hub.osint.sources.Sources` (configuration, fetch records) or
:class:`~hub.osint.sources.Fetcher` (a fetch now, in the background) and serialises. Bodies
are checked whole by the service (``SourceSpec``): a refusal names each field and why.
docs/osint.md (Sources).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status

from hub.actors import Actor, Role
from hub.api.deps import CurrentActor
from hub.api.openapi import AUTHENTICATED, declared_as, problems
from hub.osint.sources import Fetcher, FetchRecord, Source, Sources
from hub.osint.sources.model import SourceChange, SourceSpec

__all__ = ["router"]

router = APIRouter(prefix="/v1/osint/sources", tags=["osint"],
                   responses=problems(*AUTHENTICATED, 403))  # the admin role


async def _admin(actor: CurrentActor) -> Actor:
    actor.require(Role.ADMIN)
    return actor


async def _sources(request: Request) -> Sources:
    sources: Sources = request.app.state.services.sources
    return sources


async def _fetcher(request: Request) -> Fetcher:
    fetcher: Fetcher = request.app.state.services.fetcher
    return fetcher


AdminActor = Annotated[Actor, Depends(_admin)]
SourcesService = Annotated[Sources, Depends(_sources)]
FetcherService = Annotated[Fetcher, Depends(_fetcher)]
SpecBody = Annotated[Any, declared_as(SourceSpec), Body(
    description="A new source (docs/osint.md): a feed's http(s) URL or a folder on the "
    "hub's host.",
    examples=[{"name": "Coastal Herald", "kind": "feed",
               "location": "https://news.example/rss.xml", "language": "en",
               "every_minutes": 60, "trust": "high"},
              {"name": "Partner drop", "kind": "folder", "location": "/srv/tahub/drop",
               "every_minutes": 15, "trust": "medium"}])]
ChangeBody = Annotated[Any, declared_as(SourceChange), Body(
    description="The settings to change; the others stay.",
    examples=[{"every_minutes": 120}, {"enabled": False}])]


@router.get("", summary="Every source, with its last fetch (admin)",
            response_model=list[Source])
def list_sources(_: AdminActor, sources: SourcesService) -> list[Source]:
    return sources.all()


@router.post("", summary="Add a source (admin)", status_code=status.HTTP_201_CREATED,
             response_model=Source, responses=problems(409, 413, 422))
def add_source(actor: AdminActor, sources: SourcesService, body: SpecBody) -> Source:
    return sources.add(body, actor=actor.client_id, org=actor.org)


@router.get("/{source_id}", summary="One source, with its last fetch (admin)",
            response_model=Source, responses=problems(404))
def get_source(source_id: str, _: AdminActor, sources: SourcesService) -> Source:
    return sources.get(source_id)


@router.patch("/{source_id}", summary="Change, enable or disable a source (admin)",
              response_model=Source, responses=problems(404, 409, 413, 422))
def change_source(source_id: str, actor: AdminActor, sources: SourcesService,
                  body: ChangeBody) -> Source:
    return sources.change(source_id, body, actor=actor.client_id, org=actor.org)


@router.delete("/{source_id}", summary="Remove a source nothing was collected from (admin)",
               status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=problems(404, 409))
def remove_source(source_id: str, actor: AdminActor, sources: SourcesService) -> Response:
    sources.remove(source_id, actor=actor.client_id, org=actor.org)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{source_id}/fetch", summary="Fetch a source now, in the background (admin)",
             status_code=status.HTTP_202_ACCEPTED, response_model=FetchRecord,
             responses=problems(404, 409))
def fetch_source(source_id: str, _: AdminActor, fetcher: FetcherService) -> FetchRecord:
    return fetcher.start(source_id)


@router.get("/{source_id}/fetches", summary="A source's latest fetches, newest first (admin)",
            response_model=list[FetchRecord], responses=problems(404))
def source_fetches(source_id: str, _: AdminActor, sources: SourcesService,
                   limit: Annotated[int, Query(ge=1, le=500)] = 20) -> list[FetchRecord]:
    return sources.fetches(source_id, limit)

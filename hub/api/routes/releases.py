"""Published releases: publish, withdraw, the catalogue and one release (free to read).

Thin: each route takes the actor, calls one :class:`~hub.query.publications.Publications` method
(sync, so FastAPI runs it in its threadpool) and returns its JSON. The shapes and rules are
in docs/releases.md: publishing and withdrawing need the ``governance`` role, reading needs
``analyst`` or ``governance``; a publication the caller may not see is 404 like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, status
from fastapi.responses import Response

from hub.api.deps import CurrentActor, Releases
from hub.api.openapi import AUTHENTICATED, declared_as, problems
from hub.api.routes.queries import _JSON, RESULT_FILES, answered, download
from hub.api.schemas.releases import Publication, PublicationOutcome, PublishedRelease
from hub.query.publications import PublishRequest

__all__ = ["router"]

router = APIRouter(prefix="/v1/releases", tags=["releases"],
                   responses=problems(*AUTHENTICATED, 403))  # analyst or governance

PublishBody = Annotated[
    Any,
    declared_as(PublishRequest),  # parsed by PublishRequest.parse, after the role check
    Body(
        description="What to publish and to whom (docs/releases.md).",
        examples=[{"query_id": "led_...", "audience": "all", "title": "Corridors 2025",
                   "note": "RO/NG to GB/IT, counts per corridor"}],
    ),
]


@router.post("", summary="Publish a release your organisation paid for (governance)",
             response_class=_JSON, status_code=status.HTTP_201_CREATED,
             response_model=PublicationOutcome,
             responses={200: {"model": PublicationOutcome, "description": "already published: "
                              "updated (title, note, a wider audience) or unchanged"},
                        **problems(404, 409, 413, 422)})
def publish(actor: CurrentActor, releases: Releases, body: PublishBody) -> _JSON:
    view, outcome = releases.publish(actor, body)
    code = status.HTTP_201_CREATED if outcome == "published" else status.HTTP_200_OK
    return _JSON({**view, "outcome": outcome}, status_code=code)


@router.get("", summary="The releases published to your organisation", response_class=_JSON,
            response_model=list[Publication])
def catalogue(actor: CurrentActor, releases: Releases) -> _JSON:
    return _JSON(releases.catalogue(actor))


@router.get("/{release_id}", summary="One published release, with every cell (free)",
            response_class=_JSON, response_model=PublishedRelease, responses=problems(404))
def get_release(release_id: str, actor: CurrentActor, releases: Releases,
                request: Request) -> Response:
    return answered(releases.get(actor, release_id), request)


@router.get("/{release_id}/export", summary="A published release as CSV or Parquet (free)",
            response_class=Response, responses={**RESULT_FILES, **problems(404, 422)})
def export_release(release_id: str, actor: CurrentActor, releases: Releases,
                   format: str = "csv") -> Response:
    return download(releases.get(actor, release_id).as_dict(), format, release_id)


@router.delete("/{release_id}", summary="Withdraw a publication (governance)",
               status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               responses=problems(404))
def withdraw(release_id: str, actor: CurrentActor, releases: Releases) -> Response:
    releases.withdraw(actor, release_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

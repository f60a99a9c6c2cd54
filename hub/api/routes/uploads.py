"""Resumable uploads: start, inspect, append a chunk, commit, abandon (docs/ingest-api.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Request, Response, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from hub.api.deps import AppSettings, Ingest, PartnerActor
from hub.api.openapi import AUTHENTICATED, problems
from hub.errors import InvalidInput, TooLarge
from hub.ingest.service import ExtractView, PartURL, UploadRequest, UploadView

__all__ = ["Duplicate", "router"]

router = APIRouter(prefix="/v1/uploads", tags=["uploads"],
                   responses=problems(*AUTHENTICATED, 403))  # the partner role


class PartsRequest(BaseModel):
    part_numbers: list[int]


class PartsResponse(BaseModel):
    parts: list[PartURL]


class Duplicate(BaseModel):
    """The same content is already a visible extract of the caller: nothing new stored."""

    duplicate: Literal[True] = True
    extract: ExtractView


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    summary="Start an upload (or find the same content already there)",
    responses={200: {"model": UploadView | Duplicate,
                     "description": "duplicate content, or an unfinished upload to resume"},
               **problems(404, 413, 422)},
)
def start_upload(
    body: UploadRequest, actor: PartnerActor, ingest: Ingest, response: Response
) -> UploadView | Duplicate:
    result = ingest.start_upload(actor, body)
    if result.duplicate and result.extract is not None:
        response.status_code = status.HTTP_200_OK
        return Duplicate(extract=result.extract)
    if result.resumed:
        response.status_code = status.HTTP_200_OK
    assert result.upload is not None  # noqa: S101 - the service returns one or the other
    return result.upload


@router.get("/{upload_id}", summary="Where a resumable upload stands",
            responses=problems(404))
def get_upload(upload_id: str, actor: PartnerActor, ingest: Ingest) -> UploadView:
    return ingest.get_upload(actor, upload_id)


async def _read_chunk(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidInput("Content-Length is not a number", field="Content-Length")
        if int(declared) > limit:
            raise TooLarge(
                f"a chunk of {declared} bytes is over the {limit} bytes the hub accepts "
                "per request; send smaller chunks",
                field="body",
                chunk_bytes=limit,
            )
    buffer = bytearray()
    async for part in request.stream():
        buffer += part
        if len(buffer) > limit:
            raise TooLarge(
                f"the chunk is over the {limit} bytes the hub accepts per request",
                field="body",
                chunk_bytes=limit,
            )
    return bytes(buffer)


#: The chunk is read from the request stream (:func:`_read_chunk`), so it is declared here.
_CHUNK_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


@router.patch("/{upload_id}", summary="Append bytes at Upload-Offset",
              openapi_extra=_CHUNK_BODY, responses=problems(404, 409, 413, 422))
async def append_chunk(
    upload_id: str,
    request: Request,
    actor: PartnerActor,
    ingest: Ingest,
    settings: AppSettings,
    upload_offset: Annotated[int, Header(alias="Upload-Offset", ge=0)],
) -> UploadView:
    data = await _read_chunk(request, settings.chunk_bytes)
    return await run_in_threadpool(ingest.append_chunk, actor, upload_id, upload_offset, data)


@router.post(
    "/{upload_id}/parts",
    summary="Presigned URLs to PUT parts of a direct upload straight to the object store",
    responses=problems(404, 409, 413, 422),
)
def part_urls(
    upload_id: str, body: PartsRequest, actor: PartnerActor, ingest: Ingest
) -> PartsResponse:
    return PartsResponse(parts=ingest.part_urls(actor, upload_id, body.part_numbers))


@router.post(
    "/{upload_id}/commit",
    status_code=status.HTTP_201_CREATED,
    summary="Verify, re-validate every row and commit",
    responses={200: {"model": Duplicate,
                     "description": "the same content was committed meanwhile"},
               **problems(404, 409, 422, 507)},
)
def commit_upload(
    upload_id: str, actor: PartnerActor, ingest: Ingest, response: Response
) -> ExtractView | Duplicate:
    result = ingest.commit_upload(actor, upload_id)
    if result.duplicate:
        response.status_code = status.HTTP_200_OK
        return Duplicate(extract=result.extract)
    return result.extract


@router.delete(
    "/{upload_id}", status_code=status.HTTP_204_NO_CONTENT, summary="Abandon an upload",
    responses=problems(404, 409),
)
def abort_upload(upload_id: str, actor: PartnerActor, ingest: Ingest) -> Response:
    ingest.abort_upload(actor, upload_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

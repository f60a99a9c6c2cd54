"""The audit log for governance officers and data owners (docs/audit.md).

Thin: each route calls one :class:`~hub.governance.auditread.AuditReader` method with the filters as
given (it checks the role first, then every filter: 422 naming the field), and serialises.
``GET /v1/audit`` and the export need the governance role; ``GET /v1/audit/usage`` the
partner role (the query entries of its own datasets only).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse

from hub.api.deps import Audit, CurrentActor
from hub.api.openapi import AUTHENTICATED, files, problems
from hub.api.schemas.audit import AuditPage
from hub.governance.auditread import FORMATS

__all__ = ["router"]

router = APIRouter(prefix="/v1/audit", tags=["audit"],
                   responses=problems(*AUTHENTICATED, 403, 422))  # a role; every filter


@router.get("", summary="Audit entries, filtered (governance)", response_model=AuditPage)
def list_entries(caller: CurrentActor, audit: Audit, member: str | None = None,
                 org: str | None = None, actor: str | None = None,
                 action: str | None = None, since: str | None = None,
                 until: str | None = None, dataset: str | None = None,
                 limit: str | None = None, cursor: str | None = None) -> JSONResponse:
    page = audit.search(caller, cursor=cursor, limit=limit, org=org, member=member,
                        actor=actor, action=action, since=since, until=until, dataset=dataset)
    return JSONResponse(page.as_json())


@router.get("/export", summary="Export audit entries as JSONL or CSV (governance)",
            response_class=StreamingResponse, responses=files(
                "The entries, oldest first: JSON lines, or CSV with a header.",
                text=tuple(FORMATS.values())))
def export_entries(caller: CurrentActor, audit: Audit, format: str | None = None,
                   member: str | None = None, org: str | None = None,
                   actor: str | None = None, action: str | None = None,
                   since: str | None = None, until: str | None = None,
                   dataset: str | None = None) -> StreamingResponse:
    # the role, the format and every filter are checked here, before anything is streamed
    lines = audit.export(caller, format, org=org, member=member, actor=actor, action=action,
                         since=since, until=until, dataset=dataset)
    fmt = format or "jsonl"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return StreamingResponse(
        (line.encode("utf-8") for line in lines), media_type=FORMATS[fmt],
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.{fmt}"'},
    )


@router.get("/usage", summary="How your datasets are used: their query entries (partner)",
            response_model=AuditPage, responses=problems(404))
def usage(caller: CurrentActor, audit: Audit, dataset: str | None = None,
          action: str | None = None, since: str | None = None, until: str | None = None,
          limit: str | None = None, cursor: str | None = None) -> JSONResponse:
    page = audit.usage(caller, cursor=cursor, limit=limit, dataset=dataset, action=action,
                       since=since, until=until)
    return JSONResponse(page.as_json())

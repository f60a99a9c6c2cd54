"""Operations: liveness, readiness and Prometheus metrics (docs/operations.md).

None of these needs a token: a load balancer or Prometheus calls them. Keep them on the
internal network (the TLS proxy in front of the hub need not route them).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from hub.api.deps import AppMetrics, Database, Store
from hub.api.openapi import problems
from hub.api.readiness import check_readiness

__all__ = ["router"]

router = APIRouter(tags=["operations"])


class Alive(BaseModel):
    status: str  # "alive"


class Ready(BaseModel):
    status: str  # "ready"
    checks: dict[str, str]  # {"database": "ok", "storage": "ok"}


@router.get("/livez", summary="Liveness: the process answers (checks nothing else)")
async def livez() -> Alive:
    return Alive(status="alive")


@router.get(
    "/readyz",
    summary="Readiness: the metadata store and the object store answer",
    responses=problems(503),  # a check failed: its name in `failing`
)
def readyz(engine: Database, store: Store) -> Ready:
    return Ready(status="ready", checks=check_readiness(engine, store))


@router.get("/metrics", summary="Prometheus metrics (text exposition format)",
            response_class=PlainTextResponse)
def metrics(app_metrics: AppMetrics) -> Response:
    body, content_type = app_metrics.render()
    return Response(content=body, media_type=content_type)

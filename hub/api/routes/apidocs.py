"""The API's documentation pages: Swagger UI at ``/docs`` and ReDoc at ``/redoc`` (docs/web.md).

FastAPI's own pages load Swagger UI, ReDoc and Google's fonts from CDNs, and are blank on a
closed network; these pages load nothing but the hub: the pinned bundles built with the
package (hub/web/assets.py: ``swagger-ui-dist``, ``redoc``), a small start-up script per page
and a few styles (``hub/web/apidocs/``), all under ``/docs/assets``, which the Ingress routes
with ``/docs``. No inline script, so the pages carry a CSP that allows scripts from the hub
only.

Swagger UI's *Authorize* takes a bearer token (the document's only security scheme,
``HTTPBearer``: a token from ``POST /oauth/token``), so no OAuth2 redirect page is needed.
Assets missing or corrupted (checked when the app is built): both pages are a 503 naming
them; the API and ``/openapi.json`` are not affected.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response

from hub.api.routes.ui import page
from hub.web import assets

__all__ = ["mount", "router"]

_PAGES = assets.WEB / "apidocs"
_OWN = ("swagger-init.js", "redoc-init.js", "docs.css")  # the pages' own, next to them
# Scripts from the hub only (never inline); Swagger UI and ReDoc inject styles and draw icons
# as data: images; ReDoc's search runs in a worker made from a blob: URL.
_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "worker-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'")
router = APIRouter(include_in_schema=False)


def _page(request: Request, name: str) -> Response:
    return page(_PAGES / name, request.app.state.api_docs_problems, "The API documentation",
                'The API and its document, <a href="/openapi.json">/openapi.json</a>, are not '
                "affected.", _CSP)


@router.get("/docs")
def swagger_ui(request: Request) -> Response:
    return _page(request, "swagger.html")


@router.get("/redoc")
def redoc(request: Request) -> Response:
    return _page(request, "redoc.html")


@router.get("/docs/assets/{name}")
def asset(request: Request, name: str) -> Response:
    files: dict[str, Path] = request.app.state.api_docs_files
    path = files.get(name)
    if path is None or not path.is_file():
        raise HTTPException(status_code=404)  # a problem+json "no route" (hub.api.problems)
    return FileResponse(path, headers={"Cache-Control": "no-cache",
                                       "X-Content-Type-Options": "nosniff"})


def mount(app: FastAPI) -> None:
    """The two pages and their assets (from :data:`hub.web.assets.VENDOR`, checked now);
    FastAPI's own pages (``docs_url``, ``redoc_url``) must be off (hub.api.app.create_app)."""
    app.state.api_docs_problems = assets.problems(assets.VENDOR, assets.API_DOCS)
    app.state.api_docs_files = {**{name: assets.VENDOR / name for name in assets.API_DOCS},
                                **{name: _PAGES / name for name in _OWN}}
    app.include_router(router)

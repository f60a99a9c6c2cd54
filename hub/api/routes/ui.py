"""The web interface: pages and scripts served by the hub itself (docs/web.md).

``/ui`` and every page under it answer the one HTML page; its scripts (``/ui/static``) talk
to the same public API as the Python client, with a person's token from the hub's sign-in
(client ``tahub-web``, authorization code with PKCE). ``/ui/vendor`` holds the pinned
third-party JavaScript and the world map built with the package from the npm registry
(hub/web/assets.py, hub/web/package-lock.json): nothing is fetched at run time, and no
Node.js runs. Assets missing or corrupted (checked when the app is built): every page is a
503 naming them.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from hub.web import assets

__all__ = ["WEB", "mount", "router"]

WEB = assets.WEB
# Scripts from the hub only; Vega compiles its expressions with Function(), hence
# 'unsafe-eval' (never 'unsafe-inline' for scripts); no other origin is ever contacted.
_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_HEADERS = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": _CSP}

router = APIRouter(include_in_schema=False)


def _page(request: Request) -> Response:
    missing: list[str] = request.app.state.web_problems
    if missing:
        items = "".join(f"<li>{html.escape(m)}</li>" for m in missing)
        return HTMLResponse(
            "<!doctype html><title>tahub</title><h1>The web interface's assets are not "
            f"usable</h1><ul>{items}</ul><p>They are built with the package from "
            "hub/web/package-lock.json: reinstall tahub (<code>pip install</code> of the wheel, "
            "or <code>./dev setup</code> in a checkout). The API is not affected.</p>",
            status_code=503, headers=_HEADERS)
    return FileResponse(WEB / "static" / "index.html", headers=_HEADERS)


@router.get("/ui")
def index(request: Request) -> Response:
    return _page(request)


@router.get("/ui/callback")
def callback(request: Request) -> Response:
    return _page(request)


def mount(app: FastAPI) -> None:
    """The static folders (scripts, styles, vendored libraries) and the page routes."""
    app.state.web_problems = assets.problems(WEB / "vendor")
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=WEB / "static"), name="ui-static")
    app.mount("/ui/vendor", StaticFiles(directory=WEB / "vendor", check_dir=False),
              name="ui-vendor")

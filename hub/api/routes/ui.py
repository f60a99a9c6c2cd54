"""The web interface: pages and scripts served by the hub itself (docs/web.md).

``/ui`` and every page under it answer the one HTML page; its scripts (``/ui/static``) talk
to the same public API as the Python client, with a person's token from the hub's sign-in
(client ``tahub-web``, authorization code with PKCE). ``/ui/vendor`` holds the pinned
third-party JavaScript and the world map that ``./dev setup`` vendored from the npm registry
(hub/web/package-lock.json): nothing is fetched at run time, and no Node.js runs.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

__all__ = ["WEB", "mount", "router"]

WEB = Path(__file__).resolve().parents[2] / "web"
# Scripts from the hub only; Vega compiles its expressions with Function(), hence
# 'unsafe-eval' (never 'unsafe-inline' for scripts); no other origin is ever contacted.
_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
_HEADERS = {"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": _CSP}

router = APIRouter(include_in_schema=False)


def _page() -> Response:
    if not (WEB / "vendor" / "vega.min.js").is_file():
        return HTMLResponse(
            "<!doctype html><title>tahub</title><h1>The web interface is not set up</h1>"
            "<p>Its pinned JavaScript is vendored at set-up: run <code>./dev setup</code> "
            "(it needs npm once, not at run time).</p>", status_code=503, headers=_HEADERS)
    return FileResponse(WEB / "static" / "index.html", headers=_HEADERS)


@router.get("/ui")
def index() -> Response:
    return _page()


@router.get("/ui/callback")
def callback() -> Response:
    return _page()


def mount(app: FastAPI) -> None:
    """The static folders (scripts, styles, vendored libraries) and the page routes."""
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=WEB / "static"), name="ui-static")
    app.mount("/ui/vendor", StaticFiles(directory=WEB / "vendor", check_dir=False),
              name="ui-vendor")

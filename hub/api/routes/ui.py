"""The web interface: pages and scripts served by the hub itself (docs/web.md).

``/ui`` and every page under it answer the one HTML page; its scripts (``/ui/static``) talk
to the same public API as the Python client, with a person's token from the hub's sign-in
(client ``tahub-web``, authorization code with PKCE). ``/ui/vendor`` holds the pinned
third-party JavaScript and the world map built with the package from the npm registry
(hub/web/assets.py, hub/web/package-lock.json): nothing is fetched at run time, and no
Node.js runs. Assets missing or corrupted (checked when the app is built): every page is a
503 naming them.

``/`` (the hub's address in a browser) redirects to ``/ui``. The interface is always mounted
(no setting switches it off); it is *off* in effect when its assets are not usable (an install
built without them, or with files missing): then ``/`` redirects to the API docs at
``/docs`` (hub.api.routes.apidocs), if theirs are usable, because the API still works.
"""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from hub.web import assets

__all__ = ["WEB", "headers", "mount", "page", "router"]

WEB = assets.WEB
# The web interface's own built files (the API docs' are checked by hub.api.routes.apidocs).
_FILES = tuple(name for name in assets.BUILT if name not in assets.API_DOCS)
# Scripts from the hub only; Vega compiles its expressions with Function(), hence
# 'unsafe-eval' (never 'unsafe-inline' for scripts); no other origin is ever contacted.
_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")


def headers(csp: str) -> dict[str, str]:
    """The headers of a page the hub serves (the interface, the API docs) under ``csp``."""
    return {"Cache-Control": "no-cache", "X-Frame-Options": "DENY",
            "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": csp}


def page(path: Path, missing: list[str], what: str, unaffected: str, csp: str) -> Response:
    """``path``, or a 503 naming the ``missing`` or corrupted built assets of ``what``."""
    if not missing:
        return FileResponse(path, headers=headers(csp))
    items = "".join(f"<li>{html.escape(m)}</li>" for m in missing)
    return HTMLResponse(
        f"<!doctype html><title>tahub</title><h1>{what}'s assets are not usable</h1>"
        f"<ul>{items}</ul><p>They are built with the package from hub/web/package-lock.json: "
        "reinstall tahub (<code>pip install</code> of the wheel, or <code>./dev setup</code> "
        f"in a checkout). {unaffected}</p>", status_code=503, headers=headers(csp))


router = APIRouter(include_in_schema=False)


def _page(request: Request) -> Response:
    return page(WEB / "static" / "index.html", request.app.state.web_problems,
                "The web interface", "The API is not affected.", _CSP)


@router.get("/")
def root(request: Request) -> RedirectResponse:
    """The hub's address in a browser: the interface, or the API docs when the interface's
    assets are not usable and theirs are (module docstring)."""
    docs_instead = request.app.state.web_problems and not request.app.state.api_docs_problems
    return RedirectResponse("/docs" if docs_instead else "/ui", status_code=307)


@router.get("/ui")
def index(request: Request) -> Response:
    return _page(request)


@router.get("/ui/callback")
def callback(request: Request) -> Response:
    return _page(request)


def mount(app: FastAPI) -> None:
    """The static folders (scripts, styles, vendored libraries) and the page routes."""
    app.state.web_problems = assets.problems(assets.VENDOR, _FILES)
    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=WEB / "static"), name="ui-static")
    app.mount("/ui/vendor", StaticFiles(directory=assets.VENDOR, check_dir=False),
              name="ui-vendor")

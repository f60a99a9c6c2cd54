"""The hub's pages for browsers, over HTTP: ``/`` redirects to the web interface (or to the API
docs when the interface's assets are not usable); ``/docs`` and ``/redoc`` load only the hub's
own assets under a CSP without inline scripts; missing or corrupted assets are a 503 naming
them. (tests/web/test_api_docs.py draws the pages in Chromium with the network cut off.)"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hub.web import assets
from tests.api.conftest import Hub, running_hub

PAGES = ("/docs", "/redoc")


def test_the_root_redirects_to_the_web_interface(hub: Hub) -> None:
    with hub.client() as http:
        resp = http.get("/")
        assert resp.status_code == 307
        assert resp.headers["location"] == "/ui"
        assert http.get("/", follow_redirects=True).url.path == "/ui"


@pytest.mark.parametrize("path", PAGES)
def test_a_docs_page_loads_only_the_hubs_own_assets(hub: Hub, path: str) -> None:
    with hub.client() as http:
        page = http.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = dict(part.strip().split(" ", 1) for part in
                   page.headers["content-security-policy"].split(";"))
        assert csp["script-src"] == "'self'"  # no inline script, no other origin
        assert csp["connect-src"] == "'self'"
        assert re.findall(r"<script(?![^>]*\ssrc=)", page.text) == []  # none inline
        assert "http" not in page.text
        linked = re.findall(r'(?:src|href)="([^"]*)"', page.text)
        assert linked and all(url.startswith("/") or url == "data:," for url in linked)
        for url in (u for u in linked if u.startswith("/docs/assets/")):
            asset = http.get(url)
            assert asset.status_code == 200, url
            assert "cdn.redoc.ly" not in asset.text  # ReDoc's logo URL, patched out


def test_only_the_docs_assets_are_served_and_fastapis_own_pages_are_gone(hub: Hub) -> None:
    with hub.client() as http:
        for path in ("/docs/assets/vega.min.js", "/docs/assets/MANIFEST.json",
                     "/docs/oauth2-redirect"):
            resp = http.get(path)
            assert resp.status_code == 404, path
            assert resp.headers["content-type"] == "application/problem+json"
        assert http.get("/openapi.json").status_code == 200


def _vendor_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, missing: tuple[str, ...] = (),
                 corrupted: tuple[str, ...] = ()) -> None:
    """The built assets, copied with some files removed or changed, as the hub's to serve."""
    copy = tmp_path / "vendor"
    shutil.copytree(assets.VENDOR, copy)
    for name in missing:
        (copy / name).unlink()
    for name in corrupted:
        with (copy / name).open("a") as file:
            file.write("/* changed */")
    monkeypatch.setattr(assets, "VENDOR", copy)


def test_without_the_interfaces_assets_the_root_goes_to_the_api_docs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _vendor_copy(tmp_path, monkeypatch, missing=("vega.min.js",))
    with running_hub(tmp_path / "data") as started, started.client() as http:
        assert http.get("/").headers["location"] == "/docs"
        ui = http.get("/ui")
        assert ui.status_code == 503
        assert "vega.min.js is missing" in ui.text
        assert http.get("/docs").status_code == 200


def test_missing_or_corrupted_docs_assets_are_a_503_naming_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _vendor_copy(tmp_path, monkeypatch, missing=("redoc.standalone.js",),
                 corrupted=("swagger-ui.css",))
    with running_hub(tmp_path / "data") as started, started.client() as http:
        for path in PAGES:
            page = http.get(path)
            assert page.status_code == 503, path
            assert "redoc.standalone.js is missing" in page.text
            assert "swagger-ui.css does not match its recorded SHA-256" in page.text
            assert "reinstall tahub" in page.text
        assert http.get("/openapi.json").status_code == 200  # the API is not affected
        assert http.get("/").headers["location"] == "/ui"  # the interface still works
        assert http.get("/ui").status_code == 200

"""The web interface's and the API docs' third-party assets: what is built, how, and a check.

The hub serves pinned JavaScript, styles and data files from the npm registry (pinned by
``hub/web/package-lock.json``) under ``/ui/vendor`` (the web interface) and ``/docs/assets``
(Swagger UI and ReDoc, hub.api.routes.apidocs). They are **built when the package is built**
(the wheel's build hook, ``hub/web/hatch_hook.py``, which ``pip install`` and ``./dev setup``
run) and shipped inside the wheel and the Docker image; nothing is fetched and no Node.js runs
when the hub runs.

* :data:`VENDORED` names the files copied from ``node_modules`` (with the few :data:`PATCHES`
  that keep a page from contacting another origin);
* :data:`BUNDLED` names the ES modules made by the pinned esbuild from an entry module under
  ``hub/web`` (CodeMirror 6 is published as modules with bare imports, which a browser cannot
  load as they are);
* :data:`API_DOCS` says which of them the API docs pages use; the rest are the web
  interface's.

:func:`build` makes them (``npm ci --ignore-scripts`` from the lock file: esbuild's binary
comes from its platform package, no install script is needed) and writes ``MANIFEST.json``
with each file's SHA-256; :func:`problems` checks a built folder against the manifest, so
that a missing or corrupted asset is a clear 503 naming it (hub.api.routes.ui,
hub.api.routes.apidocs), and a wheel without its assets fails its build rather than shipping.

This module is loaded by path from the build hook (it must not import ``hub``): standard
library only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = ["API_DOCS", "BUILT", "BUNDLED", "MANIFEST", "PATCHES", "VENDOR", "VENDORED", "WEB",
           "build", "problems"]

WEB = Path(__file__).resolve().parent
#: Where the built files are, and where the hub serves them from (read when the app is built).
VENDOR = WEB / "vendor"
#: The built folder's own record: each built file's SHA-256 and the digest of the inputs.
MANIFEST = "MANIFEST.json"

#: vendored file name -> its source under node_modules (copied as it is, unless patched).
VENDORED: dict[str, str] = {
    "vega.min.js": "vega/build/vega.min.js",
    "vega-lite.min.js": "vega-lite/build/vega-lite.min.js",
    "vega-embed.min.js": "vega-embed/build/vega-embed.min.js",
    "countries-110m.json": "world-atlas/countries-110m.json",
    "codes.json": "i18n-iso-countries/codes.json",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
    "redoc.standalone.js": "redoc/bundles/redoc.standalone.js",
}

#: vendored file name -> (text, replacement) pairs applied when it is copied. Each text must
#: occur exactly once, so that an upgrade which moves it fails the build instead of shipping a
#: page that contacts another origin.
PATCHES: dict[str, tuple[tuple[str, str], ...]] = {
    # ReDoc's sidebar credit loads Redocly's logo from its CDN, which a closed network cannot
    # reach and no page of the hub may contact: an empty data: URL fails to load, and ReDoc
    # then leaves the image out (its onError), keeping the credit's text link.
    "redoc.standalone.js": (
        ('src:"https://cdn.redoc.ly/redoc/logo-mini.svg"', 'src:"data:,"'),),
}

#: bundled file name -> its entry module under hub/web (esbuild --bundle --minify, ESM).
BUNDLED: dict[str, str] = {
    "codemirror.js": "editor/entry.js",
}

#: Every built file, in the manifest's order.
BUILT: tuple[str, ...] = (*VENDORED, *BUNDLED)

#: The files the API docs pages (/docs, /redoc) use; the others are the web interface's.
API_DOCS: tuple[str, ...] = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _inputs_digest(web: Path) -> str:
    """What the built files are made from: the lock file, the entry modules and the recipe
    above; a change to any of them makes :func:`build` build again."""
    digest = hashlib.sha256((web / "package-lock.json").read_bytes())
    for entry in sorted(BUNDLED.values()):
        digest.update((web / entry).read_bytes())
    digest.update(json.dumps([VENDORED, PATCHES, BUNDLED], sort_keys=True).encode())
    return digest.hexdigest()


def problems(out: Path, names: Iterable[str] | None = None) -> list[str]:
    """What is wrong with the built assets in ``out`` (all of them, or only ``names``): one
    sentence per missing or corrupted file (empty when all is well)."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return [f"{manifest} is missing: the web assets were never built"]
    try:
        recorded = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return [f"{manifest} is not a manifest of built assets"]
    found = []
    for name in BUILT if names is None else names:
        path = out / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif recorded.get(name) != _sha256(path):
            found.append(f"{name} does not match its recorded SHA-256 (corrupted or replaced)")
    return found


def _copy(source: Path, target: Path, patches: tuple[tuple[str, str], ...]) -> None:
    if not patches:
        shutil.copyfile(source, target)
        return
    text = source.read_text(encoding="utf-8")
    for old, new in patches:
        if text.count(old) != 1:
            raise RuntimeError(f"{source} holds {text.count(old)} copies of {old!r}, not one: "
                               "check assets.PATCHES against the new version")
        text = text.replace(old, new)
    target.write_text(text, encoding="utf-8")


def _bundle(web: Path, entry: str, target: Path) -> None:
    esbuild = web / "node_modules" / ".bin" / "esbuild"
    if not esbuild.exists():
        raise RuntimeError(f"{esbuild} is missing: esbuild is pinned in hub/web/package.json")
    subprocess.run([str(esbuild), str(web / entry), "--bundle", "--minify",  # noqa: S603
                    "--format=esm", "--charset=utf8", "--log-level=warning",
                    f"--outfile={target}"], check=True)


def build(web: Path = WEB, out: Path | None = None, *, log: bool = True) -> Path:
    """Build the assets into ``out`` (``web/vendor``) from ``web/package-lock.json``.

    Nothing happens when ``out`` already holds assets built from the same inputs and they
    check out; otherwise ``npm ci`` installs the pinned packages (no install scripts), the
    files are copied (and patched) and the entry modules bundled. Raises RuntimeError (npm
    missing, a patch that no longer applies, a file absent after the build) or
    CalledProcessError (npm or esbuild failed)."""
    out = out or web / "vendor"
    inputs = _inputs_digest(web)
    manifest = out / MANIFEST
    if (manifest.is_file() and not problems(out)
            and json.loads(manifest.read_text()).get("inputs") == inputs):
        return out
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("building tahub's web assets needs npm (Node.js) at build time, "
                           "never at run time: install Node.js and build again")
    if log:  # the build's own output (pip shows it with -v)
        print("tahub: building the web interface's assets from hub/web/package-lock.json")
    subprocess.run([npm, "ci", "--prefix", str(web), "--ignore-scripts",  # noqa: S603
                    "--no-audit", "--no-fund", "--loglevel=error"], check=True)
    out.mkdir(parents=True, exist_ok=True)
    manifest.unlink(missing_ok=True)  # no manifest until every file is in place
    modules = web / "node_modules"
    for name, source in VENDORED.items():
        _copy(modules / source, out / name, PATCHES.get(name, ()))
    for name, entry in BUNDLED.items():
        _bundle(web, entry, out / name)
    manifest.write_text(json.dumps(
        {"inputs": inputs, "files": {name: _sha256(out / name) for name in BUILT}},
        indent=1, sort_keys=True))
    left = problems(out)
    if left:
        raise RuntimeError("tahub's web assets did not build: " + "; ".join(left))
    return out


if __name__ == "__main__":  # python hub/web/assets.py: build them in place
    build()

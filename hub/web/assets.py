"""The web interface's third-party assets: what is vendored, how it is built, and a check.

The hub serves pinned JavaScript, styles and data files from the npm registry (pinned by
``hub/web/package-lock.json``) under ``/ui/vendor`` and ``/docs``. They are **built when the
package is built** (the wheel's build hook, ``hub/web/hatch_hook.py``, which ``pip install``
and ``./dev setup`` run) and shipped inside the wheel and the Docker image; nothing is fetched
and no Node.js runs when the hub runs.

:data:`VENDORED` names every file and where it comes from; :func:`build` makes them (``npm
ci`` from the lock file, then copies) and writes ``MANIFEST.json`` with each file's SHA-256;
:func:`problems` checks a built folder against :data:`VENDORED` and the manifest, so that a
missing or corrupted asset is a clear 503 naming it (hub.api.routes.ui), and a wheel
without its assets fails its build rather than shipping.

This module is loaded by path from the build hook (it must not import ``hub``): standard
library only.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

__all__ = ["MANIFEST", "VENDORED", "WEB", "build", "problems"]

WEB = Path(__file__).resolve().parent
#: The built folder's own record: each vendored file's SHA-256 and the lock file's.
MANIFEST = "MANIFEST.json"

#: vendored file name -> its source under node_modules (copied as it is).
VENDORED: dict[str, str] = {
    "vega.min.js": "vega/build/vega.min.js",
    "vega-lite.min.js": "vega-lite/build/vega-lite.min.js",
    "vega-embed.min.js": "vega-embed/build/vega-embed.min.js",
    "countries-110m.json": "world-atlas/countries-110m.json",
    "codes.json": "i18n-iso-countries/codes.json",
}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock_digest(web: Path) -> str:
    return _sha256(web / "package-lock.json")


def problems(out: Path) -> list[str]:
    """What is wrong with the built assets in ``out``: one sentence per missing or
    corrupted file (empty when all is well)."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        return [f"{manifest} is missing: the web assets were never built"]
    try:
        recorded = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, TypeError):
        return [f"{manifest} is not a manifest of built assets"]
    found = []
    for name in VENDORED:
        path = out / name
        if not path.is_file():
            found.append(f"{name} is missing")
        elif recorded.get(name) != _sha256(path):
            found.append(f"{name} does not match its recorded SHA-256 (corrupted or replaced)")
    return found


def build(web: Path = WEB, out: Path | None = None, *, log: bool = True) -> Path:
    """Build the vendored assets into ``out`` (``web/vendor``) from ``web/package-lock.json``.

    Nothing happens when ``out`` already holds assets built from the same lock file and they
    check out; otherwise ``npm ci`` installs the pinned packages (no install scripts) and the
    files are copied. Raises RuntimeError (npm missing, a file absent after the build)."""
    out = out or web / "vendor"
    lock = _lock_digest(web)
    manifest = out / MANIFEST
    if (manifest.is_file() and not problems(out)
            and json.loads(manifest.read_text()).get("lock") == lock):
        return out
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("building tahub's web assets needs npm (Node.js) at build time, "
                           "never at run time: install Node.js and build again")
    if log:  # the build's own output (pip shows it with -v)
        print("tahub: building the web interface's assets from hub/web/package-lock.json")
    subprocess.run([npm, "ci",  # noqa: S603 (fixed arguments) "--prefix", str(web), "--ignore-scripts", "--no-audit",
                    "--no-fund", "--loglevel=error"], check=True)
    out.mkdir(parents=True, exist_ok=True)
    modules = web / "node_modules"
    for name, source in VENDORED.items():
        shutil.copyfile(modules / source, out / name)
    manifest.write_text(json.dumps(
        {"lock": lock, "files": {name: _sha256(out / name) for name in VENDORED}},
        indent=1, sort_keys=True))
    left = problems(out)
    if left:
        raise RuntimeError("tahub's web assets did not build: " + "; ".join(left))
    return out


if __name__ == "__main__":  # python hub/web/assets.py: build them in place
    build()

"""The wheel is the product: built from the checkout, installed into a fresh virtual environment
away from it, it runs the demo with its web interface, its offline API docs and DP queries.

Nothing of the checkout is importable by the installed hub (it runs in a temporary folder,
from the fresh venv's own ``tahub``). A wheel whose web assets cannot be built is not made,
and an installed asset that is missing or altered is a 503 naming it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hub.web import assets
from tests.e2e.conftest import clean_env, free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


def _pip(*args: str, python: str = sys.executable, cwd: Path | None = None,
         env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([python, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=900, check=False, cwd=cwd,
                          env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _pip("wheel", "--no-deps", "-w", str(out), str(ROOT))
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob("tahub-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with only the wheel (and its pinned dependencies)."""
    where = tmp_path_factory.mktemp("fresh") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=120)
    installed = _pip("install", "-c", str(ROOT / "requirements.lock"), str(wheel),
                     python=str(where / "bin" / "python"), cwd=where.parent)
    assert installed.returncode == 0, installed.stderr[-3000:]
    return where


def test_the_wheel_carries_every_web_asset_and_no_build_tooling(wheel: Path,
                                                                tmp_path: Path) -> None:
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        vendor = [n for n in names if n.startswith("hub/web/vendor/")]
        whl.extractall(tmp_path, members=vendor)
    assert {f"hub/web/vendor/{name}" for name in [*assets.BUILT, assets.MANIFEST]} <= names
    assert assets.problems(tmp_path / "hub" / "web" / "vendor") == []
    assert "hub/web/hatch_hook.py" not in names
    assert not [n for n in names if "node_modules" in n]
    assert any(n.startswith("hub/_bundled/contracts/") for n in names)
    assert any(n.startswith("hub/_bundled/policies/") for n in names)


def _serve(venv: Path, args: list[str], cwd: Path, log: Path) -> tuple[subprocess.Popen[bytes],
                                                                        str]:
    port = free_port()
    env = clean_env()
    env.pop("PYTHONPATH", None)
    env.update(TAHUB_PORT=str(port), COLUMNS="200", PATH=f"{venv / 'bin'}:{env['PATH']}")
    with log.open("wb") as out:  # the child keeps its own copy
        proc = subprocess.Popen([str(venv / "bin" / "tahub"), *args], cwd=cwd, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{port}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def _wait(url: str, proc: subprocess.Popen[bytes], log: Path, ready: Path | None = None,
          timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200 and (
                    ready is None or ready.exists()):
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise AssertionError("the hub did not come up:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def demo(venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``tahub demo`` from the fresh venv, in a folder of its own (not the checkout)."""
    where = tmp_path_factory.mktemp("demo")
    log = where / "demo.log"
    proc, url = _serve(venv, ["demo"], where, log)
    try:
        _wait(url, proc, log, ready=where / "tahub-demo-partners" / "demo.json")
        time.sleep(1)  # the banner follows the last commit
        yield url, where
    finally:
        _stop(proc)


def test_the_installed_hub_runs_from_the_venv_not_the_checkout(venv: Path,
                                                               tmp_path: Path) -> None:
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import hub.web.assets as a; print(a.WEB)"], cwd=tmp_path,
                           env={k: v for k, v in clean_env().items() if k != "PYTHONPATH"},
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(venv) and not Path(where).is_relative_to(ROOT)


def test_the_demo_from_the_wheel_serves_the_interface_docs_and_answers(
        demo: tuple[str, Path]) -> None:
    url, where = demo
    with httpx.Client(base_url=url, timeout=60) as http:
        root = http.get("/", follow_redirects=False)
        assert root.status_code in (302, 303, 307) and root.headers["location"].endswith("/ui")
        page = http.get("/ui")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        for ref in re.findall(r'(?:src|href)="(/ui/[^"]+)"', page.text):
            assert http.get(ref).status_code == 200, ref
        for docs in ("/docs", "/redoc"):
            html = http.get(docs)
            assert html.status_code == 200, docs
            refs = [r for r in re.findall(r'(?:src|href)="([^"]+)"', html.text)
                    if not r.startswith("data:")]
            assert refs and not [r for r in refs if re.match(r"(https?:)?//", r)], refs
            for ref in refs:
                assert http.get(ref).status_code == 200, ref
        assert http.get("/openapi.json").json()["paths"]["/v1/queries"]
        creds = dict(line.split("=", 1) for line in next(
            (where / "tahub-demo-partners").glob("*/analyst.env")).read_text().splitlines()
            if "=" in line)
        token = http.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=(
            creds["TAHUB_CLIENT_ID"], creds["TAHUB_CLIENT_SECRET"])).json()["access_token"]
        answer = http.post("/v1/queries", headers={"Authorization": f"Bearer {token}"}, json={
            "dataset": "bank_alerts", "group_by": ["origin_country"], "measures": ["count"],
            "filters": {"origin_country": ["RO", "IT", "NG"]}, "cost": "1/100"})
        assert answer.status_code == 200, answer.text
        assert {row["origin_country"] for row in answer.json()["rows"]} == {"RO", "IT", "NG"}


def test_an_installed_asset_missing_or_altered_is_a_503_naming_it(venv: Path,
                                                                  tmp_path: Path) -> None:
    code = "import hub.web.assets as a; print(a.WEB / 'vendor')"
    vendor = Path(subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                                 capture_output=True, text=True, check=True).stdout.strip())
    kept = tmp_path / "kept"
    shutil.copytree(vendor, kept)
    try:
        (vendor / "vega.min.js").write_text("/* altered */")
        (vendor / "codes.json").unlink()
        log = tmp_path / "serve.log"
        proc, url = _serve(venv, ["serve"], tmp_path, log)  # a hub of its own
        try:
            _wait(url, proc, log)
            page = httpx.get(url + "/ui")
            assert page.status_code == 503
            assert "vega.min.js does not match its recorded SHA-256" in page.text
            assert "codes.json is missing" in page.text
            assert httpx.get(url + "/livez").status_code == 200  # the API is not affected
        finally:
            _stop(proc)
    finally:
        shutil.rmtree(vendor)
        shutil.copytree(kept, vendor)


def test_a_wheel_whose_assets_cannot_be_built_is_not_made(tmp_path: Path) -> None:
    # the sources as a fresh clone has them (no built assets), and no npm to build them
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    src = tmp_path / "src"
    for name in files:
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    env = {**clean_env(), "PATH": str(Path(sys.executable).parent)}  # python, not npm
    built = _pip("wheel", "--no-deps", "-w", str(tmp_path / "dist"), str(src), env=env)
    assert built.returncode != 0
    assert "needs npm" in built.stdout + built.stderr
    assert not list(tmp_path.glob("dist/*.whl"))


def test_no_instruction_names_an_index_that_does_not_serve_tahub() -> None:
    # until tahub is published, every install instruction names the wheel file
    texts = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"),
             *(ROOT / "hub" / "web" / "static").glob("*.js"),
             *(ROOT / "hub" / "demo").glob("*.py")]
    offending = [f"{path.relative_to(ROOT)}: {line.strip()}" for path in texts
                 for line in path.read_text().splitlines()
                 if re.search(r"pip install (-U )?tahub(?![-\w.])", line)]
    assert offending == []

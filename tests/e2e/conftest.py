"""End-to-end fixtures: the real ``tahub`` hub process on a loopback port, driven by the real CLIs.

Nothing is imported from the hub here on purpose: the tests see the hub only through HTTP,
the two console scripts and what the hub stores (its data folder, and in production mode
the S3 bucket, read with the minio SDK).

Every test using ``hub`` (or ``deployment``) runs in both modes:

* ``embedded``: the defaults (SQLite and a local folder under ``TAHUB_DATA_DIR``), one process;
* ``production``: S3 (a real S3 server process, tests/s3server.py) + a fresh PostgreSQL
  database + ``TAHUB_WORKERS=2`` (two hub processes behind one port).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.hub.postgres import postgres_database
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Server

MODES = ("embedded", "production")

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(args: list[str], env: dict[str, str], *, cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


@dataclass
class Deployment:
    """Where a hub keeps its metadata and extracts: ``TAHUB_*`` variables of one mode."""

    mode: str
    env: dict[str, str]
    s3: S3Server | None = None
    bucket: str = ""

    def stored(self, data_dir: Path, into: Path, prefix: str = "extracts/") -> list[Path]:
        """Local copies of the objects the hub stored under ``prefix``, sorted by key."""
        if self.s3 is None:
            return sorted(p for p in (data_dir / "objects" / prefix).rglob("*") if p.is_file())
        client, out = self.s3.client(), []
        names = sorted(o.object_name for o in client.list_objects(
            self.bucket, prefix=f"hub/{prefix}", recursive=True))
        for name in names:
            dest = into / name.replace("/", "_")
            client.fget_object(self.bucket, name, str(dest))
            out.append(dest)
        return out

    def received_bytes(self, data_dir: Path) -> int:
        """Bytes the hub holds of the one unfinished upload (0 if there is none yet)."""
        if self.s3 is None:
            parts = [p for p in (data_dir / "staging").glob("*.part") if p.is_file()]
            return parts[0].stat().st_size if parts else 0
        client = self.s3.client()
        pending = client._list_multipart_uploads(self.bucket, prefix="hub/staging/").uploads
        if not pending:
            # the connector may already have asked for the commit, and the hub completed the
            # multipart upload before it was stopped: the whole object waits in staging
            done = client.list_objects(self.bucket, prefix="hub/staging/", recursive=True)
            return sum(obj.size or 0 for obj in done)
        upload = pending[0]
        listed = client._list_parts(self.bucket, upload.object_name, upload.upload_id)
        return sum(part.size or 0 for part in listed.parts)


@contextmanager
def deployed(mode: str, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """The ``TAHUB_*`` variables of ``mode``; production gets its own bucket and database."""
    if mode == "embedded":
        yield Deployment("embedded", {})
        return
    s3: S3Server = request.getfixturevalue("s3_server")
    s3.start()  # running again if a fault test left it stopped
    with ExitStack() as stack:
        url = stack.enter_context(postgres_database())
        bucket = s3.make_bucket()
        stack.callback(s3.remove_bucket, bucket)
        yield Deployment("production", {
            "TAHUB_STORAGE": f"s3://{bucket}/hub", "TAHUB_S3_ENDPOINT": s3.endpoint,
            "TAHUB_S3_ACCESS_KEY": ACCESS_KEY, "TAHUB_S3_SECRET_KEY": SECRET_KEY,
            "TAHUB_S3_REGION": REGION, "TAHUB_DATABASE_URL": url, "TAHUB_WORKERS": "2",
        }, s3, bucket)


@pytest.fixture(params=MODES)
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    with deployed(request.param, request) as d:
        yield d


@dataclass
class Hub:
    data_dir: Path
    port: int
    env: dict[str, str]
    log: Path
    deployment: Deployment
    proc: subprocess.Popen[bytes] | None = None
    members: dict[str, dict[str, str]] = field(default_factory=dict)

    def objects(self, prefix: str = "extracts/") -> list[Path]:
        """Local copies of the objects (by default the extracts) the hub stored, wherever it
        stores them."""
        into = self.log.parent / "stored-objects"  # production: copies, replaced each call
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir()
        return self.deployment.stored(self.data_dir, into, prefix)

    def received_bytes(self) -> int:
        return self.deployment.received_bytes(self.data_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # its own group: workers die with it
                [str(BIN / "tahub"), "serve"], env=self.env, stdout=log, stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited early:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"hub did not come up:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL to every hub process: no shutdown handler runs, as in a crash."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
            self.proc = None

    def add_member(self, name: str, kind: str = "bank") -> dict[str, str]:
        out = run([str(BIN / "tahub"), "admin", "member", "add", name, "--kind", kind,
                   "--role", "partner", "--json"], self.env)
        assert out.returncode == 0, out.stderr
        creds: dict[str, str] = json.loads(out.stdout)
        self.members[name] = creds
        return creds

    def partner_env(self, creds: dict[str, str], key_file: Path) -> dict[str, str]:
        return {**self.env, "TAHUB_HUB_URL": self.url, "TAHUB_CLIENT_ID": creds["client_id"],
                "TAHUB_CLIENT_SECRET": creds["client_secret"],
                "TAHUB_NETWORK_KEY_FILE": str(key_file)}


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TAHUB_")}


@pytest.fixture
def hub(tmp_path: Path, deployment: Deployment) -> Iterator[Hub]:
    env = clean_env()
    port = free_port()
    env.update(TAHUB_DATA_DIR=str(tmp_path / "hub-data"), TAHUB_PORT=str(port),
               TAHUB_CHUNK_BYTES=str(64 * 1024), TAHUB_LOG_JSON="true",
               COLUMNS="250", **deployment.env)  # rich tables: no wrapped ids
    h = Hub(tmp_path / "hub-data", port, env, tmp_path / "hub.log", deployment)
    h.start()
    yield h
    h.stop()


@pytest.fixture
def network_key(tmp_path: Path, hub: Hub) -> Path:
    key = tmp_path / "partners" / "network.key"
    key.parent.mkdir()
    out = run([str(BIN / "tahub-connect"), "key", "new", "--out", str(key)], hub.env)
    assert out.returncode == 0, out.stderr
    return key

"""A real S3 server for tests: moto's standalone server (``moto_server``) in a subprocess.

The hub talks to it with the real ``minio`` SDK over HTTP on loopback, the same code path
as MinIO or AWS. Registered as a pytest plugin by ``tests/conftest.py``, so any test can use:

* ``s3_server`` (session): one :class:`S3Server`, started once;
* ``s3_bucket`` (function): a fresh, empty bucket on it, as an :class:`S3Bucket` that also
  builds hub :class:`~hub.settings.Settings` for ``TAHUB_STORAGE=s3://<bucket>/<prefix>``.

For faults, ``server.stop()`` / ``server.start()`` (or ``with server.down():``) take the
server away and bring it back on the same port. moto keeps everything in memory, so a
restarted server has no buckets: call ``bucket.recreate()`` to model "the store came back"
(objects written before are gone), or use a private server with :func:`running_s3_server`.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from minio import Minio
from minio.deleteobjects import DeleteObject

from hub.settings import Settings

__all__ = ["ACCESS_KEY", "REGION", "SECRET_KEY", "S3Bucket", "S3Server", "running_s3_server",
           "s3_bucket", "s3_server"]

ACCESS_KEY = "tahub-test-access"
SECRET_KEY = "tahub-test-secret-key"  # noqa: S105 (moto accepts any pair)
REGION = "us-east-1"
START_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class S3Server:
    """``moto_server`` on 127.0.0.1; the port stays the same across stop/start."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._log_dir = Path(tempfile.mkdtemp(prefix="tahub-moto-"))
        weakref.finalize(self, shutil.rmtree, self._log_dir, ignore_errors=True)
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"S3Server({self.endpoint!r}, running={self.running})"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start the server and wait until it answers HTTP."""
        if self.running:
            return
        log = self._log_dir / "moto.log"
        with log.open("ab") as out:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                self._proc = None
                raise RuntimeError(f"moto_server exited at start:\n{_tail(log)}")
            try:
                httpx.get(f"{self.endpoint}/moto-api/", timeout=1.0)
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto_server did not answer in {timeout}s:\n"
                                       f"{_tail(log)}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (its state is lost); the port is free again afterwards."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """The server is stopped inside the block and running again after it."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def reset(self) -> None:
        """Forget every bucket and object (moto's in-process reset)."""
        httpx.post(f"{self.endpoint}/moto-api/reset", timeout=10.0).raise_for_status()

    def client(self) -> Minio:
        return Minio(f"127.0.0.1:{self.port}", access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                     secure=False, region=REGION)

    def make_bucket(self, name: str | None = None) -> str:
        name = name or f"tahub-test-{secrets.token_hex(6)}"
        self.client().make_bucket(name)
        return name

    def remove_bucket(self, name: str) -> None:
        """Empty and remove ``name``; does nothing if the server or bucket is gone."""
        if not self.running:
            return
        client = self.client()
        if not client.bucket_exists(name):
            return
        for upload in client._list_multipart_uploads(name).uploads:
            client._abort_multipart_upload(name, upload.object_name, str(upload.upload_id))
        doomed = [DeleteObject(str(o.object_name))
                  for o in client.list_objects(name, recursive=True)]
        for error in client.remove_objects(name, doomed):
            raise RuntimeError(f"cannot empty bucket {name}: {error}")
        client.remove_bucket(name)


def _tail(log: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """A private server for the duration of the block."""
    server = S3Server()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class S3Bucket:
    """One bucket on a test server; ``url`` is a ``TAHUB_STORAGE`` value for it."""

    server: S3Server
    name: str
    prefix: str = "hub"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}" if self.prefix else f"s3://{self.name}"

    def settings(self, data_dir: Path, **overrides: Any) -> Settings:
        """Hub settings storing in this bucket (the other settings at their defaults)."""
        values: dict[str, Any] = {
            "data_dir": data_dir, "storage": self.url, "s3_endpoint": self.server.endpoint,
            "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY, "s3_region": REGION,
        }
        return Settings(**(values | overrides))

    def recreate(self) -> None:
        """Create the bucket again, e.g. on a restarted (hence empty) server."""
        if not self.server.client().bucket_exists(self.name):
            self.server.make_bucket(self.name)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    with running_s3_server() as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[S3Bucket]:
    s3_server.start()  # running again if a fault test left it stopped
    bucket = S3Bucket(s3_server, s3_server.make_bucket())
    yield bucket
    s3_server.start()
    s3_server.remove_bucket(bucket.name)

"""A real hub: ``create_app`` served by uvicorn on a free loopback port, in a thread.

One server per test session (start-up migrates a fresh SQLite file and makes a signing
key); each test registers its own members, so tests do not depend on each other. The app
gets two extra routes under ``/_test`` that raise on purpose, for the error-mapping tests.
"""

from __future__ import annotations

import base64
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from hub.actors import MemberKind, Role
from hub.api.app import Services, create_app
from hub.contracts.model import Contract
from hub.errors import HubRequestError, TahubError, error_classes
from hub.identity.service import Credentials
from hub.settings import Settings
from tests.hub.extract_files import sha256_of, valid_rows, write_extract

CHUNK_BYTES = 64 * 1024  # the smallest chunk limit the settings allow


def make_error(cls: type[TahubError]) -> TahubError:
    """An instance of any class of the error tree, as a route would raise it."""
    if issubclass(cls, HubRequestError):  # the connector's, built from a hub's answer
        return cls("hub refused", http_status=cls.status, problem={"code": "x"})
    return cls(f"test {cls.code}")


def _add_test_routes(app: FastAPI) -> None:
    by_code = {cls.__name__: cls for cls in error_classes()}

    @app.get("/_test/raise/{name}")
    def raise_error(name: str) -> None:
        raise make_error(by_code[name])

    @app.get("/_test/crash")
    def crash() -> None:
        raise RuntimeError("secret internals: /srv/tahub/db password=hunter2")


@dataclass
class Hub:
    url: str
    settings: Settings
    app: FastAPI

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    def member(
        self,
        name: str,
        roles: tuple[Role, ...] = (Role.PARTNER,),
        kind: MemberKind = MemberKind.BANK,
    ) -> Credentials:
        return self.services.identity.register_member(name, kind, roles)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    def token(self, creds: Credentials) -> str:
        with self.client() as http:
            resp = http.post(
                "/oauth/token",
                data={"grant_type": "client_credentials"},
                auth=(creds.client_id, creds.client_secret),
            )
        assert resp.status_code == 200, resp.text
        token: str = resp.json()["access_token"]
        return token

    def authed(self, creds: Credentials) -> httpx.Client:
        http = self.client()
        http.headers["Authorization"] = f"Bearer {self.token(creds)}"
        return http

    def pool(self, folder: Path, *, banks: int = 2, rows: int = 20, name: str = "Bank") -> None:
        """``banks`` new members each commit a valid bank_alerts extract of ``rows`` rows
        (enough partners for the shipped policies' ``min_partners``)."""
        contract = self.services.registry.get("bank_alerts", 1)
        for bank in range(banks):
            path = write_extract(folder / f"{name}-{bank}.parquet".replace(" ", "_"),
                                 contract, valid_rows(contract, rows, seed=bank * 7))
            with self.authed(self.member(f"{name} {bank}")) as http:
                upload_extract(http, path, contract)


def upload_extract(http: httpx.Client, path: Path, contract: Contract) -> None:
    """Upload and commit one extract through the real API, chunk by chunk."""
    started = http.post("/v1/uploads", json={
        "dataset": contract.dataset, "contract_version": contract.version,
        "size": path.stat().st_size, "sha256": sha256_of(path), "filename": path.name,
        "transfer": "chunks"})
    assert started.status_code == 201, started.text
    upload, data = started.json(), path.read_bytes()
    offset = upload["offset"]
    while offset < len(data):
        resp = http.patch(f"/v1/uploads/{upload['id']}",
                          content=data[offset:offset + upload["chunk_bytes"]],
                          headers={"Upload-Offset": str(offset),
                                   "Content-Type": "application/octet-stream"})
        assert resp.status_code == 200, resp.text
        offset = resp.json()["offset"]
    committed = http.post(f"/v1/uploads/{upload['id']}/commit")
    assert committed.status_code == 201, committed.text


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture(scope="session")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("hub")) as started:
        yield started


@contextmanager
def running_hub(data_dir: Path, **settings_overrides: Any) -> Iterator[Hub]:
    """A real hub on a free loopback port until the block ends (settings can be overridden)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    settings = Settings(**{
        "data_dir": data_dir,
        "host": "127.0.0.1",
        "port": port,
        "chunk_bytes": CHUNK_BYTES,
        "max_extract_bytes": 4 * 1024 * 1024,
        "log_level": "WARNING",
        **settings_overrides,
    })
    app = create_app(settings)
    _add_test_routes(app)
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan="on", ws="none")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the hub did not start")
        time.sleep(0.02)
    try:
        yield Hub(url=f"http://127.0.0.1:{port}", settings=settings, app=app)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()

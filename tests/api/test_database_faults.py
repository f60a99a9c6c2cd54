"""The metadata store (PostgreSQL) goes away while the hub runs: 503 + Retry-After, then back.

A real hub (uvicorn on loopback) on a throwaway PostgreSQL database. The server itself is
never restarted (other tests use it); a restart is simulated in two ways:

* the hub reaches the database through a TCP proxy on loopback (``tests/tcpproxy.py``), which
  is cut (open connections break, new ones are refused) and then restored;
* the database's backend connections are terminated (``pg_terminate_backend``), once alone
  (the pool's pre-ping reconnects: nothing fails) and once while the database refuses new
  connections (``ALLOW_CONNECTIONS false``) until it is "back".

During an outage every request that needs the database answers 503 problem+json with
``Retry-After`` (never a 500, never driver text); afterwards the same hub process answers
again, and an upload whose commit failed meanwhile commits.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hub.actors import MemberKind, Role
from hub.contracts.model import ContractRegistry
from hub.identity.service import Credentials
from hub.ingest.units import PostgresUnitIndex
from tests.api.conftest import Hub, running_hub
from tests.hub.extract_files import sha256_of, valid_rows, write_extract
from tests.hub.postgres import DEFAULT_URL, postgres_database
from tests.tcpproxy import TcpProxy

PROBLEM = "application/problem+json"


@dataclass
class DbHub:
    hub: Hub
    database: str  # the throwaway database's name
    proxy: TcpProxy
    tmp: Path
    creds: Credentials  # the partner's
    partner: httpx.Client
    analyst: httpx.Client
    _n: int = 0

    def extract(self) -> Path:
        """A new valid bank_alerts extract (distinct content each time)."""
        self._n += 1
        contract = ContractRegistry.load().get("bank_alerts", 1)
        return write_extract(self.tmp / f"extract-{self._n}.parquet", contract,
                             valid_rows(contract, 20, seed=100 * self._n))

    def start_upload(self) -> str:
        """An upload with all its bytes sent, ready to commit; its id."""
        path = self.extract()
        resp = self.partner.post("/v1/uploads", json={
            "dataset": "bank_alerts", "contract_version": 1, "size": path.stat().st_size,
            "sha256": sha256_of(path), "transfer": "chunks"})
        assert resp.status_code == 201, resp.text
        upload_id: str = resp.json()["id"]
        resp = self.partner.patch(f"/v1/uploads/{upload_id}", content=path.read_bytes(),
                                  headers={"Upload-Offset": "0"})
        assert resp.status_code == 200, resp.text
        return upload_id

    def requests(self) -> list[httpx.Response]:
        """One request of each kind that needs the metadata store."""
        path = self.extract()
        return [
            self.partner.get("/v1/extracts"),
            self.partner.get("/v1/me"),
            self.partner.post("/v1/uploads", json={
                "dataset": "bank_alerts", "contract_version": 1,
                "size": path.stat().st_size, "sha256": sha256_of(path),
                "transfer": "chunks"}),
            self.analyst.get("/v1/queries"),
            self.analyst.get("/v1/budgets"),
            self.token_request(),
        ]

    def token_request(self) -> httpx.Response:
        with self.hub.client() as http:
            return http.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(self.creds.client_id, self.creds.client_secret))


def _server() -> sa.URL:
    return sa.make_url(os.environ.get("TAHUB_TEST_POSTGRES_URL", DEFAULT_URL))


@pytest.fixture
def db_hub(tmp_path: Path) -> Iterator[DbHub]:
    with postgres_database() as url:
        real = sa.make_url(url)
        proxy = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
        proxy.start()
        through = real.set(host="127.0.0.1", port=proxy.port)
        try:
            with running_hub(tmp_path / "hub",
                             database_url=through.render_as_string(hide_password=False)) as hub:
                partner = hub.member("Bank A", (Role.PARTNER,))
                analyst = hub.member("Police C", (Role.ANALYST,), MemberKind.LAW_ENFORCEMENT)
                with hub.authed(partner) as p, hub.authed(analyst) as a:
                    yield DbHub(hub, str(real.database), proxy, tmp_path, partner, p, a)
        finally:
            proxy.stop()


def _unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, (resp.request.url, resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert int(resp.headers["Retry-After"]) > 0
    body = resp.json()
    assert body["code"] == "unavailable" and body["status"] == 503
    for leak in ("Traceback", "psycopg", "sqlalchemy", "OperationalError", "5432"):
        assert leak.lower() not in resp.text.lower()


def _ok(resp: httpx.Response) -> None:
    assert resp.status_code in (200, 201), (resp.request.url, resp.status_code, resp.text)


def _admin(sql: str) -> None:
    engine = sa.create_engine(_server(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def _terminate(database: str) -> None:
    _admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           f"WHERE datname = '{database}' AND pid <> pg_backend_pid()")


def _commit(db: DbHub, upload_id: str) -> httpx.Response:
    return db.partner.post(f"/v1/uploads/{upload_id}/commit")


def _committed(db: DbHub, upload_id: str) -> None:
    resp = _commit(db, upload_id)
    assert resp.status_code == 201, resp.text
    units = db.hub.services.ingest.units
    assert isinstance(units, PostgresUnitIndex)  # numbered in PostgreSQL, not a local file
    assert sum(n for _, n in units.rows_seen("bank_alerts").values()) >= 20


def test_database_unreachable_then_back_through_a_cut_proxy(db_hub: DbHub) -> None:
    for resp in db_hub.requests():
        _ok(resp)
    pending = db_hub.start_upload()

    db_hub.proxy.stop()
    for resp in [*db_hub.requests(), _commit(db_hub, pending)]:
        _unavailable(resp)
    with db_hub.hub.client() as http:
        assert http.get("/livez").status_code == 200  # the process itself is alive

    db_hub.proxy.start()  # the same hub process, no restart
    for resp in db_hub.requests():
        _ok(resp)
    _committed(db_hub, pending)


def test_terminated_connections_reconnect_and_refused_ones_answer_503(db_hub: DbHub) -> None:
    for resp in db_hub.requests():
        _ok(resp)
    _terminate(db_hub.database)  # every pooled connection of the hub is dead now
    for resp in db_hub.requests():
        _ok(resp)  # pre-ping noticed and reconnected: nothing failed

    pending = db_hub.start_upload()
    _admin(f'ALTER DATABASE "{db_hub.database}" ALLOW_CONNECTIONS false')
    try:
        _terminate(db_hub.database)
        for resp in [*db_hub.requests(), _commit(db_hub, pending)]:
            _unavailable(resp)
    finally:
        _admin(f'ALTER DATABASE "{db_hub.database}" ALLOW_CONNECTIONS true')
    for resp in db_hub.requests():
        _ok(resp)
    _committed(db_hub, pending)


def test_a_driver_error_no_service_translated_is_a_503_only_when_the_connection_is_lost(
        db_hub: DbHub) -> None:
    """The API boundary's own mapping (hub.api.problems), for code that reaches the engine
    directly: a lost connection is 503, any other driver error a generic 500."""
    engine = db_hub.hub.services.engine

    def select(sql: str) -> None:
        with engine.connect() as conn:
            conn.exec_driver_sql(sql)

    db_hub.hub.app.add_api_route("/_test/db/ok", lambda: select("SELECT 1"))
    db_hub.hub.app.add_api_route("/_test/db/bug", lambda: select("SELECT * FROM no_such"))
    with db_hub.hub.client() as http:
        _ok(http.get("/_test/db/ok"))
        bug = http.get("/_test/db/bug")
        assert bug.status_code == 500 and bug.json()["code"] == "internal_error"
        assert "no_such" not in bug.text
        db_hub.proxy.stop()
        _unavailable(http.get("/_test/db/ok"))
        db_hub.proxy.start()
        _ok(http.get("/_test/db/ok"))

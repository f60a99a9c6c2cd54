"""Queries in production mode (S3 + PostgreSQL) when either goes away, and back.

A real hub (uvicorn on loopback) on a throwaway PostgreSQL database and a bucket of a real
S3 server process (moto), each reached through a TCP proxy on loopback that is cut (open
connections break, new ones are refused) and restored, as a restart or an outage would:

* the metadata store goes away while a query runs (after its charge, before its answer is
  stored): 503 with ``Retry-After``; once it is back, asking again serves that very answer,
  charged once, from the same hub process (no restart);
* the object store is down when a query needs an extract not yet in the local cache: 503
  with ``Retry-After`` before anything is charged; once it is back, the query runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from hub.actors import MemberKind, Role
from hub.contracts.model import ContractRegistry
from tests.api.conftest import Hub, running_hub
from tests.api.conftest import upload_extract as upload
from tests.api.test_queries import CORRIDORS, POLICY_BANK
from tests.hub.extract_files import valid_rows, write_extract
from tests.hub.postgres import postgres_database
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Bucket
from tests.tcpproxy import TcpProxy

PROBLEM = "application/problem+json"


@dataclass
class Production:
    hub: Hub
    database: TcpProxy
    objects: TcpProxy
    analyst: httpx.Client

    def spent(self) -> tuple[str, int]:
        """The analyst's spending and its number of ledger entries."""
        budget = self.analyst.get("/v1/budgets/bank_alerts").json()
        return budget["member"]["spent"], len(self.analyst.get("/v1/queries").json())


@pytest.fixture
def production(tmp_path: Path, s3_bucket: S3Bucket) -> Iterator[Production]:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "bank_alerts.yaml").write_text(POLICY_BANK)
    s3 = s3_bucket.server
    objects = TcpProxy(("127.0.0.1", s3.port))
    objects.start()
    with postgres_database() as url:
        real = sa.make_url(url)
        database = TcpProxy((real.host or "127.0.0.1", real.port or 5432))
        database.start()
        try:
            with running_hub(
                tmp_path / "hub", policies_dir=tmp_path / "policies", storage=s3_bucket.url,
                s3_endpoint=f"http://127.0.0.1:{objects.port}", s3_access_key=ACCESS_KEY,
                s3_secret_key=SECRET_KEY, s3_region=REGION,
                database_url=real.set(host="127.0.0.1", port=database.port).render_as_string(
                    hide_password=False),
            ) as hub:
                contract = ContractRegistry.load().get("bank_alerts", 1)
                for i in range(2):
                    bank = hub.member(f"Bank {i}", (Role.PARTNER,))
                    path = write_extract(tmp_path / f"b{i}.parquet", contract,
                                         valid_rows(contract, 30, seed=i * 60))
                    with hub.authed(bank) as http:
                        upload(http, path, contract)
                analyst = hub.member("Police", (Role.ANALYST,), MemberKind.LAW_ENFORCEMENT)
                with hub.authed(analyst) as http:
                    yield Production(hub, database, objects, http)
        finally:
            database.stop()
            objects.stop()


def _query(cost: str) -> dict[str, Any]:
    return {**CORRIDORS, "measures": ["count"], "cost": cost}


def _unavailable(resp: httpx.Response) -> dict[str, Any]:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    assert int(resp.headers["Retry-After"]) > 0
    body: dict[str, Any] = resp.json()
    for leak in ("Traceback", "psycopg", "sqlalchemy", "botocore", "urllib3"):
        assert leak.lower() not in resp.text.lower()
    return body


def test_the_database_lost_mid_query_then_back_serves_that_answer_charged_once(
    production: Production, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = production.spent()
    engine = production.hub.services.queries._engine
    aggregate = engine.aggregate

    def then_the_database_goes(*args: Any, **kwargs: Any) -> Any:
        out = aggregate(*args, **kwargs)  # computed after the charge...
        production.database.stop()  # ...and the store goes before the answer is stored
        return out

    monkeypatch.setattr(engine, "aggregate", then_the_database_goes)
    body = _unavailable(production.analyst.post("/v1/queries", json=_query("1/2")))
    assert body["rule"] == "query:unstored" and "charged once" in body["detail"]
    monkeypatch.setattr(engine, "aggregate", aggregate)
    _unavailable(production.analyst.get("/v1/budgets/bank_alerts"))  # still down

    production.database.start()  # back; the same hub process
    again = production.analyst.post("/v1/queries", json=_query("1/2"))
    assert again.status_code == 200, again.text
    assert again.json()["query_id"] == body["query_id"]  # the answer computed before
    spent, entries = production.spent()
    assert (entries, before[1]) == (1, 0)
    (entry,) = production.analyst.get("/v1/queries").json()
    assert entry["status"] == "released" and entry["cost"]["amount"] == "1/2"
    assert spent == "1/2"


def test_the_object_store_down_refuses_before_any_charge_then_queries_run(
    production: Production,
) -> None:
    cache = production.hub.services.settings.extract_cache_dir
    shutil.rmtree(cache)  # a fresh node: nothing in the local cache yet
    production.objects.stop()
    try:
        body = _unavailable(production.analyst.post("/v1/queries", json=_query("1/2")))
        assert body["code"] == "unavailable"
        assert production.spent() == ("0", 0)  # nothing charged, nothing listed
    finally:
        production.objects.start()
    answer = production.analyst.post("/v1/queries", json=_query("1/2"))
    assert answer.status_code == 200, answer.text
    assert production.spent() == ("1/2", 1)

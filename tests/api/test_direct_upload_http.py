"""A real hub on a real S3 server, over HTTP: the connector's bytes go straight to the store by
presigned URLs; a store outage mid-upload fails cleanly and the upload resumes; a store
outage at query time is a 503 that spends no budget."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from connectors.partner.client import HubClient, RetryPolicy
from hub.actors import MemberKind, Role
from hub.contracts.model import ContractRegistry
from hub.errors import Unavailable
from hub.storage.db import uploads
from tests.api.conftest import Hub, running_hub
from tests.hub.extract_files import metadata_for, schema_for, valid_rows, write_extract
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Bucket
from tests.tcpproxy import TcpProxy

MiB = 1024 * 1024
FAST = RetryPolicy(attempts=3, initial_wait=0, max_wait=0)


@pytest.fixture
def proxy(s3_bucket: S3Bucket) -> Iterator[TcpProxy]:
    p = TcpProxy(("127.0.0.1", s3_bucket.server.port))
    p.start()
    yield p
    p.stop()


@pytest.fixture
def s3_hub(tmp_path: Path, s3_bucket: S3Bucket, proxy: TcpProxy) -> Iterator[Hub]:
    with running_hub(tmp_path / "hub", storage=s3_bucket.url, s3_access_key=ACCESS_KEY,
                     s3_secret_key=SECRET_KEY, s3_region=REGION,
                     s3_endpoint=f"http://127.0.0.1:{proxy.port}",
                     max_extract_bytes=64 * MiB) as hub:
        yield hub


@pytest.fixture
def big_extract(tmp_path: Path) -> Path:
    contract = ContractRegistry.load().get("bank_alerts", 1)
    table = pa.Table.from_pylist(valid_rows(contract, 80_000), schema=schema_for(contract))
    path = tmp_path / "alerts.parquet"
    pq.write_table(table.replace_schema_metadata(metadata_for(contract)), path,
                   compression="none", use_dictionary=False)
    assert path.stat().st_size > 10 * MiB  # three 5 MiB parts
    return path


def test_the_connector_sends_parts_to_the_store_and_resumes_after_an_outage(
    s3_hub: Hub, big_extract: Path, proxy: TcpProxy,
) -> None:
    creds = s3_hub.member("Bank S3")
    progress: list[int] = []

    def cut_after_first_part(done: int, total: int) -> None:
        progress.append(done)
        if done >= 5 * MiB and proxy_up[0]:
            proxy.stop()  # the object store goes away after the first part arrived
            proxy_up[0] = False

    proxy_up = [True]
    with HubClient(s3_hub.url, creds.client_id, creds.client_secret, retry=FAST) as client:
        with pytest.raises(Unavailable):
            client.upload(big_extract, dataset="bank_alerts", contract_version=1,
                          on_progress=cut_after_first_part)
        (pending,) = _uploads(s3_hub, creds.org_id)
        assert s3_hub.services.ingest.visible_extracts("bank_alerts") == []
        proxy.start()
        state = client.get_upload(pending)  # parts in flight when it went may have landed
        assert state.transfer == "direct" and 1 in (state.received_parts or [])
        outcome = client.upload(big_extract, dataset="bank_alerts", contract_version=1)
    # a part whose PUT was still on its way may land between the two looks: never fewer
    assert outcome.resumed_from >= state.offset >= 5 * MiB and not outcome.duplicate
    assert outcome.sent == big_extract.stat().st_size - outcome.resumed_from
    assert outcome.extract.rows == 80_000 and outcome.extract.status == "visible"
    staging = list(s3_hub.settings.staging_dir.glob("*.part"))
    assert staging == []  # no byte went through the hub's own staging


def _uploads(hub: Hub, org: str) -> list[str]:
    with hub.services.engine.connect() as conn:
        return list(conn.execute(sa.select(uploads.c.id).where(
            uploads.c.org_id == org, uploads.c.status == "receiving")).scalars())


POLICY = """
dataset: bank_alerts
accounting: zcdp
opened: "2020-01-01"
min_partners: 2
contribution_bounds: {max_rows: 10}
budget: {global: "100", per_member: "10", per_query: "1"}
rules:
  - name: analysts
    who: {roles: [analyst]}
    dimensions: [origin_country]
    max_dimensions: 1
    filters: []
    measures: [count]
"""


def test_a_query_while_the_store_is_down_is_a_503_that_spends_nothing(
    tmp_path: Path, s3_bucket: S3Bucket, proxy: TcpProxy,
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "bank_alerts.yaml").write_text(POLICY)
    contract = ContractRegistry.load().get("bank_alerts", 1)
    with running_hub(tmp_path / "hub", storage=s3_bucket.url, s3_access_key=ACCESS_KEY,
                     s3_secret_key=SECRET_KEY, s3_region=REGION, policies_dir=policies,
                     s3_endpoint=f"http://127.0.0.1:{proxy.port}") as hub:
        for bank in range(2):  # two partners' extracts, through direct uploads
            creds = hub.member(f"Bank {bank}")
            path = write_extract(tmp_path / f"bank{bank}.parquet", contract,
                                 valid_rows(contract, 50, seed=100 * bank))
            with HubClient(hub.url, creds.client_id, creds.client_secret, retry=FAST) as c:
                assert c.upload(path, dataset="bank_alerts", contract_version=1).extract.rows == 50
        shutil.rmtree(hub.settings.extract_cache_dir)  # a hub process that never read them
        with hub.authed(hub.member("Analysts", (Role.ANALYST,), MemberKind.OTHER)) as analyst:
            query = {"dataset": "bank_alerts", "group_by": ["origin_country"],
                     "measures": ["count"], "cost": "1/2"}
            before = analyst.get("/v1/budgets/bank_alerts").json()
            proxy.stop()
            down = analyst.post("/v1/queries", json=query)
            assert down.status_code == 503 and down.headers["retry-after"].isdigit()
            assert down.headers["content-type"] == "application/problem+json"
            assert analyst.get("/v1/budgets/bank_alerts").json() == before  # nothing spent
            assert analyst.get("/v1/queries").json() == []  # no ledger entry
            proxy.start()
            up = analyst.post("/v1/queries", json=query)
            assert up.status_code == 200, up.text
            assert up.json()["charged"]["amount"] == "1/2"

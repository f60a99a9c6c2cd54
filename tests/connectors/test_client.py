"""HubClient against a fake hub that keeps the protocol's rules: retries, resume, tokens."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from connectors.partner.client import HubClient, RetryPolicy
from connectors.partner.mapping import Mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.pseudonymise import NetworkKey
from hub.contracts.model import ContractRegistry
from hub.errors import AuthError, ConfigError, HubRequestError, Unavailable
from tests.connectors.conftest import FLOWS_HEADER, good_flow, write_csv
from tests.connectors.fakehub import CLIENT_ID, CLIENT_SECRET, FakeHub

FAST = RetryPolicy(attempts=4, initial_wait=0, max_wait=0)


@pytest.fixture
def extract(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> Path:
    rows = [good_flow(i) for i in range(400)]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    result = prepare_extract(
        source, flows_mapping, key=key, out_path=tmp_path / "x.parquet", registry=registry
    )
    assert result.size > 8 * 1024  # several chunks of the fake hub's 1 KiB
    return result.path


@pytest.fixture
def hub() -> FakeHub:
    return FakeHub(chunk_bytes=1024)


def _client(hub: FakeHub, token_leeway: int = 30) -> HubClient:
    return HubClient(
        hub.url,
        CLIENT_ID,
        CLIENT_SECRET,
        transport=hub.transport(),
        retry=FAST,
        token_leeway=token_leeway,
    )


def _stored(hub: FakeHub, extract_id: str) -> bytes:
    return bytes(hub.extracts[extract_id]["_bytes"])


def test_upload_in_chunks_then_commit(hub: FakeHub, extract: Path, key: NetworkKey) -> None:
    seen: list[tuple[int, int]] = []
    with _client(hub) as client:
        outcome = client.upload(
            extract,
            dataset="corridor_flows",
            contract_version=1,
            on_progress=lambda done, total: seen.append((done, total)),
        )
    size = extract.stat().st_size
    assert not outcome.duplicate and outcome.sent == size and outcome.resumed_from == 0
    assert _stored(hub, outcome.extract.id) == extract.read_bytes()
    assert outcome.extract.key_id == key.key_id and outcome.extract.rows == 400
    assert len(hub.calls("PATCH")) == -(-size // 1024)
    assert seen[0] == (0, size) and seen[-1] == (size, size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert hub.token_requests == 1


def test_same_content_twice_is_a_duplicate_and_sends_nothing(hub: FakeHub, extract: Path) -> None:
    with _client(hub) as client:
        first = client.upload(extract, dataset="corridor_flows", contract_version=1)
        patches = len(hub.calls("PATCH"))
        again = client.upload(extract, dataset="corridor_flows", contract_version=1)
    assert again.duplicate and again.extract.id == first.extract.id and again.sent == 0
    assert len(hub.calls("PATCH")) == patches and len(hub.extracts) == 1


def test_lost_responses_resume_from_the_hubs_offset(hub: FakeHub, extract: Path) -> None:
    hub.fail("PATCH", "/v1/uploads/", "lost", times=3)  # applied, but the answer never came
    with _client(hub) as client:
        outcome = client.upload(extract, dataset="corridor_flows", contract_version=1)
    assert _stored(hub, outcome.extract.id) == extract.read_bytes()
    assert hub.calls("PATCH").count(409) == 3  # each resend learnt the offset from a 409
    assert outcome.sent == extract.stat().st_size  # no byte counted twice


def test_refused_connections_and_5xx_are_retried(hub: FakeHub, extract: Path) -> None:
    hub.fail("POST", "/v1/uploads", "connect", times=2)
    hub.fail("PATCH", "/v1/uploads/", "503", times=3)
    hub.fail("POST", "/commit", "503", times=1)
    with _client(hub) as client:
        outcome = client.upload(extract, dataset="corridor_flows", contract_version=1)
    assert _stored(hub, outcome.extract.id) == extract.read_bytes()
    assert hub.calls("PATCH").count(503) == 3


def test_an_interrupted_upload_resumes_in_a_new_client(hub: FakeHub, extract: Path) -> None:
    hub.fail("PATCH", "/v1/uploads/", "connect", times=FAST.attempts)
    hub.failures[0].times = 0  # let a few chunks through first
    sent_before = 0

    def stop_after_three(done: int, total: int) -> None:
        nonlocal sent_before
        sent_before = done
        if done >= 3 * 1024:
            hub.failures[0].times = FAST.attempts  # the network goes away for good

    with _client(hub) as client, pytest.raises(Unavailable) as caught:
        client.upload(
            extract, dataset="corridor_flows", contract_version=1, on_progress=stop_after_three
        )
    assert "https://hub.test" in str(caught.value) and "4 attempts" in str(caught.value)
    assert sent_before == 3 * 1024 and not hub.extracts
    with _client(hub) as fresh:
        outcome = fresh.upload(extract, dataset="corridor_flows", contract_version=1)
    assert outcome.resumed_from == 3 * 1024
    assert outcome.sent == extract.stat().st_size - 3 * 1024
    assert _stored(hub, outcome.extract.id) == extract.read_bytes()


def test_an_upload_that_vanished_before_commit_starts_again(hub: FakeHub, extract: Path) -> None:
    hub.fail("POST", "/commit", "expire")  # the hub's sweeper removed it meanwhile
    with _client(hub) as client:
        outcome = client.upload(extract, dataset="corridor_flows", contract_version=1)
    assert _stored(hub, outcome.extract.id) == extract.read_bytes()
    assert hub.calls("POST", "/v1/uploads", exact=True) == [201, 201]
    assert hub.calls("POST", "/commit") == [404, 201]


def test_a_lost_commit_answer_is_found_as_a_duplicate(hub: FakeHub, extract: Path) -> None:
    hub.fail("POST", "/commit", "lost")
    with _client(hub) as client:
        outcome = client.upload(extract, dataset="corridor_flows", contract_version=1)
    assert outcome.duplicate and len(hub.extracts) == 1
    assert outcome.extract.id in hub.extracts


def test_tokens_are_refreshed_when_they_expire_or_are_revoked(hub: FakeHub, extract: Path) -> None:
    hub.token_ttl = 5
    with _client(hub, token_leeway=10) as client:  # every token looks expired at once
        client.me()  # the first token, then authlib finds it already stale: a second one
        client.me()  # stale again: a third
        assert hub.token_requests == 3
        assert hub.calls("GET", "/v1/me") == [200, 200]
    hub.token_ttl = 900
    with _client(hub) as client:
        client.me()
        hub.revoke_tokens()  # e.g. the hub rotated its signing key
        assert client.me()["org"] == "org_test"
        assert hub.calls("GET", "/v1/me").count(401) == 1


def test_wrong_credentials_are_an_auth_error(hub: FakeHub) -> None:
    client = HubClient(hub.url, CLIENT_ID, "wrong", transport=hub.transport(), retry=FAST)
    with client, pytest.raises(AuthError, match="refused the credentials of client cli_test"):
        client.authenticate()


def test_4xx_carries_the_problem_document(hub: FakeHub, extract: Path) -> None:
    with _client(hub) as client, pytest.raises(HubRequestError) as caught:
        client.upload(extract, dataset="shoe_sizes", contract_version=1)
    err = caught.value
    assert err.http_status == 404 and err.problem_code == "unknown_dataset"
    assert err.field == "dataset" and "unknown dataset 'shoe_sizes'" in str(err)
    # the hub's own status, not the class's 400 (its own problem is problem_body)
    assert err.status == 404 and err.problem()["status"] == 404
    assert err.problem_body["code"] == "unknown_dataset"


def test_unreachable_hub_is_unavailable_after_bounded_retries(hub: FakeHub) -> None:
    hub.fail("POST", "/oauth/token", "connect", times=100)
    with _client(hub) as client, pytest.raises(Unavailable, match="after 4 attempts"):
        client.me()
    assert 100 - hub.failures[0].times == FAST.attempts


def test_list_get_and_withdraw(hub: FakeHub, extract: Path) -> None:
    with _client(hub) as client:
        made = client.upload(extract, dataset="corridor_flows", contract_version=1).extract
        assert [e.id for e in client.list_extracts()] == [made.id]
        assert client.list_extracts(dataset="bank_alerts") == []
        assert (
            client.get_extract(made.id).sha256 == hashlib.sha256(extract.read_bytes()).hexdigest()
        )
        gone = client.withdraw(made.id)
        assert gone.status == "withdrawn" and gone.withdrawn_at is not None
        assert client.list_extracts() == []
        assert [e.status for e in client.list_extracts(include_withdrawn=True)] == ["withdrawn"]
        with pytest.raises(HubRequestError) as caught:
            client.get_extract("ext_missing")
        assert caught.value.http_status == 404
        assert "corridor_flows" in {c["dataset"] for c in client.contracts()}
        assert client.health()["status"] == "ok"


def test_credentials_from_arguments_or_environment() -> None:
    with pytest.raises(ConfigError) as caught:
        HubClient.from_env(environ={"TAHUB_HUB_URL": "https://h"})
    assert "TAHUB_CLIENT_ID, TAHUB_CLIENT_SECRET" in str(caught.value)
    env = {
        "TAHUB_HUB_URL": "https://h/",
        "TAHUB_CLIENT_ID": "a",
        "TAHUB_CLIENT_SECRET": "very-secret",
    }
    with HubClient.from_env(environ=env) as client:
        assert client.url == "https://h" and client.client_id == "a"
        assert "very-secret" not in repr(client)
    with HubClient.from_env("http://other", environ=env) as client:
        assert client.url == "http://other"
    with pytest.raises(ConfigError, match="must start with http"):
        HubClient("ftp://x", "a", "b")

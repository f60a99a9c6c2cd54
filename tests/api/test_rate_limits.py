"""Rate limits and request-size limits over real HTTP (hub.api.ratelimit, hub.api.bodylimit).

A real hub with one bank's committed extract and a one-partner policy, so queries really
spend budget. Each test gets fresh limiters on a clock it moves by hand (the real
``RateLimits``, only its clock injected), so "after waiting" takes no time. Every refusal
is checked to leave the budget, the ledger and the audit log unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hub.actors import MemberKind, Role
from hub.api.ratelimit import RateLimits
from hub.governance.audit import AuditLog
from tests.api.conftest import Hub, running_hub
from tests.api.test_queries import _upload
from tests.hub.extract_files import valid_rows, write_extract

PROBLEM = "application/problem+json"
MAX_JSON = 2048

POLICY = """
dataset: bank_alerts
accounting: zcdp
opened: "2020-01-01"
min_partners: 1
contribution_bounds: {max_rows: 10}
budget: {global: "1000", per_member: "100", per_query: "10"}
rules:
  - name: analysts
    who: {roles: [analyst]}
    dimensions: [origin_country, destination_country]
    max_dimensions: 2
    filters: [period]
    measures: [count]
"""


def _query(cost: str = "1") -> dict[str, Any]:
    return {"dataset": "bank_alerts", "group_by": ["origin_country"], "measures": ["count"],
            "cost": cost}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    hub: Hub
    clock: Clock

    def analyst(self, name: str) -> httpx.Client:
        creds = self.hub.member(name, (Role.ANALYST,), MemberKind.OTHER)
        return self.hub.authed(creds)

    def limits(self, *, query: int = 0, upload: int = 0, other: int = 0, token: int = 0) -> None:
        """Fresh limiters (0: no limit) on this world's clock."""
        self.hub.app.state.rate_limits = RateLimits.per_minute(
            query=query, upload=upload, other=other, token=token, clock=self.clock)

    def audit_head(self) -> int:
        head = AuditLog(self.hub.services.engine).head()
        return head[0] if head else 0


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("limits")
    policies = base / "policies"
    policies.mkdir()
    (policies / "bank_alerts.yaml").write_text(POLICY)
    with running_hub(base / "data", policies_dir=policies, max_json_bytes=MAX_JSON) as hub:
        contract = hub.services.registry.get("bank_alerts", 1)
        # bigger than MAX_JSON: upload chunks keep their own limit (TAHUB_CHUNK_BYTES)
        path = write_extract(base / "bank.parquet", contract, valid_rows(contract, 400))
        assert path.stat().st_size > MAX_JSON
        with hub.authed(hub.member("Limits Bank")) as http:
            _upload(http, path, contract)
        yield World(hub, Clock())


@pytest.fixture
def limited(world: World) -> Iterator[World]:
    world.limits()
    yield world
    world.limits()


def _state(http: httpx.Client) -> tuple[Any, Any]:
    budget, releases = http.get("/v1/budgets/bank_alerts"), http.get("/v1/queries")
    assert budget.status_code == releases.status_code == 200, (budget.text, releases.text)
    return budget.json(), releases.json()


def _assert_rate_limited(resp: httpx.Response, rule: str, retry_after: int) -> None:
    assert resp.status_code == 429, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["retry-after"] == str(retry_after)
    body = resp.json()
    assert (body["code"], body["rule"], body["retry_after"]) == ("rate_limited", rule,
                                                                  retry_after)


def test_member_over_its_query_limit_is_refused_and_nothing_changes(limited: World) -> None:
    limited.limits(query=2)
    with limited.analyst("Hasty Org") as hasty, limited.analyst("Patient Org") as patient:
        for cost in ("1", "2"):
            assert hasty.post("/v1/queries", json=_query(cost)).status_code == 200
        before, audit_before = _state(hasty), limited.audit_head()
        assert before[0]["member"]["spent"] == "3"

        refused = hasty.post("/v1/queries", json=_query("3"))
        _assert_rate_limited(refused, "rate_limit:query", 30)  # 2 a minute: one in 30 s
        estimate = hasty.post("/v1/queries/estimate", json=_query("3"))
        _assert_rate_limited(estimate, "rate_limit:query", 30)  # the same bucket
        assert _state(hasty) == before and limited.audit_head() == audit_before

        # another member has its own bucket; other routes of the first are not limited
        assert patient.post("/v1/queries", json=_query("1")).status_code == 200
        assert hasty.get("/v1/budgets").status_code == 200

        limited.clock.now += 29.5
        _assert_rate_limited(hasty.post("/v1/queries", json=_query("3")), "rate_limit:query", 1)
        limited.clock.now += 0.5  # one token back
        again = hasty.post("/v1/queries", json=_query("3"))
        assert again.status_code == 200, again.text
        assert again.json()["budget"]["member"]["spent"] == "6"
        _assert_rate_limited(hasty.post("/v1/queries", json=_query("4")), "rate_limit:query", 30)


def test_upload_and_other_routes_have_their_own_limits(limited: World) -> None:
    limited.limits(upload=1, other=1)
    with limited.hub.authed(limited.hub.member("Busy Bank")) as http:
        assert http.get("/v1/uploads/upl_missing").status_code == 404
        _assert_rate_limited(http.get("/v1/uploads/upl_missing"), "rate_limit:upload", 60)
        assert http.get("/v1/budgets").status_code in (200, 403)
        _assert_rate_limited(http.get("/v1/budgets"), "rate_limit:other", 60)


def test_token_flood_from_one_address_is_refused_and_not_audited(limited: World) -> None:
    limited.limits(token=3)
    creds = limited.hub.member("Flooded Bank")
    with limited.hub.client() as http:
        for _ in range(3):
            wrong = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(creds.client_id, "not-the-secret"))
            assert wrong.status_code == 401
        audit_before = limited.audit_head()
        for _ in range(20):
            flood = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                              auth=(creds.client_id, "not-the-secret"))
            _assert_rate_limited(flood, "rate_limit:token", 20)
        # the right secret too: the limit is the address's, before any sign-in
        _assert_rate_limited(http.post(
            "/oauth/token", data={"grant_type": "client_credentials"},
            auth=(creds.client_id, creds.client_secret)), "rate_limit:token", 20)
        assert limited.audit_head() == audit_before
        limited.clock.now += 20
        good = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                         auth=(creds.client_id, creds.client_secret))
        assert good.status_code == 200, good.text


def test_oversized_json_body_is_refused_before_parsing(limited: World) -> None:
    big = {**_query("1"), "padding": "x" * MAX_JSON}
    with limited.analyst("Verbose Org") as http:
        before, audit_before = _state(http), limited.audit_head()
        declared = http.post("/v1/queries", json=big)
        assert declared.status_code == 413, declared.text
        assert declared.headers["content-type"] == PROBLEM
        body = declared.json()
        assert (body["code"], body["field"], body["max_json_bytes"]) == (
            "too_large", "body", MAX_JSON)
        assert body["request_id"] == declared.headers["x-request-id"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the streaming guard
            yield b'{"dataset": "bank_alerts", "padding": "'
            for _ in range(8):
                yield b"x" * 512
            yield b'"}'

        streamed = http.post("/v1/queries", content=chunks(),
                             headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413, streamed.text
        assert streamed.json()["code"] == "too_large"
        assert _state(http) == before and limited.audit_head() == audit_before
        # a body within the limit, streamed the same way, reaches the route intact
        parts = [b'{"dataset": "bank_alerts", "group_by": ["origin_country"], ',
                 b'"measures": ["count"], "cost": "1"}']
        small = http.post("/v1/queries", content=iter(parts),
                          headers={"Content-Type": "application/json"})
        assert small.status_code == 200, small.text

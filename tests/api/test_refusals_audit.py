"""Every refusal is audited, with the rule that refused, and a burst is folded into a count.

A real hub on loopback (folding window: 4 s). Budget, policy, role and input refusals of
queries, and a refused policy proposal, each leave a ``request.refused`` entry naming the
actor, the route template, the code and the rule; 25 identical refusals in one burst are two
entries (the first at once, then one with ``count: 24`` when the window closes); the data
owners see the refusals of their dataset; no entry carries what was sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hub.actors import MemberKind, Role
from hub.identity.service import Credentials
from hub.storage.db import audit_entries
from tests.api.conftest import Hub, running_hub
from tests.api.conftest import upload_extract as upload
from tests.api.test_queries import CORRIDORS, POLICY_BANK
from tests.hub.extract_files import valid_rows, write_extract

WINDOW = 4  # seconds: longer than a burst of 25 refused queries takes


@dataclass
class World:
    hub: Hub
    analyst: Credentials
    banks: list[Credentials]
    gov: Credentials

    def refusals(self) -> list[dict[str, Any]]:
        audit = self.hub.services.ingest.audit
        return [{"actor": e.actor, "org": e.org, "dataset": e.dataset, **e.details}
                for e in audit.scan(audit_entries.c.action == "request.refused")]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("refusals")
    (base / "policies").mkdir()
    (base / "policies" / "bank_alerts.yaml").write_text(POLICY_BANK)
    with running_hub(base / "data", policies_dir=base / "policies",
                     audit_fold_seconds=WINDOW) as hub:
        identity = hub.services.identity
        w = World(
            hub=hub,
            analyst=identity.register_member("Probing Analysts", MemberKind.OTHER,
                                             (Role.ANALYST,)),
            banks=[identity.register_member(f"Owner Bank {i}", MemberKind.BANK,
                                            (Role.PARTNER,)) for i in range(2)],
            gov=identity.register_member("Board", MemberKind.OTHER, (Role.GOVERNANCE,)),
        )
        contract = hub.services.registry.get("bank_alerts", 1)
        for i, bank in enumerate(w.banks):
            path = write_extract(base / f"b{i}.parquet", contract,
                                 valid_rows(contract, 20, seed=i * 40))
            with hub.authed(bank) as http:
                upload(http, path, contract)
        yield w


def _since(world: World, before: int) -> list[dict[str, Any]]:
    return world.refusals()[before:]


def test_a_burst_of_budget_refusals_is_two_entries_with_the_rule(world: World) -> None:
    before = len(world.refusals())
    over = {**CORRIDORS, "measures": ["count"], "cost": "11"}  # per_query is 10
    with world.hub.authed(world.analyst) as http:
        for _ in range(25):
            resp = http.post("/v1/queries", json=over)
            assert resp.status_code == 403 and resp.json()["rule"] == "budget:per_query"
    (first,) = _since(world, before)
    assert first == {
        "actor": world.analyst.client_id, "org": world.analyst.org_id,
        "dataset": "bank_alerts", "method": "POST", "route": "/v1/queries", "status": 403,
        "code": "budget_exceeded", "rule": "budget:per_query", "field": "cost", "count": 1}
    deadline = time.monotonic() + 10 * WINDOW
    while len(_since(world, before)) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    first, folded = _since(world, before)
    assert folded["count"] == 24 and folded["folded"] is True
    assert folded["window_seconds"] == WINDOW and folded["first_at"] <= folded["last_at"]
    assert {k: folded[k] for k in ("actor", "route", "rule", "dataset")} == {
        k: first[k] for k in ("actor", "route", "rule", "dataset")}
    # the data owners see who probed their dataset; the chain still verifies
    with world.hub.authed(world.banks[0]) as http:
        usage = http.get("/v1/audit/usage", params={"action": "request.refused"}).json()
    assert [e["details"]["count"] for e in usage["entries"]][-2:] == [1, 24]
    assert world.hub.services.ingest.audit.verify().ok


@pytest.mark.parametrize(("who", "method", "path", "body", "status", "code", "rule"), [
    ("analyst", "post", "/v1/queries",
     {**CORRIDORS, "group_by": ["indicator"], "measures": ["count"], "cost": "1"},
     403, "forbidden", "analysts:dimensions"),
    ("analyst", "post", "/v1/queries", {**CORRIDORS, "measures": ["median"], "cost": "1"},
     422, "invalid_input", None),
    ("analyst", "post", "/v1/queries", {"dataset": "nope", "measures": ["count"], "cost": "1"},
     404, "unknown_dataset", None),
    ("bank", "post", "/v1/queries", {**CORRIDORS, "measures": ["count"], "cost": "1"},
     403, "forbidden", "role:analyst"),
    ("gov", "post", "/v1/governance/proposals",
     {"yaml": POLICY_BANK + "min_partners: 1\n"}, 422, "policy_invalid", None),
    ("analyst", "get", "/v1/queries/q_0000000000000000", None, 404, "not_found", None),
])
def test_each_kind_of_refusal_is_audited_with_what_refused_it(
    world: World, who: str, method: str, path: str, body: dict[str, Any] | None,
    status: int, code: str, rule: str | None,
) -> None:
    creds = {"analyst": world.analyst, "bank": world.banks[1], "gov": world.gov}[who]
    before = len(world.refusals())
    with world.hub.authed(creds) as http:
        resp: httpx.Response = getattr(http, method)(path, **({"json": body} if body else {}))
        assert resp.status_code == status and resp.json()["code"] == code, resp.text
        sent = resp.json()
    (entry,) = [e for e in _since(world, before) if not e.get("folded")]
    assert (entry["actor"], entry["status"], entry["code"], entry["rule"]) == (
        creds.client_id, status, code, sent.get("rule"))
    assert rule is None or entry["rule"] == rule
    assert entry["field"] == sent.get("field") and entry["count"] == 1
    assert "detail" not in entry and sent["detail"] not in str(entry)
    assert "q_0000000000000000" not in str(entry)  # the route template, not the path


def test_unauthenticated_refusals_are_not_request_entries(world: World) -> None:
    before = len(world.refusals())
    with world.hub.client() as http:
        assert http.post("/v1/queries", json={}).status_code == 401
        assert http.get("/v1/queries", headers={"Authorization": "Bearer x.y.z"}
                        ).status_code == 401
    assert _since(world, before) == []  # 401s are auth.bearer_refused (hub.identity)


def test_a_refusal_still_answers_when_the_audit_store_fails(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hub.errors import Unavailable
    from hub.governance.audit import AuditLog

    def down(*_args: object, **_kwargs: object) -> None:
        raise Unavailable("the metadata store is unavailable; retry later")

    with world.hub.authed(world.banks[0]) as http:
        monkeypatch.setattr(AuditLog, "append", down)
        resp = http.post("/v1/queries", json={**CORRIDORS, "measures": ["count"], "cost": "2"})
    assert resp.status_code == 403 and resp.json()["rule"] == "role:analyst"

"""Four-eyes policy changes over real HTTP: a real hub, two banks' extracts, a real ledger.

An analyst runs out of budget; one governance officer proposes a raise, a second approves it
and the analyst can query again. Every refusal is problem+json naming its rule or field and
changes nothing: the active version, the pending proposals and the analyst's budget stay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from connectors.common.amounts import amount
from hub.actors import MemberKind, Role
from hub.cli.main import app as tahub_app
from hub.identity.service import Credentials
from tests.api.conftest import Hub, running_hub

PROBLEM = "application/problem+json"
POLICY = """\
dataset: bank_alerts
accounting: zcdp
opened: "2020-01-01"
min_partners: 2
contribution_bounds: {max_rows: 10}
budget: {global: "1000", per_member: "1/50", per_query: "1/50"}
rules:
  - name: analysts
    who: {roles: [analyst]}
    dimensions: [origin_country, period]
    max_dimensions: 1
    filters: [period]
    measures: [count]
"""
RAISED = POLICY.replace('per_member: "1/50"', 'per_member: "1"')


@dataclass
class World:
    hub: Hub
    analyst: Credentials
    officer_a: Credentials
    officer_a2: Credentials
    officer_b: Credentials
    partner: Credentials

    def state(self) -> Any:
        """What a refusal must not change: versions and approvals, the analyst's budget."""
        changes = self.hub.services.policy_changes
        with self.hub.services.engine.connect() as conn:
            versions = conn.exec_driver_sql(
                "SELECT id, status, number FROM policy_versions ORDER BY id").all()
            approvals = conn.exec_driver_sql("SELECT * FROM policy_approvals").all()
        with self.hub.authed(self.analyst) as http:
            budget = http.get("/v1/budgets/bank_alerts").json()
        return versions, approvals, budget, [v.id for v in changes.active_versions()]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("governance")
    (base / "policies").mkdir()
    (base / "policies" / "bank_alerts.yaml").write_text(POLICY)
    with running_hub(base / "data", policies_dir=base / "policies") as hub:
        hub.pool(base, name="Gov Bank")
        identity = hub.services.identity
        a = identity.register_member("Gov Org A", MemberKind.NGO, (Role.ANALYST,))
        officer_a = identity.add_client(a.org_id, (Role.GOVERNANCE,))
        officer_a2 = identity.add_client(a.org_id, (Role.GOVERNANCE,))
        b = identity.register_member("Gov Org B", MemberKind.LAW_ENFORCEMENT,
                                     (Role.GOVERNANCE,))
        partner = hub.member("Gov Partner Only")
        yield World(hub, a, officer_a, officer_a2, b, partner)


def _query(http: httpx.Client, period: str) -> httpx.Response:
    return http.post("/v1/queries", json={
        "dataset": "bank_alerts", "group_by": ["origin_country"], "measures": ["count"],
        "filters": {"period": {"from": "2020-01", "to": period}}, "cost": "1/50"})


def _refused(resp: httpx.Response, status: int, **facts: Any) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = resp.json()
    for key, value in facts.items():
        assert body[key] == value, body
    return body


def test_a_budget_raise_is_proposed_approved_by_another_officer_and_applies(
    world: World,
) -> None:
    hub = world.hub
    with (hub.authed(world.analyst) as analyst, hub.authed(world.officer_a) as gov_a,
          hub.authed(world.officer_b) as gov_b):
        first = _query(analyst, "2030-01")
        assert first.status_code == 200, first.text
        _refused(_query(analyst, "2030-02"), 403, rule="budget:member")

        active = gov_a.get("/v1/governance/policies").json()
        assert [(p["dataset"], p["version"], p["pending"]) for p in active] == [
            ("bank_alerts", 1, 0)]
        assert active[0]["yaml"] == POLICY

        resp = gov_a.post("/v1/governance/proposals",
                          json={"yaml": RAISED, "note": "the pilot needs more"})
        assert resp.status_code == 201, resp.text
        proposal = resp.json()
        assert proposal["outcome"] == "proposed" and proposal["status"] == "pending"
        assert proposal["budget_changed"] is True
        assert proposal["limits_before"]["per_member"] == "1/50"
        assert proposal["limits"]["per_member"] == "1"
        assert '+budget: {global: "1000", per_member: "1", per_query: "1/50"}' in proposal["diff"]
        _refused(_query(analyst, "2030-02"), 403, rule="budget:member")  # not yet

        before = world.state()
        _refused(gov_a.post(f"/v1/governance/proposals/{proposal['id']}/approve"), 403,
                 rule="four-eyes:own-proposal")
        _refused(analyst.post(f"/v1/governance/proposals/{proposal['id']}/approve"), 403,
                 rule="role:governance")
        assert world.state() == before

        listed = gov_b.get("/v1/governance/proposals").json()
        assert [p["id"] for p in listed] == [proposal["id"]]
        shown = gov_b.get(f"/v1/governance/proposals/{proposal['id']}").json()
        assert shown["yaml"] == RAISED and shown["diff"] == proposal["diff"]

        approved = gov_b.post(f"/v1/governance/proposals/{proposal['id']}/approve",
                              json={"note": "checked"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "active"
        resp = _query(analyst, "2030-02")
        assert resp.status_code == 200, resp.text
        assert resp.json()["budget"]["member"]["left"] == "24/25"

        entries = gov_b.get("/v1/audit", params={"action": "budget.changed"}).json()["entries"]
        assert entries[-1]["details"]["after"]["per_member"] == "1"
        approvals = gov_b.get("/v1/audit", params={"action": "policy.approved"}).json()
        assert approvals["entries"][-1]["actor"] == world.officer_b.client_id
        spent = gov_b.get("/v1/governance/budgets").json()
        (bank,) = spent
        (member,) = bank["members"]
        assert member["org"] == world.analyst.org_id and member["member"]["spent"] == "1/25"
        series = gov_b.get("/v1/governance/budgets/history",
                           params={"dataset": "bank_alerts"}).json()
        assert [(p["org"], p["spent"]) for p in series] == [
            (world.analyst.org_id, "1/50"), (world.analyst.org_id, "1/25")]
        assert series[0]["at"] <= series[1]["at"]
        # an officer sees its own organisation's queries (to publish them), no other's
        with hub.authed(world.officer_a) as officer:
            assert len(officer.get("/v1/queries").json()) == 2
        assert gov_b.get("/v1/queries").json() == []


def test_a_bad_policy_file_is_refused_with_its_line_and_changes_nothing(world: World) -> None:
    with world.hub.authed(world.officer_a) as gov:
        before = world.state()
        bad = POLICY.replace("max_dimensions: 1", "max_dimensions: 0")
        body = _refused(gov.post("/v1/governance/proposals/file",
                                 files={"file": ("bank_alerts.yaml", bad.encode())}), 422,
                        code="policy_invalid")
        (error,) = body["errors"]
        assert error["field"] == "rules.0.max_dimensions"
        assert bad.splitlines()[error["line"] - 1].strip() == "max_dimensions: 0"
        yaml_error = _refused(gov.post("/v1/governance/proposals/file",
                                       files={"file": ("bank_alerts.yaml", b"rules: [\n")}),
                              422, code="policy_invalid")
        assert yaml_error["errors"][0]["line"] == 2
        # a key written twice: YAML would keep the last one, so the text is refused
        twice = RAISED + 'min_partners: 1\n'
        for answer in (gov.post("/v1/governance/proposals", json={"yaml": twice}),
                       gov.post("/v1/governance/proposals/file",
                                files={"file": ("bank_alerts.yaml", twice.encode())})):
            (dup,) = _refused(answer, 422, code="policy_invalid")["errors"]
            assert (dup["field"], dup["line"]) == ("min_partners", len(RAISED.splitlines()) + 1)
            assert "duplicate key 'min_partners' (first at line" in dup["reason"]
        _refused(gov.post("/v1/governance/proposals/file",
                          files={"file": ("other.yaml", POLICY.encode())}), 422,
                 code="policy_invalid")
        _refused(gov.post("/v1/governance/proposals/file",
                          files={"file": ("bank_alerts.yaml", b"\xff\xfe")}), 422,
                 field="file")
        _refused(gov.post("/v1/governance/proposals", json={"yaml": RAISED, "restore": 1}),
                 422, field="yaml")
        _refused(gov.post("/v1/governance/proposals",
                          json={"yaml": RAISED.replace("1000", "999"),
                                "effective_at": "next tuesday"}), 422, field="effective_at")
        assert world.state() == before
        dry = gov.post("/v1/governance/proposals/file", data={"dry_run": "true"},
                       files={"file": ("bank_alerts.yaml",
                                       RAISED.replace("1000", "999").encode())})
        assert dry.status_code == 200 and dry.json()["outcome"] == "valid", dry.text
        assert world.state() == before


def test_reject_with_a_reason_then_it_cannot_be_approved(world: World) -> None:
    with (world.hub.authed(world.officer_a) as gov_a, world.hub.authed(world.officer_a2)
          as gov_a2, world.hub.authed(world.officer_b) as gov_b):
        text = RAISED.replace("max_dimensions: 1", "max_dimensions: 2")
        created = gov_a.post("/v1/governance/proposals", json={"yaml": text}).json()
        _refused(gov_b.post(f"/v1/governance/proposals/{created['id']}/reject"), 422,
                 field="reason")
        rejected = gov_b.post(f"/v1/governance/proposals/{created['id']}/reject",
                              json={"reason": "two dimensions need a DPIA first"})
        assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
        before = world.state()
        _refused(gov_a2.post(f"/v1/governance/proposals/{created['id']}/approve"), 409,
                 rule="proposal:status")
        _refused(gov_a2.post("/v1/governance/proposals/pv_0000/approve"), 404)
        assert world.state() == before
        history = gov_a.get("/v1/governance/proposals",
                            params={"status": "rejected"}).json()
        assert history[0]["reason"] == "two dimensions need a DPIA first"
        _refused(gov_a.get("/v1/governance/proposals", params={"status": "maybe"}), 422,
                 field="status")


def test_only_governance_officers_reach_the_governance_routes(world: World) -> None:
    routes = [("GET", "/v1/governance/policies"), ("GET", "/v1/governance/proposals"),
              ("GET", "/v1/governance/proposals/pv_x"),
              ("GET", "/v1/governance/policies/bank_alerts/versions/1"),
              ("GET", "/v1/governance/budgets"),
              ("POST", "/v1/governance/proposals"),
              ("POST", "/v1/governance/proposals/pv_x/approve"),
              ("POST", "/v1/governance/proposals/pv_x/reject"),
              ("POST", "/v1/governance/proposals/pv_x/withdraw"),
              ("POST", "/v1/governance/bounds")]
    for creds in (world.partner, world.analyst):
        with world.hub.authed(creds) as http:
            for method, path in routes:
                body = {"yaml": RAISED} if method == "POST" else None
                _refused(http.request(method, path, json=body), 403, rule="role:governance")
    with world.hub.client() as anonymous:
        for method, path in routes:
            _refused(anonymous.request(method, path), 401)
    with world.hub.authed(world.partner) as partner:  # every member sees its own budgets
        assert partner.get("/v1/budgets").json() == []
        assert partner.get("/v1/policies/mine").json() == []


def _env(world: World, creds: Credentials) -> dict[str, str]:
    return {"TAHUB_HUB_URL": world.hub.url, "TAHUB_CLIENT_ID": creds.client_id,
            "TAHUB_CLIENT_SECRET": creds.client_secret, "COLUMNS": "200"}


def test_the_cli_exports_imports_proposes_and_approves(world: World, tmp_path: Path) -> None:
    runner = CliRunner()
    gov_a, gov_b = _env(world, world.officer_a), _env(world, world.officer_b)
    folder = tmp_path / "policies"
    exported = runner.invoke(tahub_app, ["policy", "export", "--out", str(folder)], env=gov_a)
    assert exported.exit_code == 0, exported.output
    path = folder / "bank_alerts.yaml"
    active = world.hub.services.policy_changes.active_versions()[0]
    assert path.read_text() == active.text  # exact text, ready for git

    unchanged = runner.invoke(tahub_app, ["policy", "import", str(folder)], env=gov_a)
    assert unchanged.exit_code == 0 and f"unchanged: {path}" in unchanged.output

    path.write_text(active.text.replace("max_dimensions: 1", "max_dimensions: 0"))
    before = world.state()
    refused = runner.invoke(tahub_app, ["policy", "import", str(folder)], env=gov_a)
    assert refused.exit_code == 1
    line = path.read_text().splitlines().index("    max_dimensions: 0") + 1
    assert f"{path}:{line}: rules.0.max_dimensions:" in refused.stderr
    assert world.state() == before

    path.write_text(active.text.replace('global: "1000"', 'global: "2000"'))
    imported = runner.invoke(tahub_app, ["policy", "import", str(path), "--note", "git"],
                             env=gov_a)
    assert imported.exit_code == 0, imported.output
    found = re.search(r"\((pv_[0-9a-f]+), proposed\)", imported.output)
    assert found is not None, imported.output
    proposal_id = found.group(1)

    listed = runner.invoke(tahub_app, ["policy", "proposals"], env=gov_b)
    assert proposal_id in listed.output
    # people read names: the proposer is its organisation's client, never its ids
    assert "a client of Gov Org A" in listed.output
    assert world.officer_a.client_id not in listed.output
    assert world.officer_a.org_id not in listed.output
    shown = runner.invoke(tahub_app, ["policy", "show", proposal_id], env=gov_b)
    assert 'global: "2000"' in shown.output and "budget changes" in shown.output
    assert "global_total: rho 1000 -> rho 2000" in shown.output  # decimals, exact is whole
    assert "proposed by a client of Gov Org A" in shown.output
    own = runner.invoke(tahub_app, ["policy", "approve", proposal_id], env=gov_a)
    assert own.exit_code == 1 and "rule: four-eyes:own-proposal" in own.stderr
    approved = runner.invoke(tahub_app, ["policy", "approve", proposal_id, "--note", "ok"],
                             env=gov_b)
    assert approved.exit_code == 0 and ": active" in approved.output, approved.output
    assert "approved by a client of Gov Org B at" in approved.output
    policy = world.hub.services.policies.current().get("bank_alerts")
    assert policy is not None and str(policy.budget.global_total) == "2000"

    restored = runner.invoke(tahub_app, ["policy", "restore", "bank_alerts", "1", "--json"],
                             env=gov_a)
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.output)["restores"] == 1
    with world.hub.authed(world.analyst) as http:  # spent (now or by an earlier test)
        assert _query(http, "2020-12").status_code in (200, 403)
    budgets = runner.invoke(tahub_app, ["policy", "budgets"], env=gov_b)
    assert budgets.exit_code == 0, budgets.output
    assert "Gov Org A" in budgets.output and world.analyst.org_id not in budgets.output
    spent = world.hub.services.ledger.spending("bank_alerts")
    mine = next(r for r in spent if r.org == world.analyst.org_id)
    assert amount(mine.spent, exact=True) in budgets.output  # a decimal, not 1/50
    ids = runner.invoke(tahub_app, ["policy", "budgets", "--json"], env=gov_b)
    assert world.analyst.org_id in ids.output  # ids and exact amounts in --json


def test_an_officer_sizes_the_bounds_from_dp_quantiles_and_is_charged_for_it(
    world: World
) -> None:
    ask = {"dataset": "bank_alerts", "cost": "1/100", "quantiles": [0.5, 0.9]}
    with world.hub.authed(world.officer_b) as http:
        for bad, facts in (({**ask, "cost": "1"}, {"rule": "budget:per_query"}),
                           ({**ask, "quantiles": [1.5]}, {"field": "quantiles"}),
                           ({**ask, "dataset": "nothing"}, {"field": "dataset"})):
            before = http.get("/v1/budgets").json()
            refused = http.post("/v1/governance/bounds", json=bad)
            assert refused.status_code in (403, 404, 422), refused.text
            _refused(refused, refused.status_code, **facts)
            assert http.get("/v1/budgets").json() == before  # nothing spent
        first = http.post("/v1/governance/bounds", json=ask)
        again = http.post("/v1/governance/bounds", json=ask)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["reused"] is False and body["charged"]["amount"] == "1/100"
    assert body["budget"]["member"]["spent"] == "1/100"
    for name in ("rows_per_unit", "rows_per_unit_per_period"):
        released = body[name]["quantiles"]
        assert set(released) == {"0.5", "0.9"}
        assert all(1 <= v <= 1000 for v in released.values())
    assert body["rows_per_unit"]["current"] == 10 and "max_rows" in body["rows_per_unit"]["note"]
    share = body["rows_per_unit"]["left_out_share"]
    assert 0 <= share["low"] <= share["value"] <= share["high"] <= 1
    assert "left out" in body["rows_per_unit"]["note"]
    assert again.json()["reused"] is True and again.json()["charged"]["amount"] == "0"


def test_the_cli_suggests_bounds(world: World) -> None:
    runner = CliRunner()
    out = runner.invoke(tahub_app, ["policy", "suggest-bounds", "bank_alerts", "--cost",
                                    "1/200", "--quantile", "0.9"], env=_env(world, world.officer_a))
    assert out.exit_code == 0, out.output
    assert "rows per unit (current bound: 10)" in out.output
    assert "charged 1/200 (zcdp)" in out.output
    refused = runner.invoke(tahub_app, ["policy", "suggest-bounds", "bank_alerts", "--cost",
                                        "5"], env=_env(world, world.officer_a))
    assert refused.exit_code == 1 and "budget:per_query" in refused.stderr

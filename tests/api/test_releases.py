"""Published releases over real HTTP: a real hub, two banks' committed extracts, real ledger.

A governance officer of the organisation that paid for a release publishes it to every
member or to named ones; the catalogue shows each organisation exactly what reaches it, and
reading costs nothing. Each refusal is checked to name its reason and to change no state
(the publication tables, every catalogue, every budget).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from connectors import AnalystClient
from hub.actors import MemberKind, Role
from hub.cli.main import app as tahub_app
from hub.errors import HubRequestError
from hub.identity.service import Credentials
from hub.privacy.accounting import Cost
from hub.storage.db import publication_audience, publications
from tests.api.conftest import Hub, running_hub
from tests.api.test_queries import _upload
from tests.hub.extract_files import valid_rows, write_extract

PROBLEM = "application/problem+json"
POLICY = """
dataset: bank_alerts
accounting: zcdp
opened: "2020-01-01"
min_partners: 2
contribution_bounds: {max_rows: 10}
budget: {global: "1000", per_member: "10", per_query: "1"}
rules:
  - name: analysts
    who: {roles: [analyst]}
    dimensions: [origin_country, destination_country, period]
    max_dimensions: 2
    filters: [period, origin_country]
    measures: [count, {function: sum, field: amount, clamp: [0, 1000]}]
"""


@dataclass
class Org:
    id: str
    name: str
    analyst: Credentials
    governance: Credentials


@dataclass
class World:
    hub: Hub
    seq: int = 0

    def org(self, name: str) -> Org:
        """A member organisation with an analyst client and a governance client."""
        identity = self.hub.services.identity
        analyst = identity.register_member(name, MemberKind.OTHER, (Role.ANALYST,))
        governance = identity.add_client(analyst.org_id, (Role.GOVERNANCE,))
        return Org(analyst.org_id, name, analyst, governance)

    def query(self, org: Org) -> str:
        """A fresh released query of ``org`` (each one a different question): its id."""
        self.seq += 1
        body = {"dataset": "bank_alerts", "group_by": ["origin_country"],
                "measures": ["count", {"function": "sum", "field": "amount"}],
                "filters": {"period": {"from": "2020-01", "to": f"2030-{self.seq % 12 + 1:02d}"}},
                "cost": f"1/{100 + self.seq}"}
        with self.hub.authed(org.analyst) as http:
            resp = http.post("/v1/queries", json=body)
        assert resp.status_code == 200, resp.text
        query_id: str = resp.json()["query_id"]
        return query_id

    def state(self, *clients: httpx.Client) -> Any:
        """Every publication row and audience row, every budget and catalogue given."""
        with self.hub.services.engine.connect() as conn:
            pubs = sorted(tuple(r) for r in conn.execute(sa.select(publications)).all())
            audience = sorted(tuple(r) for r in
                              conn.execute(sa.select(publication_audience)).all())
        spending = self.hub.services.ledger.spending()
        views = [(c.get("/v1/releases").json(), _budgets(c)) for c in clients]
        return pubs, audience, spending, views


def _budgets(http: httpx.Client) -> Any:
    """The caller's budgets (a governance-only client has none: its 403 status)."""
    resp = http.get("/v1/budgets")
    return resp.json() if resp.status_code == 200 else resp.status_code


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("releases")
    (base / "policies").mkdir()
    (base / "policies" / "bank_alerts.yaml").write_text(POLICY)
    with running_hub(base / "data", policies_dir=base / "policies") as hub:
        contract = hub.services.registry.get("bank_alerts", 1)
        for bank in range(2):
            path = write_extract(base / f"b{bank}.parquet", contract,
                                 valid_rows(contract, 30, seed=bank * 100))
            with hub.authed(hub.member(f"Release Bank {bank}")) as http:
                _upload(http, path, contract)
        yield World(hub)


def _authed(world: World, creds: Credentials) -> httpx.Client:
    return world.hub.authed(creds)


def _publish(http: httpx.Client, query_id: str, audience: Any = "all",
             title: str = "Corridors", **extra: Any) -> httpx.Response:
    return http.post("/v1/releases", json={"query_id": query_id, "audience": audience,
                                           "title": title, **extra})


# -- publishing and reading ------------------------------------------------------------------
def test_publish_to_all_every_member_reads_it_free(world: World) -> None:
    pub, reader = world.org("Pub All Org"), world.org("Reader All Org")
    query_id = world.query(pub)
    with (_authed(world, pub.governance) as gov, _authed(world, pub.analyst) as own,
          _authed(world, reader.analyst) as other):
        paid = own.get(f"/v1/queries/{query_id}").json()
        resp = _publish(gov, query_id, title="  RO corridors,\n 2025 ", note="counts and sums")
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["id"].startswith("pub_") and body["outcome"] == "published"
        assert body["title"] == "RO corridors, 2025" and body["note"] == "counts and sums"
        assert body["audience"] == "all" and body["yours"] is True
        assert body["publisher"] == "Pub All Org" and body["dataset"] == "bank_alerts"
        assert body["query"]["dimensions"] == ["origin_country"]
        assert [m["name"] for m in body["query"]["measures"]] == ["count", "sum_amount"]
        assert body["query"]["filters"]["period"][0] == "2020-01"
        assert body["cost"] == paid["cost"] and body["mechanisms"] == ["discrete_gaussian"]
        before = world.state(own, other)
        listed = other.get("/v1/releases").json()
        entry = next(e for e in listed if e["id"] == body["id"])
        assert entry["audience"] == "all" and entry["yours"] is False
        assert "rows" not in entry
        full = other.get(f"/v1/releases/{body['id']}")
        assert full.status_code == 200, full.text
        got = full.json()
        assert got["rows"] == paid["rows"] and got["query_id"] == query_id
        assert got["charged"]["amount"] == "0" and got["reused"] is True
        assert got["budget"] is None and got["publication"]["id"] == body["id"]
        assert all({"value", "low", "high"} <= set(r["count"]) for r in got["rows"])
        assert own.get(f"/v1/releases/{body['id']}").json()["rows"] == paid["rows"]
        assert world.state(own, other) == before  # reading spends nothing, writes nothing


def test_publish_to_named_orgs_who_sees_what(world: World) -> None:
    pub, named, outsider = (world.org("Pub Named Org"), world.org("Named Org"),
                            world.org("Outsider Org"))
    query_id = world.query(pub)
    with (_authed(world, pub.governance) as gov, _authed(world, named.analyst) as reader,
          _authed(world, named.governance) as reader_gov,
          _authed(world, outsider.analyst) as stranger):
        resp = _publish(gov, query_id, [named.id, named.id])
        assert resp.status_code == 201, resp.text
        pub_id = resp.json()["id"]
        assert resp.json()["audience"] == [named.id]
        for client in (reader, reader_gov):
            entry = next(e for e in client.get("/v1/releases").json() if e["id"] == pub_id)
            assert entry["audience"] == "named"  # the publisher's list is not shown
            assert client.get(f"/v1/releases/{pub_id}").status_code == 200
        assert pub_id not in [e["id"] for e in stranger.get("/v1/releases").json()]
        hidden, missing = (stranger.get(f"/v1/releases/{pub_id}"),
                           stranger.get("/v1/releases/pub_000000000000000000000000"))
        assert hidden.status_code == missing.status_code == 404
        assert hidden.headers["content-type"].startswith(PROBLEM)
        assert hidden.json()["detail"].replace(pub_id, "X") == missing.json()[
            "detail"].replace("pub_000000000000000000000000", "X")
        # the publisher's own catalogue lists it with its audience
        own = next(e for e in gov.get("/v1/releases").json() if e["id"] == pub_id)
        assert own["audience"] == [named.id] and own["yours"] is True


def test_publishing_again_is_idempotent_and_widening_updates(world: World) -> None:
    pub, a, b = world.org("Pub Again Org"), world.org("Again A"), world.org("Again B")
    query_id = world.query(pub)
    with (_authed(world, pub.governance) as gov, _authed(world, b.analyst) as reader_b):
        first = _publish(gov, query_id, [a.id])
        assert first.status_code == 201, first.text
        before = world.state(gov, reader_b)
        again = _publish(gov, query_id, [a.id])
        assert again.status_code == 200 and again.json()["outcome"] == "unchanged"
        assert again.json()["id"] == first.json()["id"]
        assert world.state(gov, reader_b) == before
        assert first.json()["id"] not in [e["id"] for e in reader_b.get("/v1/releases").json()]
        wider = _publish(gov, query_id, [b.id, a.id])
        assert wider.status_code == 200 and wider.json()["outcome"] == "updated"
        assert wider.json()["id"] == first.json()["id"]
        assert wider.json()["audience"] == sorted([a.id, b.id])
        assert reader_b.get(f"/v1/releases/{first.json()['id']}").status_code == 200
        everyone = _publish(gov, query_id, "all", title="Now for all")
        assert everyone.json()["outcome"] == "updated" and everyone.json()["audience"] == "all"
        # narrowing is refused, naming the rule, and changes nothing
        before = world.state(gov, reader_b)
        narrower = _publish(gov, query_id, [a.id])
        assert narrower.status_code == 409, narrower.text
        assert narrower.json()["rule"] == "release:audience"
        assert world.state(gov, reader_b) == before
        # audited: the publication and each widening; not the unchanged or refused ones
        entries = gov.get("/v1/audit", params={"limit": 1000}).json()["entries"]
        assert [(e["action"], e["details"]["audience"]) for e in entries
                if e["object_id"] == first.json()["id"]] == [
            ("release.published", [a.id]), ("release.updated", sorted([a.id, b.id])),
            ("release.updated", "all")]
    with world.hub.services.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(publications).where(
            publications.c.id == first.json()["id"])).scalar_one() == 1


def test_withdrawal_hides_it_and_only_the_publisher_may(world: World) -> None:
    pub, other = world.org("Pub Withdraw Org"), world.org("Withdraw Other Org")
    query_id = world.query(pub)
    with (_authed(world, pub.governance) as gov, _authed(world, other.governance) as stranger,
          _authed(world, other.analyst) as reader, _authed(world, pub.analyst) as analyst):
        pub_id = _publish(gov, query_id).json()["id"]
        assert reader.get(f"/v1/releases/{pub_id}").status_code == 200
        before = world.state(gov, reader)
        refused = stranger.delete(f"/v1/releases/{pub_id}")
        assert refused.status_code == 404 and refused.json()["field"] == "id"
        by_analyst = analyst.delete(f"/v1/releases/{pub_id}")
        assert by_analyst.status_code == 403 and by_analyst.json()["rule"] == "role:governance"
        assert world.state(gov, reader) == before
        gone = gov.delete(f"/v1/releases/{pub_id}")
        assert gone.status_code == 204
        assert gov.delete(f"/v1/releases/{pub_id}").status_code == 204  # again: harmless
        for client in (gov, reader):
            assert pub_id not in [e["id"] for e in client.get("/v1/releases").json()]
            assert client.get(f"/v1/releases/{pub_id}").status_code == 404
        # the query's own result stays the publisher's; publishing again is a new publication
        assert analyst.get(f"/v1/queries/{query_id}").status_code == 200
        again = _publish(gov, query_id)
        assert again.status_code == 201 and again.json()["id"] != pub_id
        # each change is in the audit log, with its actor and object, never a cell value
        audit = gov.get("/v1/audit", params={"dataset": "bank_alerts", "limit": 1000}).json()
        mine = [(e["action"], e["object_id"]) for e in audit["entries"]
                if e["object_type"] == "publication" and e["org"] == pub.id]
        assert mine == [("release.published", pub_id), ("release.withdrawn", pub_id),
                        ("release.published", again.json()["id"])]
        published = next(e for e in audit["entries"] if e["object_id"] == pub_id)
        assert published["actor"] == pub.governance.client_id
        assert published["details"] == {"query_id": query_id, "audience": "all"}


# -- refusals (each names its reason and changes nothing) -------------------------------------
def test_refusals_name_the_reason_and_change_nothing(world: World) -> None:
    pub, other = world.org("Pub Refusal Org"), world.org("Refusal Other Org")
    own_query, their_query = world.query(pub), world.query(other)
    ledger = world.hub.services.ledger
    policy = world.hub.services.policies.current().get("bank_alerts")
    assert policy is not None
    shape: dict[str, Any] = {"dimensions": [], "measures": []}
    # a charge still being computed, and one whose computation failed (hub.query.ledger)
    cost = Cost.parse("zcdp", "1/1000")
    charged = ledger.charge(dataset="bank_alerts", org=pub.id, limits=policy.limits,
                            cost=cost, query_key="a" * 64, shape=shape)
    failed = ledger.charge(dataset="bank_alerts", org=pub.id, limits=policy.limits,
                           cost=cost, query_key="b" * 64, shape=shape)
    ledger.mark_failed(failed)
    partner = world.hub.member("Refusal Partner Bank")
    cases: list[tuple[str, Credentials, Any, int, str | None, str | None]] = [
        ("another organisation's release", pub.governance,
         {"query_id": their_query, "audience": "all", "title": "t"}, 404, None, "query_id"),
        ("unknown query", pub.governance,
         {"query_id": "led_nope", "audience": "all", "title": "t"}, 404, None, "query_id"),
        ("charged only", pub.governance,
         {"query_id": charged.id, "audience": "all", "title": "t"}, 409, "release:status",
         "query_id"),
        ("failed", pub.governance,
         {"query_id": failed.id, "audience": "all", "title": "t"}, 409, "release:status",
         "query_id"),
        ("unknown audience org", pub.governance,
         {"query_id": own_query, "audience": [other.id, "org_doesnotexist"], "title": "t"},
         422, None, "audience"),
        ("empty audience", pub.governance,
         {"query_id": own_query, "audience": [], "title": "t"}, 422, None, "audience"),
        ("audience neither all nor a list", pub.governance,
         {"query_id": own_query, "audience": "everyone", "title": "t"}, 422, None,
         "audience"),
        ("blank title", pub.governance,
         {"query_id": own_query, "audience": "all", "title": "  "}, 422, None, "title"),
        ("unknown field", pub.governance,
         {"query_id": own_query, "audience": "all", "title": "t", "cost": "0"}, 422, None,
         "cost"),
        ("not an object", pub.governance, ["x"], 422, None, None),
        ("analyst, not governance", pub.analyst,
         {"query_id": own_query, "audience": "all", "title": "t"}, 403, "role:governance",
         None),
        ("partner-only client", partner,
         {"query_id": own_query, "audience": "all", "title": "t"}, 403, "role:governance",
         None),
        ("governance of another organisation", other.governance,
         {"query_id": own_query, "audience": "all", "title": "t"}, 404, None, "query_id"),
    ]
    with (_authed(world, pub.governance) as gov, _authed(world, other.analyst) as reader):
        before = world.state(gov, reader)
        for what, creds, body, status, rule, field in cases:
            with _authed(world, creds) as http:
                resp = http.post("/v1/releases", json=body)
            assert resp.status_code == status, (what, resp.text)
            assert resp.headers["content-type"].startswith(PROBLEM), what
            problem = resp.json()
            assert rule is None or problem.get("rule") == rule, (what, problem)
            assert field is None or problem.get("field") == field, (what, problem)
            assert world.state(gov, reader) == before, what
            if what == "failed":
                assert problem["entry_status"] == "failed" and "is failed" in problem["detail"]


def test_reading_needs_analyst_or_governance(world: World) -> None:
    partner = world.hub.member("Catalogue Partner Bank")
    with _authed(world, partner) as http:
        for path in ("/v1/releases", "/v1/releases/pub_x"):
            resp = http.get(path)
            assert resp.status_code == 403, resp.text
            assert resp.json()["rule"] == "role:analyst|governance"
        assert http.delete("/v1/releases/pub_x").json()["rule"] == "role:governance"
    with world.hub.client() as anonymous:
        assert anonymous.get("/v1/releases").status_code == 401
        assert anonymous.post("/v1/releases", json={}).status_code == 401


# -- the Python client and `tahub query` -----------------------------------------------------
def test_client_and_cli(world: World, tmp_path: Path) -> None:
    pub, reader = world.org("Pub Client Org"), world.org("Reader Client Org")
    query_id = world.query(pub)
    url = world.hub.url
    with AnalystClient(url, pub.governance.client_id, pub.governance.client_secret) as gov:
        published = gov.publish(query_id, title="From Python", audience=[reader.id],
                                note="see the note")
        assert published.outcome == "published" and published.audience == [reader.id]
        assert gov.publish(query_id, title="From Python", audience=[reader.id],
                           note="see the note").outcome == "unchanged"
    with AnalystClient(url, reader.analyst.client_id, reader.analyst.client_secret) as hub:
        listed = hub.releases()
        entry = next(r for r in listed if r.id == published.id)
        assert entry.publisher == "Pub Client Org" and entry.audience == "named"
        assert entry.cost is not None and entry.cost.measure == "zcdp"
        result = hub.release(published.id)
        assert result.publication is not None and result.publication.title == "From Python"
        assert result.query_id == query_id and result.charged is not None
        assert result.charged.exact == 0
        assert result.to_arrow().num_rows == len(result.rows)
        with pytest.raises(HubRequestError) as refused:
            hub.publish(query_id, title="not mine")
        assert "role:governance" in str(refused.value)
    with AnalystClient(url, pub.analyst.client_id, pub.analyst.client_secret) as own:
        assert own.release(query_id).query_id == query_id  # a query id: the old route

    runner = CliRunner()
    env = {"TAHUB_HUB_URL": url, "TAHUB_CLIENT_ID": reader.analyst.client_id,
           "TAHUB_CLIENT_SECRET": reader.analyst.client_secret, "COLUMNS": "200"}
    listed_out = runner.invoke(tahub_app, ["query", "releases"], env=env)
    assert listed_out.exit_code == 0, listed_out.output
    assert "From Python" in listed_out.output and "Pub Client Org" in listed_out.output
    shown = runner.invoke(tahub_app, ["query", "release", published.id, "--csv",
                                      str(tmp_path / "r.csv")], env=env)
    assert shown.exit_code == 0, shown.output
    assert "From Python" in shown.output and "Pub Client Org" in shown.output
    assert (tmp_path / "r.csv").read_text().startswith('"origin_country"')
    as_json = runner.invoke(tahub_app, ["query", "releases", "--json"], env=env)
    assert published.id in [r["id"] for r in json.loads(as_json.output)]
    missing = runner.invoke(tahub_app, ["query", "release", "pub_000000000000000000000000"],
                            env=env)
    assert missing.exit_code == 1 and "no published release" in missing.output
    gov_env = {**env, "TAHUB_CLIENT_ID": pub.governance.client_id,
               "TAHUB_CLIENT_SECRET": pub.governance.client_secret}
    # the publisher reads whom it shared with by name (the ids in --json)
    own = runner.invoke(tahub_app, ["query", "releases"], env=gov_env)
    assert own.exit_code == 0, own.output
    audience = [line.split("│")[-2].strip() for line in own.output.splitlines()
                if line.startswith("│")]  # the last column, folded over lines
    assert "Reader Client Org" in " ".join(a for a in audience if a)
    assert reader.id not in own.output
    widened = runner.invoke(tahub_app, ["query", "publish", query_id, "--title",
                                        "From Python", "--note", "see the note"], env=gov_env)
    assert widened.exit_code == 0 and "updated" in widened.output, widened.output
    withdrawn = runner.invoke(tahub_app, ["query", "withdraw", published.id], env=gov_env)
    assert withdrawn.exit_code == 0, withdrawn.output
    after = runner.invoke(tahub_app, ["query", "releases", "--json"], env=env)
    assert published.id not in [r["id"] for r in json.loads(after.output)]

"""The authorisation matrix over every route of the API, for every role, held by a client
(client credentials) and by a person (signed in), plus object-level checks: a member only
ever reaches its own uploads, extracts, queries and the releases shared with it.

Role gating is checked with ids that do not exist: an allowed caller gets past the role check
(any answer but 401/403; typically 404 or 422), a caller without the role gets 403 naming the
rule, an anonymous one 401. A test fails if the app has a route this matrix does not list.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub
from tests.api.test_queries import _upload
from tests.hub.extract_files import valid_rows, write_extract

POLICY = """\
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
    filters: [period]
    measures: [count]
"""

PUBLIC = frozenset({"public"})
ANY = frozenset({"any"})
PARTNER = frozenset({Role.PARTNER})
ANALYST = frozenset({Role.ANALYST})
GOVERNANCE = frozenset({Role.GOVERNANCE})
READERS = frozenset({Role.ANALYST, Role.GOVERNANCE})
REVIEWER = frozenset({Role.REVIEWER})
ADMIN = frozenset({Role.ADMIN})

#: Every route of the API and who may call it.
MATRIX: dict[tuple[str, str], frozenset[Any]] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/livez"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/.well-known/jwks.json"): PUBLIC,
    ("GET", "/.well-known/openid-configuration"): PUBLIC,
    ("POST", "/oauth/token"): PUBLIC,
    ("GET", "/oauth/authorize"): PUBLIC,
    ("POST", "/oauth/authorize"): PUBLIC,
    ("GET", "/oauth/federated"): PUBLIC,
    ("GET", "/oauth/federated/callback"): PUBLIC,
    ("GET", "/v1/public/reports/challenge"): PUBLIC,  # crowd reports (docs/osint.md)
    ("POST", "/v1/public/reports"): PUBLIC,
    ("GET", "/oauth/userinfo"): ANY,
    ("GET", "/v1/me"): ANY,
    ("GET", "/v1/clients"): ANY,
    ("GET", "/v1/directory"): ANY,
    ("GET", "/v1/contracts"): ANY,
    ("GET", "/v1/contracts/{dataset}/{version}"): ANY,
    ("POST", "/v1/uploads"): PARTNER,
    ("GET", "/v1/uploads/{upload_id}"): PARTNER,
    ("PATCH", "/v1/uploads/{upload_id}"): PARTNER,
    ("DELETE", "/v1/uploads/{upload_id}"): PARTNER,
    ("POST", "/v1/uploads/{upload_id}/parts"): PARTNER,
    ("POST", "/v1/uploads/{upload_id}/commit"): PARTNER,
    ("GET", "/v1/extracts"): PARTNER,
    ("GET", "/v1/extracts/{extract_id}"): PARTNER,
    ("DELETE", "/v1/extracts/{extract_id}"): PARTNER,
    ("POST", "/v1/queries"): ANALYST,
    ("GET", "/v1/queries"): READERS,
    ("POST", "/v1/queries/estimate"): ANALYST,
    ("GET", "/v1/queries/{query_id}"): ANALYST,
    ("GET", "/v1/queries/{query_id}/export"): ANALYST,
    ("GET", "/v1/budgets"): ANY,
    ("GET", "/v1/budgets/{dataset}"): ANY,
    ("GET", "/v1/policies/mine"): ANY,
    ("GET", "/v1/releases"): READERS,
    ("POST", "/v1/releases"): GOVERNANCE,
    ("GET", "/v1/releases/{release_id}"): READERS,
    ("GET", "/v1/releases/{release_id}/export"): READERS,
    ("DELETE", "/v1/releases/{release_id}"): GOVERNANCE,
    ("GET", "/v1/audit"): GOVERNANCE,
    ("GET", "/v1/audit/export"): GOVERNANCE,
    ("GET", "/v1/audit/usage"): PARTNER,
    ("POST", "/v1/governance/proposals"): GOVERNANCE,
    ("GET", "/v1/governance/proposals"): GOVERNANCE,
    ("POST", "/v1/governance/proposals/file"): GOVERNANCE,
    ("GET", "/v1/governance/proposals/{proposal_id}"): GOVERNANCE,
    ("POST", "/v1/governance/proposals/{proposal_id}/approve"): GOVERNANCE,
    ("POST", "/v1/governance/proposals/{proposal_id}/reject"): GOVERNANCE,
    ("POST", "/v1/governance/proposals/{proposal_id}/withdraw"): GOVERNANCE,
    ("GET", "/v1/governance/policies"): GOVERNANCE,
    ("GET", "/v1/governance/policies/{dataset}/versions/{number}"): GOVERNANCE,
    ("GET", "/v1/governance/budgets"): GOVERNANCE,
    ("GET", "/v1/governance/budgets/history"): GOVERNANCE,
    ("POST", "/v1/governance/bounds"): GOVERNANCE,
    ("GET", "/v1/review/queue"): REVIEWER,
    ("POST", "/v1/review/claim"): REVIEWER,
    ("GET", "/v1/review/incidents/{incident_id}"): REVIEWER,
    ("POST", "/v1/review/incidents/{incident_id}/decision"): REVIEWER,
    ("GET", "/v1/review/precision"): REVIEWER,
    ("GET", "/v1/osint/sources"): ADMIN,
    ("POST", "/v1/osint/sources"): ADMIN,
    ("GET", "/v1/osint/sources/{source_id}"): ADMIN,
    ("PATCH", "/v1/osint/sources/{source_id}"): ADMIN,
    ("DELETE", "/v1/osint/sources/{source_id}"): ADMIN,
    ("POST", "/v1/osint/sources/{source_id}/fetch"): ADMIN,
    ("GET", "/v1/osint/sources/{source_id}/fetches"): ADMIN,
}
_PARAMS = {"dataset": "bank_alerts", "version": "1", "number": "1",
           "upload_id": "upl_missing", "extract_id": "ext_missing", "query_id": "led_missing",
           "release_id": "pub_missing", "proposal_id": "pv_missing",
           "incident_id": "inc_missing", "source_id": "src_missing"}
ROLES = (Role.PARTNER, Role.ANALYST, Role.GOVERNANCE, Role.ADMIN, Role.REVIEWER)


@dataclass
class Member:
    org: str
    tokens: dict[tuple[str, Role], str]  # ("client" | "person", role) -> bearer token


@dataclass
class World:
    hub: Hub
    a: Member
    b: Member
    c_org: str


def _member(hub: Hub, name: str) -> Member:
    identity = hub.services.identity
    first = identity.register_member(name, MemberKind.BANK, (Role.PARTNER,))
    tokens: dict[tuple[str, Role], str] = {}
    for role in ROLES:
        creds = first if role is Role.PARTNER else identity.add_client(first.org_id, (role,))
        tokens["client", role] = hub.token(creds)
        person = identity.people.add(first.org_id, f"{role.value}@{name.lower()}.example",
                                     f"{name} {role.value}", (role,)).person
        tokens["person", role] = identity.issue_person_token(person, "tahub-cli", "openid")
    return Member(first.org_id, tokens)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("matrix")
    (base / "policies").mkdir()
    (base / "policies" / "bank_alerts.yaml").write_text(POLICY)
    with running_hub(base / "data", policies_dir=base / "policies") as hub:
        a, b = _member(hub, "MatrixA"), _member(hub, "MatrixB")
        c = hub.services.identity.register_member("MatrixC", MemberKind.NGO, (Role.ANALYST,))
        contract = hub.services.registry.get("bank_alerts", 1)
        for i, member in enumerate((a, b)):
            path = write_extract(base / f"m{i}.parquet", contract,
                                 valid_rows(contract, 20, seed=i * 31))
            with _http(hub, member.tokens["client", Role.PARTNER]) as http:
                _upload(http, path, contract)
        yield World(hub, a, b, c.org_id)


def _http(hub: Hub, token: str | None) -> httpx.Client:
    http = hub.client()
    if token is not None:
        http.headers["Authorization"] = f"Bearer {token}"
    return http


def _call(http: httpx.Client, method: str, template: str) -> httpx.Response:
    path = template.format(**_PARAMS)
    if template.endswith("/file"):
        return http.post(path, files={"file": ("bank_alerts.yaml", b"dataset: x\n")})
    if method == "PATCH":
        return http.patch(path, content=b"x", headers={"Upload-Offset": "0"})
    if method in ("POST",) and not template.startswith("/oauth"):
        return http.post(path, json={})
    return http.request(method, path)


def test_the_matrix_lists_every_route(world: World) -> None:
    spec = world.hub.app.openapi()
    routes = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops
              if not p.startswith("/_test")}
    assert routes == set(MATRIX)


@pytest.mark.parametrize(("method", "template"), sorted(MATRIX))
def test_each_route_admits_exactly_its_roles(world: World, method: str, template: str
                                             ) -> None:
    allowed = MATRIX[method, template]
    with _http(world.hub, None) as anonymous:
        answer = _call(anonymous, method, template)
        if allowed is PUBLIC:
            assert answer.status_code not in (401, 403), answer.text
            return
        assert answer.status_code == 401, answer.text
    for (kind, role), token in world.a.tokens.items():
        with _http(world.hub, token) as http:
            answer = _call(http, method, template)
        who = f"{kind} with role {role.value}: {method} {template}"
        if allowed is ANY or role in allowed:
            assert answer.status_code not in (401, 403), (who, answer.text)
        else:
            assert answer.status_code == 403, (who, answer.text)
            assert answer.json()["rule"].startswith("role:"), (who, answer.json())


def test_a_member_only_reaches_its_own_objects(world: World) -> None:
    hub, a, b = world.hub, world.a, world.b
    with (_http(hub, a.tokens["client", Role.PARTNER]) as a_partner,
          _http(hub, b.tokens["person", Role.PARTNER]) as b_partner):
        (extract,) = a_partner.get("/v1/extracts").json()
        assert b_partner.get(f"/v1/extracts/{extract['id']}").status_code == 404
        assert b_partner.delete(f"/v1/extracts/{extract['id']}").status_code == 404
        assert [e["id"] for e in b_partner.get("/v1/extracts").json()] != [extract["id"]]
        started = a_partner.post("/v1/uploads", json={
            "dataset": "bank_alerts", "contract_version": 1, "size": 10, "sha256": "1" * 64})
        upload = started.json()["id"]
        for method in ("GET", "DELETE"):
            assert b_partner.request(method, f"/v1/uploads/{upload}").status_code == 404
        assert b_partner.post(f"/v1/uploads/{upload}/commit").status_code == 404
        assert b_partner.patch(f"/v1/uploads/{upload}", content=b"x",
                               headers={"Upload-Offset": "0"}).status_code == 404
        assert a_partner.get(f"/v1/uploads/{upload}").status_code == 200
        assert a_partner.get(f"/v1/extracts/{extract['id']}").status_code == 200

    with (_http(hub, a.tokens["person", Role.ANALYST]) as a_analyst,
          _http(hub, b.tokens["client", Role.ANALYST]) as b_analyst,
          _http(hub, a.tokens["client", Role.GOVERNANCE]) as a_gov,
          _http(hub, b.tokens["person", Role.GOVERNANCE]) as b_gov):
        query = a_analyst.post("/v1/queries", json={
            "dataset": "bank_alerts", "group_by": ["origin_country"], "measures": ["count"],
            "cost": "1/10"})
        assert query.status_code == 200, query.text
        query_id = query.json()["query_id"]
        assert b_analyst.get(f"/v1/queries/{query_id}").status_code == 404
        assert b_analyst.get(f"/v1/queries/{query_id}/export").status_code == 404
        assert query_id not in {q["id"] for q in b_analyst.get("/v1/queries").json()}
        # B's officer cannot publish A's release; A's officer shares it with C only
        assert b_gov.post("/v1/releases", json={"query_id": query_id, "audience": "all",
                                                "title": "t"}).status_code == 404
        published = a_gov.post("/v1/releases", json={"query_id": query_id,
                                                      "audience": [world.c_org], "title": "t"})
        assert published.status_code == 201, published.text
        pub = published.json()["id"]
        assert b_analyst.get(f"/v1/releases/{pub}").status_code == 404
        assert b_analyst.get(f"/v1/releases/{pub}/export").status_code == 404
        assert pub not in {r["id"] for r in b_analyst.get("/v1/releases").json()}
        assert b_gov.delete(f"/v1/releases/{pub}").status_code == 404
        assert a_analyst.get(f"/v1/releases/{pub}").status_code == 200
        # client ids are each organisation's own (and never a secret)
        b_clients = {c["client_id"] for c in b_analyst.get("/v1/clients").json()}
        a_clients = {c["client_id"] for c in a_analyst.get("/v1/clients").json()}
        assert a_clients and b_clients and not a_clients & b_clients
        assert all("secret" not in str(c) for c in b_analyst.get("/v1/clients").json())
        # budgets are each organisation's own
        b_budget = b_analyst.get("/v1/budgets/bank_alerts").json()
        assert b_budget["member"]["spent"] == "0"

    # data owners see the use of datasets they contribute to, never of others
    with _http(hub, b.tokens["client", Role.PARTNER]) as b_partner:
        usage = b_partner.get("/v1/audit/usage", params={"dataset": "bank_alerts"}).json()
        assert any(e["action"] == "query.charged" for e in usage["entries"])
        assert b_partner.get("/v1/audit/usage",
                             params={"dataset": "case_records"}).status_code == 404


def test_the_directory_names_every_organisation_but_only_the_people_one_may_see(
    world: World,
) -> None:
    """Organisation names are the network's; a person's name only its own organisation's
    members and governance officers (of any organisation) read (hub.identity.directory)."""
    hub, a, b = world.hub, world.a, world.b
    names = {m["id"]: m["name"] for m in hub.services.identity.members()}
    people = {p.id: p for p in hub.services.identity.people.list()}
    for (kind, role), token in a.tokens.items():
        with _http(hub, token) as http:
            found = http.get("/v1/directory")
        assert found.status_code == 200, found.text
        body = found.json()
        assert {o["id"]: o["name"] for o in body["organisations"]} == names
        seen = {p["id"]: p for p in body["people"]}
        orgs = {p["org"] for p in seen.values()}
        if role is Role.GOVERNANCE:
            assert set(seen) == set(people), (kind, role)
        else:
            assert orgs == {a.org}, (kind, role)
            assert set(seen) == {i for i, p in people.items() if p.org_id == a.org}
        for person_id, entry in seen.items():  # names only: no e-mail, role or sign-in
            assert entry == {"id": person_id, "name": people[person_id].name,
                             "org": people[person_id].org_id}
    assert b.org in names


"""The audit log through the real server: every action is logged, who may read what, the
filters and exports, and no secret or token ever in an entry.

One hub for the module (real uvicorn on loopback, real SQLite, real policies folder with
one valid and one broken policy file). The fixture plays a whole flow: members registered,
tokens issued and refused, uploads started, committed, rejected and aborted, an extract
withdrawn, queries charged, released, reused and failed.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.actors import MemberKind, Role
from hub.governance.audit import Action, AuditLog, entry_hash
from hub.identity.service import Credentials
from tests.api.conftest import Hub, running_hub
from tests.api.test_queries import POLICY_BANK, _query, _upload
from tests.hub.extract_files import sha256_of, valid_rows, write_extract

PROBLEM = "application/problem+json"
BROKEN_POLICY = "dataset: case_records\naccounting: [not, a, measure\n"


@dataclass
class World:
    hub: Hub
    gov: Credentials
    analyst: Credentials
    banks: list[Credentials]
    ngo: Credentials
    secrets: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    def http(self, creds: Credentials) -> httpx.Client:
        token = self.hub.token(creds)
        self.tokens.append(token)
        http = self.hub.client()
        http.headers["Authorization"] = f"Bearer {token}"
        return http

    def entries(self, **params: Any) -> list[dict[str, Any]]:
        with self.http(self.gov) as http:
            resp = http.get("/v1/audit", params={"limit": "1000", **params})
        assert resp.status_code == 200, resp.text
        entries: list[dict[str, Any]] = resp.json()["entries"]
        return entries


def _member(hub: Hub, name: str, roles: tuple[Role, ...], world_secrets: list[str],
            kind: MemberKind = MemberKind.BANK) -> Credentials:
    creds = hub.member(name, roles, kind)
    world_secrets.append(creds.client_secret)
    return creds


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("audit")
    policies = base / "policies"
    policies.mkdir()
    (policies / "bank_alerts.yaml").write_text(POLICY_BANK)
    (policies / "case_records.yaml").write_text(BROKEN_POLICY)
    secrets: list[str] = []
    with running_hub(base / "data", policies_dir=policies) as hub:
        w = World(
            hub=hub,
            gov=_member(hub, "Oversight Board", (Role.GOVERNANCE,), secrets, MemberKind.OTHER),
            analyst=_member(hub, "Analysts Inc", (Role.ANALYST,), secrets, MemberKind.OTHER),
            banks=[_member(hub, f"Audit Bank {i}", (Role.PARTNER,), secrets) for i in range(3)],
            ngo=_member(hub, "Audit NGO", (Role.PARTNER,), secrets, MemberKind.NGO),
            secrets=secrets,
        )
        extra = hub.services.identity.add_client(w.ngo.org_id, [Role.PARTNER])
        secrets.append(extra.client_secret)
        hub.services.identity.revoke_client(extra.client_id)
        contract = hub.services.registry.get("bank_alerts", 1)
        for i, bank in enumerate(w.banks):
            path = write_extract(base / f"bank{i}.parquet", contract,
                                 valid_rows(contract, 30, seed=i * 50))
            with w.http(bank) as http:
                _upload(http, path, contract)
        with w.http(w.banks[2]) as http:  # withdrawn again
            extract = http.get("/v1/extracts").json()[0]
            assert http.delete(f"/v1/extracts/{extract['id']}").status_code == 200
            # rejected: the bytes do not match the declared sha256
            path = base / "bank0.parquet"
            started = http.post("/v1/uploads", json={
                "dataset": "bank_alerts", "contract_version": 1,
                "size": path.stat().st_size, "sha256": "0" * 64})
            upload = started.json()
            http.patch(f"/v1/uploads/{upload['id']}", content=path.read_bytes(),
                       headers={"Upload-Offset": "0",
                                "Content-Type": "application/octet-stream"})
            assert http.post(f"/v1/uploads/{upload['id']}/commit").status_code == 422
            # aborted
            other = write_extract(base / "other.parquet", contract, valid_rows(contract, 5))
            started = http.post("/v1/uploads", json={
                "dataset": "bank_alerts", "contract_version": 1,
                "size": other.stat().st_size, "sha256": sha256_of(other)})
            assert http.delete(f"/v1/uploads/{started.json()['id']}").status_code == 204
        with w.http(w.analyst) as http:
            body = _query(["count"], "1/4")
            assert http.post("/v1/queries", json=body).status_code == 200  # charged, released
            assert http.post("/v1/queries", json=body).json()["reused"] is True
            # failed after the charge: a stored extract is corrupted meanwhile
            visible = hub.services.ingest.visible_extracts("bank_alerts")[0]
            stored = hub.services.store.local_path(visible.object_key)
            original = stored.read_bytes()
            stored.write_bytes(b"not parquet")
            try:
                resp = http.post("/v1/queries", json=_query(["count"], "1/2"))
                assert resp.status_code == 503, resp.text
            finally:
                stored.write_bytes(original)
        with hub.client() as http:  # failed sign-ins and a refused bearer token
            assert http.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(w.banks[0].client_id, "wrong-secret")).status_code == 401
            assert http.post("/oauth/token", data={"grant_type": "client_credentials"},
                             auth=(w.banks[0].client_secret, "x")).status_code == 401
            assert http.get("/v1/extracts", headers={
                "Authorization": f"Bearer {w.tokens[0][:-4]}AAAA"}).status_code == 401
        yield w


# -- what is logged --------------------------------------------------------------------------
def test_every_action_of_the_flow_is_logged_with_its_actor(world: World) -> None:
    entries = world.entries()
    by_action: dict[str, list[dict[str, Any]]] = {}
    for e in entries:
        by_action.setdefault(e["action"], []).append(e)
    # publications are audited in tests/api/test_releases.py, the four-eyes review in
    # tests/api/test_governance_http.py and tests/hub/test_policy_changes.py, people's
    # sign-in in tests/api/test_signin.py and tests/api/test_external_idp.py
    expected = set(Action) - {
        Action.SIGNED_IN, Action.SIGN_IN_FAILED, Action.REFRESH_REUSED, Action.PERSON_ADDED,
        Action.PERSON_LINKED, Action.PERSON_PASSWORD_SET, Action.PERSON_ROLES_SET,
        Action.PERSON_DISABLED,
        Action.RELEASE_PUBLISHED, Action.RELEASE_UPDATED, Action.RELEASE_WITHDRAWN,
        Action.POLICY_PROPOSED, Action.POLICY_APPROVED, Action.POLICY_REJECTED,
        Action.POLICY_WITHDRAWN, Action.POLICY_SUPERSEDED, Action.POLICY_ACTIVATED,
        Action.BUDGET_CHANGED, Action.MEMBER_LIMITS_SET,  # tests/api/test_ingest_http.py
        Action.REPORTS_PURGED,  # tests/osint/test_reports.py
        Action.SOURCE_ADDED, Action.SOURCE_CHANGED,
        Action.SOURCE_REMOVED,  # tests/osint/test_sources.py
        Action.INCIDENT_ACCEPTED, Action.INCIDENT_CORRECTED, Action.INCIDENT_REJECTED,
        Action.INCIDENT_MERGED}  # tests/osint/test_review.py, tests/api/test_review_http.py
    assert expected <= set(by_action), sorted(expected - set(by_action))
    bank0 = world.banks[0]
    registered = {e["details"]["name"] for e in by_action["member.registered"]}
    assert {"Oversight Board", "Audit Bank 0", "Audit NGO"} <= registered
    refused = by_action["auth.token_refused"]
    assert any(e["actor"] == bank0.client_id and e["org"] == bank0.org_id
               and e["details"]["error"] == "invalid_client" for e in refused)
    assert any(e["actor"] is None for e in refused)  # the secret sent as a client id: dropped
    charged = by_action["query.charged"][0]
    assert charged["actor"] == world.analyst.client_id and charged["org"] == world.analyst.org_id
    assert charged["dataset"] == "bank_alerts"
    assert charged["details"]["cost"]["amount"] == "1/4"
    shape = charged["details"]["shape"]
    assert shape["dimensions"] == [{"name": "origin_country", "keys": 2},
                                   {"name": "destination_country", "keys": 2}]
    assert by_action["query.failed"][0]["details"]["reason"]
    committed = [e for e in by_action["upload.committed"] if e["org"] == bank0.org_id]
    assert committed and committed[0]["details"]["rows"] == 30
    assert by_action["upload.rejected"][0]["details"]["code"] == "extract_invalid"
    loaded = by_action["policy.loaded"][0]
    assert loaded["dataset"] == "bank_alerts" and loaded["actor"] == "hub:bootstrap"
    assert loaded["details"]["limits"]["per_member"] == "40"
    assert by_action["policy.refused"][0]["object_id"] == "case_records.yaml"
    report = AuditLog(world.hub.services.engine).verify()
    assert report.ok and report.checked == max(e["seq"] for e in entries) == len(entries)


def test_no_secret_or_token_ever_appears_in_an_entry(world: World) -> None:
    with world.http(world.gov) as http:
        text = http.get("/v1/audit/export", params={"format": "jsonl"}).text
    entries = [json.loads(line) for line in text.splitlines()]
    assert len(entries) > 30
    assert world.secrets and world.tokens
    for secret in world.secrets:
        assert secret not in text
    for token in world.tokens:
        for part in token.split("."):  # not even one segment of a token
            assert part not in text
    assert "argon2" not in text and "eyJ" not in text
    for entry in entries:  # and no released value: no result rows, no intervals
        flat = json.dumps(entry["details"])
        assert '"low"' not in flat and '"high"' not in flat and '"result"' not in flat


# -- who may read what -----------------------------------------------------------------------
def test_analysts_and_partners_get_403_on_the_governance_views(world: World) -> None:
    for creds in (world.analyst, world.banks[0]):
        with world.http(creds) as http:
            for path in ("/v1/audit", "/v1/audit/export"):
                resp = http.get(path)
                assert resp.status_code == 403, resp.text
                assert resp.json()["rule"] == "role:governance"
    with world.http(world.analyst) as http:
        resp = http.get("/v1/audit/usage")
        assert resp.status_code == 403 and resp.json()["rule"] == "role:partner"
    with world.hub.client() as http:
        assert http.get("/v1/audit").status_code == 401


def test_a_data_owner_sees_only_the_queries_of_datasets_it_contributes_to(
    world: World,
) -> None:
    with world.http(world.banks[0]) as http:
        resp = http.get("/v1/audit/usage")
        assert resp.status_code == 200, resp.text
        entries = resp.json()["entries"]
        only = http.get("/v1/audit/usage", params={"dataset": "bank_alerts",
                                                    "action": "query.charged"}).json()
    assert entries and {e["action"] for e in entries} == {
        "query.charged", "query.released", "query.reused", "query.failed"}
    assert {e["dataset"] for e in entries} == {"bank_alerts"}
    assert {e["actor"] for e in entries} == {world.analyst.client_id}  # who asked
    assert all("shape" in e["details"] or "cost" in e["details"] for e in entries)
    assert [e["action"] for e in only["entries"]] == ["query.charged", "query.charged"]
    # banks[2] withdrew its extract, the NGO never uploaded: they see nothing
    for creds in (world.banks[2], world.ngo):
        with world.http(creds) as http:
            assert http.get("/v1/audit/usage").json()["entries"] == []
            resp = http.get("/v1/audit/usage", params={"dataset": "bank_alerts"})
            assert resp.status_code == 404 and resp.headers["content-type"] == PROBLEM
    with world.http(world.banks[0]) as http:
        resp = http.get("/v1/audit/usage", params={"action": "upload.started"})
        assert resp.status_code == 422 and resp.json()["field"] == "action"


# -- filters, pages, exports -----------------------------------------------------------------
def test_filters_and_pages(world: World) -> None:
    bank0 = world.banks[0]
    mine = world.entries(org=bank0.org_id)
    assert mine and {e["org"] for e in mine} == {bank0.org_id}
    assert world.entries(member=bank0.org_id) == mine
    by_actor = world.entries(actor=world.analyst.client_id)
    assert {e["actor"] for e in by_actor} == {world.analyst.client_id}
    uploads = world.entries(action="upload.*")
    assert {e["action"].split(".")[0] for e in uploads} == {"upload"}
    pages, cursor = [], None
    with world.http(world.gov) as http:  # one token: reading adds no entries meanwhile

        def get(**params: str) -> list[dict[str, Any]]:
            resp = http.get("/v1/audit", params={"limit": "1000", **params})
            assert resp.status_code == 200, resp.text
            entries: list[dict[str, Any]] = resp.json()["entries"]
            return entries

        everything = get()
        middle = everything[len(everything) // 2]["at"]
        later, earlier = get(since=middle), get(until=middle)
        assert len(later) + len(earlier) == len(everything)
        assert all(e["at"] >= middle for e in later) and all(e["at"] < middle for e in earlier)
        while True:
            params = {"limit": "7", **({"cursor": cursor} if cursor else {})}
            body = http.get("/v1/audit", params=params).json()
            pages.append(body["entries"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
    assert all(len(p) == 7 for p in pages[:-1])
    assert [e["seq"] for p in pages for e in p] == [e["seq"] for e in everything]


@pytest.mark.parametrize(("params", "field"), [
    ({"action": "query.invented"}, "action"),
    ({"since": "last tuesday"}, "since"),
    ({"until": "2025-02-30"}, "until"),
    ({"format": "xml"}, "format"),
    ({"limit": "0"}, "limit"),
    ({"limit": "many"}, "limit"),
    ({"cursor": "abc"}, "cursor"),
])
def test_an_invalid_filter_is_a_422_naming_the_field_and_changes_nothing(
    world: World, params: dict[str, str], field: str
) -> None:
    log = AuditLog(world.hub.services.engine)
    with world.http(world.gov) as http:
        before = log.head()
        path = "/v1/audit/export" if field == "format" else "/v1/audit"
        resp = http.get(path, params=params)
        if field != "format":
            export = http.get("/v1/audit/export", params=params)
            assert field in ("limit", "cursor") or export.status_code == 422
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.json()["field"] == field
    # nothing changes but the audit of the refusals themselves (written now, not folded)
    world.hub.services.folded_audit.flush()
    assert before is not None
    added = list(log.scan(after=before[0]))
    assert added and {(e.action, e.actor, e.details["field"]) for e in added} == {
        ("request.refused", world.gov.client_id, field)}


def test_exports_stream_jsonl_and_csv_that_verify_offline(world: World) -> None:
    with world.http(world.gov) as http:
        jsonl = http.get("/v1/audit/export", params={"format": "jsonl"})
        csv_resp = http.get("/v1/audit/export", params={"format": "csv",
                                                         "action": "query.*"})
    assert jsonl.status_code == 200 and jsonl.headers["content-type"] == "application/x-ndjson"
    assert "attachment" in jsonl.headers["content-disposition"]
    entries = [json.loads(line) for line in jsonl.text.splitlines()]
    prev = "0" * 64
    for e in entries:  # the export carries everything needed to re-check the chain
        from datetime import datetime

        at = datetime.fromisoformat(e["at"].replace("Z", "+00:00"))
        assert e["prev_hash"] == prev
        assert entry_hash(e["seq"], at, e["actor"], e["org"], e["action"], e["object_type"],
                          e["object_id"], e["dataset"], e["details"], e["prev_hash"]) == e["hash"]
        prev = e["hash"]
    assert csv_resp.status_code == 200
    assert csv_resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(csv_resp.text)))
    assert rows and {r["action"].split(".")[0] for r in rows} == {"query"}
    assert json.loads(rows[0]["details"])["cost"]
    assert len(rows) == len([e for e in entries if e["action"].startswith("query.")])


def test_admin_cli_changes_are_logged_with_the_cli_actor(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hub.cli.main import app

    runner = CliRunner()
    env = {"TAHUB_DATA_DIR": str(tmp_path / "data"), "TAHUB_LOG_LEVEL": "WARNING"}
    added = runner.invoke(app, ["admin", "member", "add", "CLI Bank", "--kind", "bank",
                                "--role", "partner", "--json"], env=env)
    assert added.exit_code == 0, added.output
    creds = json.loads(added.stdout)
    assert runner.invoke(app, ["admin", "client", "revoke", creds["client_id"]],
                         env=env).exit_code == 0
    out = runner.invoke(app, ["audit", "export"], env=env)
    assert out.exit_code == 0, out.output
    entries = [json.loads(line) for line in out.stdout.splitlines()]
    actions = [(e["action"], e["org"]) for e in entries]
    assert actions == [("member.registered", creds["org_id"]),
                       ("client.revoked", creds["org_id"])]
    assert all(e["actor"].startswith("cli:") for e in entries)
    assert creds["client_secret"] not in out.stdout
    verified = runner.invoke(app, ["audit", "verify"], env=env)
    assert verified.exit_code == 0 and "2 entries" in verified.stdout


def test_the_audit_list_reads_as_sentences_with_names(world: World) -> None:
    """``tahub audit list``: every entry of the flow in words, with the members' names and
    decimal amounts, never an org_/tahub_ id in a sentence (the ids are in --details and in
    the export)."""
    from typer.testing import CliRunner

    from connectors.common.auditsentences import SENTENCES
    from hub.cli.main import app

    runner = CliRunner()
    env = {"TAHUB_DATA_DIR": str(world.hub.settings.data_dir), "TAHUB_LOG_LEVEL": "WARNING",
           "COLUMNS": "400"}
    entries = world.entries()
    listed = runner.invoke(app, ["audit", "list", "--last", "1000"], env=env)
    assert listed.exit_code == 0, listed.output
    sentences = [line.split("│")[3].strip() for line in listed.stdout.splitlines()
                 if line.startswith("│") and line.split("│")[1].strip().isdigit()]
    assert len(sentences) >= len(entries) and all(s.endswith(".") for s in sentences)
    text = "\n".join(sentences)
    assert not re.search(r"\b(org|tahub|usr)_[0-9a-f]{8}", text), text
    assert "A client of Analysts Inc ran a query on bank_alerts costing rho 0.25." in text
    assert "A client of Audit Bank 2 withdrew an extract of 30 rows from bank_alerts." in text
    assert "The hub's administrator" not in text  # registered by the hub's own code here
    assert {e["action"] for e in entries} <= set(SENTENCES)
    charged = runner.invoke(app, ["audit", "list", "--action", "query.charged", "--details"],
                            env=env)
    assert charged.exit_code == 0, charged.output
    assert world.analyst.client_id in charged.stdout  # the ids in the detail lines
    assert "cost: rho 0.25 (exact 1/4)" in charged.stdout
    assert "1/4" not in charged.stdout.replace("(exact 1/4)", "")


def test_the_admin_budget_table_names_members_and_shows_decimals(world: World) -> None:
    """``tahub admin budget show``: the member by name, what it spent as a decimal and
    exactly (the charge of a failed query stays spent: 1/4 + 1/2)."""
    from typer.testing import CliRunner

    from hub.cli.main import app

    env = {"TAHUB_DATA_DIR": str(world.hub.settings.data_dir), "TAHUB_LOG_LEVEL": "WARNING",
           "COLUMNS": "200"}
    shown = CliRunner().invoke(app, ["admin", "budget", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    (row,) = [line for line in shown.stdout.splitlines() if "Analysts Inc" in line]
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:4] == ["bank_alerts", "Analysts Inc", "rho 0.75", "3/4"], cells
    assert world.analyst.org_id not in shown.stdout

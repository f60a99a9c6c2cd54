"""The reviewers' queue over HTTP (hub.api.routes.review) on a real hub on loopback, with real
tokens of people and clients: the reviewer role (403 for analysts), claims refused to a
second reviewer (409), a crowd report's text opened for the reviewer holding it, corrections
checked (422 naming each tag), decisions in the audit log as sentences, the precision report
over HTTP and from ``tahub review precision``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from typer.testing import CliRunner

from connectors.common.auditsentences import sentence
from connectors.common.names import Names
from hub.actors import MemberKind, Role
from hub.cli.main import app as cli
from hub.osint.collection import Collection, NewItem
from hub.osint.sealing import Sealer, new_key
from hub.osint.tagging import Tagger
from tests.api.conftest import Hub, running_hub

PUBLISHED = dt.datetime(2026, 3, 12, tzinfo=dt.UTC)
MILAN = ("Police in Milan freed eleven Nigerian women who had been forced into prostitution "
         "after being recruited in Benin City with promises of jobs as hairdressers. The "
         "women travelled through Niger and Libya before crossing the sea to Sicily, the "
         "police said. Three suspects were arrested on Tuesday and charged with human "
         "trafficking.")
REPORT = ("Two girls work every day at the nail bar near the bus station in Leeds and never "
          "leave; the boss keeps their passports. <script>alert('x')</script>")


@dataclass
class World:
    hub: Hub
    tokens: dict[str, str]
    article: str
    report: str

    def http(self, who: str) -> httpx.Client:
        http = self.hub.client()
        http.headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return http


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("review")
    key = new_key()
    with running_hub(base / "data", reports_keys=key) as hub:
        identity = hub.services.identity
        ngo = identity.register_member("Review NGO", MemberKind.NGO, (Role.PARTNER,))
        tokens = {}
        for who, role in (("ana", Role.REVIEWER), ("ben", Role.REVIEWER),
                          ("ali", Role.ANALYST), ("gov", Role.GOVERNANCE)):
            person = identity.people.add(ngo.org_id, f"{who}@review.example",
                                         f"{who.title()} Review", (role,)).person
            tokens[who] = identity.issue_person_token(person, "tahub-cli", "openid")
        tokens["client"] = hub.token(identity.add_client(ngo.org_id, (Role.REVIEWER,)))
        collection = Collection(hub.services.engine, tagger=Tagger(languages=["en"]),
                                seal=Sealer([key]).seal)
        article = collection.add(NewItem("article", "Eleven women freed in Milan", MILAN,
                                         language="en", published=PUBLISHED,
                                         url="https://news.example/milan")).incident
        report = collection.add(NewItem("report", "", REPORT, language="en")).incident
        yield World(hub, tokens, article, report)


def test_only_reviewers_reach_the_queue(world: World) -> None:
    for who in ("ali", "gov"):
        with world.http(who) as http:
            refused = http.get("/v1/review/queue")
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["rule"] == "role:reviewer"
    with world.hub.client() as anonymous:
        assert anonymous.get("/v1/review/queue").status_code == 401
    for who in ("ana", "client"):
        with world.http(who) as http:
            queue = http.get("/v1/review/queue")
        assert queue.status_code == 200, queue.text
    body = queue.json()
    assert [i["id"] for i in body["incidents"]] == [world.article, world.report]
    assert body["counts"]["queued"] == 2 and body["claim_minutes"] == 30
    assert body["incidents"][0]["titles"] == ["Eleven women freed in Milan"]
    assert body["incidents"][1]["titles"] == [] and "text" not in body["incidents"][1]


def test_claim_read_correct_and_the_audit_and_precision(world: World) -> None:
    with world.http("ana") as ana, world.http("ben") as ben:
        claimed = ana.post("/v1/review/claim", json={"incident": world.article})
        assert claimed.status_code == 200, claimed.text
        taken = ben.post("/v1/review/claim", json={"incident": world.article})
        assert taken.status_code == 409 and taken.json()["rule"] == "review:claimed"
        assert ben.get(f"/v1/review/incidents/{world.article}").status_code == 409
        bad = ana.post("/v1/review/claim", json={"incident": 5})
        assert bad.status_code == 422 and bad.json()["field"] == "incident"

        shown = ana.get(f"/v1/review/incidents/{world.article}")
        assert shown.status_code == 200, shown.text
        incident = shown.json()
        (item,) = incident["items"]
        assert item["text"] == MILAN and item["url"] == "https://news.example/milan"
        for tag in incident["suggested"]:
            for ev in tag["evidence"]:
                part = item["text"] if ev["part"] == "text" else item["title"]
                assert part[ev["start"]:ev["end"]] == ev["text"]

        wrong = ana.post(f"/v1/review/incidents/{world.article}/decision", json={
            "action": "correct", "tags": [
                {"field": "location", "code": "ZZ", "role": "destination"},
                {"field": "transport", "code": "Camel"}]})
        assert wrong.status_code == 422
        assert [e["field"] for e in wrong.json()["errors"]] == ["tags[0].code",
                                                                "tags[1].code"]
        nobody = ben.post(f"/v1/review/incidents/{world.article}/decision",
                          json={"action": "accept"})
        assert nobody.status_code == 409 and nobody.json()["rule"] == "review:claim"

        tags = [{"field": "exploitation_type", "code": "SexualExploitation"},
                {"field": "location", "code": "NG", "role": "origin"},
                {"field": "location", "code": "IT", "role": "destination"},
                {"field": "recruitment", "code": "ThroughFriendsOrSocialEvents"}]
        decided = ana.post(f"/v1/review/incidents/{world.article}/decision",
                           json={"action": "correct", "tags": tags})
        assert decided.status_code == 200, decided.text
        assert decided.json()["state"] == "accepted"

        report = ana.get("/v1/review/precision")
        assert report.status_code == 200, report.text
        rows = {(t["field"], t["code"], t["role"]): t for t in report.json()["tags"]}
        assert rows["exploitation_type", "SexualExploitation", None]["kept"] == 1
        assert rows["recruitment", "ThroughFriendsOrSocialEvents", None]["added"] == 1
        assert ana.get("/v1/review/precision",
                       params={"since": "12 March"}).json()["field"] == "since"

    with world.http("gov") as gov:
        entries = gov.get("/v1/audit", params={"action": "incident.corrected"}).json()
        names = Names.from_directory(gov.get("/v1/directory").json())
    (entry,) = entries["entries"]
    assert entry["object_id"] == world.article and entry["details"]["coded"] == 4
    assert sentence(entry, names).startswith(
        f"Ana Review (Review NGO) corrected the tags of incident {world.article} (")

    # the same report from the hub's command line
    out = CliRunner().invoke(cli, ["review", "precision", "--json"], env={
        "TAHUB_DATA_DIR": str(world.hub.settings.data_dir)})
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["tags"] == report.json()["tags"]  # logs go to stderr
    table = CliRunner().invoke(cli, ["review", "precision"], env={
        "TAHUB_DATA_DIR": str(world.hub.settings.data_dir)}, terminal_width=120)
    assert table.exit_code == 0 and "SexualExploitation" in table.output


def test_a_crowd_report_is_opened_for_its_reviewer_and_rejected_with_a_reason(
    world: World,
) -> None:
    with world.http("ben") as ben:
        claimed = ben.post("/v1/review/claim")  # the oldest waiting
        assert claimed.json()["incident"] == world.report
        (item,) = ben.get(f"/v1/review/incidents/{world.report}").json()["items"]
        assert item["kind"] == "report" and item["text"] == REPORT
        no_reason = ben.post(f"/v1/review/incidents/{world.report}/decision",
                             json={"action": "reject"})
        assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
        rejected = ben.post(f"/v1/review/incidents/{world.report}/decision",
                            json={"action": "reject", "reason": "not enough to act on"})
        assert rejected.status_code == 200 and rejected.json()["state"] == "rejected"
        empty = ben.post("/v1/review/claim")
        assert empty.status_code == 404 and empty.json()["rule"] == "review:empty"

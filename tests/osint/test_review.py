"""The reviewers' queue (hub.osint.review) and the precision report (hub.osint.precision) on
real metadata stores, SQLite and PostgreSQL: claims (racing threads, expiry), decisions with
their rows and audit entries, corrections checked against the taxonomy, merges, reports
opened with the reports keys, incidents offered as possibly the same."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry
from hub.errors import Conflict, Forbidden, InvalidInput, NotFound
from hub.governance.audit import AuditLog
from hub.osint.coding import CodeLists, tags_of
from hub.osint.collection import Collection, NewItem
from hub.osint.review import ReviewQueue
from hub.osint.sealing import Sealer, new_key
from hub.osint.tagging import Tagger
from hub.storage.db import (
    audit_entries,
    make_engine,
    osint_decisions,
    osint_incidents,
    osint_items,
    upgrade,
    utcnow,
)

ORG = "org_000000000000"
PUBLISHED = dt.datetime(2026, 3, 12, tzinfo=dt.UTC)
MILAN = ("Police in Milan freed eleven Nigerian women who had been forced into prostitution "
         "after being recruited in Benin City with promises of jobs as hairdressers. The "
         "women travelled through Niger and Libya before crossing the sea to Sicily, the "
         "police said. Three suspects were arrested on Tuesday and charged with human "
         "trafficking.")
TURIN = ("Carabinieri in Turin, Italy, broke up a ring that forced young women from Nigeria into "
         "prostitution on the city's ring road. The victims had been promised work in shops "
         "and owed their madam a debt of 30,000 euros, investigators said. Five people were "
         "arrested in March on charges of human trafficking and sexual exploitation.")
DOHA = ("Labour inspectors found 40 workers from Nepal living in containers on a building "
        "site in Doha. Their passports had been taken by the recruitment agency and they owed "
        "fees of up to 1,500 dollars each, the inspectors reported, calling it forced labour.")
REPORT = ("I saw two girls at the car wash on Station Road who never leave, the boss keeps "
          "their passports and they sleep in the back. <script>alert(1)</script>")


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "postgresql":
        from tests.hub.postgres import migrated_database, postgres_database

        with postgres_database() as url:
            migrated_database(url)
            engine = make_engine(url)
            yield engine
            engine.dispose()
        return
    engine = make_engine(f"sqlite:///{tmp_path / 'tahub.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> dt.datetime:
        return self.now


def reviewer(name: str, *roles: Role) -> Actor:
    return Actor(client_id=f"usr_{name}", org=ORG, org_name="Safe Passage",
                 roles=frozenset(roles or (Role.REVIEWER,)))


@pytest.fixture
def world(engine: Engine, tagger: Tagger) -> World:
    return World(engine, tagger)


class World:
    def __init__(self, engine: Engine, tagger: Tagger) -> None:
        self.engine = engine
        self.key = new_key()
        self.clock = Clock()
        self.collection = Collection(engine, tagger=tagger, seal=Sealer([self.key]).seal)
        self.moved: list[tuple[str, str]] = []

        def merged(incident: str, into: str) -> None:
            self.moved.append((incident, into))
            self.collection.merged(incident, into)

        registry = ContractRegistry.load()
        self.queue = ReviewQueue(engine, AuditLog(engine),
                                 lists=CodeLists.from_registry(registry), claim_minutes=30,
                                 reports_keys=[self.key], merged=merged, clock=self.clock)

    def article(self, text: str, title: str = "", url: str | None = None) -> str:
        added = self.collection.add(NewItem("article", title, text, language="en",
                                            published=PUBLISHED, url=url))
        return added.incident

    def audit(self) -> list[sa.Row[tuple[object, ...]]]:
        with self.engine.connect() as conn:
            a = audit_entries
            return list(conn.execute(sa.select(a.c.action, a.c.actor, a.c.object_id,
                                               a.c.details).order_by(a.c.seq)))


ANA, BEN = reviewer("ana"), reviewer("ben")


def test_the_queue_lists_what_waits_oldest_first_with_counts(world: World) -> None:
    first = world.article(MILAN, "Eleven women freed in Milan", "https://a.example/1")
    world.clock.now += dt.timedelta(minutes=5)
    second = world.article(DOHA, "Workers found in containers", "https://b.example/2")
    world.clock.now += dt.timedelta(hours=2)
    view = world.queue.queue(ANA)
    assert [i["id"] for i in view["incidents"]] == [first, second]
    assert view["counts"]["queued"] == 2 and view["waiting"] == 2
    assert view["oldest_waiting_seconds"] >= 2 * 3600
    milan = view["incidents"][0]
    assert milan["titles"] == ["Eleven women freed in Milan"] and milan["kinds"] == ["article"]
    assert {"field": "exploitation_type", "code": "SexualExploitation"}.items() <= {
        k: v for t in milan["suggested"] if t["code"] == "SexualExploitation"
        for k, v in t.items()}.items()
    with pytest.raises(Forbidden) as refused:
        world.queue.queue(reviewer("an", Role.ANALYST))
    assert refused.value.extra["rule"] == "role:reviewer"


def test_two_reviewers_racing_for_the_next_incident_never_share_one(world: World) -> None:
    incidents = {world.article(MILAN, url="https://a.example/1"),
                 world.article(DOHA, url="https://b.example/2")}
    barrier = threading.Barrier(4)
    got: list[str] = []
    errors: list[BaseException] = []

    def claim(n: int) -> None:
        barrier.wait()
        try:
            got.append(world.queue.claim(reviewer(f"r{n}"))["incident"])
        except NotFound:
            got.append("none")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    claimed = [g for g in got if g != "none"]
    assert sorted(claimed) == sorted(incidents) and got.count("none") == 2
    with world.engine.connect() as conn:
        holders = dict(conn.execute(sa.select(osint_incidents.c.id,
                                              osint_incidents.c.claimed_by)).all())
    assert len(set(holders.values())) == 2


def test_one_incident_claimed_by_two_threads_has_one_winner(world: World) -> None:
    incident = world.article(MILAN, url="https://a.example/1")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def claim(who: Actor) -> None:
        barrier.wait()
        try:
            world.queue.claim(who, {"incident": incident})
            outcomes.append("won")
        except Conflict as exc:
            outcomes.append(exc.extra["rule"])

    threads = [threading.Thread(target=claim, args=(who,)) for who in (ANA, BEN)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["review:claimed", "won"]


def test_a_claim_expires_and_the_incident_returns_to_the_queue(world: World) -> None:
    incident = world.article(MILAN, url="https://a.example/1")
    claim = world.queue.claim(ANA)
    assert claim["incident"] == incident
    assert world.queue.claim(ANA)["incident"] == incident  # one's own claim again
    with pytest.raises(NotFound):
        world.queue.claim(BEN)
    with pytest.raises(Conflict):
        world.queue.incident(BEN, incident)
    view = world.queue.queue(BEN)
    assert view["counts"]["claimed"] == 1 and view["incidents"][0]["claimed_by"] == "usr_ana"
    world.clock.now += dt.timedelta(minutes=31)
    assert world.queue.queue(BEN)["counts"] == {**view["counts"], "claimed": 0, "queued": 1}
    assert world.queue.claim(BEN)["incident"] == incident
    with pytest.raises(Conflict) as late:  # Ana's decision comes too late
        world.queue.decide(ANA, incident, {"action": "accept"})
    assert late.value.extra["rule"] == "review:claim"
    world.queue.decide(BEN, incident, {"action": "accept"})


def test_accepting_keeps_the_suggested_tags_with_a_decision_and_an_audit_entry(
    world: World,
) -> None:
    incident = world.article(MILAN, "Eleven women freed in Milan", "https://a.example/1")
    world.queue.claim(ANA)
    shown = world.queue.incident(ANA, incident)
    (item,) = shown["items"]
    assert item["text"] == MILAN and item["title"] == "Eleven women freed in Milan"
    sexual = next(t for t in shown["suggested"] if t["code"] == "SexualExploitation")
    evidence = sexual["evidence"][0]
    part = item["text"] if evidence["part"] == "text" else item["title"]
    assert part[evidence["start"]:evidence["end"]] == evidence["text"]
    assert evidence["text"] in evidence["sentence"] and evidence["item"] == item["id"]
    assert any(t["field"] == "location" and t["code"] == "IT" and t["role"] == "destination"
               for t in shown["suggested"])
    assert "IT" in shown["fields"]["location"] and shown["fields"]["incident_period"] is None

    decided = world.queue.decide(ANA, incident, {"action": "accept"})
    assert decided["state"] == "accepted"
    expected = [{k: t[k] for k in ("field", "code", "role") if k in t}
                for t in shown["suggested"]]
    assert decided["coded"] == expected
    with world.engine.connect() as conn:
        row = conn.execute(sa.select(osint_incidents)).one()
        decision = conn.execute(sa.select(osint_decisions)).one()
    assert row.state == "accepted" and row.reviewed_by == "usr_ana"
    # the record the incidents dataset reads (hub.osint.incidents)
    assert row.coded["exploitation_type"] == ["SexualExploitation"]
    assert {"country": "IT", "role": "destination"} in row.coded["locations"]
    assert row.coded["period"] == "2026-03" and row.coded["age_group"] == "adult"
    assert [t.as_json() for t in tags_of(row.coded)] == sorted(
        expected, key=lambda t: [t["field"] == f for f in (
            "exploitation_type", "recruitment", "transport", "control", "gender", "location",
            "age_group", "age_band", "incident_period")].index(True))
    assert decision.action == "accept" and decision.coded == expected
    assert [key for key in (t["code"] for t in decision.suggested)] == [
        t["code"] for t in shown["suggested"]]
    (entry,) = world.audit()
    assert entry.action == "incident.accepted" and entry.actor == "usr_ana"
    assert entry.object_id == incident and entry.details["coded"] == len(expected)
    assert AuditLog(world.engine).verify().ok
    with pytest.raises(Conflict):  # decided: nobody holds it any more
        world.queue.decide(ANA, incident, {"action": "accept"})


def test_a_correction_is_checked_against_the_taxonomy_and_recorded(world: World) -> None:
    incident = world.article(MILAN, url="https://a.example/1")
    world.queue.claim(ANA)
    with pytest.raises(InvalidInput) as bad:
        world.queue.decide(ANA, incident, {"action": "correct", "tags": [
            {"field": "exploitation_type", "code": "Slavery"},
            {"field": "location", "code": "NG"},
            {"field": "location", "code": "XX", "role": "origin"},
            {"field": "transport", "code": "Boat"},
            {"field": "age_band", "code": "16"},
            {"field": "incident_period", "code": "2026-13"},
            {"field": "incident_period", "code": "2009-07"},
            {"field": "gender", "code": "Feminine", "role": "origin"},
            {"field": "colour", "code": "red"},
            {"field": "age_group", "code": "adult"},
            {"field": "age_group", "code": "minor"},
        ]})
    fields = [e.field for e in bad.value.errors]
    assert fields == ["tags[0].code", "tags[1].role", "tags[2].code", "tags[3].code",
                      "tags[4].code", "tags[5].code", "tags[6].code", "tags[7].role",
                      "tags[8].field", "tags"]
    assert "age_group takes one value" in bad.value.errors[-1].reason
    assert "months (2015-01 to 2030-12)" in bad.value.errors[6].reason
    for action, body, field in (
            ("correct", {}, "tags"), ("reject", {}, "reason"), ("merge", {}, "into"),
            ("accept", {"reason": "x"}, "reason"), ("reject", {"reason": "  "}, "reason")):
        with pytest.raises(InvalidInput) as refused:
            world.queue.decide(ANA, incident, {"action": action, **body})
        assert refused.value.field == field, (action, body)
    with world.engine.connect() as conn:  # nothing was left behind
        assert conn.execute(sa.select(osint_decisions)).first() is None
        assert conn.execute(sa.select(osint_incidents.c.state)).scalar_one() == "claimed"
    tags = [{"field": "exploitation_type", "code": "SexualExploitation"},
            {"field": "location", "code": "ng", "role": "origin"},
            {"field": "location", "code": "IT", "role": "destination"},
            {"field": "location", "code": "LY", "role": "transit"},
            {"field": "transport", "code": "Water"},
            {"field": "age_group", "code": "adult"},
            {"field": "gender", "code": "Feminine"},
            {"field": "incident_period", "code": "2026-03"},
            {"field": "incident_period", "code": "2026-03"}]
    decided = world.queue.decide(ANA, incident, {"action": "correct", "tags": tags,
                                                 "note": "the route as stated"})
    assert decided["state"] == "accepted"
    assert {"field": "location", "code": "NG", "role": "origin"} in decided["coded"]
    assert len(decided["coded"]) == 8
    (entry,) = world.audit()
    assert entry.action == "incident.corrected"
    assert entry.details["coded"] == 8 and entry.details["kept"] + entry.details["added"] == 8


def test_a_rejection_needs_a_reason_and_the_precision_report_counts_it(world: World) -> None:
    milan = world.article(MILAN, url="https://a.example/1")
    doha = world.article(DOHA, url="https://b.example/2")
    world.queue.claim(ANA, {"incident": milan})
    shown = world.queue.incident(ANA, milan)
    suggested = [{k: t[k] for k in ("field", "code", "role") if k in t}
                 for t in shown["suggested"]]
    # keep all but the first suggestion, add a tag the tagger missed
    dropped = suggested[0]
    world.queue.decide(ANA, milan, {"action": "correct", "tags": [
        *suggested[1:], {"field": "recruitment", "code": "ThroughFriendsOrSocialEvents"}]})
    world.queue.claim(BEN, {"incident": doha})
    doha_suggested = world.queue.incident(BEN, doha)["suggested"]
    world.queue.decide(BEN, doha, {"action": "reject", "reason": "a labour inspection, not "
                                   "an incident (test)"})
    (_, rejected) = world.audit()
    assert rejected.action == "incident.rejected" and "labour" in rejected.details["reason"]

    report = world.queue.precision(ANA)
    assert report["decisions"] == 2 and report["by_action"] == {"accept": 0, "correct": 1,
                                                                "reject": 1}
    rows = {(t["field"], t["code"], t["role"]): t for t in report["tags"]}
    gone = rows[dropped["field"], dropped["code"], dropped.get("role")]
    assert gone["kept"] == 0 and gone["suggested"] >= 1
    missed = rows["recruitment", "ThroughFriendsOrSocialEvents", None]
    assert missed == {**missed, "suggested": 0, "kept": 0, "added": 1, "precision": None}
    for tag in doha_suggested:  # a rejected incident keeps none of its suggestions
        row = rows[tag["field"], tag["code"], tag.get("role")]
        assert row["kept"] < row["suggested"] or (row["field"], row["code"]) in {
            (t["field"], t["code"]) for t in suggested[1:]}
    total = sum(t["suggested"] for t in report["tags"])
    assert total == len(suggested) + len(doha_suggested)
    assert sum(t["kept"] for t in report["tags"]) == len(suggested) - 1
    later = (world.clock.now + dt.timedelta(days=1)).date().isoformat()
    assert world.queue.precision(ANA, since=later)["decisions"] == 0
    with pytest.raises(InvalidInput) as bad:
        world.queue.precision(ANA, since="yesterday")
    assert bad.value.field == "since"


def test_a_merge_moves_the_items_and_offers_possibly_the_same(world: World) -> None:
    milan = world.article(MILAN, "Eleven women freed in Milan", "https://a.example/1")
    turin = world.article(TURIN, "Ring broken up in Turin", "https://c.example/3")
    doha = world.article(DOHA, url="https://b.example/2")
    assert len({milan, turin, doha}) == 3  # not near-duplicates
    view = {i["id"]: i for i in world.queue.queue(ANA)["incidents"]}
    assert [s["id"] for s in view[turin]["possibly_same"]] == [milan]
    assert view[turin]["possibly_same"][0]["destinations"] == ["IT"]
    assert view[doha]["possibly_same"] == []
    world.queue.claim(ANA, {"incident": turin})
    assert [s["id"] for s in world.queue.incident(ANA, turin)["possibly_same"]] == [milan]
    with pytest.raises(InvalidInput):
        world.queue.decide(ANA, turin, {"action": "merge", "into": "inc_missing"})
    with pytest.raises(InvalidInput):
        world.queue.decide(ANA, turin, {"action": "merge", "into": turin})
    decided = world.queue.decide(ANA, turin, {"action": "merge", "into": milan})
    assert decided["state"] == "merged" and decided["merged_into"] == milan
    assert world.moved == [(turin, milan)]
    with world.engine.connect() as conn:
        items = dict(conn.execute(sa.select(osint_items.c.title, osint_items.c.incident_id)
                                  .where(osint_items.c.title.is_not(None))).all())
        state = conn.execute(sa.select(osint_incidents.c.state, osint_incidents.c.merged_into)
                             .where(osint_incidents.c.id == turin)).one()
    assert items == {"Eleven women freed in Milan": milan, "Ring broken up in Turin": milan}
    assert tuple(state) == ("merged", milan)
    entry = world.audit()[-1]
    assert entry.action == "incident.merged" and entry.details["into"] == milan
    # the incident it went into now has both items, and a copy of Turin's story joins it
    world.queue.claim(BEN, {"incident": milan})
    assert len(world.queue.incident(BEN, milan)["items"]) == 2
    again = world.collection.add(NewItem("article", "", TURIN + " Two more were arrested.",
                                         language="en", published=PUBLISHED,
                                         url="https://d.example/4"))
    assert again.outcome == "joined" and again.incident == milan
    with pytest.raises(Conflict):  # nothing merges into a merged incident
        world.queue.claim(ANA, {"incident": doha})
        world.queue.decide(ANA, doha, {"action": "merge", "into": turin})


def test_a_crowd_report_is_opened_only_for_the_reviewer_holding_it(world: World,
                                                                   tagger: Tagger) -> None:
    reports = Collection(world.engine, tagger=tagger,
                         seal=Sealer([world.key]).seal)
    added = reports.add(NewItem("report", "", REPORT, language="en"))
    with world.engine.connect() as conn:
        stored = conn.execute(sa.select(osint_items.c.tagging, osint_items.c.text)).one()
    assert stored.text is None and REPORT[:20] not in str(stored.tagging)
    view = world.queue.queue(ANA)["incidents"][0]
    assert view["kinds"] == ["report"] and view["titles"] == []
    assert "text" not in view
    with pytest.raises(Conflict):
        world.queue.incident(ANA, added.incident)
    world.queue.claim(ANA)
    shown = world.queue.incident(ANA, added.incident)
    (item,) = shown["items"]
    assert item["text"] == REPORT and item["text_unavailable"] is None
    assert shown["suggested"]  # the evidence's words, filled in again from the opened text
    for tag in shown["suggested"]:
        for ev in tag["evidence"]:
            assert ev["text"] and REPORT[ev["start"]:ev["end"]] == ev["text"]
            assert ev["text"] in ev["sentence"]
    blind = ReviewQueue(world.engine, AuditLog(world.engine), clock=world.clock)
    (item,) = blind.incident(ANA, added.incident)["items"]
    assert item["text"] is None and "TAHUB_REPORTS_KEYS" in item["text_unavailable"]

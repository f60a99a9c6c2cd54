"""Four-eyes policy changes on a real metadata store (SQLite; the concurrency test also on
PostgreSQL): propose, approve, reject, withdraw, restore, schedule; the store follows."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry
from hub.errors import Conflict, Forbidden, InvalidInput, NotFound
from hub.governance.audit import AuditLog
from hub.governance.policies import PolicyError, default_policies_dir
from hub.governance.policychanges import PolicyChanges
from hub.governance.policystore import PolicyStore
from hub.governance.proposals import Quorum
from hub.query.ledger import Ledger
from hub.query.service import QueryService
from hub.storage.db import make_engine, policy_versions, utcnow
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.postgres import migrated_database, postgres_database

SHIPPED = default_policies_dir()
BANK = (SHIPPED / "bank_alerts.yaml").read_text()

ALICE = Actor("tahub_alice000000000", ORG_A, "Bank A", frozenset({Role.GOVERNANCE}))
BOB = Actor("tahub_bob00000000000", ORG_B, "NGO B", frozenset({Role.GOVERNANCE}))
CAROL = Actor("tahub_carol000000000", ORG_A, "Bank A", frozenset({Role.GOVERNANCE}))
ANALYST = Actor("tahub_ana00000000000", ORG_A, "Bank A", frozenset({Role.ANALYST}))


def _raised(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _actions(engine: sa.Engine) -> list[str]:
    return [e.action for e in AuditLog(engine).scan()]


@pytest.fixture
def world(engine: sa.Engine, registry: ContractRegistry) -> Iterator[tuple[PolicyChanges,
                                                                           PolicyStore]]:
    changes = PolicyChanges(engine, registry, AuditLog(engine))
    assert changes.bootstrap(SHIPPED) == []
    store = PolicyStore.load(changes, registry)
    yield changes, store


def test_bootstrap_seeds_version_1_once(world: tuple[PolicyChanges, PolicyStore],
                                        engine: sa.Engine) -> None:
    changes, store = world
    datasets = ["bank_alerts", "case_records", "corridor_flows", "incidents"]
    assert store.current().datasets() == datasets
    assert changes.bootstrap(SHIPPED) == []  # the store is no longer empty: nothing happens
    with engine.connect() as conn:
        rows = conn.execute(sa.select(policy_versions.c.number, policy_versions.c.status)).all()
    assert sorted(rows) == [(1, "active")] * len(datasets)
    assert _actions(engine).count("policy.loaded") == len(datasets)


def test_a_raised_budget_needs_a_second_officer_then_applies(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine
) -> None:
    changes, store = world
    before = store.current().get("bank_alerts")
    assert before is not None and before.budget.per_member == Fraction(1)
    text = _raised(BANK, 'per_member: "1"', 'per_member: "2"')
    view, outcome = changes.propose(ALICE, {"yaml": text, "note": "more for the pilot"})
    assert outcome == "proposed" and view["status"] == "pending" and view["version"] == 2
    assert view["base_version"] == 1 and view["budget_changed"] is True
    assert {"path": "budget.per_member", "before": "1", "after": "2"} in view["changes"]
    assert '-  per_member: "1"' in view["diff"] and '+  per_member: "2"' in view["diff"]
    assert view["still_needed"] == {"officers": 1, "organisations": 0}
    assert store.current().get("bank_alerts") is before  # nothing applies yet

    with pytest.raises(Forbidden) as own:
        changes.approve(ALICE, view["id"])
    assert own.value.extra["rule"] == "four-eyes:own-proposal"
    with pytest.raises(Forbidden) as role:
        changes.approve(ANALYST, view["id"])
    assert role.value.extra["rule"] == "role:governance"

    approved = changes.approve(BOB, view["id"], {"note": "ok"})
    assert approved["status"] == "active" and approved["decided_by"] == BOB.client_id
    assert [a["actor"] for a in approved["approvals"]] == [BOB.client_id]
    now_active = store.current().get("bank_alerts")  # refreshed at once, in this process
    assert now_active is not None and now_active.budget.per_member == Fraction(2)
    with pytest.raises(Conflict) as twice:
        changes.approve(BOB, view["id"])
    assert twice.value.extra["rule"] == "proposal:status"
    assert _actions(engine)[-3:] == ["policy.approved", "policy.activated", "budget.changed"]
    budget = next(e for e in AuditLog(engine).scan() if e.action == "budget.changed")
    assert budget.details["before"]["per_member"] == "1"
    assert budget.details["after"]["per_member"] == "2"
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.select(policy_versions.c.number,
                                               policy_versions.c.status).where(
            policy_versions.c.dataset == "bank_alerts")).all())
    assert statuses == {1: "retired", 2: "active"}


def test_a_plan_asked_again_is_remembered_until_the_policies_change(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine, registry: ContractRegistry
) -> None:
    changes, store = world
    queries = QueryService(policies=store, registry=registry, ledger=Ledger(engine),
                           engine=None)  # type: ignore[arg-type]  # planning reads no data
    body = {"dataset": "bank_alerts", "group_by": ["typology"], "measures": ["count_units"],
            "cost": "1/10"}
    plan = queries._plan(ANALYST, body)
    assert queries._plan(ANALYST, json.loads(json.dumps(body))) is plan  # the same question
    assert queries._plan(ANALYST, {**body, "cost": "1/20"}) is not plan
    other = Actor("tahub_ana11111111111", ORG_B, "NGO B", frozenset({Role.ANALYST}))
    assert queries._plan(other, body) is not plan  # per actor
    with pytest.raises(Forbidden, match="role"):
        queries._plan(ALICE, body)  # the role is checked before the remembered plans
    # the policy no longer allows count_units: the remembered plan is dropped at once
    view, _ = changes.propose(ALICE, {"yaml": _raised(BANK, "      - count_units ", "      # "),
                                      "note": "no distinct customers"})
    changes.approve(BOB, view["id"])
    with pytest.raises(Forbidden) as refused:
        queries._plan(ANALYST, body)
    assert refused.value.extra["rule"] == "analysts-corridors:measures"


def test_bad_proposals_are_refused_and_store_nothing(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine
) -> None:
    changes, _ = world
    entries = len(_actions(engine))
    with pytest.raises(PolicyError) as yaml_error:
        changes.propose(ALICE, {"yaml": "dataset: bank_alerts\nrules: [\n"})
    assert yaml_error.value.errors[0].line is not None
    with pytest.raises(PolicyError) as schema:
        changes.propose(ALICE, {"yaml": _raised(BANK, "max_dimensions: 2",
                                                "max_dimensions: 0")})
    (err,) = schema.value.errors
    assert err.field == "rules.0.max_dimensions"
    assert "max_dimensions: 0" in BANK.replace("max_dimensions: 2", "max_dimensions: 0",
                                                1).splitlines()[err.line - 1]  # type: ignore
    with pytest.raises(PolicyError, match="1 error"):
        changes.propose(ALICE, {"yaml": BANK, "filename": "case_records.yaml"})
    with pytest.raises(InvalidInput, match="identical to version 1"):
        changes.propose(ALICE, {"yaml": BANK})
    with pytest.raises(InvalidInput) as both:
        changes.propose(ALICE, {"yaml": BANK, "restore": 1, "dataset": "bank_alerts"})
    assert both.value.field == "yaml"
    with pytest.raises(InvalidInput) as past:
        changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2", "min_partners: 3"),
                                "effective_at": "2020-01-01"})
    assert past.value.field == "effective_at"
    with pytest.raises(InvalidInput) as mismatch:
        changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2", "min_partners: 3"),
                                "dataset": "case_records"})
    assert mismatch.value.field == "dataset"
    with pytest.raises(Forbidden):
        changes.propose(ANALYST, {"yaml": _raised(BANK, "min_partners: 2", "min_partners: 3")})
    dry, outcome = changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                            "min_partners: 3"),
                                           "dry_run": True})
    assert outcome == "valid" and dry["id"] is None and dry["changes"] == [
        {"path": "min_partners", "before": 2, "after": 3}]
    assert len(_actions(engine)) == entries  # no entry, no version: nothing was stored
    assert changes.proposals(ALICE) == []


def test_rejection_needs_a_reason_and_another_officer(
    world: tuple[PolicyChanges, PolicyStore]
) -> None:
    changes, store = world
    view, _ = changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                      "min_partners: 3")})
    with pytest.raises(InvalidInput) as no_reason:
        changes.reject(BOB, view["id"], {"reason": "  "})
    assert no_reason.value.field == "reason"
    with pytest.raises(Forbidden, match="withdraw it"):
        changes.reject(ALICE, view["id"], {"reason": "changed my mind"})
    rejected = changes.reject(BOB, view["id"], {"reason": "three partners would stop the "
                                                          "NGOs from querying"})
    assert rejected["status"] == "rejected" and "NGOs" in rejected["reason"]
    with pytest.raises(Conflict):
        changes.approve(CAROL, view["id"])
    assert store.current().get("bank_alerts").min_partners == 2  # type: ignore[union-attr]


def test_withdraw_is_the_proposers_and_the_same_text_is_one_proposal(
    world: tuple[PolicyChanges, PolicyStore]
) -> None:
    changes, _ = world
    text = _raised(BANK, "min_partners: 2", "min_partners: 3")
    first, _ = changes.propose(ALICE, {"yaml": text})
    again, outcome = changes.propose(ALICE, {"yaml": text})
    assert outcome == "existing" and again["id"] == first["id"]
    with pytest.raises(Forbidden) as other:
        changes.withdraw(BOB, first["id"])
    assert other.value.extra["rule"] == "proposal:proposer"
    assert changes.withdraw(ALICE, first["id"])["status"] == "withdrawn"
    assert [p["id"] for p in changes.proposals(ALICE, status="withdrawn")] == [first["id"]]
    with pytest.raises(NotFound):
        changes.approve(BOB, "pv_doesnotexist")


def test_an_approval_supersedes_the_other_proposals_on_the_same_base(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine
) -> None:
    changes, _ = world
    a, _ = changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2", "min_partners: 3")})
    b, _ = changes.propose(CAROL, {"yaml": _raised(BANK, 'per_query: "1/5"',
                                                   'per_query: "1/10"')})
    changes.approve(BOB, a["id"])
    with pytest.raises(Conflict) as late:
        changes.approve(BOB, b["id"])
    assert late.value.extra["rule"] == "proposal:superseded"
    assert changes.proposal(ALICE, b["id"])["status"] == "superseded"
    assert "policy.superseded" in _actions(engine)


def test_restore_brings_back_an_earlier_version_through_the_same_review(
    world: tuple[PolicyChanges, PolicyStore]
) -> None:
    changes, store = world
    v2, _ = changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                    "min_partners: 3")})
    changes.approve(BOB, v2["id"])
    assert store.current().get("bank_alerts").min_partners == 3  # type: ignore[union-attr]
    with pytest.raises(NotFound) as never:
        changes.propose(ALICE, {"restore": 7, "dataset": "bank_alerts"})
    assert never.value.field == "restore"
    restore, _ = changes.propose(ALICE, {"restore": 1, "dataset": "bank_alerts"})
    assert restore["restores"] == 1 and restore["version"] == 3 and restore["base_version"] == 2
    assert {"path": "min_partners", "before": 3, "after": 2} in restore["changes"]
    changes.approve(BOB, restore["id"])
    assert store.current().get("bank_alerts").min_partners == 2  # type: ignore[union-attr]
    history = changes.proposals(ALICE, dataset="bank_alerts", status="all")
    assert [(p["version"], p["status"]) for p in history] == [
        (3, "active"), (2, "retired"), (1, "retired")]


def test_a_scheduled_change_applies_at_its_effective_time(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine
) -> None:
    changes, store = world
    when = utcnow() + timedelta(hours=1)
    view, _ = changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                      "min_partners: 4"),
                                      "effective_at": when.isoformat()})
    assert changes.approve(BOB, view["id"])["status"] == "scheduled"
    assert store.refresh() is False
    assert store.current().get("bank_alerts").min_partners == 2  # type: ignore[union-attr]
    # a change built on the scheduled version cannot take effect before it
    with pytest.raises(InvalidInput) as early:
        changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2", "min_partners: 5")})
    assert early.value.field == "effective_at"
    with engine.begin() as conn:  # the hour has passed
        conn.execute(policy_versions.update().where(policy_versions.c.id == view["id"])
                     .values(effective_at=utcnow() - timedelta(seconds=1)))
    assert store.refresh() is True
    assert store.current().get("bank_alerts").min_partners == 4  # type: ignore[union-attr]
    assert changes.active(ALICE)[0]["version"] == 2
    assert _actions(engine).count("policy.activated") == 1


def test_a_quorum_of_three_from_two_organisations(engine: sa.Engine,
                                                  registry: ContractRegistry) -> None:
    changes = PolicyChanges(engine, registry, AuditLog(engine), Quorum(3, 2))
    changes.bootstrap(SHIPPED)
    store = PolicyStore.load(changes, registry)
    view, _ = changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                      "min_partners: 3")})
    assert view["still_needed"] == {"officers": 2, "organisations": 1}
    after_carol = changes.approve(CAROL, view["id"])  # same organisation as Alice
    assert after_carol["status"] == "pending"
    assert after_carol["still_needed"] == {"officers": 1, "organisations": 1}
    assert changes.approve(BOB, view["id"])["status"] == "active"
    assert store.current().get("bank_alerts").min_partners == 3  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="at least 2"):
        Quorum(1)


def test_a_stored_version_that_no_longer_validates_denies_its_dataset(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine
) -> None:
    _, store = world
    with engine.begin() as conn:  # e.g. an upgrade renamed a field the version uses
        conn.execute(policy_versions.update().where(
            policy_versions.c.dataset == "corridor_flows").values(
            id="pv_changed", text="dataset: corridor_flows\n"))
    assert store.refresh() is True
    current = store.current()
    assert current.get("corridor_flows") is None
    assert current.health()["status"] == "errors"
    assert current.health()["errors"][0]["file"] == "corridor_flows v1"


def test_bootstrap_reports_refused_files(tmp_path: Path, engine: sa.Engine,
                                         registry: ContractRegistry) -> None:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "bank_alerts.yaml").write_text(BANK)
    (folder / "case_records.yaml").write_text(
        _raised((SHIPPED / "case_records.yaml").read_text(), "accounting: zcdp",
                "accounting: renyi"))
    (folder / "wrong_name.yaml").write_text((SHIPPED / "corridor_flows.yaml").read_text())
    changes = PolicyChanges(engine, registry, AuditLog(engine))
    problems = changes.bootstrap(folder)
    by_file = {p.file: p for p in problems}
    assert by_file["case_records.yaml"].field == "accounting"
    assert by_file["case_records.yaml"].line == 9
    assert "must be in corridor_flows.yaml" in by_file["wrong_name.yaml"].reason
    store = PolicyStore.load(changes, registry, tuple(problems))
    assert store.current().datasets() == ["bank_alerts"]
    assert store.current().health()["status"] == "errors"
    assert _actions(engine).count("policy.refused") == 2


def test_the_watcher_thread_picks_up_another_process_change(
    world: tuple[PolicyChanges, PolicyStore], engine: sa.Engine, registry: ContractRegistry
) -> None:
    _, store = world
    # a second hub process: its own engine and services over the same store
    other_engine = make_engine(str(engine.url))
    other = PolicyChanges(other_engine, registry, AuditLog(other_engine))
    store.start_watching(interval=0.05)
    try:
        view, _ = other.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                        "min_partners: 3")})
        other.approve(BOB, view["id"])
        _wait(lambda: getattr(store.current().get("bank_alerts"), "min_partners", 0) == 3)
    finally:
        store.stop_watching()
        other_engine.dispose()


def _wait(condition: Any, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_concurrent_approvals_of_rival_proposals_apply_exactly_one(
    backend: str, engine: sa.Engine, registry: ContractRegistry
) -> None:
    def run(db: sa.Engine) -> None:
        changes = PolicyChanges(db, registry, AuditLog(db))
        changes.bootstrap(SHIPPED)
        rivals = [changes.propose(ALICE, {"yaml": _raised(BANK, "min_partners: 2",
                                                          f"min_partners: {n}")})[0]
                  for n in (3, 4, 5, 6)]
        outcomes: list[str] = []
        barrier = threading.Barrier(len(rivals))

        def approve(proposal_id: str) -> None:
            barrier.wait()
            try:
                outcomes.append(changes.approve(BOB, proposal_id)["status"])
            except Conflict as exc:
                outcomes.append(str(exc.extra["rule"]))

        threads = [threading.Thread(target=approve, args=(r["id"],)) for r in rivals]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(outcomes).count("active") == 1, outcomes
        assert set(outcomes) <= {"active", "proposal:superseded", "policy:concurrent"}
        with db.connect() as conn:
            active = conn.execute(sa.select(sa.func.count()).where(
                policy_versions.c.dataset == "bank_alerts",
                policy_versions.c.status == "active")).scalar()
        assert active == 1
        assert AuditLog(db).verify().ok

    if backend == "sqlite":
        run(engine)
        return
    with postgres_database() as url:
        migrated_database(url)
        db = make_engine(url)
        try:
            run(db)
        finally:
            db.dispose()

"""The budget ledger on a real SQLite metadata store: exact edges, refusals, releases."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.errors import BudgetExceeded, Conflict, Forbidden, InvalidInput, Unavailable
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.privacy.budget import Balance, Spend, SpentEntry, opened_at, tally
from hub.query.ledger import Charge, Ledger
from hub.storage.db import (
    ledger_entries,
    ledger_totals,
    make_engine,
    organisations,
    releases,
    upgrade,
    utcnow,
)
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.ledger_workers import key, limits

DS = "bank_alerts"
NOW = datetime(2025, 3, 15, 12, tzinfo=UTC)
SHAPE = {"dimensions": ["origin_country"], "measures": ["count"]}


@pytest.fixture
def ledger(engine: sa.Engine) -> Ledger:
    return Ledger(engine)


def _rows(engine: sa.Engine) -> tuple[list[Any], list[Any]]:
    with engine.connect() as conn:
        return (list(conn.execute(sa.select(ledger_entries).order_by(ledger_entries.c.id))),
                list(conn.execute(sa.select(releases).order_by(releases.c.id))))


def _charge(ledger: Ledger, cost: str, *, org: str = ORG_A, name: str = "q",
            now: datetime = NOW, cost_measure: str = "zcdp",
            budget: dict[str, str] | None = None) -> Charge:
    given = {"global_total": "2", "per_member": "1", "per_query": "1/2"} | (budget or {})
    return ledger.charge(dataset=DS, org=org, limits=limits(**given),
                         cost=Cost.parse(cost_measure, cost), query_key=key(name + str(utcnow())),
                         shape=SHAPE, now=now)


def test_spending_exactly_the_budget_then_one_tiny_query_more_is_refused(
        ledger: Ledger, engine: sa.Engine) -> None:
    for i in range(3):
        _charge(ledger, "1/3", name=f"q{i}")
    bal = ledger.balance(dataset=DS, org=ORG_A, limits=limits(
        global_total="2", per_member="1", per_query="1/2"), now=NOW)
    assert bal.member_spent == Fraction(1) and bal.member_left == 0  # exactly, no float drift
    before = _rows(engine)
    with pytest.raises(BudgetExceeded) as err:
        _charge(ledger, "1/1000000000")
    assert err.value.extra == {"rule": "budget:member", "measure": "zcdp",
                               "requested": "1/1000000000", "remaining": "0"}
    assert _rows(engine) == before
    # a zero-cost query still fits and is written (every release has its entry)
    zero = _charge(ledger, "0", name="free")
    assert zero.cost == Cost.zero(Measure.ZCDP) and len(_rows(engine)[0]) == 4


@pytest.mark.parametrize(("spend_first", "org", "cost", "budget", "rule", "remaining"), [
    ([], ORG_A, "3/4", {}, "budget:per_query", "1/2"),
    ([(ORG_A, "1/5")], ORG_A, "1/4", {"per_month": "2/5"}, "budget:month", "1/5"),
    ([(ORG_A, "1/2"), (ORG_A, "2/5")], ORG_A, "1/5", {}, "budget:member", "1/10"),
    ([(ORG_B, "1/2"), (ORG_B, "1/2"), (ORG_A, "1/2")], ORG_A, "1/2",
     {"global_total": "7/4"}, "budget:global", "1/4"),
])
def test_every_refusal_names_its_rule_with_requested_and_remaining_and_writes_nothing(
        ledger: Ledger, engine: sa.Engine, spend_first: list[tuple[str, str]], org: str,
        cost: str, budget: dict[str, str], rule: str, remaining: str) -> None:
    for i, (who, amount) in enumerate(spend_first):
        _charge(ledger, amount, org=who, name=f"pre{i}", budget=budget)
    before = _rows(engine)
    with pytest.raises(BudgetExceeded) as err:
        _charge(ledger, cost, org=org, budget=budget)
    assert err.value.extra["rule"] == rule
    assert (err.value.extra["requested"], err.value.extra["remaining"]) == (cost, remaining)
    assert err.value.problem()["status"] == 403
    assert _rows(engine) == before


def test_budgets_never_renew_the_monthly_cap_only_limits_each_month(ledger: Ledger) -> None:
    budget = {"per_member": "1", "per_month": "1/2"}
    for month in (1, 2):
        _charge(ledger, "1/2", now=datetime(2025, month, 10, tzinfo=UTC), budget=budget)
        with pytest.raises(BudgetExceeded, match="this month") as err:
            _charge(ledger, "1/10", now=datetime(2025, month, 20, tzinfo=UTC), budget=budget)
        assert err.value.extra["rule"] == "budget:month"
    # a fresh month, but the member budget is spent for good
    with pytest.raises(BudgetExceeded) as err:
        _charge(ledger, "1/10", now=datetime(2025, 3, 1, tzinfo=UTC), budget=budget)
    assert err.value.extra["rule"] == "budget:member"


def test_bad_input_is_refused_and_writes_nothing(ledger: Ledger, engine: sa.Engine) -> None:
    with pytest.raises(InvalidInput) as err:
        _charge(ledger, "1/10", cost_measure="pure")
    assert err.value.extra["rule"] == "budget:measure"
    with pytest.raises(Forbidden) as forbidden:
        _charge(ledger, "1/10", now=datetime(2024, 12, 31, tzinfo=UTC))
    assert forbidden.value.extra["rule"] == "budget:opened"
    lim = limits(global_total="2", per_member="1", per_query="1/2")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"query_key": "SELECT 1"}, "query_key"),
        ({"shape": {"x": float("nan")}}, "shape"),
        ({"shape": ["not", "an", "object"]}, "shape"),
        ({"cost": Cost(Measure.ZCDP, Fraction(1, 2**64))}, "cost"),
        ({"dataset": ""}, "dataset"),
    ]
    for change, field in bad:
        call: dict[str, Any] = {"dataset": DS, "org": ORG_A, "limits": lim,
                                "cost": Cost.parse("zcdp", "1/10"), "query_key": key("x"),
                                "shape": SHAPE, "now": NOW} | change
        with pytest.raises(InvalidInput) as invalid:
            ledger.charge(**call)
        assert invalid.value.field == field
    assert _rows(engine) == ([], [])


def test_a_policy_that_switches_measure_cannot_reset_the_budget(ledger: Ledger) -> None:
    _charge(ledger, "1/2")
    pure = {"measure": "pure", "global_total": "5", "per_member": "5", "per_query": "1"}
    with pytest.raises(Conflict, match="cannot be added") as err:
        _charge(ledger, "1/2", cost_measure="pure", budget=pure)
    assert err.value.extra["rule"] == "budget:measure"
    with pytest.raises(Conflict):
        ledger.balance(dataset=DS, org=ORG_A, limits=limits(**pure), now=NOW)


def test_release_is_stored_found_again_and_references_its_entry(
        ledger: Ledger, engine: sa.Engine) -> None:
    charge = _charge(ledger, "1/4")
    result = {"rows": [{"origin": "NG", "value": 12, "low": 3.5, "high": 20.5}]}
    release = ledger.record_release(charge, result, now=NOW)
    found = ledger.find_release(dataset=DS, org=ORG_A, query_key=charge.query_key)
    assert found == release
    assert found is not None and found.result == result and found.entry_id == charge.id
    assert found.cost == Cost.parse("zcdp", "1/4")
    assert ledger.find_release(dataset=DS, org=ORG_B, query_key=charge.query_key) is None
    assert ledger.find_release(dataset=DS, org=ORG_A, query_key=key("other")) is None
    [entry] = ledger.history(ORG_A, DS)
    assert entry.status == "released" and entry.released_at == NOW and entry.shape == SHAPE
    # a release cannot be recorded twice, nor after a failure
    with pytest.raises(Conflict):
        ledger.record_release(charge, result)
    with pytest.raises(Conflict):
        ledger.mark_failed(charge)
    for bad in ({"v": float("inf")}, {}):  # not plain JSON; nothing released
        with pytest.raises(InvalidInput):
            ledger.record_release(_charge(ledger, "1/4", name=f"x{bad}"), bad)


def test_identical_queries_that_race_keep_one_release_and_both_stay_spent(
        ledger: Ledger, engine: sa.Engine) -> None:
    lim = limits(global_total="2", per_member="1", per_query="1/2")
    args: dict[str, Any] = {"dataset": DS, "org": ORG_A, "limits": lim,
                            "cost": Cost.parse("zcdp", "1/4"), "query_key": key("same"),
                            "shape": SHAPE}
    first, second = ledger.charge(**args), ledger.charge(**args)
    kept = ledger.record_release(first, {"v": 1})
    assert ledger.record_release(second, {"v": 2}) == kept
    statuses = {e.id: e.status for e in ledger.history(ORG_A)}
    assert statuses == {first.id: "released", second.id: "failed"}
    assert ledger.balance(dataset=DS, org=ORG_A, limits=lim).member_spent == Fraction(1, 2)
    assert len(_rows(engine)[1]) == 1


def test_a_failed_computation_is_never_refunded(ledger: Ledger) -> None:
    charge = _charge(ledger, "1/2")
    ledger.mark_failed(charge)
    assert ledger.history(ORG_A)[0].status == "failed"
    bal = ledger.balance(dataset=DS, org=ORG_A, now=NOW,
                         limits=limits(global_total="2", per_member="1", per_query="1/2"))
    assert bal.member_spent == Fraction(1, 2) and bal.global_spent == Fraction(1, 2)
    with pytest.raises(Conflict):
        ledger.record_release(charge, {"v": 1})


def test_a_release_without_a_ledger_entry_is_impossible(engine: sa.Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(sa.insert(releases).values(
            id="rel_orphan", entry_id="led_missing", dataset=DS, org_id=ORG_A,
            query_key=key("x"), created_at=utcnow(), body=b""))


def test_balance_history_and_spending_report_exact_amounts(ledger: Ledger) -> None:
    budget = {"global_total": "2", "per_member": "1", "per_query": "1/2", "per_month": "1/2"}
    _charge(ledger, "1/3", now=datetime(2025, 2, 1, tzinfo=UTC), budget=budget)
    _charge(ledger, "1/7", name="b", budget=budget)
    _charge(ledger, "1/5", org=ORG_B, budget=budget)
    bal = ledger.balance(dataset=DS, org=ORG_A, limits=limits(**budget), now=NOW)
    assert (bal.member_spent, bal.month_spent, bal.global_spent) == (
        Fraction(10, 21), Fraction(1, 7), Fraction(10, 21) + Fraction(1, 5))
    assert bal.month_left == Fraction(5, 14) and bal.can_spend == Fraction(5, 14)
    assert bal.cumulative == Cost(Measure.ZCDP, Fraction(71, 105))
    assert [c.cost.amount for c in ledger.history(ORG_A)] == [Fraction(1, 3), Fraction(1, 7)]
    assert ledger.history(ORG_A, "other_dataset") == []
    report = {(s.org, s.spent, s.charged) for s in ledger.spending(DS)}
    assert report == {(ORG_A, Fraction(10, 21), 2), (ORG_B, Fraction(1, 5), 1)}


def test_store_failures_are_translated(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}")
    try:
        with pytest.raises(Unavailable, match="metadata store"):
            _charge(Ledger(engine), "1/10")
        with pytest.raises(Unavailable):
            Ledger(engine).history(ORG_A)
    finally:
        engine.dispose()


def test_admin_budget_show_lists_exact_spending(
        ledger: Ledger, settings: Any) -> None:
    from typer.testing import CliRunner

    from hub.cli.main import app

    env = {"TAHUB_DATA_DIR": str(settings.data_dir), "TAHUB_LOG_LEVEL": "WARNING",
           "COLUMNS": "200"}
    runner = CliRunner()
    empty = runner.invoke(app, ["admin", "budget", "show"], env=env)
    assert empty.exit_code == 0 and "nothing spent yet" in empty.stdout
    _charge(ledger, "1/3")
    _charge(ledger, "1/7", name="b")
    _charge(ledger, "1/5", org=ORG_B)
    shown = runner.invoke(app, ["admin", "budget", "show", "--dataset", DS], env=env)
    assert shown.exit_code == 0, shown.output
    lines = {line.split("│")[2].strip(): line for line in shown.stdout.splitlines()
             if line.startswith("│")}
    # organisations by name, amounts as decimals with the exact fraction beside them
    assert ORG_A not in shown.stdout and ORG_B not in shown.stdout
    assert "0.476" in lines["Bank A"] and "10/21" in lines["Bank A"]
    assert "0.2" in lines["NGO B"] and "1/5" in lines["NGO B"]
    assert "71/105" in lines["(all members: cumulative loss)"]
    other = runner.invoke(app, ["admin", "budget", "show", "--dataset", "nope"], env=env)
    assert "nothing spent yet on nope" in other.stdout


# -- the per-day totals ------------------------------------------------------------------------
def _from_entries(engine: sa.Engine, dataset: str, org: str, limits: BudgetLimits,
                  now: datetime) -> Spend:
    """The spending as the entries themselves say it (the reference for the totals)."""
    le = ledger_entries
    with engine.connect() as conn:
        rows = conn.execute(sa.select(le).where(
            le.c.dataset == dataset, le.c.created_at >= opened_at(limits))).all()
    return tally((SpentEntry(r.org_id, Fraction(r.amount_num, r.amount_den), r.created_at,
                             Fraction(r.delta_num, r.delta_den)) for r in rows),
                 org=org, now=now)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(charges=st.lists(st.tuples(
    st.sampled_from([ORG_A, ORG_B]), st.integers(0, 120), st.integers(0, 86_399),
    st.sampled_from([Fraction(1, 7), Fraction(1, 5), Fraction(37, 25), Fraction(0)]),
    st.sampled_from([Fraction(0), Fraction(1, 10**7)])), min_size=1, max_size=25),
    opened=st.integers(0, 90), asked=st.integers(0, 150))
def test_the_daily_totals_count_exactly_what_the_entries_do(
    engine: sa.Engine, charges: list[tuple[str, int, int, Fraction, Fraction]], opened: int,
    asked: int,
) -> None:
    ledger, dataset = Ledger(engine), f"ds_{secrets.token_hex(5)}"
    day0 = datetime(2025, 1, 1, tzinfo=UTC)
    wide = BudgetLimits(measure=Measure.ZCDP, global_total=Fraction(10**6),
                        per_member=Fraction(10**6), per_query=Fraction(2),
                        opened=date(2025, 1, 1), delta_global=Fraction(1, 2),
                        delta_per_member=Fraction(1, 2), delta_per_query=Fraction(1, 10**6))
    for i, (org, day, second, amount, delta) in enumerate(charges):
        ledger.charge(dataset=dataset, org=org, limits=wide, cost=Cost(Measure.ZCDP, amount,
                                                                         delta),
                      query_key=hashlib.sha256(f"{i}".encode()).hexdigest(), shape={},
                      now=day0 + timedelta(days=day, seconds=second))
    limits = dataclasses.replace(wide, opened=(day0 + timedelta(days=opened)).date())
    now = day0 + timedelta(days=asked, hours=12)
    for org in (ORG_A, ORG_B):
        reference = _from_entries(engine, dataset, org, limits, now)
        assert ledger.balance(dataset=dataset, org=org, limits=limits, now=now) == (
            Balance.of(dataset=dataset, org=org, limits=limits, spent=reference))


def test_the_migration_fills_the_totals_from_the_entries(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    try:
        upgrade(engine, "0010")
        with engine.begin() as conn:
            conn.execute(sa.insert(organisations), [
                {"id": o, "name": o, "kind": "bank", "created_at": utcnow()}
                for o in (ORG_A, ORG_B)])
            conn.execute(sa.insert(ledger_entries), [
                {"id": f"led_{i}", "dataset": "bank_alerts", "org_id": (ORG_A, ORG_B)[i % 2],
                 "measure": "zcdp", "amount_num": 1, "amount_den": 3 + i % 2,
                 "delta_num": 0, "delta_den": 1, "query_key": f"{i:064x}",
                 "status": "released", "shape": {},
                 "created_at": datetime(2025, 3, 1 + i % 3, 23, 59, tzinfo=UTC)}
                for i in range(12)])
        upgrade(engine)
        with engine.connect() as conn:
            rows = conn.execute(sa.select(ledger_totals).order_by(
                ledger_totals.c.org_id, ledger_totals.c.day)).all()
        assert [(r.org_id, r.day, r.amount, r.entries) for r in rows] == [
            (ORG_A, "2025-03-01", "2/3", 2), (ORG_A, "2025-03-02", "2/3", 2),
            (ORG_A, "2025-03-03", "2/3", 2), (ORG_B, "2025-03-01", "1/2", 2),
            (ORG_B, "2025-03-02", "1/2", 2), (ORG_B, "2025-03-03", "1/2", 2)]
    finally:
        engine.dispose()

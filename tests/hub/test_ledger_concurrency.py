"""The ledger never overspends under concurrency, survives a crash, and ignores clock skew.

Real backends only: a SQLite file (``BEGIN IMMEDIATE``) and a throwaway PostgreSQL database
(``SELECT ... FOR UPDATE`` on the dataset's lock row); real threads and real processes
(multiprocessing with spawn), all released together by a barrier at the budget edge.
"""

from __future__ import annotations

import multiprocessing
import queue
import secrets
import threading
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
import sqlalchemy as sa

from hub.errors import BudgetExceeded
from hub.privacy.accounting import Cost, Measure
from hub.privacy.budget import month_window
from hub.query.ledger import Charge, InFlight, Ledger, Release
from hub.storage.db import ledger_entries, make_engine, releases
from tests.hub import ledger_workers
from tests.hub.ledger_workers import key, limits
from tests.hub.postgres import ORGS

SPAWN = multiprocessing.get_context("spawn")
MEMBER_EDGE = {"global_total": "2", "per_member": "1", "per_query": "1/2"}
GLOBAL_EDGE = {"global_total": "1", "per_member": "1", "per_query": "1/2"}


@pytest.fixture
def dataset() -> str:
    """A fresh dataset per test, so tests sharing the session's PostgreSQL stay apart."""
    return f"ds_{secrets.token_hex(6)}"


def _ledger_state(url: str, dataset: str) -> tuple[Fraction, int, int]:
    """(total spent, entries, releases) read straight from the tables."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(ledger_entries.c.amount_num, ledger_entries.c.amount_den)
                                .where(ledger_entries.c.dataset == dataset)).all()
            n_releases = conn.execute(sa.select(sa.func.count()).select_from(releases)
                                      .where(releases.c.dataset == dataset)).scalar_one()
    finally:
        engine.dispose()
    return sum((Fraction(n, d) for n, d in rows), Fraction(0)), len(rows), n_releases


def _run_processes(jobs: list[tuple[Any, ...]], target: Any = ledger_workers.spend_until_refused
                   ) -> list[tuple[str, int, list[str]]]:
    barrier, results = SPAWN.Barrier(len(jobs)), SPAWN.Queue()
    procs = [SPAWN.Process(target=target, args=(*job, barrier, results)) for job in jobs]
    for p in procs:
        p.start()
    try:
        out = [results.get(timeout=120) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0] * len(procs)
    return out


def test_threads_at_the_member_edge_spend_exactly_the_budget(url: str, dataset: str) -> None:
    engine = make_engine(url)
    ledger, n = Ledger(engine), 8
    barrier, lock = threading.Barrier(n), threading.Lock()
    won: list[int] = []
    rules: list[str] = []

    def worker(t: int) -> None:
        barrier.wait(timeout=30)
        for i in range(2):
            try:
                ledger.charge(dataset=dataset, org=ORGS[0], limits=limits(**MEMBER_EDGE),
                              cost=Cost(Measure.ZCDP, Fraction(1, 7)),
                              query_key=key(f"{t}/{i}"), shape={})
                with lock:
                    won.append(t)
            except BudgetExceeded as exc:
                with lock:
                    rules.append(exc.extra["rule"])

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    engine.dispose()
    assert len(won) == 7 and set(rules) == {"budget:member"} and len(rules) == 2 * n - 7
    assert _ledger_state(url, dataset) == (Fraction(1), 7, 0)


def test_processes_at_the_member_edge_spend_exactly_floor_limit_over_cost(
        url: str, dataset: str) -> None:
    out = _run_processes([(url, dataset, ORGS[0], MEMBER_EDGE, "1/7", 3, None)] * 6)
    assert sum(ok for _, ok, _ in out) == 7  # floor(1 / (1/7))
    assert {r for _, _, refused in out for r in refused} == {"budget:member"}
    assert _ledger_state(url, dataset) == (Fraction(1), 7, 0)


def test_processes_of_different_members_cannot_overspend_the_global_budget(
        url: str, dataset: str) -> None:
    out = _run_processes([(url, dataset, org, GLOBAL_EDGE, "3/10", 2, None)
                          for org in ORGS[:6]])
    assert sum(ok for _, ok, _ in out) == 3  # floor(1 / (3/10))
    assert {r for _, _, refused in out for r in refused} == {"budget:global"}
    assert _ledger_state(url, dataset) == (Fraction(9, 10), 3, 0)


def test_processes_with_skewed_clocks_cannot_spend_more_than_the_member_budget(
        url: str, dataset: str) -> None:
    budget = {"global_total": "2", "per_member": "1", "per_query": "1/2", "per_month": "1/2"}
    nows = ["2025-01-31T23:59:59", "2025-03-01T00:00:00", "2025-05-20T12:00:00"]
    out = _run_processes([(url, dataset, ORGS[1], budget, "1/4", 4, now) for now in nows])
    # each month alone would allow 2 charges (6 in all); the member budget allows 4
    assert sum(ok for _, ok, _ in out) == 4
    assert _ledger_state(url, dataset) == (Fraction(1), 4, 0)


@pytest.mark.parametrize(("clock", "charges"), [("server", 2), ("process", 4)])
def test_processes_whose_clocks_differ_spend_one_period_cap_in_one_period(
        postgres_url: str, dataset: str, clock: str, charges: int) -> None:
    """Two hub processes on PostgreSQL, one whose clock runs into the next month (a few
    hours past its first instant). With the ledger's clock (the database server's) both
    charge in the same month: one ``per_month`` cap in all. The control, each process
    stamping with its own clock, shows what the skew would do: two months' caps at once."""
    now = datetime.now(UTC)
    skew = (month_window(now)[1] - now + timedelta(hours=3)).total_seconds()
    budget = {"global_total": "2", "per_member": "1", "per_query": "1/2", "per_month": "1/2"}
    out = _run_processes([(postgres_url, dataset, ORGS[3], budget, "1/4", 3, s, clock)
                          for s in (0.0, skew)], target=ledger_workers.spend_with_skewed_clock)
    assert sum(ok for _, ok, _ in out) == charges
    assert {r for _, _, refused in out for r in refused} == {"budget:month"}
    if clock == "server":
        engine = make_engine(postgres_url)
        try:
            stamps = [c.created_at for c in Ledger(engine).history(ORGS[3], dataset)]
        finally:
            engine.dispose()
        assert {month_window(t) for t in stamps} == {month_window(datetime.now(UTC))}


def test_a_process_killed_between_charge_and_release_leaves_the_budget_spent(
        url: str, dataset: str) -> None:
    out = SPAWN.Queue()
    proc = SPAWN.Process(target=ledger_workers.charge_then_hang,
                         args=(url, dataset, ORGS[2], out))
    proc.start()
    try:
        entry_id = out.get(timeout=60)
    except queue.Empty:  # pragma: no cover - a failure report, not a path
        proc.kill()
        raise
    proc.kill()
    proc.join(timeout=30)
    assert proc.exitcode is not None and proc.exitcode < 0  # killed, not finished
    engine = make_engine(url)
    try:
        ledger = Ledger(engine)
        [entry] = ledger.history(ORGS[2], dataset)
        assert (entry.id, entry.status, entry.released_at) == (entry_id, "charged", None)
        assert ledger.find_release(dataset=dataset, org=ORGS[2], query_key=key("crash")) is None
        bal = ledger.balance(dataset=dataset, org=ORGS[2],
                             limits=limits(global_total="1", per_member="1", per_query="1/2"))
        assert bal.member_spent == Fraction(1, 4) and bal.member_left == Fraction(3, 4)
        with engine.connect() as conn:  # no release anywhere lacks its entry
            orphans = conn.execute(
                sa.select(sa.func.count()).select_from(
                    releases.outerjoin(ledger_entries, ledger_entries.c.id == releases.c.entry_id))
                .where(ledger_entries.c.id.is_(None))).scalar_one()
        assert orphans == 0
    finally:
        engine.dispose()


def test_an_identical_question_from_many_processes_is_charged_once(
    url: str, dataset: str
) -> None:
    org = ORGS[0]
    outcomes = _run_processes([(url, dataset, org, "the same question")] * 6,
                              target=ledger_workers.charge_once_at_barrier)
    assert sorted(outcomes) == ["Charge"] + ["InFlight"] * 5
    assert _ledger_state(url, dataset) == (Fraction(1, 2), 1, 0)
    engine = make_engine(url)
    try:
        ledger = Ledger(engine)
        ask = {"dataset": dataset, "org": org, "shape": {"measures": ["count"]},
               "limits": limits(global_total="10", per_member="10", per_query="1"),
               "cost": Cost(Measure.ZCDP, Fraction(1, 2)),
               "query_key": key("the same question"), "stale_after": timedelta(minutes=15)}
        (entry_id,) = [row.id for row in _entries(engine, dataset)]
        flying = ledger.charge_once(**ask)
        assert isinstance(flying, InFlight) and flying.entry_id == entry_id
        # another member's identical question, or another question, is its own
        assert isinstance(ledger.charge_once(**{**ask, "org": ORGS[1]}), Charge)
        assert isinstance(ledger.charge_once(**{**ask, "query_key": key("other")}), Charge)
        # released: the stored release is returned, nothing more is charged
        (charge,) = [c for c in ledger.history(org, dataset) if c.id == entry_id]
        ledger.record_release(charge, {"cells": [1]})
        stored = ledger.charge_once(**ask)
        assert isinstance(stored, Release) and stored.entry_id == entry_id
        assert _ledger_state(url, dataset)[1:] == (3, 1)
        # an entry in flight for longer than stale_after: its process is taken for dead
        stale = ledger.charge_once(**{**ask, "org": ORGS[1], "stale_after": timedelta(0)})
        assert isinstance(stale, Charge)
    finally:
        engine.dispose()


def _entries(engine: sa.Engine, dataset: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(ledger_entries.c.id)
                                 .where(ledger_entries.c.dataset == dataset)).all())

"""Code run in child processes (multiprocessing, spawn) by the ledger's concurrency tests.

Kept apart from the test modules so that a spawned child imports only the hub, not pytest.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction
from typing import Any

from hub.errors import BudgetExceeded
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.query.ledger import Ledger
from hub.storage.db import make_engine

__all__ = ["charge_once_at_barrier", "charge_then_hang", "key", "limits", "spend_until_refused",
           "spend_with_skewed_clock"]


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def limits(*, global_total: str, per_member: str, per_query: str,
           per_month: str | None = None, measure: str = "zcdp") -> BudgetLimits:
    return BudgetLimits(
        measure=Measure(measure), global_total=Fraction(global_total),
        per_member=Fraction(per_member), per_query=Fraction(per_query),
        opened=date(2025, 1, 1), per_month=None if per_month is None else Fraction(per_month),
    )


def spend_until_refused(url: str, dataset: str, org: str, budget: dict[str, Any], cost: str,
                        attempts: int, now: str | None, barrier: Any, results: Any) -> None:
    """Try ``attempts`` charges of ``cost`` as fast as possible; report (org, successes,
    refusal rules)."""
    engine = make_engine(url)
    ledger = Ledger(engine)
    when = None if now is None else datetime.fromisoformat(now).replace(tzinfo=UTC)
    ok, refused = 0, []
    try:
        barrier.wait(timeout=60)
        for i in range(attempts):
            try:
                ledger.charge(dataset=dataset, org=org, limits=limits(**budget),
                              cost=Cost(Measure(budget.get("measure", "zcdp")),
                                        Fraction(cost)),
                              query_key=key(f"{org}/{now}/{i}/{time.monotonic_ns()}"),
                              shape={"measures": ["count"]}, now=when)
                ok += 1
            except BudgetExceeded as exc:
                refused.append(exc.extra["rule"])
    finally:
        engine.dispose()
    results.put((org, ok, refused))


def charge_then_hang(url: str, dataset: str, org: str, out: Any) -> None:
    """Charge, report the entry id, then wait to be killed before recording the release."""
    engine = make_engine(url)
    ledger = Ledger(engine)
    charge = ledger.charge(dataset=dataset, org=org,
                           limits=limits(global_total="1", per_member="1", per_query="1/2"),
                           cost=Cost(Measure.ZCDP, Fraction(1, 4)), query_key=key("crash"),
                           shape={"measures": ["sum"]})
    out.put(charge.id)
    time.sleep(120)  # killed here, between charge and record_release
    ledger.record_release(charge, {"rows": []})  # pragma: no cover - never reached


def spend_with_skewed_clock(url: str, dataset: str, org: str, budget: dict[str, Any],
                            cost: str, attempts: int, skew_seconds: float, clock: str,
                            barrier: Any, results: Any) -> None:
    """As :func:`spend_until_refused`, in a process whose clock (``hub.storage.db.utcnow``, which
    the ledger reads) runs ``skew_seconds`` ahead. ``clock="server"``: the charges take the
    ledger's clock, alternately its default (``now=None``) and :meth:`Ledger.now` as the
    query service passes it; ``clock="process"``: this process's own (skewed) clock.
    Reports (org, successes, refusal rules)."""
    import hub.query.ledger
    import hub.storage.db

    skew = timedelta(seconds=skew_seconds)
    real = hub.storage.db.utcnow
    hub.storage.db.utcnow = hub.query.ledger.utcnow = lambda: real() + skew
    engine = make_engine(url)
    ledger = Ledger(engine)
    ok, refused = 0, []
    try:
        barrier.wait(timeout=60)
        for i in range(attempts):
            when = (hub.query.ledger.utcnow() if clock == "process"
                    else None if i % 2 == 0 else ledger.now())
            try:
                ledger.charge(dataset=dataset, org=org, limits=limits(**budget),
                              cost=Cost(Measure.ZCDP, Fraction(cost)),
                              query_key=key(f"{org}/{skew_seconds}/{i}/{time.monotonic_ns()}"),
                              shape={"measures": ["count"]}, now=when)
                ok += 1
            except BudgetExceeded as exc:
                refused.append(exc.extra["rule"])
    finally:
        engine.dispose()
    results.put((org, ok, refused))


def charge_once_at_barrier(url: str, dataset: str, org: str, query: str, barrier: Any,
                           out: Any) -> None:
    """Ask the same question as every other process at once; report what came back."""
    engine = make_engine(url)
    try:
        barrier.wait(timeout=60)
        outcome = Ledger(engine).charge_once(
            dataset=dataset, org=org,
            limits=limits(global_total="10", per_member="10", per_query="1"),
            cost=Cost(Measure.ZCDP, Fraction(1, 2)), query_key=key(query),
            shape={"measures": ["count"]}, stale_after=timedelta(minutes=15))
    finally:
        engine.dispose()
    out.put(type(outcome).__name__)

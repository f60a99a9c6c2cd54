"""Folding of refusals (hub.governance.refusals, .folding) against a real audit log, on a fake
clock."""

from __future__ import annotations

import time
from typing import Any

import sqlalchemy as sa

from hub.governance.audit import AuditLog
from hub.governance.folding import FoldedAudit
from hub.governance.refusals import Refusal, RefusalLog
from hub.storage.db import audit_entries

BUDGET = Refusal("tahub_a", "org_a", "POST", "/v1/queries", 403, "budget_exceeded",
                 "budget:per_query", "cost", "bank_alerts")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _entries(audit: AuditLog) -> list[dict[str, Any]]:
    return [{"rule": e.details["rule"], "count": e.details["count"],
             "folded": e.details.get("folded", False)}
            for e in audit.scan(audit_entries.c.action == "request.refused")]


def test_repeats_within_a_window_fold_into_one_count(engine: sa.Engine) -> None:
    audit, clock = AuditLog(engine), Clock()
    folded = FoldedAudit(audit, window=60, clock=clock)
    log = RefusalLog(folded)
    for _ in range(190):
        log.record(BUDGET)
        clock.now += 0.1
    other = Refusal(*(BUDGET.actor, BUDGET.org, "POST", "/v1/queries", 403, "forbidden",
                      "analysts:dimensions", "group_by", "bank_alerts"))
    log.record(other)  # another rule: its own entry at once
    assert _entries(audit) == [{"rule": "budget:per_query", "count": 1, "folded": False},
                               {"rule": "analysts:dimensions", "count": 1, "folded": False}]
    clock.now += 60
    log.record(BUDGET)  # a new window: the last one's fold is written, then this one
    log.record(BUDGET)
    folded.flush()  # shutdown: what is pending is written
    assert _entries(audit)[2:] == [{"rule": "budget:per_query", "count": 189, "folded": True},
                                   {"rule": "budget:per_query", "count": 1, "folded": False},
                                   {"rule": "budget:per_query", "count": 1, "folded": True}]
    folded.flush()
    assert len(_entries(audit)) == 5  # nothing twice
    assert audit.verify().ok


def test_a_closing_window_writes_its_fold_without_another_refusal(engine: sa.Engine) -> None:
    audit = AuditLog(engine)
    log = RefusalLog(FoldedAudit(audit, window=0.2))  # the real clock, and the timer
    for _ in range(3):
        log.record(BUDGET)
    assert [e["count"] for e in _entries(audit)] == [1]
    deadline = time.monotonic() + 5
    while len(_entries(audit)) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _entries(audit)[1] == {"rule": "budget:per_query", "count": 2, "folded": True}

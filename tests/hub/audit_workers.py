"""Code run in spawned child processes by the audit log's concurrency tests (no pytest)."""

from __future__ import annotations

import os
from typing import Any

from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.storage.db import make_engine

__all__ = ["append_many"]


def append_many(url: str, tag: str, count: int, barrier: Any, results: Any) -> None:
    """Append ``count`` entries as fast as possible once every worker is ready; report the
    seqs they got."""
    engine = make_engine(url)
    log = AuditLog(engine)
    seqs = []
    try:
        barrier.wait(timeout=60)
        for i in range(count):
            entry = log.append(AuditEvent(Action.QUERY_REUSED, actor=f"proc-{tag}",
                                          object_type="test", object_id=f"{tag}-{i}",
                                          details={"i": i, "pid": os.getpid()}))
            seqs.append(entry.seq)
    finally:
        engine.dispose()
    results.put((tag, seqs))

"""The policies folder, kept current: load, reload changed files, watch in a thread.

A file that fails validation never replaces the active policy of its dataset; its problems
are logged and shown on ``/health`` (:meth:`hub.policies.PolicySet.health`). The app's
lifespan starts and stops the watcher (``hub.api.app``).

With an audit log (``hub.audit``), every policy that becomes active (``policy.loaded``, with
its budget limits and whether they changed), every refused file (``policy.refused``) and
every removed policy (``policy.removed``) is written to it *before* the change takes effect:
if the entry cannot be written, the change is not made and the next reload tries again.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import structlog

from hub.accounting import BudgetLimits
from hub.audit import Action, AuditEvent, AuditLog
from hub.contracts import ContractRegistry
from hub.errors import ConfigError
from hub.policies import (
    Policy,
    PolicyError,
    PolicyProblem,
    PolicySet,
    default_policies_dir,
    load_policy_file,
)

__all__ = ["PolicyStore"]

log = structlog.get_logger(__name__)


@dataclass
class _Seen:
    stamp: tuple[int, int]  # (mtime_ns, size)
    digest: str
    dataset: str | None  # the dataset this file's last valid version defined
    problems: tuple[PolicyProblem, ...]


def _limits_json(limits: BudgetLimits) -> dict[str, Any]:
    return {"measure": limits.measure.value, "global_total": str(limits.global_total),
            "per_member": str(limits.per_member), "per_query": str(limits.per_query),
            "per_month": None if limits.per_month is None else str(limits.per_month),
            "opened": limits.opened.isoformat()}


class PolicyStore:
    """The policies folder, kept current: ``current()`` is always a consistent snapshot.

    Each ``<dataset>.yaml`` is validated on its own. A valid file becomes the dataset's
    active policy; a file that fails validation keeps the previous valid policy active (at
    first load its dataset has no policy: deny) and its problems are logged and shown by
    ``health()``; a deleted file removes its policy (deny). ``reload()`` re-reads only files
    whose modification time or size changed, and re-validates only if the content hash did.
    """

    def __init__(self, directory: Path, registry: ContractRegistry,
                 audit: AuditLog | None = None) -> None:
        if not directory.is_dir():
            raise ConfigError(
                f"policies folder {directory} does not exist", field="TAHUB_POLICIES_DIR"
            )
        self.directory = directory
        self.registry = registry
        self.audit = audit
        self._lock = threading.Lock()
        self._seen: dict[str, _Seen] = {}
        self._active: dict[str, Policy] = {}
        self._snapshot = PolicySet()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def load(cls, directory: Path | None, registry: ContractRegistry,
             audit: AuditLog | None = None) -> PolicyStore:
        store = cls(directory or default_policies_dir(), registry, audit)
        store.reload()
        return store

    def current(self) -> PolicySet:
        return self._snapshot

    def reload(self) -> bool:
        """Pick up changed, new and deleted files; True if anything changed."""
        with self._lock:
            changed = False
            present = {p.name: p for p in sorted(self.directory.glob("*.yaml")) if p.is_file()}
            for name in sorted(set(self._seen) - set(present)):
                gone = self._seen[name]
                if gone.dataset is not None and gone.dataset in self._active:
                    self._record(Action.POLICY_REMOVED, name, gone.dataset, {})
                del self._seen[name]
                if gone.dataset is not None and self._active.pop(gone.dataset, None) is not None:
                    log.warning("policy removed: its file was deleted", file=name,
                                dataset=gone.dataset)
                changed = True
            for name, path in present.items():
                changed |= self._consider(name, path)
            if changed:
                problems = tuple(p for s in self._seen.values() for p in s.problems)
                self._snapshot = PolicySet(MappingProxyType(dict(self._active)), problems)
            return changed

    def _consider(self, name: str, path: Path) -> bool:
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
            before = self._seen.get(name)
            if before is not None and before.stamp == stamp:
                return False
            data = path.read_bytes()
        except OSError as exc:
            log.warning("policy file cannot be read", file=name, reason=exc.strerror)
            return False
        digest = hashlib.sha256(data).hexdigest()
        if before is not None and before.digest == digest:
            before.stamp = stamp
            return False
        dataset = before.dataset if before is not None else None
        try:
            policy = load_policy_file(path, self.registry)
        except PolicyError as exc:
            problems = tuple(
                PolicyProblem(name, e.line, e.field, e.reason) for e in exc.errors
            ) or (PolicyProblem(name, None, None, exc.detail),)
            kept = dataset is not None and dataset in self._active
            self._record(Action.POLICY_REFUSED, name, dataset, {
                "sha256": digest, "errors": len(problems), "previous_kept": kept,
                "problems": [str(p)[:300] for p in problems[:20]]})
            log.error(
                "policy file refused: "
                + ("the previous valid policy stays active" if kept else "no policy (deny)"),
                file=name, errors=[str(p) for p in problems], dataset=dataset,
            )
            self._seen[name] = _Seen(stamp, digest, dataset, problems)
            return True
        before_policy = self._active.get(policy.dataset)
        limits = _limits_json(policy.limits)
        self._record(Action.POLICY_LOADED, name, policy.dataset, {
            "sha256": digest, "rules": len(policy.rules), "limits": limits,
            "replaces": before.digest if before is not None else None,
            "budget_changed": before_policy is not None
            and _limits_json(before_policy.limits) != limits,
        })
        self._active[policy.dataset] = policy
        self._seen[name] = _Seen(stamp, digest, policy.dataset, ())
        log.info("policy loaded", file=name, dataset=policy.dataset, rules=len(policy.rules))
        return True

    def _record(self, action: Action, name: str, dataset: str | None,
                details: dict[str, Any]) -> None:
        if self.audit is not None:  # the hub itself acts: no actor
            self.audit.append(AuditEvent(action, object_type="policy_file", object_id=name,
                                         dataset=dataset, details={"file": name, **details}))

    # -- the watcher ------------------------------------------------------------------------
    def start_watching(self, interval: float = 1.0) -> None:
        """Poll the folder every ``interval`` seconds in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._watch, args=(interval,), name="tahub-policy-watcher", daemon=True
        )
        self._thread.start()

    def stop_watching(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout=10)

    def _watch(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reload()
            except Exception:  # keep watching: the active policies stay as they are
                log.exception("policy reload failed")

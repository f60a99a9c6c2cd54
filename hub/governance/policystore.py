"""The active policies, kept current from the metadata store: ``current()`` is a snapshot.

The policies in force are the *active* versions of :mod:`hub.governance.policychanges`
(four-eyes reviewed). Every hub process keeps a :class:`~hub.governance.policies.PolicySet` of
them and refreshes it from the store: at once after a change this process made, and every
second in a watcher thread for changes made by other processes and replicas, and for
scheduled versions whose effective time has come (the first process to notice activates them, once).

A stored version that the current contracts no longer accept (say, after an upgrade renamed a
field) is not applied: its dataset is denied and the problem is shown on ``/health``, with
the problems of policy files refused at first start.
"""

from __future__ import annotations

import threading
from types import MappingProxyType

import structlog

from hub.contracts.model import ContractRegistry
from hub.governance.policies import Policy, PolicyError, PolicyProblem, PolicySet, parse_policy_text
from hub.governance.policychanges import PolicyChanges

__all__ = ["PolicyStore"]

log = structlog.get_logger(__name__)


class PolicyStore:
    """The active policies of the metadata store, as an immutable snapshot per refresh."""

    def __init__(self, changes: PolicyChanges, registry: ContractRegistry,
                 startup_problems: tuple[PolicyProblem, ...] = ()) -> None:
        self.changes = changes
        self.registry = registry
        self._startup_problems = startup_problems
        self._lock = threading.Lock()
        self._parsed: dict[str, Policy | PolicyProblem] = {}  # by version id
        self._ids: tuple[str, ...] | None = None
        self._snapshot = PolicySet()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        changes.on_change = self.refresh

    @classmethod
    def load(cls, changes: PolicyChanges, registry: ContractRegistry,
             startup_problems: tuple[PolicyProblem, ...] = ()) -> PolicyStore:
        store = cls(changes, registry, startup_problems)
        store.refresh()
        return store

    def current(self) -> PolicySet:
        return self._snapshot

    def refresh(self) -> bool:
        """Activate what is due, then read the active versions; True if they changed."""
        with self._lock:
            self.changes.activate_due()
            versions = self.changes.active_versions()
            ids = tuple(v.id for v in versions)
            if ids == self._ids:
                return False
            active: dict[str, Policy] = {}
            problems = list(self._startup_problems)
            for v in versions:
                parsed = self._parsed.get(v.id)
                if parsed is None:
                    parsed = self._parse(v.dataset, v.number, v.text)
                    self._parsed[v.id] = parsed
                if isinstance(parsed, Policy):
                    active[v.dataset] = parsed
                else:
                    problems.append(parsed)
            self._snapshot = PolicySet(MappingProxyType(active), tuple(problems))
            self._ids = ids
            log.info("policies refreshed", active={v.dataset: v.number for v in versions})
            return True

    def _parse(self, dataset: str, number: int, text: str) -> Policy | PolicyProblem:
        source = f"{dataset} v{number}"
        try:
            return parse_policy_text(text, self.registry, source=source)
        except PolicyError as exc:
            first = exc.errors[0] if exc.errors else None
            log.error("an active policy version no longer validates: its dataset is denied",
                      dataset=dataset, version=number, errors=[str(e) for e in exc.errors])
            return PolicyProblem(source, first.line if first else None,
                                 first.field if first else None,
                                 first.reason if first else exc.detail)

    # -- the watcher ------------------------------------------------------------------------
    def start_watching(self, interval: float = 1.0) -> None:
        """Refresh every ``interval`` seconds in a daemon thread."""
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
                self.refresh()
            except Exception:  # keep watching: the active policies stay as they are
                log.exception("policy refresh failed")

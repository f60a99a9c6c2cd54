"""Four-eyes changes to sharing policies: propose, review, approve or reject, restore.

Every policy a dataset ever had is a numbered *version* in the metadata store, with the exact
YAML text that was proposed (``policy_versions``). A governance officer proposes a change (the
whole new text, or an earlier version to restore); it is validated against the contracts
(every error with its line, nothing stored) and diffed against the dataset's latest approved
version, its *base*. It takes effect only once a quorum of distinct governance officers has
agreed: the proposer and, by default, one other (``TAHUB_POLICY_QUORUM`` officers in all,
from at least ``TAHUB_POLICY_QUORUM_ORGS`` organisations)::

    propose(actor, {yaml | restore, dataset, effective_at, note})     governance role
      invalid YAML or policy                  -> PolicyError 422 (file:line errors)
      the same text as its base               -> InvalidInput 422 (nothing to change)
      the same text as a pending proposal     -> that proposal (idempotent)
    approve(actor, id, {note})                                        governance role
      not pending                             -> Conflict proposal:status / proposal:superseded
      the actor proposed it                   -> Forbidden four-eyes:own-proposal
      the actor approved it already           -> Conflict four-eyes:already-approved
      quorum reached -> effective now: active (the previous version retired)
                        effective later: scheduled (active from its effective_at)
                        the dataset's other pending proposals: superseded
    reject(actor, id, {reason})   another officer, with a reason     -> rejected
    withdraw(actor, id)           the proposer                        -> withdrawn

States: ``pending -> scheduled -> active -> retired``, or ``pending -> rejected | withdrawn |
superseded``. A proposal can only be approved while its base is still the dataset's latest
approved version: a change approved meanwhile supersedes it (its diff would be wrong), and
the officer proposes again against the new version. Raising a budget is such a change (the
budget lives in the policy); its activation is audited as ``budget.changed`` as well.

Every refusal is raised before anything is written; each state change and its audit entry
(``policy.proposed``, ``policy.approved``, ``policy.activated``, ``policy.rejected``,
``policy.withdrawn``, ``policy.superseded``, ``budget.changed``) commit in one transaction.

The first start on an empty store imports the policies folder (``TAHUB_POLICIES_DIR``) as
version 1 of each dataset (``policy.loaded``): the way a new network is seeded. After that
the folder is only read or written on request (``tahub policy import`` / ``export``).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace as _Row
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry
from hub.errors import (
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    Unavailable,
)
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.governance.policies import Policy, PolicyError, PolicyProblem, parse_policy_text
from hub.governance.proposals import (
    ProposalRequest,
    Quorum,
    decision,
    limits_json,
    policy_changes,
    unified_diff,
)
from hub.storage.db import (
    iso_utc,
    policy_approvals,
    policy_versions,
    read_connection,
    utcnow,
    write_transaction,
    writing,
)

__all__ = [
    "ACTIVE",
    "PENDING",
    "SCHEDULED",
    "PolicyChanges",
    "Proposal",
    "StoredVersion",
]

log = structlog.get_logger(__name__)

PENDING, SCHEDULED, ACTIVE, RETIRED = "pending", "scheduled", "active", "retired"
REJECTED, WITHDRAWN, SUPERSEDED = "rejected", "withdrawn", "superseded"
STATUSES = (PENDING, SCHEDULED, ACTIVE, RETIRED, REJECTED, WITHDRAWN, SUPERSEDED)
_APPROVED = (SCHEDULED, ACTIVE)
_PAST_LEEWAY = timedelta(minutes=5)  # an effective time this far back means "now"
BOOTSTRAP_ACTOR = "hub:bootstrap"


def _iso(when: datetime | None) -> str | None:
    return None if when is None else iso_utc(when)


@dataclass(frozen=True, slots=True)
class StoredVersion:
    """One stored version, as the policy store loads it."""

    id: str
    dataset: str
    number: int
    text: str


@dataclass(frozen=True, slots=True)
class Proposal:
    """A version with its approvals, as the API shows it."""

    row: Any
    approvals: list[dict[str, Any]]
    base_number: int | None
    missing: dict[str, int]

    def view(self) -> dict[str, Any]:
        r = self.row
        return {
            "id": r.id, "dataset": r.dataset, "version": r.number, "status": r.status,
            "sha256": r.sha256, "base_version": self.base_number, "restores": r.restores,
            "note": r.note, "proposed_by": r.proposed_by, "proposed_org": r.proposed_org,
            "proposed_at": _iso(r.proposed_at), "effective_at": _iso(r.effective_at),
            "approvals": self.approvals,
            "still_needed": self.missing if r.status == PENDING else None,
            "decided_by": r.decided_by, "decided_at": _iso(r.decided_at), "reason": r.reason,
            "activated_at": _iso(r.activated_at), "retired_at": _iso(r.retired_at),
        }


class PolicyChanges:
    """Policy versions and their four-eyes review, in the metadata store."""

    def __init__(self, engine: Engine, registry: ContractRegistry, audit: AuditLog,
                 quorum: Quorum | None = None) -> None:
        self.engine = engine
        self.registry = registry
        self.audit = audit
        self.quorum = quorum or Quorum()
        self._pg = engine.dialect.name == "postgresql"
        #: called after a change that alters the active policies (the store refreshes)
        self.on_change: Callable[[], object] | None = None

    # -- transactions ---------------------------------------------------------------------
    def _writing(self) -> AbstractContextManager[Connection]:
        return writing(self.engine, Conflict(
            "another policy change of this dataset was made at the same moment; look again "
            "and retry", rule="policy:concurrent"))

    def _lock_dataset(self, conn: Connection, dataset: str) -> list[Any]:
        """Every version of ``dataset``, newest first; locked on PostgreSQL (SQLite holds
        the writer lock already), so that decisions on one dataset are serialised."""
        v = policy_versions
        query = sa.select(v).where(v.c.dataset == dataset).order_by(v.c.number.desc())
        if self._pg:
            query = query.with_for_update()
        return list(conn.execute(query).all())

    def _audit(self, conn: Connection, action: Action, actor: str | None, org: str | None,
               row: Any, **details: Any) -> None:
        self.audit.append(AuditEvent(
            action, actor=actor, org=org, object_type="policy_version", object_id=row.id,
            dataset=row.dataset, details={"version": row.number, **details}), conn=conn)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- parsing --------------------------------------------------------------------------
    def parse(self, text: str, source: str) -> Policy:
        return parse_policy_text(text, self.registry, source=source)

    @staticmethod
    def _latest_approved(rows: list[Any]) -> Any | None:
        return next((r for r in rows if r.status in _APPROVED), None)

    # -- proposing ------------------------------------------------------------------------
    def propose(self, actor: Actor, data: Any) -> tuple[dict[str, Any], str]:
        """Validate and store a proposal; returns its view (with the diff) and ``proposed``,
        ``existing`` (the same text is already pending) or ``valid`` (a dry run)."""
        actor.require(Role.GOVERNANCE)
        request = ProposalRequest.parse(data)
        now = utcnow()
        if request.effective_at is not None and request.effective_at < now - _PAST_LEEWAY:
            raise InvalidInput("effective_at is in the past; leave it out to take effect as "
                               "soon as approved", field="effective_at")
        with self._writing() as conn:
            text, policy, restores = self._proposed_text(conn, request)
            rows = self._lock_dataset(conn, policy.dataset)
            base = self._latest_approved(rows)
            if base is not None and base.text == text:
                raise InvalidInput(f"the proposal is identical to version {base.number} of "
                                   f"{policy.dataset}, its {base.status} version: nothing to "
                                   "change", field="yaml")
            self._check_after_base(request.effective_at, base)
            base_policy = self._stored_policy(base)
            diff = self._diff(base, base_policy, policy, text)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            same = next((r for r in rows if r.status == PENDING and r.sha256 == digest
                         and r.base_id == (base.id if base else None)
                         and r.effective_at == request.effective_at), None)
            if same is not None:
                return {**self._proposal(conn, same).view(), **diff}, "existing"
            number = (rows[0].number + 1) if rows else 1
            values = dict(
                id=f"pv_{secrets.token_hex(8)}", dataset=policy.dataset, number=number,
                status=PENDING, text=text, sha256=digest, base_id=base.id if base else None,
                restores=restores, note=request.note, proposed_by=actor.client_id,
                proposed_org=actor.org, proposed_at=now, effective_at=request.effective_at,
                decided_by=None, decided_at=None, reason=None, activated_at=None,
                retired_at=None,
            )
            row = _Row(**values)
            if request.dry_run:
                view = Proposal(row, [], base.number if base else None,
                                self.quorum.missing({actor.client_id}, {actor.org})).view()
                return {**view, "id": None, "status": "valid", **diff}, "valid"
            conn.execute(policy_versions.insert().values(**values))
            self._audit(conn, Action.POLICY_PROPOSED, actor.client_id, actor.org, row,
                        sha256=digest, base_version=base.number if base else None,
                        restores=restores, effective_at=_iso(request.effective_at),
                        changes=[c["path"] for c in diff["changes"]],
                        budget_changed=diff["budget_changed"])
            view = {**self._proposal(conn, row).view(), **diff}
        log.info("policy change proposed", dataset=policy.dataset, version=number,
                 actor=actor.client_id)
        return view, "proposed"

    def _proposed_text(self, conn: Connection, request: ProposalRequest
                       ) -> tuple[str, Policy, int | None]:
        if request.restore is not None:
            dataset = str(request.dataset)
            old = conn.execute(sa.select(policy_versions).where(
                policy_versions.c.dataset == dataset,
                policy_versions.c.number == request.restore)).first()
            if old is None or old.status not in (ACTIVE, RETIRED):
                raise NotFound(f"{dataset} has no version {request.restore} that was ever "
                               "in effect", field="restore")
            return old.text, self.parse(old.text, f"{dataset} v{old.number}"), old.number
        text = str(request.yaml)
        policy = parse_policy_text(text, self.registry, source=request.filename or "proposal",
                                   filename=request.filename)
        if request.dataset is not None and request.dataset != policy.dataset:
            raise InvalidInput(f"the text is the policy of {policy.dataset}, not of "
                               f"{request.dataset}", field="dataset")
        return text, policy, None

    @staticmethod
    def _check_after_base(effective_at: datetime | None, base: Any | None) -> None:
        if base is None or base.status != SCHEDULED or base.effective_at is None:
            return
        if effective_at is None or effective_at < base.effective_at:
            raise InvalidInput(
                f"version {base.number} takes effect at {_iso(base.effective_at)}; a change "
                "built on it cannot take effect earlier (give effective_at no earlier)",
                field="effective_at")

    def _stored_policy(self, row: Any | None) -> Policy | None:
        if row is None:
            return None
        try:
            return self.parse(row.text, f"{row.dataset} v{row.number}")
        except PolicyError:  # a stored version the current contracts no longer accept
            return None

    def _diff(self, base: Any | None, base_policy: Policy | None, policy: Policy,
              text: str) -> dict[str, Any]:
        changes = policy_changes(base_policy, policy)
        budget_changed = base_policy is None or limits_json(base_policy.limits) != limits_json(
            policy.limits)
        old_name = f"{policy.dataset} v{base.number}" if base is not None else "/dev/null"
        return {"diff": unified_diff(base.text if base is not None else "", text, old_name,
                                 f"{policy.dataset} (proposed)"),
                "changes": changes, "budget_changed": budget_changed,
                "limits": limits_json(policy.limits),
                "limits_before": limits_json(base_policy.limits) if base_policy else None}

    # -- deciding -------------------------------------------------------------------------
    def _pending(self, conn: Connection, proposal_id: str) -> tuple[Any, list[Any]]:
        row = conn.execute(sa.select(policy_versions.c.dataset).where(
            policy_versions.c.id == proposal_id)).first()
        if row is None:
            raise NotFound(f"no policy proposal {proposal_id!r}", field="id")
        rows = self._lock_dataset(conn, row.dataset)
        current = next(r for r in rows if r.id == proposal_id)
        if current.status == SUPERSEDED:
            raise Conflict(f"proposal {proposal_id} (version {current.number}) was superseded "
                           "by another approved change of its base; propose again against "
                           "the current version", rule="proposal:superseded")
        if current.status != PENDING:
            raise Conflict(f"proposal {proposal_id} is {current.status}, not pending",
                           rule="proposal:status")
        return current, rows

    def approve(self, actor: Actor, proposal_id: str, data: Any = None) -> dict[str, Any]:
        """Add the actor's approval; at quorum the version is scheduled or activated."""
        actor.require(Role.GOVERNANCE)
        note = decision(data).note
        activated = False
        with self._writing() as conn:
            row, rows = self._pending(conn, proposal_id)
            if row.proposed_by == actor.client_id:
                raise Forbidden("four eyes: another governance officer must approve this "
                                "proposal, not its proposer", rule="four-eyes:own-proposal")
            approvals = self._approvals(conn, [row.id])[row.id]
            if any(a["actor"] == actor.client_id for a in approvals):
                raise Conflict("you have approved this proposal already",
                               rule="four-eyes:already-approved")
            base = self._latest_approved(rows)
            if (base.id if base else None) != row.base_id:  # approvals supersede; a race
                raise Conflict(f"proposal {row.id} (version {row.number}) was built on an "
                               f"older version; version {base.number if base else '-'} was "
                               "approved since, so it is superseded: propose again",
                               rule="proposal:superseded")
            now = utcnow()
            conn.execute(policy_approvals.insert().values(
                version_id=row.id, actor=actor.client_id, org_id=actor.org, at=now, note=note))
            officers = {row.proposed_by} | {a["actor"] for a in approvals} | {actor.client_id}
            orgs = {o for o in [row.proposed_org, actor.org, *(a["org"] for a in approvals)]
                    if o}
            missing = self.quorum.missing(officers, orgs)
            reached = not any(missing.values())
            self._audit(conn, Action.POLICY_APPROVED, actor.client_id, actor.org, row,
                        quorum_reached=reached, officers=len(officers),
                        organisations=len(orgs), still_needed=missing)
            if reached:
                due = row.effective_at is None or row.effective_at <= now
                conn.execute(policy_versions.update().where(policy_versions.c.id == row.id)
                             .values(status=SCHEDULED, decided_by=actor.client_id,
                                     decided_at=now))
                others = [r for r in rows if r.status == PENDING and r.id != row.id]
                self._supersede(conn, others, row)
                if due:
                    self._activate(conn, row.dataset, row.id, now, rows)
                    activated = True
            view = self._proposal(conn, self._row(conn, row.id)).view()
        if activated:
            self._changed()
        return view

    def _supersede(self, conn: Connection, rows: list[Any], by: Any | None) -> None:
        for r in rows:
            conn.execute(policy_versions.update().where(policy_versions.c.id == r.id)
                         .values(status=SUPERSEDED, decided_at=utcnow()))
            self._audit(conn, Action.POLICY_SUPERSEDED, None, None, r,
                        by_version=by.number if by is not None else None)

    def _activate(self, conn: Connection, dataset: str, version_id: str, now: datetime,
                  rows: list[Any]) -> None:
        """Make ``version_id`` the active version (the caller holds the dataset's lock)."""
        old = next((r for r in rows if r.status == ACTIVE), None)
        new = self._row(conn, version_id)
        if old is not None:
            conn.execute(policy_versions.update().where(policy_versions.c.id == old.id)
                         .values(status=RETIRED, retired_at=now))
        conn.execute(policy_versions.update().where(policy_versions.c.id == version_id)
                     .values(status=ACTIVE, activated_at=now))
        new_policy = self.parse(new.text, f"{dataset} v{new.number}")
        old_policy = self._stored_policy(old)
        self._audit(conn, Action.POLICY_ACTIVATED, None, None, new, sha256=new.sha256,
                    replaces=old.number if old is not None else None,
                    limits=limits_json(new_policy.limits))
        before = limits_json(old_policy.limits) if old_policy is not None else None
        after = limits_json(new_policy.limits)
        if before != after:
            self._audit(conn, Action.BUDGET_CHANGED, None, None, new, before=before,
                        after=after)
        log.info("policy version active", dataset=dataset, version=new.number)

    def activate_due(self) -> bool:
        """Activate scheduled versions whose time has come; True if any was."""
        now = utcnow()
        v = policy_versions
        with read_connection(self.engine) as conn:
            due = conn.execute(sa.select(v.c.dataset).distinct().where(
                v.c.status == SCHEDULED, v.c.effective_at <= now)).scalars().all()
        changed = False
        for dataset in due:
            with self._writing() as conn:
                rows = self._lock_dataset(conn, dataset)
                ready = [r for r in rows if r.status == SCHEDULED
                         and r.effective_at is not None and r.effective_at <= now]
                if not ready:
                    continue  # another process activated it first
                newest, *older = ready  # rows are newest first
                for r in older:  # overtaken before they took effect
                    conn.execute(v.update().where(v.c.id == r.id)
                                 .values(status=RETIRED, activated_at=now, retired_at=now))
                self._activate(conn, dataset, newest.id, now, rows)
                changed = True
        return changed

    def reject(self, actor: Actor, proposal_id: str, data: Any = None) -> dict[str, Any]:
        """Reject a pending proposal, with a reason (another officer than the proposer)."""
        actor.require(Role.GOVERNANCE)
        reason = " ".join((decision(data).reason or "").split())
        if not reason:
            raise InvalidInput("a rejection needs a reason", field="reason")
        with self._writing() as conn:
            row, _ = self._pending(conn, proposal_id)
            if row.proposed_by == actor.client_id:
                raise Forbidden("you proposed this change: withdraw it instead of rejecting "
                                "it", rule="four-eyes:own-proposal")
            conn.execute(policy_versions.update().where(policy_versions.c.id == row.id).values(
                status=REJECTED, decided_by=actor.client_id, decided_at=utcnow(),
                reason=reason))
            self._audit(conn, Action.POLICY_REJECTED, actor.client_id, actor.org, row,
                        reason=reason[:500])
            return self._proposal(conn, self._row(conn, row.id)).view()

    def withdraw(self, actor: Actor, proposal_id: str) -> dict[str, Any]:
        """The proposer takes back a pending proposal."""
        actor.require(Role.GOVERNANCE)
        with self._writing() as conn:
            row, _ = self._pending(conn, proposal_id)
            if row.proposed_by != actor.client_id:
                raise Forbidden("only its proposer can withdraw a proposal; reject it with a "
                                "reason instead", rule="proposal:proposer")
            conn.execute(policy_versions.update().where(policy_versions.c.id == row.id)
                         .values(status=WITHDRAWN, decided_by=actor.client_id,
                                 decided_at=utcnow()))
            self._audit(conn, Action.POLICY_WITHDRAWN, actor.client_id, actor.org, row)
            return self._proposal(conn, self._row(conn, row.id)).view()

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _row(conn: Connection, version_id: str) -> Any:
        return conn.execute(sa.select(policy_versions).where(
            policy_versions.c.id == version_id)).one()

    @staticmethod
    def _approvals(conn: Connection, version_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        a = policy_approvals
        found: dict[str, list[dict[str, Any]]] = {i: [] for i in version_ids}
        for r in conn.execute(sa.select(a).where(a.c.version_id.in_(version_ids))
                              .order_by(a.c.at, a.c.actor)):
            found[r.version_id].append({"actor": r.actor, "org": r.org_id, "at": _iso(r.at),
                                        "note": r.note})
        return found

    def _proposals(self, conn: Connection, rows: list[Any]) -> list[Proposal]:
        """The views of ``rows``, with their approvals and base numbers (two queries)."""
        approvals = self._approvals(conn, [r.id for r in rows])
        base_ids = {r.base_id for r in rows if r.base_id is not None}
        numbers = dict(conn.execute(sa.select(policy_versions.c.id, policy_versions.c.number)
                                    .where(policy_versions.c.id.in_(base_ids))).all()
                       ) if base_ids else {}
        out = []
        for row in rows:
            given = approvals[row.id]
            officers = {row.proposed_by} | {a["actor"] for a in given}
            orgs = {o for o in [row.proposed_org, *(a["org"] for a in given)] if o}
            out.append(Proposal(row, given, numbers.get(row.base_id),
                                self.quorum.missing(officers, orgs)))
        return out

    def _proposal(self, conn: Connection, row: Any) -> Proposal:
        return self._proposals(conn, [row])[0]

    def proposals(self, actor: Actor, *, dataset: str | None = None,
                  status: str | None = None) -> list[dict[str, Any]]:
        """Versions, newest first, filtered by dataset and status (default: pending)."""
        actor.require(Role.GOVERNANCE)
        wanted = status or PENDING
        if wanted != "all" and wanted not in STATUSES:
            raise InvalidInput(f"unknown status {wanted!r}; one of {', '.join(STATUSES)} or "
                               "all", field="status")
        v = policy_versions
        columns = [c for c in v.c if c.name != "text"]  # a list never shows the texts
        query = sa.select(*columns).order_by(v.c.proposed_at.desc(), v.c.number.desc())
        if dataset:
            query = query.where(v.c.dataset == dataset)
        if wanted != "all":
            query = query.where(v.c.status == wanted)
        with read_connection(self.engine) as conn:
            return [p.view() for p in self._proposals(conn, list(conn.execute(query).all()))]

    def proposal(self, actor: Actor, proposal_id: str) -> dict[str, Any]:
        """One version with its text, its diff against its base and its approvals."""
        actor.require(Role.GOVERNANCE)
        with read_connection(self.engine) as conn:
            row = conn.execute(sa.select(policy_versions).where(
                policy_versions.c.id == proposal_id)).first()
            if row is None:
                raise NotFound(f"no policy proposal {proposal_id!r}", field="id")
            base = (self._row(conn, row.base_id) if row.base_id is not None else None)
            view = self._proposal(conn, row).view()
        policy = self.parse(row.text, f"{row.dataset} v{row.number}")
        return {**view, "yaml": row.text,
                **self._diff(base, self._stored_policy(base), policy, row.text)}

    def version(self, actor: Actor, dataset: str, number: int) -> dict[str, Any]:
        """Version ``number`` of ``dataset``'s policy (any status)."""
        actor.require(Role.GOVERNANCE)
        with read_connection(self.engine) as conn:
            found = conn.execute(sa.select(policy_versions.c.id).where(
                policy_versions.c.dataset == dataset,
                policy_versions.c.number == number)).scalar_one_or_none()
        if found is None:
            raise NotFound(f"{dataset} has no policy version {number}", field="version")
        return self.proposal(actor, found)

    def active_versions(self) -> list[StoredVersion]:
        """The active version of every dataset (what the policy store loads)."""
        v = policy_versions
        with read_connection(self.engine) as conn:
            rows = conn.execute(sa.select(v.c.id, v.c.dataset, v.c.number, v.c.text)
                                .where(v.c.status == ACTIVE).order_by(v.c.dataset)).all()
        return [StoredVersion(r.id, r.dataset, r.number, r.text) for r in rows]

    def active(self, actor: Actor) -> list[dict[str, Any]]:
        """Every dataset's active version with its text (``tahub policy export``), and how
        many proposals wait for review."""
        actor.require(Role.GOVERNANCE)
        v = policy_versions
        with read_connection(self.engine) as conn:
            rows = conn.execute(sa.select(v).where(v.c.status.in_(_APPROVED))
                                .order_by(v.c.dataset, v.c.number)).all()
            counted = conn.execute(sa.select(v.c.dataset, sa.func.count()).where(
                v.c.status == PENDING).group_by(v.c.dataset)).all()
        pending: dict[str, int] = {r[0]: r[1] for r in counted}
        by_dataset: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = by_dataset.setdefault(r.dataset, {"dataset": r.dataset, "scheduled": []})
            if r.status == ACTIVE:
                entry.update(version=r.number, id=r.id, sha256=r.sha256, yaml=r.text,
                             activated_at=_iso(r.activated_at))
            else:
                entry["scheduled"].append({"version": r.number, "id": r.id,
                                           "effective_at": _iso(r.effective_at)})
        for dataset, entry in by_dataset.items():
            entry["pending"] = pending.get(dataset, 0)
        return [by_dataset[d] for d in sorted(by_dataset)]

    # -- seeding --------------------------------------------------------------------------
    def bootstrap(self, folder: Path) -> list[PolicyProblem]:
        """On an empty store, make every valid ``<dataset>.yaml`` of ``folder`` version 1,
        active at once (``policy.loaded``); refused files are audited and returned."""
        with read_connection(self.engine) as conn:
            if conn.execute(sa.select(sa.func.count()).select_from(policy_versions)).scalar():
                return []
        problems: list[PolicyProblem] = []
        loaded: list[tuple[str, str, Policy]] = []
        for path in sorted(folder.glob("*.yaml")):
            try:
                text = path.read_text(encoding="utf-8")
                policy = parse_policy_text(text, self.registry, source=path.name,
                                           filename=path.name)
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"policy file {path} cannot be read ({type(exc).__name__})",
                                  field="TAHUB_POLICIES_DIR") from None
            except PolicyError as exc:
                found = [PolicyProblem(path.name, e.line, e.field, e.reason)
                         for e in exc.errors] or [PolicyProblem(path.name, None, None,
                                                                exc.detail)]
                problems += found
                self.audit.append(AuditEvent(
                    Action.POLICY_REFUSED, actor=BOOTSTRAP_ACTOR, object_type="policy_file",
                    object_id=path.name, details={"file": path.name, "errors": len(found),
                                                  "problems": [str(p)[:300] for p in found]}))
                log.error("policy file refused at first start", file=path.name,
                          errors=[str(p) for p in found])
                continue
            loaded.append((path.name, text, policy))
        try:
            with write_transaction(self.engine) as conn:
                if conn.execute(sa.select(sa.func.count()).select_from(policy_versions)
                                ).scalar():
                    return problems  # another process seeded the store meanwhile
                now = utcnow()
                for name, text, policy in loaded:
                    row = _Row(id=f"pv_{secrets.token_hex(8)}", dataset=policy.dataset,
                               number=1, status=ACTIVE, text=text,
                               sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                               base_id=None, restores=None,
                               note=f"imported from {name} at first start",
                               proposed_by=BOOTSTRAP_ACTOR, proposed_org=None,
                               proposed_at=now, effective_at=None,
                               decided_by=BOOTSTRAP_ACTOR, decided_at=now, reason=None,
                               activated_at=now, retired_at=None)
                    conn.execute(policy_versions.insert().values(**vars(row)))
                    self._audit(conn, Action.POLICY_LOADED, BOOTSTRAP_ACTOR, None, row,
                                file=name, sha256=row.sha256, rules=len(policy.rules),
                                limits=limits_json(policy.limits))
        except IntegrityError:
            return problems  # another process seeded the store meanwhile
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc
        log.info("policies imported at first start", count=len(loaded), folder=str(folder))
        return problems

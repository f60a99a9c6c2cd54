"""The audit log: an append-only, hash-chained record of every action that matters.

Each entry is a typed :class:`AuditEvent` (who, which organisation, what action, on which
object, and ``details``: shapes, costs and counts, never a data value, secret or token)
stamped with a gap-free ``seq`` and a UTC time, and chained::

    hash(n) = sha256(canonical JSON of entry n's fields, including prev_hash)
    prev_hash(n) = hash(n - 1)          prev_hash(1) = GENESIS (64 zeros)

The latest ``(seq, hash)`` is also kept in the one ``audit_anchor`` row, updated in the same
transaction as every append, so that removing the tail of the log is detected like removing
any other entry. :meth:`AuditLog.verify` (``tahub audit verify``) recomputes the chain and
names the first bad ``seq`` and why: an edited entry (its hash no longer matches its
content), a removed entry (a gap in ``seq``), a broken or reordered link, a truncated tail.

Serialisation: every append first bumps the anchor row (``UPDATE audit_anchor SET seq =
seq + 1``), which takes the row's lock on PostgreSQL (held to the end of the transaction;
READ COMMITTED then reads the latest committed head) and the database's writer lock on
SQLite; standalone appends on SQLite start with ``BEGIN IMMEDIATE``. So appends from any
number of threads, processes and hub replicas form one chain, never a fork. Lock order:
an append is always the *last* statement of a transaction (after the action's own writes
and locks), so that the anchor never takes part in a lock cycle.

Where an action has a transaction (member registration, uploads, withdrawal, ledger
charges), its entry is written inside it (``append(event, conn=...)``): the action and
its entry commit together or not at all. Actions without one (token issuance, a reused
release, a policy file) append just *before* they take effect (a token is handed out, a
policy becomes active) -- an audit failure then refuses the action -- or, for refusals
that change nothing (sign-in failures), right after.

Reading (governance role: everything; partner role: the query entries of datasets its
organisation contributes to) is in :mod:`hub.governance.auditread`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import Unavailable
from hub.storage.db import audit_anchor, audit_entries, read_connection, utcnow, write_transaction

__all__ = [
    "GENESIS",
    "Action",
    "AuditEntry",
    "AuditEvent",
    "AuditLog",
    "VerifyReport",
    "entry_hash",
]

GENESIS = "0" * 64
_ANCHOR_ID = 1
_BATCH = 1000
_MAX_DETAILS = 64 * 1024
# Safety net: keys that would carry a secret, a token or released values (a result) never
# enter an entry.
_FORBIDDEN_KEYS = frozenset({
    "secret", "client_secret", "password", "token", "access_token", "refresh_token",
    "id_token", "authorization", "result",
})
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.")


class Action(StrEnum):
    """Every action the log records (``GET /v1/audit?action=`` accepts these)."""

    TOKEN_ISSUED = "auth.token_issued"  # noqa: S105 - an action name, not a secret
    TOKEN_REFUSED = "auth.token_refused"  # noqa: S105 - the token endpoint refused (sign-in)
    BEARER_REFUSED = "auth.bearer_refused"  # an API request's bearer token was refused
    SIGNED_IN = "auth.signed_in"  # a person signed in (the hub's provider or an external one)
    SIGN_IN_FAILED = "auth.sign_in_failed"  # a wrong password, an unknown or disabled person
    REFRESH_REUSED = "auth.refresh_reused"  # a rotated refresh token again: its family revoked
    MEMBER_REGISTERED = "member.registered"
    MEMBER_LIMITS_SET = "member.limits_set"
    PERSON_ADDED = "person.added"
    PERSON_LINKED = "person.linked"  # linked to an external provider's identity
    PERSON_PASSWORD_SET = "person.password_set"  # noqa: S105 - an action name
    PERSON_ROLES_SET = "person.roles_set"
    PERSON_DISABLED = "person.disabled"
    CLIENT_ADDED = "client.added"
    CLIENT_REVOKED = "client.revoked"
    UPLOAD_STARTED = "upload.started"
    UPLOAD_COMMITTED = "upload.committed"
    UPLOAD_REJECTED = "upload.rejected"
    UPLOAD_ABORTED = "upload.aborted"
    EXTRACT_WITHDRAWN = "extract.withdrawn"
    QUERY_CHARGED = "query.charged"
    QUERY_RELEASED = "query.released"
    QUERY_FAILED = "query.failed"
    QUERY_REUSED = "query.reused"
    POLICY_LOADED = "policy.loaded"  # imported from the policies folder at first start
    POLICY_REFUSED = "policy.refused"  # a file of that folder failed validation
    POLICY_PROPOSED = "policy.proposed"
    POLICY_APPROVED = "policy.approved"
    POLICY_REJECTED = "policy.rejected"
    POLICY_WITHDRAWN = "policy.withdrawn"
    POLICY_SUPERSEDED = "policy.superseded"
    POLICY_ACTIVATED = "policy.activated"
    BUDGET_CHANGED = "budget.changed"
    RELEASE_PUBLISHED = "release.published"
    RELEASE_UPDATED = "release.updated"
    RELEASE_WITHDRAWN = "release.withdrawn"
    INCIDENT_ACCEPTED = "incident.accepted"  # a reviewer kept the suggested tags (hub.osint)
    INCIDENT_CORRECTED = "incident.corrected"  # ... coded the tags themselves
    INCIDENT_REJECTED = "incident.rejected"  # ... found it irrelevant, with a reason
    INCIDENT_MERGED = "incident.merged"  # ... found it the same incident as another
    REPORTS_PURGED = "reports.purged"  # crowd reports' texts deleted after review (counts)
    SOURCE_ADDED = "source.added"  # an open source configured (hub.osint.sources)
    SOURCE_CHANGED = "source.changed"  # ... its settings changed, enabled or disabled
    SOURCE_REMOVED = "source.removed"  # ... removed (nothing was collected from it)
    REQUEST_REFUSED = "request.refused"  # 403/404/409/422 to an authenticated request


#: What a data owner sees of the use of its datasets (GET /v1/audit/usage).
QUERY_ACTIONS = (Action.QUERY_CHARGED, Action.QUERY_RELEASED, Action.QUERY_FAILED,
                 Action.QUERY_REUSED, Action.REQUEST_REFUSED)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """What happened: the typed record a service hands to :meth:`AuditLog.append`.

    ``actor`` is a client id (``tahub_...``), ``cli:<user>`` for the admin CLI, or None for
    the hub itself; ``org`` the acting organisation. ``details`` is plain JSON of shapes,
    costs and counts -- never a data value, secret or token (checked on append).
    """

    action: Action
    actor: str | None = None
    org: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    dataset: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One stored entry of the chain."""

    seq: int
    at: datetime
    actor: str | None
    org: str | None
    action: str
    object_type: str | None
    object_id: str | None
    dataset: str | None
    details: dict[str, Any]
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq, "at": _iso(self.at), "actor": self.actor, "org": self.org,
            "action": self.action, "object_type": self.object_type,
            "object_id": self.object_id, "dataset": self.dataset, "details": self.details,
            "prev_hash": self.prev_hash, "hash": self.hash,
        }

    def computed_hash(self) -> str:
        return entry_hash(self.seq, self.at, self.actor, self.org, self.action,
                          self.object_type, self.object_id, self.dataset, self.details,
                          self.prev_hash)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of :meth:`AuditLog.verify`: ``ok``, or the first bad ``seq`` and why."""

    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    bad_seq: int | None = None
    reason: str | None = None


def _iso(when: datetime) -> str:
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def entry_hash(seq: int, at: datetime, actor: str | None, org: str | None, action: str,
               object_type: str | None, object_id: str | None, dataset: str | None,
               details: Mapping[str, Any], prev_hash: str) -> str:
    """sha256 (hex) of the canonical JSON of an entry: sorted keys, no spaces, UTF-8."""
    canonical = json.dumps(
        {"seq": seq, "at": _iso(at), "actor": actor, "org": org, "action": action,
         "object_type": object_type, "object_id": object_id, "dataset": dataset,
         "details": details, "prev_hash": prev_hash},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_details(value: Any, path: str = "details") -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower() in _FORBIDDEN_KEYS:
                raise ValueError(f"audit {path}.{key}: that key may carry a secret or data")
            _check_details(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _check_details(item, path)
    elif isinstance(value, str) and _JWT.search(value):
        raise ValueError(f"audit {path}: a string that looks like a token")


def clean_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` as plain JSON that round-trips exactly, checked to hold no secrets.

    A violation is a bug in the caller (ValueError), never a user's error.
    """
    text = json.dumps(dict(details), sort_keys=True, allow_nan=False)
    if len(text) > _MAX_DETAILS:
        raise ValueError(f"audit details of {len(text)} characters (at most {_MAX_DETAILS})")
    out: dict[str, Any] = json.loads(text)
    _check_details(out)
    return out


def _entry(row: Any) -> AuditEntry:
    return AuditEntry(seq=row.seq, at=row.at, actor=row.actor, org=row.org_id,
                      action=row.action, object_type=row.object_type,
                      object_id=row.object_id, dataset=row.dataset, details=row.details,
                      prev_hash=row.prev_hash, hash=row.hash)


class AuditLog:
    """The chain in the metadata store (SQLite or PostgreSQL). Thread- and process-safe."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._pg = engine.dialect.name == "postgresql"

    # -- writing ----------------------------------------------------------------------------
    def append(self, event: AuditEvent, *, conn: Connection | None = None) -> AuditEntry:
        """Add ``event`` at the head of the chain.

        With ``conn``: inside the caller's transaction, as its last statement (the entry
        commits with the action, or neither does; store errors are the caller's to
        translate). Without: in a transaction of its own (errors -> ``Unavailable``).
        """
        details = clean_details(event.details)
        if conn is not None:
            return self._append(conn, event, details)
        with self._writing() as own:
            return self._append(own, event, details)

    @contextmanager
    def _writing(self) -> Iterator[Connection]:
        try:
            with write_transaction(self.engine) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc

    def _append(self, conn: Connection, event: AuditEvent, details: dict[str, Any]
                ) -> AuditEntry:
        a = audit_anchor
        # Write first: this takes the anchor's lock before the head is read.
        bumped = conn.execute(sa.update(a).where(a.c.id == _ANCHOR_ID).values(seq=a.c.seq + 1))
        if bumped.rowcount != 1:
            raise Unavailable("the audit log's anchor row is missing; run `tahub audit verify` "
                              "and restore the metadata store from a backup")
        columns: list[Any] = [a.c.seq, a.c.hash]
        if self._pg:  # the database server's clock, read under the lock: times never disagree
            columns.append(sa.func.clock_timestamp())
        row = conn.execute(sa.select(*columns).where(a.c.id == _ANCHOR_ID)).one()
        seq, prev = int(row[0]), str(row[1])
        at = row[2] if self._pg else utcnow()
        at = at.astimezone(UTC)
        action = Action(event.action).value
        digest = entry_hash(seq, at, event.actor, event.org, action, event.object_type,
                            event.object_id, event.dataset, details, prev)
        conn.execute(sa.insert(audit_entries).values(
            seq=seq, at=at, actor=event.actor, org_id=event.org, action=action,
            object_type=event.object_type, object_id=event.object_id, dataset=event.dataset,
            details=details, prev_hash=prev, hash=digest,
        ))
        conn.execute(sa.update(a).where(a.c.id == _ANCHOR_ID).values(hash=digest))
        return AuditEntry(seq=seq, at=at, actor=event.actor, org=event.org, action=action,
                          object_type=event.object_type, object_id=event.object_id,
                          dataset=event.dataset, details=details, prev_hash=prev, hash=digest)

    # -- reading ----------------------------------------------------------------------------
    def reading(self) -> AbstractContextManager[Connection]:
        return read_connection(self.engine)

    def scan(self, where: Any = None, *, after: int = 0, limit: int | None = None
             ) -> Iterator[AuditEntry]:
        """Entries with ``seq > after`` matching ``where``, by seq, read in batches (each
        batch on a connection of its own, so a slow reader holds nothing)."""
        left = limit
        while left is None or left > 0:
            size = _BATCH if left is None else min(_BATCH, left)
            query = sa.select(audit_entries).where(audit_entries.c.seq > after)
            if where is not None:
                query = query.where(where)
            with self.reading() as conn:
                rows = conn.execute(query.order_by(audit_entries.c.seq).limit(size)).all()
            for row in rows:
                yield _entry(row)
            if len(rows) < size:
                return
            after = rows[-1].seq
            if left is not None:
                left -= len(rows)

    def head(self) -> tuple[int, str] | None:
        """The anchor's (seq, hash), or None if the anchor row is gone."""
        with self.reading() as conn:
            row = conn.execute(sa.select(audit_anchor.c.seq, audit_anchor.c.hash)
                               .where(audit_anchor.c.id == _ANCHOR_ID)).first()
        return None if row is None else (int(row.seq), str(row.hash))

    def _seq_of_hash(self, digest: str) -> int | None:
        with self.reading() as conn:
            found = conn.execute(sa.select(audit_entries.c.seq)
                                 .where(audit_entries.c.hash == digest)).first()
        return None if found is None else int(found.seq)

    # -- verifying --------------------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Recompute the whole chain; the first bad ``seq`` and why, or ok."""
        anchor = self.head()  # read first: entries appended meanwhile only extend the chain
        prev, expected = GENESIS, 1

        def bad(seq: int, reason: str) -> VerifyReport:
            return VerifyReport(False, expected - 1, expected - 1, prev, seq, reason)

        for entry in self.scan():
            if anchor is not None and entry.seq > anchor[0]:
                break  # appended after the anchor was read
            if entry.seq != expected:
                gap = (f"entry {expected} is missing" if entry.seq == expected + 1 else
                       f"entries {expected} to {entry.seq - 1} are missing")
                return bad(expected, f"{gap}: seq jumps from {expected - 1} to {entry.seq} "
                                     "(removed entries)")
            if entry.prev_hash != prev:
                moved = self._seq_of_hash(entry.prev_hash)
                if moved is not None and moved != expected - 1:
                    return bad(entry.seq, f"entries were reordered: entry {entry.seq} links "
                                          f"to the entry now at seq {moved}, not to entry "
                                          f"{entry.seq - 1}")
                return bad(entry.seq, f"entry {entry.seq} does not link to entry "
                                      f"{entry.seq - 1}: its prev_hash differs (one of the "
                                      "two was altered)")
            if entry.computed_hash() != entry.hash:
                return bad(entry.seq, f"entry {entry.seq} was altered: its hash does not "
                                      "match its content")
            prev, expected = entry.hash, expected + 1
        last = expected - 1
        if anchor is None:
            return bad(last + 1, "the audit anchor row is missing")
        if anchor[0] > last:
            gap = (f"entry {anchor[0]} is missing" if anchor[0] == last + 1 else
                   f"entries {last + 1} to {anchor[0]} are missing")
            return bad(last + 1, f"{gap}: the log ends at seq {last} but the anchor records "
                                 f"seq {anchor[0]} (truncated tail)")
        if anchor[1] != prev:
            return bad(last, f"entry {last}, the last, does not match the anchor's hash "
                             "(the entry or the anchor was altered)")
        return VerifyReport(True, last, last, prev)

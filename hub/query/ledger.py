"""The privacy-budget ledger and the stored releases, in the metadata store.

Check, then spend, then run: a query's cost is debited here, in one transaction that holds
the dataset's budget lock, *before* its result is computed; the result is then stored as a
release that references that ledger entry. The rules deciding whether a cost fits are pure
and live in :mod:`hub.privacy.budget`; this module reads the spending, applies them under a lock and
writes. The lifecycle of an entry::

    charge() ──> charged ──record_release()──> released   (the release row references it)
                    └──────mark_failed()─────> failed

Every entry counts as spent, whatever its status, and nothing is ever refunded: the debit
happens before any noise is drawn, and whether a computation fails can itself depend on the
data (a timeout, an overflow), so a refund would let a member probe the data for free. A
process that dies between ``charge`` and ``record_release`` leaves a ``charged`` entry: the
budget is spent and nothing is released. A release without an entry cannot exist (foreign
key, and both rows change in one transaction).

Concurrency: charges to one dataset are serialised, so no interleaving of concurrent
callers (threads, processes, hub replicas) can overspend. On SQLite every write transaction
starts with ``BEGIN IMMEDIATE`` (the database's single writer lock, waited for up to the
engine's ``busy_timeout``); on PostgreSQL the transaction first locks the dataset's row in
``budget_locks`` with ``SELECT ... FOR UPDATE`` and then, under READ COMMITTED, reads the
spending committed by every earlier holder of the lock.

Clock: entry timestamps and the month a charge falls in come from the database server's
clock on PostgreSQL (``clock_timestamp()``, read inside the locked transaction, or
:meth:`Ledger.now`), so hub processes on hosts whose clocks disagree still agree on which
period is current and cannot each spend a period's cap. On SQLite, whose hub processes share
one host, it is that host's clock (:func:`hub.storage.db.utcnow`). An explicit ``now`` (tests,
administration) overrides it.

One charge per question: :meth:`Ledger.charge_once` (what the query service uses) charges a
member's question only if, under the same lock, no release of it is stored and no identical
charge of it is in flight (``charged`` and younger than ``stale_after``); else it returns
that release, or :class:`InFlight` for the caller to wait on. Identical queries sent at once,
to any process or replica, are computed and charged once; the others get the stored release
for free. An in-flight entry older than ``stale_after`` is taken for a process that died
mid-query, and the question is charged again.

Zero cost: a zero-cost charge is written like any other (amount 0), so that every release
still has its entry and the audit trail shows every query.

Amounts are stored exactly, as a numerator and a denominator (64-bit integers); a cost whose
exact fraction does not fit is refused rather than rounded.

Audit: every charge, release and failure is written to the audit log
(``hub.governance.audit``) in the same transaction as the ledger change: ``query.charged``
with the query's shape and cost, ``query.released``, ``query.failed``; the entry is the
transaction's last statement (the budget lock is taken before the audit log's anchor,
always in that order).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import Conflict, InvalidInput, Unavailable
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.privacy.budget import (
    Balance,
    Spend,
    SpentEntry,
    check_charge,
    opened_at,
    tally,
)
from hub.query.answer import stored_body, stored_result
from hub.storage.db import (
    budget_locks,
    iso_utc,
    json_text,
    ledger_entries,
    ledger_totals,
    read_connection,
    releases,
    utcnow,
    write_transaction,
)

__all__ = ["Charge", "InFlight", "Ledger", "Release", "Spending"]

CHARGED, RELEASED, FAILED = "charged", "released", "failed"
_INT64 = 2**63 - 1
_QUERY_KEY = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Charge:
    """One ledger entry: a debit for one query of one member on one dataset."""

    id: str
    dataset: str
    org: str
    cost: Cost
    query_key: str
    status: str
    created_at: datetime
    released_at: datetime | None
    shape: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Release:
    """A stored result, and what its entry cost when it was first computed.

    ``body`` is the result as the metadata store holds it (zstd, :mod:`hub.query.answer`),
    read without decoding (an answer sends it as it is: :class:`hub.query.answer.Answer`);
    ``result`` decodes it for the callers that need its values."""

    id: str
    entry_id: str
    dataset: str
    org: str
    query_key: str
    created_at: datetime
    body: bytes
    cost: Cost

    @property
    def result(self) -> dict[str, Any]:
        return stored_result(self.body)


@dataclass(frozen=True, slots=True)
class InFlight:
    """An identical question of the same member is being computed (entry ``entry_id``)."""

    entry_id: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Spending:
    """Totals for one member, dataset and measure (for ``tahub admin budget show``)."""

    dataset: str
    org: str
    measure: Measure
    spent: Fraction
    entries: int
    charged: int
    released: int
    failed: int


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _json_object_text(value: Any, field: str) -> str:
    """A JSON object as compact JSON text (no NaN, no non-JSON types)."""
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{field} must be a JSON object", field=field)
    try:
        return json_text(dict(value))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field} is not plain JSON: {exc}", field=field) from None


def _json_object(value: Any, field: str) -> dict[str, Any]:
    """A JSON object that round-trips exactly (no NaN, no non-JSON types)."""
    out: dict[str, Any] = json.loads(_json_object_text(value, field))
    return out


def _cost(row: Any) -> Cost:
    return Cost(Measure(row.measure), Fraction(row.amount_num, row.amount_den),
                Fraction(row.delta_num, row.delta_den))


def _charge(row: Any) -> Charge:
    return Charge(
        id=row.id, dataset=row.dataset, org=row.org_id, cost=_cost(row),
        query_key=row.query_key, status=row.status, created_at=row.created_at,
        released_at=row.released_at, shape=row.shape,
    )


@dataclass(frozen=True, slots=True)
class _Entry:
    """A charge to be written, checked for what can be checked without the lock."""

    dataset: str
    org: str
    limits: BudgetLimits
    cost: Cost
    query_key: str
    shape: dict[str, Any]
    now: datetime | None

    @classmethod
    def of(cls, dataset: str, org: str, limits: BudgetLimits, cost: Cost, query_key: str,
           shape: Mapping[str, Any], now: datetime | None) -> _Entry:
        if not isinstance(query_key, str) or not _QUERY_KEY.fullmatch(query_key):
            raise InvalidInput("query_key must be a lowercase hex sha256 digest",
                               field="query_key")
        if not dataset:
            raise InvalidInput("dataset is required", field="dataset")
        if cost.measure is not limits.measure:  # refused on the measure, whatever the time
            check_charge(limits, cost, Spend(Fraction(0), Fraction(0), Fraction(0)),
                         now=utcnow() if now is None else _utc(now))
        amount, delta = Fraction(cost.amount), Fraction(cost.delta)
        if max(amount.numerator, amount.denominator, delta.numerator,
               delta.denominator) > _INT64:
            raise InvalidInput(f"the cost {cost} cannot be stored exactly; use a simpler "
                               "fraction", field="cost")
        return cls(dataset, org, limits, cost, query_key, _json_object(shape, "shape"), now)


def _day(when: datetime) -> str:
    """The UTC day of ``when``, as ``ledger_totals`` keys it."""
    return _utc(when).strftime("%Y-%m-%d")


# The reuse path's two reads (Ledger.stored_answer), built once: building a statement
# costs more than SQLite takes to answer it. A stored release with its entry's cost...
_FIND_RELEASE = (
    sa.select(releases.c.id, releases.c.entry_id, releases.c.dataset, releases.c.org_id,
              releases.c.query_key, releases.c.created_at, releases.c.body,
              ledger_entries.c.measure, ledger_entries.c.amount_num,
              ledger_entries.c.amount_den, ledger_entries.c.delta_num,
              ledger_entries.c.delta_den)
    .join(ledger_entries, ledger_entries.c.id == releases.c.entry_id)
    .where(releases.c.dataset == sa.bindparam("dataset"),
           releases.c.org_id == sa.bindparam("org"),
           releases.c.query_key == sa.bindparam("query_key"))
)
# ... and a dataset's per-member, per-day totals since it opened (Ledger._spent).
_TOTALS = (
    sa.select(ledger_totals.c.org_id, ledger_totals.c.measure, ledger_totals.c.day,
              ledger_totals.c.amount, ledger_totals.c.delta)
    .where(ledger_totals.c.dataset == sa.bindparam("dataset"),
           ledger_totals.c.day >= sa.bindparam("since"))
)


class Ledger:
    """The budget ledger on a metadata-store engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        if engine.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(
                f"the ledger supports SQLite and PostgreSQL, not {engine.dialect.name}")
        self.engine = engine
        self.audit = AuditLog(engine)

    # -- transactions ---------------------------------------------------------------------
    @contextmanager
    def _locked(self, dataset: str) -> Iterator[Connection]:
        """One write transaction that holds ``dataset``'s budget lock until it ends (on
        SQLite the database's writer lock, on PostgreSQL the dataset's budget_locks row)."""
        try:
            with write_transaction(self.engine) as conn:
                if self.engine.dialect.name != "sqlite":
                    from sqlalchemy.dialects.postgresql import insert as pg_insert

                    conn.execute(pg_insert(budget_locks).values(dataset=dataset)
                                 .on_conflict_do_nothing())
                    conn.execute(sa.select(budget_locks.c.dataset)
                                 .where(budget_locks.c.dataset == dataset).with_for_update())
                yield conn
        except SQLAlchemyError as exc:
            raise Unavailable("the metadata store is unavailable; retry later") from exc

    def _now(self, conn: Connection) -> datetime:
        """The ledger's clock on ``conn``: the server's on PostgreSQL (module docstring)."""
        if self.engine.dialect.name != "postgresql":
            return utcnow()
        return _utc(conn.execute(sa.select(sa.func.clock_timestamp())).scalar_one())

    def now(self) -> datetime:
        """The ledger's clock (the database server's on PostgreSQL), for callers that decide
        which period is current, as :class:`hub.query.service.QueryService` does."""
        if self.engine.dialect.name != "postgresql":
            return utcnow()
        with self._reading() as conn:
            return self._now(conn)

    def _reading(self) -> AbstractContextManager[Connection]:
        return read_connection(self.engine)

    def _spent(self, conn: Connection, *, dataset: str, org: str, limits: BudgetLimits,
               now: datetime) -> Spend:
        """Everything spent on ``dataset`` since it opened, from the per-member, per-day
        totals kept with each charge (``ledger_totals``): one row per member and day, so a
        budget check does not grow with the number of queries (bench/ledger_growth.py).
        Days are UTC and the opening and month windows start at midnight UTC, so each
        day's total counts exactly as its entries would (:func:`tally`)."""
        rows = conn.execute(_TOTALS, {"dataset": dataset,
                                      "since": _day(opened_at(limits))}).all()
        other = {r.measure for r in rows} - {limits.measure.value}
        if other:
            raise Conflict(
                f"dataset {dataset!r} has spending in {', '.join(sorted(other))} since it "
                f"opened, but its policy now accounts in {limits.measure.value}; amounts of "
                "different measures cannot be added, so governance must reopen the dataset",
                rule="budget:measure",
            )
        return tally(
            (SpentEntry(r.org_id, Fraction(r.amount), datetime.fromisoformat(r.day).replace(
                tzinfo=UTC), Fraction(r.delta)) for r in rows),
            org=org, now=now,
        )

    @staticmethod
    def _add_to_totals(conn: Connection, e: _Entry, when: datetime, amount: Fraction,
                       delta: Fraction) -> None:
        """Add one charge to its member's total of its day (under the dataset's lock)."""
        lt = ledger_totals
        key = {"dataset": e.dataset, "org_id": e.org, "measure": e.cost.measure.value,
               "day": _day(when)}
        where = sa.and_(*(lt.c[k] == v for k, v in key.items()))
        row = conn.execute(sa.select(lt.c.amount, lt.c.delta, lt.c.entries).where(where)).first()
        if row is None:
            conn.execute(sa.insert(lt).values(**key, amount=str(amount), delta=str(delta),
                                              entries=1))
        else:
            conn.execute(sa.update(lt).where(where).values(
                amount=str(Fraction(row.amount) + amount),
                delta=str(Fraction(row.delta) + delta), entries=row.entries + 1))

    # -- spending -------------------------------------------------------------------------
    def charge(self, *, dataset: str, org: str, limits: BudgetLimits, cost: Cost,
               query_key: str, shape: Mapping[str, Any], now: datetime | None = None,
               actor: str | None = None) -> Charge:
        """Debit ``cost`` for one query, or refuse and write nothing.

        In one transaction holding the dataset's lock: read what has been spent, apply the
        rules of :func:`hub.privacy.budget.check_charge` (raising ``BudgetExceeded`` naming the
        rule, with ``requested`` and ``remaining``), then insert a ``charged`` entry.
        ``shape`` describes the query (fields, functions, bounds), never a data value.
        ``now`` defaults to the ledger's clock, read once the lock is held. ``actor`` (the
        asking client) goes into the ``query.charged`` audit entry.
        """
        entry = _Entry.of(dataset, org, limits, cost, query_key, shape, now)
        with self._locked(dataset) as conn:
            return self._debit(conn, entry, actor)

    def charge_once(self, *, dataset: str, org: str, limits: BudgetLimits, cost: Cost,
                    query_key: str, shape: Mapping[str, Any], stale_after: timedelta,
                    now: datetime | None = None, actor: str | None = None
                    ) -> Charge | Release | InFlight:
        """:meth:`charge`, unless the same question of the same member already has a stored
        release (returned: free) or an identical charge younger than ``stale_after`` in
        flight (:class:`InFlight`: wait for its release); decided under the dataset's lock
        (module docstring, "One charge per question")."""
        entry = _Entry.of(dataset, org, limits, cost, query_key, shape, now)
        le = ledger_entries
        with self._locked(dataset) as conn:
            stored = self._find(conn, dataset=dataset, org=org, query_key=query_key)
            if stored is not None:
                return stored
            when = self._now(conn) if now is None else _utc(now)
            flying = conn.execute(
                sa.select(le.c.id, le.c.created_at)
                .where(le.c.dataset == dataset, le.c.org_id == org,
                       le.c.query_key == query_key, le.c.status == CHARGED,
                       le.c.created_at > when - stale_after)
                .order_by(le.c.created_at).limit(1)).first()
            if flying is not None:
                return InFlight(flying.id, _utc(flying.created_at))
            return self._debit(conn, entry, actor)

    def _debit(self, conn: Connection, e: _Entry, actor: str | None) -> Charge:
        """Check ``e`` against what is spent and insert its ``charged`` entry (under the
        dataset's lock, held by the caller)."""
        when = self._now(conn) if e.now is None else _utc(e.now)
        spent = self._spent(conn, dataset=e.dataset, org=e.org, limits=e.limits, now=when)
        check_charge(e.limits, e.cost, spent, now=when)
        amount, delta = Fraction(e.cost.amount), Fraction(e.cost.delta)
        stored_cost = Cost(e.cost.measure, amount, delta)
        entry_id = _new_id("led_")
        conn.execute(sa.insert(ledger_entries).values(
            id=entry_id, dataset=e.dataset, org_id=e.org, measure=e.cost.measure.value,
            amount_num=amount.numerator, amount_den=amount.denominator,
            delta_num=delta.numerator, delta_den=delta.denominator, query_key=e.query_key,
            status=CHARGED, created_at=when, released_at=None, shape=e.shape,
        ))
        self._add_to_totals(conn, e, when, amount, delta)
        self.audit.append(AuditEvent(
            Action.QUERY_CHARGED, actor=actor, org=e.org, object_type="query",
            object_id=entry_id, dataset=e.dataset,
            details={"cost": stored_cost.as_json(), "query_key": e.query_key,
                     "shape": e.shape},
        ), conn=conn)
        return Charge(id=entry_id, dataset=e.dataset, org=e.org, cost=stored_cost,
                      query_key=e.query_key, status=CHARGED, created_at=when,
                      released_at=None, shape=e.shape)

    def record_release(self, charge: Charge, result: Mapping[str, Any],
                       *, now: datetime | None = None, actor: str | None = None) -> Release:
        """Store ``result`` as the release of ``charge`` and mark the entry ``released``.

        Both rows change in one transaction. If the same member already has a release for
        the same dataset and query (two identical queries raced past ``find_release``), that
        stored release is returned and this entry is marked ``failed``: its budget stays
        spent, and the member keeps seeing one answer per question.
        """
        text = _json_object_text(result, "result")  # the JSON is written once, here
        if text == "{}":
            raise InvalidInput("a result holds at least one field", field="result")
        body = stored_body(text)
        le, rel = ledger_entries, releases
        with self._locked(charge.dataset) as conn:
            when = self._now(conn) if now is None else _utc(now)
            existing = self._find(conn, dataset=charge.dataset, org=charge.org,
                                  query_key=charge.query_key)
            new_status = FAILED if existing is not None else RELEASED
            updated = conn.execute(
                sa.update(le)
                .where(le.c.id == charge.id, le.c.status == CHARGED)
                .values(status=new_status, released_at=when if existing is None else None)
            )
            if updated.rowcount != 1:
                raise Conflict(f"ledger entry {charge.id} is not awaiting a release",
                               rule="ledger:status")
            details: dict[str, Any] = {"cost": charge.cost.as_json(),
                                       "query_key": charge.query_key}
            if existing is not None:
                details.update(reason="an identical query was released first",
                               release_of=existing.entry_id)
            self.audit.append(AuditEvent(
                Action.QUERY_FAILED if existing is not None else Action.QUERY_RELEASED,
                actor=actor, org=charge.org, object_type="query", object_id=charge.id,
                dataset=charge.dataset, details=details,
            ), conn=conn)
            if existing is not None:
                return existing
            release_id = _new_id("rel_")
            conn.execute(sa.insert(rel).values(
                id=release_id, entry_id=charge.id, dataset=charge.dataset, org_id=charge.org,
                query_key=charge.query_key, created_at=when, body=body,
            ))
        return Release(id=release_id, entry_id=charge.id, dataset=charge.dataset,
                       org=charge.org, query_key=charge.query_key, created_at=when,
                       body=body, cost=charge.cost)

    def mark_failed(self, charge: Charge, *, actor: str | None = None,
                    reason: str | None = None) -> None:
        """The computation of ``charge`` failed: nothing is released; the budget stays spent.

        ``reason`` (an error class name, never its text) goes into the audit entry."""
        le = ledger_entries
        with self._locked(charge.dataset) as conn:
            updated = conn.execute(sa.update(le).where(le.c.id == charge.id,
                                                       le.c.status == CHARGED)
                                   .values(status=FAILED))
            if updated.rowcount != 1:
                raise Conflict(f"ledger entry {charge.id} is not awaiting a release",
                               rule="ledger:status")
            self.audit.append(AuditEvent(
                Action.QUERY_FAILED, actor=actor, org=charge.org, object_type="query",
                object_id=charge.id, dataset=charge.dataset,
                details={"cost": charge.cost.as_json(), "query_key": charge.query_key,
                         "reason": reason or "the computation failed"},
            ), conn=conn)

    # -- reading --------------------------------------------------------------------------
    @staticmethod
    def _find(conn: Connection, *, dataset: str, org: str, query_key: str) -> Release | None:
        row = conn.execute(_FIND_RELEASE, {"dataset": dataset, "org": org,
                                           "query_key": query_key}).first()
        if row is None:
            return None
        return Release(id=row.id, entry_id=row.entry_id, dataset=row.dataset, org=row.org_id,
                       query_key=row.query_key, created_at=row.created_at, body=row.body,
                       cost=_cost(row))

    def find_release(self, *, dataset: str, org: str, query_key: str) -> Release | None:
        """The stored release of this member's identical earlier query, if any (free)."""
        with self._reading() as conn:
            return self._find(conn, dataset=dataset, org=org, query_key=query_key)

    def stored_answer(self, *, dataset: str, org: str, query_key: str, limits: BudgetLimits,
                      now: datetime | None = None) -> tuple[Release, Balance] | None:
        """The stored release of this member's identical earlier query with the member's
        balance, read on one connection (the reuse path: bench/ledger_growth.py)."""
        with self._reading() as conn:
            found = self._find(conn, dataset=dataset, org=org, query_key=query_key)
            if found is None:
                return None
            when = self._now(conn) if now is None else _utc(now)
            spent = self._spent(conn, dataset=dataset, org=org, limits=limits, now=when)
        return found, Balance.of(dataset=dataset, org=org, limits=limits, spent=spent)

    def balance(self, *, dataset: str, org: str, limits: BudgetLimits,
                now: datetime | None = None) -> Balance:
        """What ``org`` has spent and has left on ``dataset`` under ``limits`` (exact)."""
        with self._reading() as conn:
            when = self._now(conn) if now is None else _utc(now)
            spent = self._spent(conn, dataset=dataset, org=org, limits=limits, now=when)
        return Balance.of(dataset=dataset, org=org, limits=limits, spent=spent)

    def history(self, org: str, dataset: str | None = None) -> list[Charge]:
        """This member's ledger entries, oldest first (optionally for one dataset)."""
        le = ledger_entries
        query = sa.select(le).where(le.c.org_id == org)
        if dataset is not None:
            query = query.where(le.c.dataset == dataset)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(le.c.created_at, le.c.id)).all()
        return [_charge(r) for r in rows]

    def spending_over_time(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """Per dataset and member, the cumulative amount spent after each charge, oldest first
        (exact strings; every entry counts, failed ones included: their budget stays spent)."""
        le = ledger_entries
        query = sa.select(le.c.dataset, le.c.org_id, le.c.measure, le.c.amount_num,
                          le.c.amount_den, le.c.created_at)
        if dataset is not None:
            query = query.where(le.c.dataset == dataset)
        with self._reading() as conn:
            rows = conn.execute(query.order_by(le.c.created_at, le.c.id)).all()
        running: dict[tuple[str, str], Fraction] = {}
        points = []
        for r in rows:
            key = (r.dataset, r.org_id)
            running[key] = running.get(key, Fraction(0)) + Fraction(r.amount_num, r.amount_den)
            points.append({"dataset": r.dataset, "org": r.org_id, "measure": r.measure,
                           "at": iso_utc(r.created_at),
                           "spent": str(running[key])})
        return points

    def spending(self, dataset: str | None = None) -> list[Spending]:
        """Totals per dataset, member and measure over all time (for administrators)."""
        le = ledger_entries
        query = sa.select(le.c.dataset, le.c.org_id, le.c.measure, le.c.amount_num,
                          le.c.amount_den, le.c.status)
        if dataset is not None:
            query = query.where(le.c.dataset == dataset)
        with self._reading() as conn:
            rows = conn.execute(query).all()
        totals: dict[tuple[str, str, str], dict[str, Any]] = {}
        for r in rows:
            t = totals.setdefault((r.dataset, r.org_id, r.measure), {
                "spent": Fraction(0), CHARGED: 0, RELEASED: 0, FAILED: 0})
            t["spent"] += Fraction(r.amount_num, r.amount_den)
            t[r.status] = t.get(r.status, 0) + 1
        return [
            Spending(dataset=d, org=o, measure=Measure(m), spent=t["spent"],
                     entries=t[CHARGED] + t[RELEASED] + t[FAILED], charged=t[CHARGED],
                     released=t[RELEASED], failed=t[FAILED])
            for (d, o, m), t in sorted(totals.items())
        ]

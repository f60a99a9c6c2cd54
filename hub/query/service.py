"""The query service: one analyst's question, from its JSON to a stored DP release.

The path of a query (STYLE.md: check, then spend, then run; a repeated request stops at
"release stored")::

    JSON body -> QueryRequest.parse            malformed -> InvalidInput (field)
      -> authorise(policies, registry, actor)  deny by default -> Forbidden (rule)
      -> QueryPlan (immutable)
      -> ledger.stored_answer(plan.key)        the same question again: stored, free (one
                                               read; the answer was released already)
      -> engine.partners(dataset) >= min_partners, else Forbidden(policy:<dataset>:min_partners)
      -> cost: the plan's, or solved from a target accuracy (cap: per_query)
      -> calibration of every measure (hub.privacy), BEFORE anything is spent
      -> engine.prefetch(dataset)              extracts in the local cache (S3 down: 503),
                                               the Spark cluster reachable (down: 503)
      -> ledger.charge_once                    BudgetExceeded refusals write nothing; an
                                               identical query in flight: wait, free
      -> engine.aggregate(plan, parts)         exact cells over the bounded rows (DuckDB or
                                               Spark, hub.engines.runner)
      -> OpenDP noise, intervals, post-processing (hub.privacy)
      -> ledger.record_release                 the release is stored with its entry (store
                                               down: kept, stored when it is back)
      -> the QueryResult JSON (docs/queries.md)

A plan whose filters keep only the policy's public rows (``QueryPlan.public_rows``) takes
the same path with a zero cost and no calibration: :func:`hub.query.exact.release_exact`
releases its aggregates without noise, stored and audited like any release.

Everything before ``ledger.charge_once`` writes nothing: a refused or malformed query spends
nothing. If anything fails after the charge, the entry is marked failed and the caller gets
:class:`~hub.errors.Unavailable` saying that the budget stays spent (a refund would let a
member probe the data for free, see docs/ledger.md). :meth:`QueryService.estimate` runs the
same steps up to, not including, the charge, and never writes.

How the cost is split between key selection, ranking and the measures, and how the result
is released (keys, noisy cells, ranks, totals), is :mod:`hub.query.release`; the service
needs only a small engine interface (:class:`hub.query.release.Aggregator`), which
:class:`hub.query.engine.QueryEngine` implements over DuckDB.

Audit (``hub.governance.audit``): the ledger writes ``query.charged`` (shape and cost),
``query.released`` and ``query.failed`` in its own transactions; a stored release answered
again is written here (``query.reused``) before it is returned, folded when it repeats
(:mod:`hub.governance.folding`: a client polling one answer writes two entries a minute, each
with its count, not one per request).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, Protocol, TypeVar

import structlog

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry, FieldType
from hub.errors import (
    BudgetExceeded,
    Forbidden,
    InvalidInput,
    NotFound,
    OutOfCapacity,
    TahubError,
    Unavailable,
)
from hub.governance.audit import Action, AuditEvent
from hub.governance.folding import FoldedAudit
from hub.governance.policies import Policy, PolicySet, contract_clamp, shared_field
from hub.metrics import Metrics
from hub.privacy.accounting import BudgetLimits, Cost
from hub.privacy.budget import Balance, Spend, check_charge
from hub.privacy.intervals import to_epsilon_delta
from hub.query.answer import ANSWER_FIELDS, Answer
from hub.query.authorisation import authorise
from hub.query.contributions import (
    BoundsRequest,
    Suggestion,
    calibrate_suggestion,
    suggest,
)
from hub.query.exact import describe_exact, release_exact
from hub.query.ledger import Charge, InFlight, Ledger, Release
from hub.query.plan import QueryPlan
from hub.query.release import (
    Aggregator,
    Calibrated,
    bounding_json,
    calibrate_plan,
    cost_for,
    release,
    route_json,
)
from hub.query.request import QueryRequest
from hub.storage.db import iso_utc

__all__ = ["PolicySource", "QueryService"]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class _Question:
    """What identifies a release and charges it: dataset, limits, key and shape (no data)."""

    dataset: str
    limits: BudgetLimits
    key: str
    shape: dict[str, Any]


class _Costed(Protocol):
    @property
    def cost(self) -> Cost: ...


_C = TypeVar("_C", bound=_Costed)



#: Plans a query service remembers (least recently asked dropped first): a few hundred
#: bytes each.
PLANS_REMEMBERED = 4096


@dataclass(frozen=True, slots=True)
class _Exact:
    """A plan over the policy's public rows: answered exactly, at no cost."""

    plan: QueryPlan
    cost: Cost


class PolicySource(Protocol):
    """The active policies (hub.governance.policystore.PolicyStore)."""

    def current(self) -> PolicySet: ...


# -- the service ------------------------------------------------------------------------------
class QueryService:
    """DP aggregate queries for analysts: answer, estimate, budgets, history, policies.

    Every method takes the calling :class:`~hub.actors.Actor` and refuses unless it holds
    the analyst role (``Forbidden(rule="role:analyst")``); results are JSON-ready dicts
    (the shapes are in docs/queries.md). Synchronous: the HTTP layer calls it in its
    threadpool.
    """

    def __init__(self, *, policies: PolicySource, registry: ContractRegistry, ledger: Ledger,
                 engine: Aggregator, clock: Callable[[], datetime] | None = None,
                 metrics: Metrics | None = None, wait: SingleFlight | None = None,
                 reused: FoldedAudit | None = None) -> None:
        self._wait = wait or SingleFlight()
        # (actor, body) -> plan under the policies in _plans_for (see _plan)
        self._plans: OrderedDict[tuple[Actor, str], QueryPlan] = OrderedDict()
        self._plans_for: PolicySet | None = None
        self._reused_audit = reused or FoldedAudit(ledger.audit)
        # ledger entry id -> (charge, computed result, client) not yet stored (store down)
        self._pending: dict[str, tuple[Charge, dict[str, Any], str]] = {}
        self._lock = threading.Lock()
        self._metrics = metrics
        self._policies = policies
        self._registry = registry
        self._ledger = ledger
        self._engine = engine
        self._clock = clock or ledger.now  # the database server's clock on PostgreSQL
        self._fixed_clock = clock

    # -- planning (writes nothing) --------------------------------------------------------
    def _plan(self, actor: Actor, data: Any) -> QueryPlan:
        """The plan of ``data`` for ``actor``, remembered for the same body asked again.

        :func:`authorise` is a function of the active policies, the contract registry
        (loaded once), the actor and the body, and a plan is immutable: a question asked
        again (a dashboard polling its release) is planned once. The remembered plans are
        dropped as soon as the active policies change (a new snapshot), and only plans are
        remembered, never refusals (each refusal is checked and audited afresh)."""
        actor.require(Role.ANALYST)
        policies = self._policies.current()
        try:
            key = (actor, json.dumps(data, sort_keys=True, allow_nan=False))
        except (TypeError, ValueError):  # not plain JSON: QueryRequest.parse says why
            key = None
        with self._lock:
            if self._plans_for is not policies:
                self._plans.clear()
                self._plans_for = policies
            if key is not None and key in self._plans:
                self._plans.move_to_end(key)
                return self._plans[key]
        plan = authorise(policies, self._registry, actor, QueryRequest.parse(data))
        if key is not None:
            with self._lock:
                if self._plans_for is policies:
                    self._plans[key] = plan
                    if len(self._plans) > PLANS_REMEMBERED:
                        self._plans.popitem(last=False)
        return plan

    def _min_partners_refusal(self, plan: QueryPlan) -> Forbidden | None:
        have = self._engine.partners(plan.dataset)
        if have >= plan.min_partners:
            return None
        return Forbidden(
            f"{plan.dataset} has data from {have} partner(s); its policy needs at least "
            f"{plan.min_partners} before any query runs (a pooled answer from fewer would be "
            "one member's own data)",
            rule=f"policy:{plan.dataset}:min_partners",
            partners=have, min_partners=plan.min_partners,
        )

    # -- answering ------------------------------------------------------------------------
    def run(self, actor: Actor, data: Any) -> dict[str, Any]:
        """Answer one query (the QueryResult JSON), or refuse it having spent nothing."""
        return self.answer(actor, data).as_dict()

    def answer(self, actor: Actor, data: Any) -> Answer:
        """:meth:`run`'s answer as the HTTP route sends it (:class:`Answer`: the stored
        release's bytes with this answer's fields, never decoded)."""
        plan = self._plan(actor, data)
        question = _Question(plan.dataset, plan.limits, plan.key, _shape(plan))
        if plan.public_rows is not None:  # exact and free (hub.query.exact)
            return self._answer(actor, question, lambda: self._exact(plan),
                                lambda exact, charge: self._stored(
                                    plan, charge, release_exact(exact.plan, self._engine)))

        def calibrated() -> Calibrated:
            refusal = self._min_partners_refusal(plan)
            if refusal is not None:
                raise refusal
            return calibrate_plan(plan, cost_for(plan))

        return self._answer(actor, question, calibrated, lambda cal, charge: self._stored(
            plan, charge, release(cal, self._engine)))

    def _exact(self, plan: QueryPlan) -> _Exact:
        refusal = self._min_partners_refusal(plan)
        if refusal is not None:
            raise refusal
        return _Exact(plan, Cost.zero(plan.accounting))

    def _answer(self, actor: Actor, question: _Question, calibrated: Callable[[], _C],
                compute: Callable[[_C, Charge], dict[str, Any]]) -> Answer:
        """A stored release of the same question, free; else check, charge, compute, store.

        ``calibrated()`` checks what a new computation needs and derives the cost and every
        mechanism (no data, nothing spent; a refusal here spends nothing); ``compute`` runs
        the engine and the mechanisms after the charge. A failure after the charge keeps the
        budget spent (module docstring)."""
        dataset = question.dataset
        self._store_pending()  # answers computed while the metadata store was down
        stored = self._ledger.stored_answer(
            dataset=dataset, org=actor.org, query_key=question.key, limits=question.limits,
            now=None if self._fixed_clock is None else self._fixed_clock())
        if stored is not None:
            return self._reuse(actor, question, *stored)
        cal = calibrated()  # every scale checked before anything is spent
        cost = cal.cost
        self._engine.prefetch(dataset)  # an object store outage: 503, nothing spent
        charged = self._charge_once(actor, question, cost)
        if isinstance(charged, Release):  # an identical query was released meanwhile
            return self._reuse(actor, question, charged,
                               self._balance(dataset, actor.org, question.limits))
        charge = charged
        if self._metrics is not None:  # spent from here on, whatever happens next
            self._metrics.budget_spent(dataset, cost.measure.symbol, cost.amount)
        try:
            result = compute(cal, charge)
            if ANSWER_FIELDS & result.keys():  # a programming error: caught, entry failed
                raise ValueError(f"a stored result may not hold {sorted(ANSWER_FIELDS)}")
        except BaseException as exc:
            self._failed(charge, exc, actor.client_id)
            if isinstance(exc, OutOfCapacity):  # the limit to raise, and the spent budget
                raise OutOfCapacity(
                    f"{exc.detail}; the budget this query was charged ({cost}) stays spent "
                    f"(ledger entry {charge.id})", query_id=charge.id, **exc.extra) from exc
            if isinstance(exc, Exception):
                raise Unavailable(
                    "the query was charged but could not be computed; the budget it was "
                    f"charged ({cost}) stays spent (ledger entry {charge.id}). Retry later",
                    rule="query:failed", query_id=charge.id,
                ) from exc
            raise
        try:
            release = self._ledger.record_release(charge, result, actor=actor.client_id)
        except Unavailable as exc:  # the metadata store went away: keep the answer
            with self._lock:
                self._pending[charge.id] = (charge, result, actor.client_id)
            raise Unavailable(
                "the answer was computed but the metadata store is unavailable to store it; "
                "ask again shortly: this answer will be served, charged once "
                f"({cost}, ledger entry {charge.id})",
                rule="query:unstored", query_id=charge.id,
            ) from exc
        except BaseException as exc:
            self._failed(charge, exc, actor.client_id)
            raise
        return self._released(actor, question, charge, release)

    def _released(self, actor: Actor, question: _Question, charge: Charge,
                  release: Release) -> Answer:
        log.info("query.released", dataset=charge.dataset, query_id=charge.id,
                 cost=str(charge.cost.amount))
        if self._metrics is not None:
            self._metrics.query(charge.dataset, "released")
        if release.entry_id != charge.id:  # an identical query raced us: one answer
            return self._reused(release, question.limits,
                                self._balance(charge.dataset, actor.org, question.limits))
        return Answer(release.body, {
            "reused": False, "charged": charge.cost.as_json(),
            "budget": self._balance(charge.dataset, actor.org, question.limits).as_json()})

    def _store_pending(self) -> None:
        """Store the answers computed while the metadata store was down (kept in this
        process's memory until then), so that asking again serves them, charged once."""
        with self._lock:
            pending = list(self._pending.items())
        for entry_id, (charge, result, client) in pending:
            try:
                self._ledger.record_release(charge, result, actor=client)
            except Unavailable:
                return  # still down: kept for the next query
            except TahubError:  # e.g. marked failed meanwhile: it can no longer be released
                log.error("query.pending_release_dropped", query_id=entry_id)
            with self._lock:
                self._pending.pop(entry_id, None)

    def _charge_once(self, actor: Actor, question: _Question, cost: Cost) -> Charge | Release:
        """Charge the question once: while an identical one of the same member is in flight
        (another request, process or replica), wait for its release instead of paying
        again (:meth:`Ledger.charge_once`). Waiting longer than the policy allows: 503,
        nothing spent."""
        waited, pause = 0.0, self._wait.first_pause
        while True:
            outcome = self._ledger.charge_once(
                dataset=question.dataset, org=actor.org, limits=question.limits, cost=cost,
                query_key=question.key, shape=question.shape,
                stale_after=timedelta(seconds=self._wait.stale_seconds), now=self._clock(),
                actor=actor.client_id)
            if not isinstance(outcome, InFlight):
                return outcome
            if waited >= self._wait.max_seconds:
                raise Unavailable(
                    f"an identical query of your organisation (ledger entry "
                    f"{outcome.entry_id}) is still being computed; nothing was charged for "
                    "this one. Ask again shortly: its answer will be served for free",
                    rule="query:in_flight", retry_after=max(1, int(self._wait.max_seconds)))
            self._wait.sleep(pause)
            waited += pause
            pause = min(pause * 2, self._wait.max_pause)

    def _reuse(self, actor: Actor, question: _Question, stored: Release,
               balance: Balance) -> Answer:
        """A stored release of the same question, answered again for free (audited)."""
        dataset, limits = question.dataset, question.limits
        # debug only: the audit log keeps every reuse (folded) and the metrics count them
        log.debug("query.reused", dataset=dataset, query_id=stored.entry_id)
        self._reused_audit.record(AuditEvent(
            Action.QUERY_REUSED, actor=actor.client_id, org=actor.org,
            object_type="query", object_id=stored.entry_id, dataset=dataset,
            details={"cost": Cost.zero(limits.measure).as_json(),
                     "query_key": question.key, "shape": question.shape},
        ))
        if self._metrics is not None:
            self._metrics.query(dataset, "reused")
        return self._reused(stored, limits, balance)

    def suggest_bounds(self, actor: Actor, data: Any) -> dict[str, Any]:
        """Governance: DP quantiles of the rows each unit contributes, to size the policy's
        contribution bounds (:mod:`hub.query.contributions`); charged like a query to the
        officer's organisation, on the dataset's budget."""
        actor.require(Role.GOVERNANCE)
        request = BoundsRequest.parse(data)
        policy = self._policies.current().get(request.dataset)
        if policy is None:  # any member's officers may ask: they decide the bounds
            raise NotFound(f"no active policy for {request.dataset[:64]!r}", field="dataset")
        amount, levels = request.amount, request.levels
        cost = Cost(policy.accounting, amount)
        if not 0 < amount <= policy.limits.per_query:
            raise BudgetExceeded(
                f"the cost must be positive and at most the per-query cap "
                f"{Cost(policy.accounting, policy.limits.per_query)}", field="cost",
                rule="budget:per_query", requested=str(amount),
                remaining=str(policy.limits.per_query), measure=policy.accounting.value)
        have = self._engine.partners(policy.dataset)
        if have < policy.min_partners:
            raise Forbidden(f"{policy.dataset} has data from {have} partner(s); its policy "
                            f"needs at least {policy.min_partners}", field="dataset",
                            rule=f"policy:{policy.dataset}:min_partners")
        contract = self._registry.get(policy.dataset)
        period = next((f.name for f in contract.fields if f.type is FieldType.PERIOD), None)
        shape = {"kind": "contribution_quantiles", "dataset": policy.dataset,
                 "quantiles": list(levels), "cost": str(amount),
                 "contract_version": contract.version}
        key = hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()

        def compute(s: Suggestion, charge: Charge) -> dict[str, Any]:
            out = suggest(s, self._engine)
            return {**out, "query_id": charge.id, "created_at": iso_utc(charge.created_at)}

        return self._answer(actor, _Question(policy.dataset, policy.limits, key, shape),
                            lambda: calibrate_suggestion(policy, period, cost, levels),
                            compute).as_dict()

    def _failed(self, charge: Charge, exc: BaseException, actor: str | None = None) -> None:
        log.error("query.failed_after_charge", query_id=charge.id, dataset=charge.dataset,
                  error=type(exc).__name__)
        if self._metrics is not None:
            self._metrics.query(charge.dataset, "failed")
        try:
            self._ledger.mark_failed(charge, actor=actor, reason=type(exc).__name__)
        except TahubError:  # already released, or the store is down: the entry stays spent
            log.error("query.mark_failed_failed", query_id=charge.id)

    @staticmethod
    def _reused(stored: Release, limits: BudgetLimits, balance: Balance) -> Answer:
        return Answer(stored.body, {"reused": True,
                                    "charged": Cost.zero(limits.measure).as_json(),
                                    "budget": balance.as_json()})

    def _balance(self, dataset: str, org: str, limits: BudgetLimits) -> Balance:
        return self._ledger.balance(dataset=dataset, org=org, limits=limits, now=self._clock())

    @staticmethod
    def _stored(plan: QueryPlan, charge: Charge, body: dict[str, Any]) -> dict[str, Any]:
        """A released ``body`` (:func:`hub.query.release.release` or :func:`release_exact`)
        as it is stored: with the query's identity and cost (no budget in it)."""
        epsilon, delta = to_epsilon_delta(charge.cost)
        return {
            "query_id": charge.id,
            "dataset": plan.dataset,
            "contract_version": plan.contract_version,
            "rule": plan.rule,
            "accounting": plan.accounting.value,
            "cost": charge.cost.as_json(),
            "epsilon_delta": {"epsilon": epsilon, "delta": delta + float(charge.cost.delta)},
            **body,
            "query_key": plan.key,
            "created_at": iso_utc(charge.created_at),
        }

    # -- estimating (writes nothing) ------------------------------------------------------
    def estimate(self, actor: Actor, data: Any) -> dict[str, Any]:
        """Cost and expected accuracy of a query, and whether it would be refused; free."""
        plan = self._plan(actor, data)
        if plan.public_rows is not None:  # exact and free (hub.query.exact)
            cost = Cost.zero(plan.accounting)
            shown = describe_exact(plan)
        else:
            cal = calibrate_plan(plan, cost_for(plan))
            cost = cal.cost
            shown = {"measures": [m.describe() for m in cal.measures],
                     "keys": cal.keys_json(), "top": cal.top_json(),
                     "bounding": bounding_json(plan)}
        balance = self._balance(plan.dataset, actor.org, plan.limits)
        stored = self._ledger.find_release(dataset=plan.dataset, org=actor.org,
                                           query_key=plan.key)
        refusal: TahubError | None = self._min_partners_refusal(plan)
        spend = Fraction(0) if stored is not None else cost.amount
        if refusal is None and stored is None:
            try:
                check_charge(plan.limits, cost, Spend(balance.member_spent, balance.month_spent,
                                                      balance.global_spent), now=self._clock())
            except (BudgetExceeded, Forbidden, InvalidInput) as exc:
                refusal = exc
        epsilon, delta = to_epsilon_delta(cost)
        return {
            "dataset": plan.dataset,
            "rule": plan.rule,
            "cells": plan.cells,
            "cost": cost.as_json(),
            "epsilon_delta": {"epsilon": epsilon, "delta": delta + float(cost.delta)},
            "reused": stored is not None,
            "measures": [
                {k: v for k, v in m.items()
                 if k in ("name", "mechanism", "noise_scale", "halfwidth_95", "cost")}
                for m in shown["measures"]
            ],
            "keys": shown["keys"],
            "top": shown["top"],
            "route": route_json(plan),
            "bounding": shown["bounding"],
            "budget": balance.as_json(),
            "budget_after": {
                "member_left": str(max(balance.member_left - spend, Fraction(0))),
                "global_left": str(max(balance.global_left - spend, Fraction(0))),
            },
            "would_be_refused": None if refusal is None else {
                "rule": refusal.extra.get("rule"), "detail": refusal.detail},
        }

    # -- budgets, policies, history -------------------------------------------------------
    def _queryable(self, actor: Actor) -> list[Policy]:
        return [p for p in self._policies.current() if p.rules_for(actor)]

    def budgets(self, actor: Actor) -> list[dict[str, Any]]:
        """The caller's balance on every dataset a policy lets it query (any member: what
        its organisation has left is no secret to it)."""
        now = self._clock()
        return [self._ledger.balance(dataset=p.dataset, org=actor.org, limits=p.limits,
                                     now=now).as_json() for p in self._queryable(actor)]

    def budget(self, actor: Actor, dataset: str) -> dict[str, Any]:
        """The caller's balance on ``dataset``; NotFound unless a policy lets it query it."""
        policy = self._policies.current().get(dataset)
        if policy is None or not policy.rules_for(actor):
            raise NotFound(f"no policy lets you query {dataset!r}", field="dataset")
        return self._ledger.balance(dataset=dataset, org=actor.org, limits=policy.limits,
                                    now=self._clock()).as_json()

    def my_policies(self, actor: Actor) -> list[dict[str, Any]]:
        """Per dataset, the rules that match the caller, with effective clamps."""
        return [self._policy_view(p, actor) for p in self._queryable(actor)]

    def spending(self, actor: Actor, dataset: str | None = None) -> list[dict[str, Any]]:
        """Governance: per dataset, the global budget and each member's balance."""
        actor.require(Role.GOVERNANCE)
        now = self._clock()
        by_dataset: dict[str, list[str]] = {}
        for row in self._ledger.spending(dataset):
            by_dataset.setdefault(row.dataset, []).append(row.org)
        out = []
        for policy in self._policies.current():
            if dataset is not None and policy.dataset != dataset:
                continue
            members = [{"org": org, **self._ledger.balance(
                           dataset=policy.dataset, org=org, limits=policy.limits,
                           now=now).as_json()}
                       for org in sorted(set(by_dataset.get(policy.dataset, [])))]
            out.append({"dataset": policy.dataset, "accounting": policy.accounting.value,
                        "global": str(policy.limits.global_total),
                        "per_member": str(policy.limits.per_member), "members": members})
        return out

    def spending_over_time(self, actor: Actor, dataset: str | None = None
                           ) -> list[dict[str, Any]]:
        """Governance: each member's cumulative spending after each charge (for charts)."""
        actor.require(Role.GOVERNANCE)
        return self._ledger.spending_over_time(dataset)

    def _policy_view(self, policy: Policy, actor: Actor) -> dict[str, Any]:
        contracts = [self._registry.get(policy.dataset, v)
                     for v in self._registry.versions(policy.dataset)]

        def clamp(field: str | None, narrowed: tuple[float, float] | None) -> list[float] | None:
            if field is None:
                return None
            found = shared_field(contracts, field)
            if found is None or found[0].type not in (FieldType.INTEGER, FieldType.NUMBER):
                return None
            lo, hi = contract_clamp(found[0])
            if narrowed is not None:
                lo, hi = max(lo, narrowed[0]), min(hi, narrowed[1])
            return [lo, hi]

        limits = policy.limits
        selection = policy.key_selection
        return {
            "dataset": policy.dataset,
            "accounting": policy.accounting.value,
            "max_rows": policy.max_rows,
            "max_rows_per_period": policy.contribution_bounds.max_rows_per_period,
            "min_partners": policy.min_partners,
            "per_query": str(limits.per_query),
            "delta_per_query": str(limits.delta_per_query),
            "key_selection": None if selection is None else {
                "public_up_to": selection.public_up_to, "share": str(selection.share),
                "keys_per_unit": selection.keys_per_unit},
            "route": [f.name for f in contracts[-1].route],
            "opened": policy.opened.isoformat(),
            "rules": [
                {
                    "name": r.name,
                    "dimensions": list(r.dimensions),
                    "max_dimensions": r.max_dimensions,
                    "max_top_k": r.max_top_k,
                    "filters": list(r.filters),
                    "measures": [{"function": m.function.value, "field": m.field,
                                  "clamp": clamp(m.field, m.clamp)} for m in r.measures],
                    "accounting": policy.accounting.value,
                    "per_query": str(limits.per_query),
                    "min_partners": policy.min_partners,
                }
                for r in policy.rules_for(actor)
            ],
        }

    def history(self, actor: Actor, dataset: str | None = None) -> list[dict[str, Any]]:
        """The caller organisation's ledger entries, oldest first (shapes, never values);
        for its analysts, and its governance officers (who publish its releases)."""
        if not actor.roles & {Role.ANALYST, Role.GOVERNANCE}:
            actor.require(Role.ANALYST)
        return [
            {"id": c.id, "dataset": c.dataset, "cost": c.cost.as_json(), "status": c.status,
             "created_at": iso_utc(c.created_at),
             "released_at": None if c.released_at is None else iso_utc(c.released_at),
             "shape": c.shape}
            for c in self._ledger.history(actor.org, dataset)
        ]

    def get(self, actor: Actor, query_id: str) -> Answer:
        """A release of the caller's organisation again, free; NotFound otherwise."""
        actor.require(Role.ANALYST)
        entry = next((c for c in self._ledger.history(actor.org) if c.id == query_id), None)
        if entry is None or entry.status != "released":
            raise NotFound(f"no release {query_id!r} of your organisation", field="query_id")
        stored = self._ledger.find_release(dataset=entry.dataset, org=actor.org,
                                           query_key=entry.query_key)
        if stored is None or stored.entry_id != entry.id:
            raise NotFound(f"no release {query_id!r} of your organisation", field="query_id")
        policy = self._policies.current().get(entry.dataset)
        return Answer(stored.body, {
            "reused": True, "charged": Cost.zero(entry.cost.measure).as_json(),
            "budget": None if policy is None else self._ledger.balance(
                dataset=entry.dataset, org=actor.org, limits=policy.limits,
                now=self._clock()).as_json()})


# -- helpers ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SingleFlight:
    """How a query waits for an identical one in flight: at most ``max_seconds`` in all,
    polling from ``first_pause`` to ``max_pause`` seconds apart; an in-flight entry older than
    ``stale_seconds`` is taken for a process that died mid-query."""

    max_seconds: float = 120.0
    stale_seconds: float = 900.0
    first_pause: float = 0.02
    max_pause: float = 0.5
    sleep: Callable[[float], None] = time.sleep


def _shape(plan: QueryPlan) -> dict[str, Any]:
    """The canonical plan without the dimensions' key lists (names and sizes only)."""
    shape = plan.canonical()
    shape["dimensions"] = [{"name": d.name, "keys": d.size} for d in plan.dimensions]
    shape["rule"] = plan.rule
    shape["cells"] = plan.cells
    shape["query_key"] = plan.key
    return shape

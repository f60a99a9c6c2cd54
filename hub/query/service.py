"""The query service: one analyst's question, from its JSON to a stored DP release.

The path of a query (STYLE.md: check, then spend, then run; a repeated request stops at
"release stored")::

    JSON body -> QueryRequest.parse            malformed -> InvalidInput (field)
      -> authorise(policies, registry, actor)  deny by default -> Forbidden (rule)
      -> QueryPlan (immutable)
      -> engine.partners(dataset) >= min_partners, else Forbidden(policy:<dataset>:min_partners)
      -> ledger.find_release(plan.key)         the same question again: stored, free
      -> cost: the plan's, or solved from a target accuracy (cap: per_query)
      -> calibration of every measure (hub.privacy), BEFORE anything is spent
      -> engine.prefetch(dataset)              extracts in the local cache (S3 down: 503)
      -> ledger.charge                         BudgetExceeded refusals write nothing
      -> engine.aggregate(plan, parts)         exact cells over the bounded rows (DuckDB)
      -> OpenDP noise, intervals, post-processing (hub.privacy)
      -> ledger.record_release                 the release is stored with its entry
      -> the QueryResult JSON (docs/queries.md)

Everything before ``ledger.charge`` writes nothing: a refused or malformed query spends
nothing. If anything fails after the charge, the entry is marked failed and the caller gets
:class:`~hub.errors.Unavailable` saying that the budget stays spent (a refund would let a
member probe the data for free, see docs/ledger.md). :meth:`QueryService.estimate` runs the
same steps up to, not including, the charge, and never writes.

Cost split: a query's cost is split equally over its measures (:func:`hub.privacy.split_cost`,
sequential composition); a mean's share is split again between its sum and its count
(:func:`hub.privacy.calibrate_mean`).

Category-list dimensions put one row in up to ``plan.groups_per_row`` cells, so the
sensitivities are taken at ``max_rows * groups_per_row`` rows per unit (a unit then moves at
most that many (row, cell) pairs; every bound of :func:`hub.privacy.sensitivity` holds with it).

Fixed-point decimals of a sum (:func:`decimals_for`): 0 for integer fields; for number fields
a step of at most 1/10,000 of the clamp range (whole euros for amounts clamped to [0, 50000]):
the step only sets the unit the noise is drawn in, the noise in the value's unit is the same.

The service needs only a small engine interface (:class:`Aggregator`), which
:class:`hub.query.engine.QueryEngine` implements over DuckDB.

Audit (``hub.governance.audit``): the ledger writes ``query.charged`` (shape and cost),
``query.released`` and ``query.failed`` in its own transactions; a stored release answered
again is written here (``query.reused``) before it is returned.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from typing import Any, Protocol, TypeVar

import structlog

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry, FieldType
from hub.errors import BudgetExceeded, Forbidden, InvalidInput, NotFound, TahubError, Unavailable
from hub.governance.audit import Action, AuditEvent
from hub.governance.policies import Function, Policy, PolicySet, contract_clamp, shared_field
from hub.metrics import Metrics
from hub.privacy.accounting import Cost
from hub.privacy.budget import Balance, Spend, check_charge
from hub.privacy.intervals import (
    Estimate,
    cost_for_halfwidth,
    estimates,
    halfwidth,
    margin_totals,
    mean_interval,
    to_epsilon_delta,
)
from hub.privacy.noise import (
    MeanNoise,
    NoiseSpec,
    calibrate,
    calibrate_mean,
    calibrate_quantile,
    quantile_release,
    release_counts,
    sensitivity,
    split_cost,
    sum_decimals,
)
from hub.query.engine import Part, PartKind
from hub.query.ledger import Charge, Ledger, Release
from hub.query.plan import MeasurePlan, QueryPlan, QueryRequest, authorise
from hub.storage.db import iso_utc

__all__ = [
    "Aggregator",
    "PolicySource",
    "QueryService",
    "decimals_for",
    "measure_name",
]

log = structlog.get_logger(__name__)

_ADDITIVE = (Function.COUNT, Function.SUM)
_KIND: dict[Function, PartKind] = {Function.COUNT: "count", Function.COUNT_UNITS: "count_units",
                                   Function.LINKED_UNITS: "linked_units"}
_T = TypeVar("_T")


def _need(value: _T | None) -> _T:
    """``value``, which the plan guarantees is set (a None here is a bug, never input)."""
    if value is None:
        raise RuntimeError("a query plan lacks a value its measure needs")
    return value


class Aggregator(Protocol):
    """What the service needs of the query engine (hub.query.engine.QueryEngine)."""

    def partners(self, dataset: str) -> int: ...

    def prefetch(self, dataset: str) -> None: ...

    def aggregate(self, plan: QueryPlan, parts: Sequence[Part]) -> list[list[Any]]: ...


class PolicySource(Protocol):
    """The active policies (hub.governance.policystore.PolicyStore)."""

    def current(self) -> PolicySet: ...


def decimals_for(m: MeasurePlan) -> int:
    """Fixed-point decimals of the sum of ``m``'s field (:func:`hub.privacy.sum_decimals`)."""
    return 0 if m.clamp is None else sum_decimals(m.clamp, m.integer)


def measure_name(m: MeasurePlan) -> str:
    """``count``, ``count_units``, ``linked_units``, ``sum_amount``, ``quantile_50_amount``."""
    if m.function is Function.QUANTILE:
        return f"quantile_{_need(m.quantile) * 100:g}_{m.field}"
    return m.function.value if m.field is None else f"{m.function.value}_{m.field}"


# -- compiled measures ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Measure:
    """One measure with its share of the cost, its calibrated noise and its engine parts."""

    plan: MeasurePlan
    name: str
    cost: Cost
    parts: tuple[Part, ...]
    noise: NoiseSpec | None = None  # count, sum, count_units, linked_units, quantile
    mean: MeanNoise | None = None

    def describe(self) -> dict[str, Any]:
        """Public facts about the release of this measure (no data)."""
        out: dict[str, Any] = {
            "name": self.name,
            "function": self.plan.function.value,
            "field": self.plan.field,
        }
        if self.plan.clamp is not None:
            out["clamp"] = list(self.plan.clamp)
        if self.plan.quantile is not None:
            out["quantile"] = self.plan.quantile
        if self.mean is not None:
            s, c = self.mean.sum, self.mean.count
            out.update(
                mechanism=s.mechanism.value,
                noise_scale=float(s.scale * s.sensitivity.resolution),
                count_noise_scale=float(c.scale),
                halfwidth_95=None,
                note="mean = noisy sum / noisy count; its interval depends on the count, "
                "see each cell",
            )
        else:
            n = _need(self.noise)
            if self.plan.function is Function.QUANTILE:
                out.update(
                    mechanism=n.mechanism.value,
                    noise_scale=float(n.scale),
                    halfwidth_95=None,
                    candidates=len(n.candidates),
                    note="a quantile's error is in rank and depends on the data: no interval",
                )
            else:
                out.update(
                    mechanism=n.mechanism.value,
                    noise_scale=float(n.scale * n.sensitivity.resolution),
                    halfwidth_95=halfwidth(n),
                )
        out["cost"] = self.cost.as_json()
        return out


def _compile(plan: QueryPlan, cost: Cost) -> list[_Measure]:
    """Split ``cost`` over the measures and calibrate each (no data, nothing spent)."""
    bound = plan.max_rows * plan.groups_per_row
    out = []
    for m, share in zip(plan.measures, split_cost(cost, len(plan.measures)), strict=True):
        fn, name = m.function, measure_name(m)
        if fn in (Function.COUNT, Function.COUNT_UNITS, Function.LINKED_UNITS):
            noise = calibrate(share, sensitivity(fn.value, bound))
            out.append(_Measure(m, name, share, (Part(_KIND[fn]),), noise=noise))
            continue
        field, clamp, d = _need(m.field), _need(m.clamp), decimals_for(m)
        if fn is Function.SUM:
            noise = calibrate(share, sensitivity("sum", bound, clamp, d))
            out.append(_Measure(m, name, share, (Part("sum", field, clamp, d),),
                                noise=noise))
        elif fn is Function.MEAN:
            mean = calibrate_mean(share, bound, clamp, d)
            out.append(_Measure(m, name, share, (Part("sum", field, clamp, d),
                                                 Part("count")), mean=mean))
        else:  # quantile
            noise = calibrate_quantile(share, sensitivity("quantile", bound, clamp),
                                       Fraction(_need(m.quantile)))
            out.append(_Measure(m, name, share, (Part("values", field, clamp),),
                                noise=noise))
    return out


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
                 metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._policies = policies
        self._registry = registry
        self._ledger = ledger
        self._engine = engine
        self._clock = clock or ledger.now  # the database server's clock on PostgreSQL

    # -- planning (writes nothing) --------------------------------------------------------
    def _plan(self, actor: Actor, data: Any) -> QueryPlan:
        actor.require(Role.ANALYST)
        request = QueryRequest.parse(data)
        return authorise(self._policies.current(), self._registry, actor, request)

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

    def _cost(self, plan: QueryPlan) -> Cost:
        """The plan's cost, or the least cost on the grid that reaches its target."""
        if plan.cost is not None:
            return plan.cost
        target = _need(plan.target)
        n = len(plan.measures)
        m = plan.measures[target.measure]
        cap = plan.limits.per_query / n
        try:
            share = cost_for_halfwidth(
                m.function.value, target.ci_halfwidth, measure=plan.accounting,
                max_rows=plan.max_rows * plan.groups_per_row, clamp=m.clamp,
                decimals=decimals_for(m) if m.field else 0, cap=cap,
            )
        except InvalidInput as exc:
            if "cap" not in exc.extra:
                raise
            needed = Fraction(str(exc.extra["requested"])) * n
            raise BudgetExceeded(
                f"reaching +/-{target.ci_halfwidth:g} on {measure_name(m)} would cost "
                f"{Cost(plan.accounting, needed)} for the query ({n} measure(s) share it "
                f"equally), above the per-query cap of "
                f"{Cost(plan.accounting, plan.limits.per_query)}",
                field="target", rule="budget:per_query", requested=str(needed),
                remaining=str(plan.limits.per_query), measure=plan.accounting.value,
            ) from None
        return Cost(plan.accounting, share.amount * n)

    # -- answering ------------------------------------------------------------------------
    def run(self, actor: Actor, data: Any) -> dict[str, Any]:
        """Answer one query (the QueryResult JSON), or refuse it having spent nothing."""
        plan = self._plan(actor, data)
        refusal = self._min_partners_refusal(plan)
        if refusal is not None:
            raise refusal
        stored = self._ledger.find_release(dataset=plan.dataset, org=actor.org,
                                           query_key=plan.key)
        if stored is not None:
            log.info("query.reused", dataset=plan.dataset, query_id=stored.entry_id)
            self._ledger.audit.append(AuditEvent(
                Action.QUERY_REUSED, actor=actor.client_id, org=actor.org,
                object_type="query", object_id=stored.entry_id, dataset=plan.dataset,
                details={"cost": Cost.zero(plan.accounting).as_json(),
                         "query_key": plan.key, "shape": _shape(plan)},
            ))
            if self._metrics is not None:
                self._metrics.query(plan.dataset, "reused")
            return self._reused(stored, plan)
        cost = self._cost(plan)
        measures = _compile(plan, cost)  # every scale checked before anything is spent
        self._engine.prefetch(plan.dataset)  # an object store outage: 503, nothing spent
        charge = self._ledger.charge(
            dataset=plan.dataset, org=actor.org, limits=plan.limits, cost=cost,
            query_key=plan.key, shape=_shape(plan), now=self._clock(),
            actor=actor.client_id,
        )
        if self._metrics is not None:  # spent from here on, whatever happens next
            self._metrics.budget_spent(plan.dataset, cost.measure.symbol, cost.amount)
        try:
            result = self._release(plan, measures, charge)
            release = self._ledger.record_release(charge, result, actor=actor.client_id)
        except BaseException as exc:
            self._failed(charge, exc, actor.client_id)
            if isinstance(exc, Exception):
                raise Unavailable(
                    "the query was charged but could not be computed; the budget it was "
                    f"charged ({cost}) stays spent (ledger entry {charge.id}). Retry later",
                    rule="query:failed", query_id=charge.id,
                ) from exc
            raise
        log.info("query.released", dataset=plan.dataset, query_id=charge.id,
                 cells=plan.cells, cost=str(cost.amount))
        if self._metrics is not None:
            self._metrics.query(plan.dataset, "released")
        if release.entry_id != charge.id:  # an identical query raced us: one answer
            return self._reused(release, plan)
        out = dict(release.result)
        out.update(reused=False, charged=cost.as_json(), budget=self._balance_json(plan, actor))
        return out

    def _failed(self, charge: Charge, exc: BaseException, actor: str | None = None) -> None:
        log.error("query.failed_after_charge", query_id=charge.id, dataset=charge.dataset,
                  error=type(exc).__name__)
        if self._metrics is not None:
            self._metrics.query(charge.dataset, "failed")
        try:
            self._ledger.mark_failed(charge, actor=actor, reason=type(exc).__name__)
        except TahubError:  # already released, or the store is down: the entry stays spent
            log.error("query.mark_failed_failed", query_id=charge.id)

    def _reused(self, stored: Release, plan: QueryPlan) -> dict[str, Any]:
        out = dict(stored.result)
        out.update(reused=True, charged=Cost.zero(plan.accounting).as_json(),
                   budget=self._balance_json(plan, org=stored.org))
        return out

    def _balance(self, plan: QueryPlan, org: str) -> Balance:
        return self._ledger.balance(dataset=plan.dataset, org=org, limits=plan.limits,
                                    now=self._clock())

    def _balance_json(self, plan: QueryPlan, actor: Actor | None = None, *,
                      org: str | None = None) -> dict[str, Any]:
        who = org if org is not None else (actor.org if actor else "")
        return self._balance(plan, who).as_json()

    def _release(self, plan: QueryPlan, measures: list[_Measure],
                 charge: Charge) -> dict[str, Any]:
        """Run the engine, add the noise, build the stored result (no budget in it)."""
        parts = list(dict.fromkeys(p for m in measures for p in m.parts))
        exact = self._engine.aggregate(plan, parts)
        if len(exact) != len(parts) or any(len(v) != plan.cells for v in exact):
            raise RuntimeError("the engine returned cells that do not match the plan")
        by_part = dict(zip(parts, exact, strict=True))
        keys = list(itertools.product(*(d.keys for d in plan.dimensions)))
        names = [d.name for d in plan.dimensions]
        rows: list[dict[str, Any]] = [dict(zip(names, k, strict=True)) for k in keys]
        additive: list[tuple[_Measure, list[int]]] = []
        for m in measures:
            cells, noisy = _noisy_cells(m, by_part, plan.postprocess.nonnegative)
            for row, cell in zip(rows, cells, strict=True):
                row[m.name] = cell
            if noisy is not None and m.plan.function in _ADDITIVE:
                additive.append((m, noisy))
        totals = (_totals(plan, keys, additive) if plan.postprocess.consistent_totals else [])
        epsilon, delta = to_epsilon_delta(charge.cost)
        return {
            "query_id": charge.id,
            "dataset": plan.dataset,
            "contract_version": plan.contract_version,
            "rule": plan.rule,
            "accounting": plan.accounting.value,
            "cost": charge.cost.as_json(),
            "epsilon_delta": {"epsilon": epsilon, "delta": delta},
            "dimensions": names,
            "measures": [m.describe() for m in measures],
            "rows": rows,
            "totals": totals,
            "bounding": _bounding(plan),
            "postprocess": {"nonnegative": plan.postprocess.nonnegative,
                            "consistent_totals": plan.postprocess.consistent_totals},
            "cells": plan.cells,
            "query_key": plan.key,
            "created_at": iso_utc(charge.created_at),
        }

    # -- estimating (writes nothing) ------------------------------------------------------
    def estimate(self, actor: Actor, data: Any) -> dict[str, Any]:
        """Cost and expected accuracy of a query, and whether it would be refused; free."""
        plan = self._plan(actor, data)
        cost = self._cost(plan)
        measures = _compile(plan, cost)
        balance = self._balance(plan, actor.org)
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
        return {
            "dataset": plan.dataset,
            "rule": plan.rule,
            "cells": plan.cells,
            "cost": cost.as_json(),
            "epsilon_delta": dict(zip(("epsilon", "delta"), to_epsilon_delta(cost),
                                      strict=True)),
            "reused": stored is not None,
            "measures": [
                {k: v for k, v in m.describe().items()
                 if k in ("name", "mechanism", "noise_scale", "halfwidth_95", "cost")}
                for m in measures
            ],
            "bounding": _bounding(plan),
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
        return {
            "dataset": policy.dataset,
            "accounting": policy.accounting.value,
            "max_rows": policy.max_rows,
            "min_partners": policy.min_partners,
            "per_query": str(limits.per_query),
            "opened": policy.opened.isoformat(),
            "rules": [
                {
                    "name": r.name,
                    "dimensions": list(r.dimensions),
                    "max_dimensions": r.max_dimensions,
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

    def get(self, actor: Actor, query_id: str) -> dict[str, Any]:
        """A release of the caller's organisation again, free; NotFound otherwise."""
        actor.require(Role.ANALYST)
        entry = next((c for c in self._ledger.history(actor.org) if c.id == query_id), None)
        if entry is None or entry.status != "released":
            raise NotFound(f"no release {query_id!r} of your organisation", field="query_id")
        stored = self._ledger.find_release(dataset=entry.dataset, org=actor.org,
                                           query_key=entry.query_key)
        if stored is None or stored.entry_id != entry.id:
            raise NotFound(f"no release {query_id!r} of your organisation", field="query_id")
        out = dict(stored.result)
        policy = self._policies.current().get(entry.dataset)
        out.update(reused=True, charged=Cost.zero(entry.cost.measure).as_json(),
                   budget=None if policy is None else self._ledger.balance(
                       dataset=entry.dataset, org=actor.org, limits=policy.limits,
                       now=self._clock()).as_json())
        return out


# -- helpers ----------------------------------------------------------------------------------

def _bounding(plan: QueryPlan) -> dict[str, Any]:
    m = plan.max_rows
    note = f"each privacy unit counts with at most {m} rows in total"
    if plan.groups_per_row > 1:
        note += (f"; a row falls in up to {plan.groups_per_row} cells (category lists), so "
                 f"the noise covers {m * plan.groups_per_row} (row, cell) pairs per unit")
    return {"max_rows": m, "groups_per_row": plan.groups_per_row,
            "note": note + "; rows beyond the bound are left out, a bias that is not in "
                           "the interval"}


def _shape(plan: QueryPlan) -> dict[str, Any]:
    """The canonical plan without the dimensions' key lists (names and sizes only)."""
    shape = plan.canonical()
    shape["dimensions"] = [{"name": d.name, "keys": d.size} for d in plan.dimensions]
    shape["rule"] = plan.rule
    shape["cells"] = plan.cells
    shape["query_key"] = plan.key
    return shape


def _cell(e: Estimate, integer: bool) -> dict[str, Any]:
    if integer:
        return {"value": int(e.value), "low": int(e.low), "high": int(e.high)}
    return {"value": e.value, "low": e.low, "high": e.high}


def _noisy_cells(m: _Measure, by_part: dict[Part, list[Any]],
                 nonnegative: bool) -> tuple[list[dict[str, Any]], list[int] | None]:
    """The released cells of one measure, and its raw noisy integers (for totals)."""
    fn = m.plan.function
    if m.mean is not None:
        sum_part, count_part = m.parts
        sums = release_counts(by_part[sum_part], m.mean.sum)
        counts = release_counts(by_part[count_part], m.mean.count)
        return [_cell(mean_interval(s, c, m.mean), False)
                for s, c in zip(sums, counts, strict=True)], None
    noise = _need(m.noise)
    if fn is Function.QUANTILE:
        values = quantile_release(by_part[m.parts[0]], noise)
        return [{"value": v} for v in values], None
    noisy = release_counts(by_part[m.parts[0]], noise)
    floor_zero = nonnegative and (m.plan.clamp is None or m.plan.clamp[0] >= 0)
    integer = noise.sensitivity.resolution == 1 and fn is not Function.SUM
    return [_cell(e, integer) for e in estimates(noisy, noise, nonnegative=floor_zero)], noisy


def _totals(plan: QueryPlan, keys: list[tuple[str | None, ...]],
            additive: list[tuple[_Measure, list[int]]]) -> list[dict[str, Any]]:
    """Totals that add up: per key of each dimension (over the others), and the grand total.

    Each total is the sum of its released cells (:func:`hub.privacy.margin_totals`): no
    extra cost, consistent with the rows by construction, with an honest interval.
    """
    if not additive:
        return []
    margins: list[tuple[list[str], list[tuple[str | None, ...]], list[list[int]]]] = []
    dims = plan.dimensions
    if len(dims) > 1:
        for i, d in enumerate(dims):
            index: dict[str | None, list[int]] = {key: [] for key in d.keys}
            for j, k in enumerate(keys):
                index[k[i]].append(j)
            margins.append(([d.name], [(key,) for key in d.keys], list(index.values())))
    margins.append(([], [()], [list(range(len(keys)))]))
    out = []
    for by, labels, groups in margins:
        rows: list[dict[str, Any]] = [dict(zip(by, label, strict=True)) for label in labels]
        for m, noisy in additive:
            noise = _need(m.noise)
            floor_zero = plan.postprocess.nonnegative and (
                m.plan.clamp is None or m.plan.clamp[0] >= 0)
            totals = margin_totals(noisy, groups, noise, nonnegative=floor_zero)
            integer = m.plan.function is Function.COUNT
            for row, e in zip(rows, totals, strict=True):
                row[m.name] = _cell(e, integer)
        out.append({"by": by, "rows": rows})
    return out

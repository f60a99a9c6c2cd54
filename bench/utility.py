"""Utility of released answers: how close they come to the exact truth of known synthetic data.

Run:  .venv/bin/python bench/utility.py [--releases 200] [--results bench/RESULTS.md]

Data (seeded; :mod:`random` because this is fake *input*, never privacy noise: every noise
sample below comes from the hub's own OpenDP code path), committed through the real
:class:`hub.ingest.service.IngestService` (real SQLite metadata, folder store, DuckDB unit
index, canonical Parquet), queried under the **shipped** policies (``policies/*.yaml``, loaded
with ``load_policy_file``) through the real ``authorise``:

* ``case_records`` from an NGO (contract v2) and a police unit (contract v1), as in the demo:
  background persons whose routes (source, transit, destination) are drawn from skewed
  (Zipf) distributions, 10% of them known to both partners and a few registered several
  times; plus planted routes of 20 to 200 persons, every third one split across the partners
  (the NGO's row lacks the destination, the police row lacks the source; linked by the
  person's token, HMAC-SHA256 under a network key, the connector's format);
* ``bank_alerts`` from two banks over 24 months, one extract per bank per quarter committed
  in time order: customers with 1-5 alerts (90%), 6-20 (9.5%) and 50-200 (0.5%), 10% of
  them known to both banks. Each alert draws its month and indicator independently: 90% from
  a background (indicators Zipf-weighted, months uniform) and 10% from a planted rise of
  ``several_wages_one_account`` (month weight proportional to 1, 2, ..., 24), so the rise is
  carried by light and heavy customers alike.

Releases: ``calibrate_plan(plan, cost_for(plan))`` then ``release(cal, engine)``, exactly what
``QueryService.run`` does after charging the ledger (the ledger is bypassed: no budget
limits the number of releases), at the policy's ``budget.per_query`` cost, with a fresh
:class:`hub.query.engine.QueryEngine`. Truth is computed independently in DuckDB from the
stored canonical Parquet files: each unit keeps its ``max_rows`` rows of smallest ``__prio``
(per period with per-period bounding), and a route fills a stage a row leaves empty from the
unit's other kept rows when they agree on one value.

Measurements (one function each), against the targets of issue 12:

1. routes: (a) one ranked route query (top 10), (b) the selected-keys route query sorted by
   lower bound, (c) the old way: the public 250 x 250 source x destination grid sorted by
   noisy value. Recall@10 of the true top-10 routes with >= 50 persons (>= 0.9), released
   top-10 entries whose exact count is 0 (none in >= 99% of releases), 95% coverage;
2. trend: monthly counts of the planted indicator, default bounding (per period) and
   ``"bounding": "total"``: the released least-squares slope against the slope of the
   unbounded data (within 10%), and coverage of the monthly intervals;
3. consistent totals over typology x exploitation stream: coverage of the totals;
4. time per release against the exact DuckDB aggregate of the same data (a side note).

The summary is printed and appended to ``--results`` (default ``bench/RESULTS.md``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import heapq
import hmac
import os
import platform
import random
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from hub.actors import Actor, MemberKind, Role
from hub.contracts.extractformat import extract_schema
from hub.contracts.model import Contract, ContractRegistry
from hub.governance.policies import PolicySet, load_policy_file
from hub.ingest.service import IngestService, UploadRequest
from hub.logging import configure_logging
from hub.query.authorisation import authorise
from hub.query.engine import QueryEngine
from hub.query.plan import QueryPlan
from hub.query.release import calibrate_plan, cost_for, release
from hub.query.request import QueryRequest
from hub.settings import Settings
from hub.storage.db import make_engine, organisations, upgrade, utcnow
from hub.storage.objects import ObjectStore, open_store

REPO = Path(__file__).resolve().parent.parent
SEED = 20261212
NETWORK_KEY = b"bench network key, never a real one"
KEY_ID = hmac.new(NETWORK_KEY, b"tahub key id", hashlib.sha256).hexdigest()[:8]

ORG_NGO, ORG_POLICE = "org_ngo000000000", "org_police000000"
ORG_BANK_A, ORG_BANK_B = "org_banka0000000", "org_bankb0000000"
MEMBERS = [(ORG_NGO, "Safe Passage Foundation", MemberKind.NGO),
           (ORG_POLICE, "Anti-Trafficking Unit", MemberKind.LAW_ENFORCEMENT),
           (ORG_BANK_A, "Northbank plc", MemberKind.BANK),
           (ORG_BANK_B, "Banca Meridiana", MemberKind.BANK)]
ANALYST = Actor(client_id="cli_bench", org="org_analyst00000", org_name="Bench analysts",
                roles=frozenset({Role.ANALYST}))

Key = tuple[str | None, ...]
MONTHS = [f"{2024 + m // 12}-{m % 12 + 1:02d}" for m in range(24)]
STAGES = ("source_country", "transit_country", "destination_country")
# Countries, most frequent first (Zipf weights 1/rank).
SOURCES = ["NG", "RO", "VN", "AL", "UA", "BG", "MD", "PH", "IN", "CN", "BR", "ER", "SY", "PK",
           "BD", "NP", "TH", "KH", "LA", "MM", "ET", "SO", "SD", "GH", "CM", "SN", "CI", "ML",
           "GN", "MA", "DZ", "EG", "AF", "IQ", "GE", "AM", "KG", "UZ", "TJ", "VE"]
TRANSITS = ["LY", "TR", "RS", "HU", "AT", "NE", "MA", "MX", "GR", "BA", "MK", "IR"]
DESTINATIONS = ["GB", "IT", "DE", "FR", "ES", "NL", "BE", "GR", "AE", "US", "SA", "QA", "KW",
                "PL", "CZ", "AT", "CH", "SE", "DK", "NO", "IE", "PT", "CA", "JP", "KR", "MY",
                "SG", "TR", "IL", "CY"]
NO_TRANSIT = 0.35
# Planted routes (source, transit, destination) and their persons; every third is split.
PLANTED = [(("ER", "LY", "IT"), 200), (("VN", "RS", "GB"), 170), (("AL", None, "GB"), 140),
           (("NP", "IR", "AE"), 120), (("PH", None, "SA"), 100), (("MD", "HU", "DE"), 85),
           (("SD", "LY", "FR"), 70), (("KH", "TH", "MY"), 60), (("BD", "IN", "AE"), 50),
           (("CM", "NE", "ES"), 40), (("GE", "TR", "GR"), 30), (("UZ", "KZ", "KR"), 20)]
BACKGROUND_PERSONS = 8000
CUSTOMERS = 30_000
RISING = "several_wages_one_account"
RISING_SHARE = 0.10
TOP = 10
MIN_CASES = 50

ROUTE_TOP = {"dataset": "case_records", "route": True, "measures": ["count_units"],
             "top": {"k": TOP}}
ROUTE_SELECTED = {"dataset": "case_records", "route": True, "measures": ["count_units"]}
ROUTE_GRID = {"dataset": "case_records", "group_by": ["source_country", "destination_country"],
              "keys": "public", "measures": ["count_units"]}
TREND = {"dataset": "bank_alerts", "group_by": ["period"], "measures": ["count"],
         "filters": {"indicator": [RISING], "period": {"from": MONTHS[0], "to": MONTHS[-1]}}}
TOTALS_DIMS = ["typology", "exploitation_stream"]
TOTALS = {"dataset": "bank_alerts", "group_by": TOTALS_DIMS,
          "measures": ["count"], "postprocess": {"consistent_totals": True}}


# -- synthetic data (fake input: random, seeded) --------------------------------------------
def token(identifier: str) -> str:
    """A pseudonymised identifier as the connector writes it: ``<key id>.<HMAC-SHA256>``."""
    return f"{KEY_ID}.{hmac.new(NETWORK_KEY, identifier.encode(), hashlib.sha256).hexdigest()}"


def _zipf(rng: random.Random, items: Sequence[Any]) -> Any:
    return rng.choices(items, weights=[1 / (i + 1) for i in range(len(items))])[0]


@dataclass
class Cases:
    ngo: list[dict[str, Any]]
    police: list[dict[str, Any]]
    persons: Counter[tuple[str | None, ...]]  # the generator's truth: persons per route


def case_records(rng: random.Random) -> Cases:
    """Case rows of the NGO and the police, and the persons per true route."""
    ngo: list[dict[str, Any]] = []
    police: list[dict[str, Any]] = []
    persons: Counter[tuple[str | None, ...]] = Counter()

    def person(pid: str, route: tuple[str | None, ...], split: bool) -> None:
        persons[route] += 1
        profile = {
            "subject": token(f"passport-{pid}"),
            "exploitation_type": rng.choice(["SexualExploitation", "ForcedLabour",
                                             "ForcedBegging", "Servitude", "ForcedMarriage"]),
            "means_of_control": rng.sample(["DebtBondage", "WithholdsDocuments",
                                            "PhysicalThreats", "FalsePromises",
                                            "RestrictsMovement", "TakesEarnings"],
                                           rng.randint(1, 3)) if rng.random() < 0.8 else None,
            "recruitment": rng.choice(["ThroughOnlineSocialNetworks", "AtWork",
                                       "ThroughFriendsOrSocialEvents", None]),
            "age_band": rng.choice(["9-17", "18-20", "21-23", "24-26", "27-29", "30-38"]),
            "gender": rng.choice(["Feminine", "Feminine", "Masculine", "NonSpecifiedUnknown"]),
        }
        s, t, d = route
        at: list[tuple[list[dict[str, Any]], Key, int]]
        if split:  # the NGO meets them where they came from, the police where exploited
            at = [(ngo, (s, t, None), 1), (police, (None, t, d), 1)]
        else:
            u = rng.random()
            where = [ngo] if u < 0.55 else [police] if u < 0.88 else [ngo, police]
            extra = rng.random()
            n = rng.randint(5, 8) if extra < 0.01 else 2 if extra < 0.05 else 1
            at = [(w, route, n if w is police or len(where) == 1 else 1) for w in where]
        for rows, (rs, rt, rd), n in at:
            for _ in range(n):
                row = {**profile, "source_country": rs, "transit_country": rt,
                       "destination_country": rd, "period": rng.choice(MONTHS)}
                if rows is ngo:
                    row["sector"] = (rng.choice(["A", "C", "F", "I"])
                                     if row["exploitation_type"] == "ForcedLabour" else None)
                rows.append(row)

    for i in range(BACKGROUND_PERSONS):
        route = (_zipf(rng, SOURCES),
                 None if rng.random() < NO_TRANSIT else _zipf(rng, TRANSITS),
                 _zipf(rng, DESTINATIONS))
        person(f"b{i}", route, split=False)
    for j, (route, size) in enumerate(PLANTED):
        for i in range(size):
            person(f"p{j}-{i}", route, split=j % 3 == 0)
    rng.shuffle(ngo)
    rng.shuffle(police)
    return Cases(ngo, police, persons)


def bank_alerts(rng: random.Random, contract: Contract) -> dict[tuple[int, str], list[dict]]:
    """(quarter, bank) -> that extract's alert rows, in arrival (month) order."""
    indicators = list(contract.field("indicator").codes)
    typologies = list(contract.field("typology").codes)
    rise = [t + 1 for t in range(len(MONTHS))]
    extracts: dict[tuple[int, str], list[dict]] = {}
    for c in range(CUSTOMERS):
        kind = rng.random()
        n = (rng.randint(1, 5) if kind < 0.90 else rng.randint(6, 20) if kind < 0.995
             else rng.randint(50, 200))
        banks = rng.random()
        home = ORG_BANK_A if banks < 0.55 else ORG_BANK_B
        subject = token(f"iban-{c}")
        for _ in range(n):
            bank = rng.choice([ORG_BANK_A, ORG_BANK_B]) if banks > 0.90 else home
            if rng.random() < RISING_SHARE:
                indicator, month = RISING, rng.choices(range(len(MONTHS)), weights=rise)[0]
            else:
                indicator, month = _zipf(rng, indicators), rng.randrange(len(MONTHS))
            extracts.setdefault((month // 3, bank), []).append({
                "subject": subject, "indicator": indicator,
                "typology": ("exploitative_employment" if indicator == RISING
                             else rng.choice(typologies)),
                "exploitation_stream": rng.choice(["sexual_exploitation", "forced_labour",
                                                   None, "sexual_exploitation", None]),
                "origin_country": _zipf(rng, DESTINATIONS),
                "destination_country": _zipf(rng, SOURCES),
                "amount": round(rng.lognormvariate(6.5, 1.2), 2),
                "period": MONTHS[month],
                "_order": (month, rng.random()),
            })
    for rows in extracts.values():
        rows.sort(key=lambda r: r.pop("_order"))
    return extracts


# -- the hub (a Pool-like setup: real ingest, real engine, shipped policies) -----------------
@dataclass
class Hub:
    root: Path
    settings: Settings
    db: sa.Engine
    store: ObjectStore
    ingest: IngestService
    engine: QueryEngine
    registry: ContractRegistry
    policies: PolicySet
    times: dict[str, list[float]] = field(default_factory=dict)
    calibration: dict[str, list[float]] = field(default_factory=dict)
    described: dict[str, dict[str, Any]] = field(default_factory=dict)  # label -> how released
    commits: int = 0

    @classmethod
    def open(cls, root: Path) -> Hub:
        settings = Settings(data_dir=root / "data", chunk_bytes=256 * 1024 * 1024,
                            max_extract_bytes=4 * 1024**3, log_level="WARNING")
        configure_logging(settings)
        settings.data_dir.mkdir(parents=True)
        db = make_engine(settings.database_url)
        upgrade(db)
        with db.begin() as conn:
            conn.execute(sa.insert(organisations), [
                {"id": org, "name": name, "kind": kind, "created_at": utcnow()}
                for org, name, kind in MEMBERS])
        store = open_store(settings.storage, settings)
        registry = ContractRegistry.load()
        ingest = IngestService(engine=db, store=store, registry=registry, settings=settings)
        policies = PolicySet.of(*(load_policy_file(REPO / "policies" / f"{d}.yaml", registry)
                                  for d in ("case_records", "bank_alerts")))
        return cls(root, settings, db, store, ingest,
                   QueryEngine(store=store, ingest=ingest, settings=settings), registry,
                   policies)

    def commit(self, org: str, contract: Contract, rows: list[dict[str, Any]]) -> None:
        """Write ``rows`` as the connector would and commit them as ``org``."""
        self.commits += 1
        path = self.root / f"extract-{self.commits}.parquet"
        schema = extract_schema(contract, {
            "tahub.dataset": contract.dataset, "tahub.contract_version": str(contract.version),
            "tahub.key_id": KEY_ID, "tahub.connector_version": "bench"})
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), path, compression="zstd")
        data = path.read_bytes()
        actor = Actor(client_id=f"cli_{org[4:10]}", org=org, org_name=org,
                      roles=frozenset({Role.PARTNER}))
        up = self.ingest.start_upload(actor, UploadRequest(
            dataset=contract.dataset, contract_version=contract.version, size=len(data),
            sha256=hashlib.sha256(data).hexdigest())).upload
        if up is None:
            raise SystemExit("the same extract was committed twice")
        step = self.settings.chunk_bytes
        for offset in range(0, len(data), step):
            self.ingest.append_chunk(actor, up.id, offset, data[offset:offset + step])
        self.ingest.commit_upload(actor, up.id)
        path.unlink()

    def files(self, dataset: str) -> list[str]:
        """The stored canonical Parquet files of ``dataset`` (what the engine reads)."""
        return [str(self.store.local_path(e.object_key))
                for e in self.ingest.visible_extracts(dataset)]

    def plan(self, body: dict[str, Any]) -> QueryPlan:
        request = QueryRequest.parse({**body, "cost": str(self.policy(body).limits.per_query)})
        plan = authorise(self.policies, self.registry, ANALYST, request)
        if self.engine.partners(plan.dataset) < plan.min_partners:
            raise SystemExit(f"{plan.dataset}: fewer partners than the policy needs")
        return plan

    def policy(self, body: dict[str, Any]) -> Any:
        return self.policies.get(body["dataset"])

    def releases(self, label: str, body: dict[str, Any], n: int,
                 progress: Progress) -> Iterator[dict[str, Any]]:
        """``n`` releases of ``body``, as QueryService.run makes them after charging."""
        plan = self.plan(body)
        task = progress.add_task(label, total=n)
        times = self.times.setdefault(label, [])
        calibration = self.calibration.setdefault(label, [])
        for _ in range(n):
            start = time.perf_counter()
            cal = calibrate_plan(plan, cost_for(plan))
            calibrated = time.perf_counter()
            out = release(cal, self.engine)
            times.append(time.perf_counter() - start)
            calibration.append(calibrated - start)
            self.described.setdefault(label, {k: out[k] for k in ("measures", "keys", "top")})
            yield out
            progress.advance(task)


def load(hub: Hub, cases: Cases, alerts: dict[tuple[int, str], list[dict]]) -> None:
    """Commit every extract: the NGO (v2) and the police (v1); the banks, quarter by quarter."""
    hub.commit(ORG_NGO, hub.registry.get("case_records", 2), cases.ngo)
    hub.commit(ORG_POLICE, hub.registry.get("case_records", 1), cases.police)
    contract = hub.registry.get("bank_alerts", 1)
    for key in sorted(alerts, key=lambda k: (k[0], k[1] != ORG_BANK_A)):
        hub.commit(key[1], contract, alerts[key])


# -- truth, from the stored rows (DuckDB, independent of the engine) --------------------------
def _sql(files: list[str], sql: str, *params: Any) -> list[tuple[Any, ...]]:
    con = duckdb.connect(config={"threads": 2})
    try:
        return con.execute(sql.replace("$src", "read_parquet($files, union_by_name = true)"),
                           {"files": files, **{f"p{i}": p for i, p in enumerate(params)}}
                           ).fetchall()
    finally:
        con.close()


def _kept(max_rows: int, per_period: bool = False) -> str:
    """Each unit's ``max_rows`` rows of smallest priority (per period, if asked)."""
    by = "__unit" + (", coalesce(CAST(period AS VARCHAR), chr(0))" if per_period else "")
    return (f"(SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {by} ORDER BY "
            f"coalesce(__prio, __seq)) AS __rank FROM $src) WHERE __rank <= {max_rows})")


def route_cells(files: list[str], max_rows: int) -> dict[tuple[str | None, ...], int]:
    """Exact persons per assembled route: a stage a kept row leaves empty is filled from the
    unit's other kept rows when they agree on one value; a unit counts once per route."""
    known = ", ".join(f"CASE WHEN count(DISTINCT {s}) = 1 THEN min({s}) END AS u_{s}"
                      for s in STAGES)
    filled = ", ".join(f"coalesce(k.{s}, u.u_{s}) AS {s}" for s in STAGES)
    rows = _sql(files, f"""
        WITH k AS {_kept(max_rows)},
             u AS (SELECT __unit, {known} FROM k GROUP BY __unit),
             r AS (SELECT {filled}, k.__unit FROM k JOIN u USING (__unit))
        SELECT {', '.join(STAGES)}, count(DISTINCT __unit) FROM r GROUP BY ALL""")
    return {tuple(r[:3]): int(r[3]) for r in rows}


def grid_cells(files: list[str], max_rows: int) -> dict[tuple[str | None, ...], int]:
    """Exact distinct persons per (source, destination) of the kept rows (no assembly)."""
    rows = _sql(files, f"SELECT source_country, destination_country, count(DISTINCT __unit) "
                       f"FROM {_kept(max_rows)} GROUP BY ALL")
    return {tuple(r[:2]): int(r[2]) for r in rows}


def monthly(files: list[str], kept: str) -> list[int]:
    """Exact alerts of the rising indicator per month, over the rows of ``kept``."""
    rows = dict(_sql(files, f"SELECT period, count(*) FROM {kept} WHERE indicator = $p0 "
                            "GROUP BY ALL", RISING))
    return [int(rows.get(m, 0)) for m in MONTHS]


def typology_cells(files: list[str], max_rows: int) -> dict[tuple[str | None, ...], int]:
    rows = _sql(files, f"SELECT typology, exploitation_stream, count(*) FROM "
                       f"{_kept(max_rows)} GROUP BY ALL")
    return {tuple(r[:2]): int(r[2]) for r in rows}


def top_routes(persons: Counter[tuple[str | None, ...]], k: int = TOP,
               min_cases: int = MIN_CASES) -> set[tuple[str | None, ...]]:
    """The true top-``k`` keys with at least ``min_cases`` persons (ties with the k-th kept)."""
    ranked = sorted(persons.values(), reverse=True)
    cut = max(ranked[min(k, len(ranked)) - 1], min_cases)
    return {key for key, n in persons.items() if n >= cut}


def slope(values: Sequence[float]) -> float:
    """Least-squares slope of ``values`` against 0, 1, 2, ..."""
    n = len(values)
    xm, ym = (n - 1) / 2, sum(values) / n
    return (sum((x - xm) * (y - ym) for x, y in enumerate(values))
            / sum((x - xm) ** 2 for x in range(n)))


# -- 1. routes -------------------------------------------------------------------------------
@dataclass
class RankStats:
    label: str
    relevant: int  # |true top-10 with >= 50 persons|, the recall's denominator (at most 10)
    relevant_pairs: int = 0  # (c) only: the same for the top (source, destination) pairs
    releases: int = 0
    hits: int = 0
    pair_hits: int = 0
    entries: int = 0
    zero_entries: int = 0
    clean: int = 0  # releases whose top entries all have exact count > 0
    cells: int = 0
    covered: int = 0
    shown_covered: int = 0
    listed: list[int] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.hits / (self.relevant * self.releases)

    @property
    def pair_recall(self) -> float:
        return self.pair_hits / (self.relevant_pairs * self.releases)


def _rank(stats: RankStats, outs: Iterator[dict[str, Any]], dims: Sequence[str],
          order: Callable[[list[dict[str, Any]]], list[dict[str, Any]]],
          exact: dict[Key, int], relevant: set[Key],
          pairs: set[Key] | None = None) -> RankStats:
    """Recall, zero entries and coverage of the releases ``outs``, each shown as ``order``
    ranks its rows. For the 2-stage grid (``pairs`` given), a true route is found when its
    (source, destination) pair is shown, and the true top pairs are counted apart."""
    for out in outs:
        rows = out["rows"]
        shown = order(rows)
        keys = [tuple(r[d] for d in dims) for r in shown]
        stats.releases += 1
        if pairs is None:
            stats.hits += len(set(keys) & relevant)
        else:
            stats.hits += sum((s, d) in keys for s, _, d in relevant)
            stats.pair_hits += len(set(keys) & pairs)
        stats.entries += len(keys)
        zeros = sum(exact.get(k, 0) == 0 for k in keys)
        stats.zero_entries += zeros
        stats.clean += zeros == 0
        stats.listed.append(len(rows))
        for r in rows:
            c = r["count_units"]
            stats.covered += c["low"] <= exact.get(tuple(r[d] for d in dims), 0) <= c["high"]
        stats.cells += len(rows)
        stats.shown_covered += sum(
            r["count_units"]["low"] <= exact.get(k, 0) <= r["count_units"]["high"]
            for r, k in zip(shown, keys, strict=True))
    return stats


def measure_routes(hub: Hub, cases: Cases, n: int, progress: Progress) -> dict[str, Any]:
    files = hub.files("case_records")
    m = hub.policy(ROUTE_TOP).max_rows
    routes, grid = route_cells(files, m), grid_cells(files, m)
    # the generator's truth, projected on (source, destination) for the grid's question
    pairs: Counter[tuple[str | None, ...]] = Counter()
    for (s, _, d), k in cases.persons.items():
        pairs[(s, d)] += k
    want, want_pairs = top_routes(cases.persons), top_routes(pairs)
    agree = all(routes.get(k, 0) == v for k, v in cases.persons.items())
    best = min(TOP, len(want))

    def by_low(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return heapq.nlargest(TOP, rows, key=lambda r: (r["count_units"]["low"],
                                                        r["count_units"]["value"]))

    def by_value(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return heapq.nlargest(TOP, rows, key=lambda r: r["count_units"]["value"])

    a = _rank(RankStats("(a) route query, top 10", best),
              hub.releases("routes (a) top 10", ROUTE_TOP, n, progress), STAGES,
              lambda rows: rows[:TOP], routes, want)
    b = _rank(RankStats("(b) selected routes, by lower bound", best),
              hub.releases("routes (b) selected", ROUTE_SELECTED, n, progress), STAGES,
              by_low, routes, want)
    c = _rank(RankStats("(c) old: public grid source x destination, by noisy value", best,
                        min(TOP, len(want_pairs))),
              hub.releases("routes (c) public grid", ROUTE_GRID, n, progress),
              ("source_country", "destination_country"), by_value, grid, want, want_pairs)
    return {"stats": [a, b, c], "truth_agrees": agree, "max_rows": m,
            "routes_50": sum(v >= MIN_CASES for v in cases.persons.values()),
            "top": sorted(((cases.persons[k], k) for k in want), reverse=True),
            "pairs_top": sorted(((pairs[k], k) for k in want_pairs), reverse=True),
            "grid_of_pairs": {k: grid.get(k, 0) for k in want_pairs}}


# -- 2. trend --------------------------------------------------------------------------------
@dataclass
class TrendStats:
    label: str
    true_slope: float  # unbounded data
    bounded_slope: float  # the bounded truth, no noise
    slopes: list[float] = field(default_factory=list)
    covered: int = 0
    cells: int = 0


def measure_trend(hub: Hub, n: int, progress: Progress) -> dict[str, Any]:
    files = hub.files("bank_alerts")
    policy = hub.policy(TREND)
    bounds = policy.contribution_bounds
    unbounded = monthly(files, "$src")
    series = {
        "auto": monthly(files, _kept(bounds.max_rows_per_period, per_period=True)),
        "total": monthly(files, _kept(bounds.max_rows)),
    }
    arrival = monthly(files, f"(SELECT * FROM $src WHERE __seq <= {bounds.max_rows})")
    true = slope(unbounded)
    unfiltered = hub.plan({**TREND, "filters": {"indicator": [RISING]}})
    out = []
    for bounding, label in (("auto", "default (auto)"), ("total", '"bounding": "total"')):
        body = {**TREND, "bounding": bounding}
        plan = hub.plan(body)
        what = (f"{plan.max_rows} per customer per month" if plan.per_period
                else f"{plan.max_rows} per customer in total")
        stats = TrendStats(f"{label}: {what}", true, slope(series[bounding]))
        exact = series[bounding]
        for rel in hub.releases(f"trend, bounding {bounding}", body, n, progress):
            values = {r["period"]: r["count"] for r in rel["rows"]}
            stats.slopes.append(slope([values[m]["value"] for m in MONTHS]))
            stats.covered += sum(values[m]["low"] <= e <= values[m]["high"]
                                 for m, e in zip(MONTHS, exact, strict=True))
            stats.cells += len(MONTHS)
        out.append(stats)
    return {"stats": out, "true_slope": true, "arrival_slope": slope(arrival),
            "unfiltered": (unfiltered.dimensions[0].size, unfiltered.per_period),
            "first_month": unbounded[0], "last_month": unbounded[-1]}


# -- 3. consistent totals --------------------------------------------------------------------
def measure_totals(hub: Hub, n: int, progress: Progress) -> dict[str, Any]:
    files = hub.files("bank_alerts")
    exact = typology_cells(files, hub.policy(TOTALS).max_rows)
    dims = TOTALS_DIMS
    covered = checked = cells = cells_covered = adds_up = 0
    for rel in hub.releases("consistent totals", TOTALS, n, progress):
        released = {tuple(r[d] for d in dims): r["count"] for r in rel["rows"]}
        for key, c in released.items():
            cells_covered += c["low"] <= exact.get(key, 0) <= c["high"]
            cells += 1
        ok = True
        for margin in rel["totals"]:
            at = [dims.index(d) for d in margin["by"]]
            for row in margin["rows"]:
                members = [k for k in released
                           if all(k[i] == row[d] for i, d in zip(at, margin["by"], strict=True))]
                total, truth = row["count"], sum(exact.get(k, 0) for k in members)
                ok &= total["value"] == sum(released[k]["value"] for k in members)
                covered += total["low"] <= truth <= total["high"]
                checked += 1
        adds_up += ok
    return {"covered": covered, "checked": checked, "cells_covered": cells_covered,
            "cells": cells, "adds_up": adds_up, "releases": n}


# -- 4. time ---------------------------------------------------------------------------------
EXACT_SQL = {
    "routes (a) top 10": ("case_records", "SELECT source_country, transit_country, "
                          "destination_country, count(DISTINCT subject) FROM $src GROUP BY ALL"),
    "routes (c) public grid": ("case_records", "SELECT source_country, destination_country, "
                               "count(DISTINCT subject) FROM $src GROUP BY ALL"),
    "trend, bounding auto": ("bank_alerts", "SELECT period, count(*) FROM $src "
                             "WHERE indicator = $p0 GROUP BY ALL"),
    "consistent totals": ("bank_alerts", "SELECT typology, exploitation_stream, count(*) "
                          "FROM $src GROUP BY ALL"),
}
EXACT_SQL["routes (b) selected"] = EXACT_SQL["routes (a) top 10"]
EXACT_SQL["trend, bounding total"] = EXACT_SQL["trend, bounding auto"]


def measure_time(hub: Hub, repeat: int = 7) -> list[tuple[str, float, float, float]]:
    """(query, median seconds per release, of which calibration, median seconds of the exact
    DuckDB aggregate)."""
    out = []
    for label, times in hub.times.items():
        dataset, sql = EXACT_SQL[label]
        files, exact = hub.files(dataset), []
        for _ in range(repeat):
            start = time.perf_counter()
            _sql(files, sql, RISING) if "$p0" in sql else _sql(files, sql)
            exact.append(time.perf_counter() - start)
        out.append((label, statistics.median(times),
                    statistics.median(hub.calibration[label]), statistics.median(exact)))
    return out


# -- report ----------------------------------------------------------------------------------
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _verdict(ok: bool, miss: str) -> str:
    return "met" if ok else f"**missed** ({miss})"


def _coverage(cov: float) -> str:
    """Against 95% +- 1%: above is conservative (wider than needed), below is not honest."""
    if 0.94 <= cov <= 0.96:
        return f"met ({_pct(cov)})"
    if cov > 0.96:
        return (f"**missed** on the safe side ({_pct(cov)}, {100 * (cov - 0.96):.1f} points "
                "above 96%: intervals wider than needed)")
    return f"**missed** ({_pct(cov)}, {100 * (0.94 - cov):.1f} points below 94%)"


def _route(key: Key) -> str:
    return "-".join(x or "_" for x in key)


def _noise(label: str, d: dict[str, Any]) -> str:
    m = d["measures"][0]
    text = f"{label}: {m['name']} noise scale {m['noise_scale']:.3g}, 95% +/-{m['halfwidth_95']:g}"
    if d["keys"]["mode"] == "selected":
        text += (f", keys selected from {d['keys']['threshold']} persons "
                 f"(95% listed from {d['keys']['appears_95']})")
    if d["top"]:
        text += f", top-k orders keys {d['top']['gap_90']:.3g} apart (90%)"
    return text


def report(n: int, sizes: dict[str, int], routes: dict[str, Any], trend: dict[str, Any],
           totals: dict[str, Any], times: list[tuple[str, float, float, float]],
           seconds: float, policies: PolicySet, described: dict[str, dict[str, Any]]) -> str:
    case_cost = policies.get("case_records").limits.per_query  # type: ignore[union-attr]
    bank_cost = policies.get("bank_alerts").limits.per_query  # type: ignore[union-attr]
    lines = [
        f"{n} releases per query at the shipped per-query cost (case_records rho = "
        f"{case_cost}, bank_alerts rho = {bank_cost}), calibrate_plan + release as the API "
        f"does after charging; truth from the stored canonical Parquet files. Data (seed "
        f"{SEED}): case_records {sizes['ngo']:,} NGO rows (v2) + {sizes['police']:,} police "
        f"rows (v1), {sizes['persons']:,} persons, {len(PLANTED)} planted routes of "
        f"{PLANTED[-1][1]}-{PLANTED[0][1]} persons (4 split across the partners); "
        f"bank_alerts {sizes['alerts']:,} alerts of {CUSTOMERS:,} customers from 2 banks, "
        f"24 months, {sizes['bank_extracts']} extracts committed quarter by quarter. "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, DuckDB "
        f"{duckdb.__version__}; {seconds / 60:.1f} min in all.",
        "",
        f"**1. Routes** (case_records, at most {routes['max_rows']} rows per person). "
        f"True top {TOP} routes, all with >= {MIN_CASES} persons "
        f"({routes['routes_50']} routes have that many): "
        + ", ".join(f"{_route(k)} {v}" for v, k in routes["top"])
        + ". Exact assembled route counts from the stored rows "
        + ("equal" if routes["truth_agrees"] else "**differ from**")
        + " the generator's persons per route. The grid (c) has no transit and does not "
        "assemble routes: a true route counts as found when its (source, destination) pair is "
        "among the 10 shown; its own question, the true top 10 pairs of the assembled routes, "
        "is " + ", ".join(f"{_route(k)} {v} (grid cell {routes['grid_of_pairs'][k]})"
                          for v, k in routes["pairs_top"]) + ".",
        "",
        "| | recall@10 (target >= 0.9) | top-10 entries with true count 0 | releases with "
        "none (target >= 99%) | 95% coverage, all released cells | 95% coverage, the 10 shown "
        "| cells released (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in routes["stats"]:
        recall = f"{s.recall:.3f}" + (f" (top pairs: {s.pair_recall:.3f})"
                                      if s.relevant_pairs else "")
        lines.append(
            f"| {s.label} | {recall} | {_pct(s.zero_entries / max(s.entries, 1))} | "
            f"{_pct(s.clean / s.releases)} | {_pct(s.covered / s.cells)} | "
            f"{_pct(s.shown_covered / max(s.entries, 1))} | {statistics.median(s.listed):,.0f} |")
    lines += ["", "Noise: " + "; ".join(_noise(label, d) for label, d in described.items()
                                        if label.startswith("routes")) + ". Keys of (a) and "
              "(b) are chosen only among routes present in the bounded data, so an entry with "
              "true count 0 cannot occur there by construction.", "",
              "Against the targets:"]
    for s in routes["stats"]:
        clean = s.clean / s.releases
        lines.append(
            f"- {s.label}: recall@10 {_verdict(s.recall >= 0.9, f'{0.9 - s.recall:.3f} short')}"
            f"; no zero entry in >= 99% of releases "
            f"{_verdict(clean >= 0.99, _pct(0.99 - clean) + ' short')}"
            f"; coverage {_coverage(s.covered / s.cells)}")
    t = trend
    lines += [
        "",
        f"**2. Trend** of `{RISING}` (monthly alerts {t['first_month']:,} in {MONTHS[0]} to "
        f"{t['last_month']:,} in {MONTHS[-1]}): true slope of the unbounded data "
        f"**{t['true_slope']:.2f} alerts/month per month**. For reference, keeping each "
        f"customer's first 10 rows by arrival (the old rule, exact, no noise) gives a slope "
        f"of {t['arrival_slope']:.2f} ({_pct(t['arrival_slope'] / t['true_slope'] - 1)}). "
        f"The query filters the period to the 24 months of data: without that filter it "
        f"groups by all {t['unfiltered'][0]} months of the contract's domain and auto "
        "bounding " + ("still bounds per period" if t["unfiltered"][1]
                       else "falls back to the total bound") + ". "
        "Bounded truths depend on the hub's secret salt (random per run), so they vary a "
        "little between runs; the unbounded truth does not.",
        "",
        "| bounding | exact bounded slope, no noise (vs truth) | released slope: median "
        "[5%, 95%] | median error vs unbounded truth (target within 10%) | releases within "
        "10% | median error vs bounded truth (noise alone) | 95% coverage of monthly "
        "intervals (bounded truth) |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in t["stats"]:
        med = statistics.median(s.slopes)
        within = sum(abs(x / s.true_slope - 1) <= 0.10 for x in s.slopes) / len(s.slopes)
        lines.append(
            f"| {s.label} | {s.bounded_slope:.2f} ({_pct(s.bounded_slope / s.true_slope - 1)}) "
            f"| {med:.2f} [{_quantile(s.slopes, 0.05):.2f}, {_quantile(s.slopes, 0.95):.2f}] "
            f"| {_pct(med / s.true_slope - 1)} | {_pct(within)} | "
            f"{_pct(med / s.bounded_slope - 1)} | {_pct(s.covered / s.cells)} |")
    lines += ["", "Noise: " + "; ".join(_noise(label, d) for label, d in described.items()
                                        if label.startswith("trend")) + ".", "",
              "Against the targets:"]
    for s in t["stats"]:
        err = statistics.median(s.slopes) / s.true_slope - 1
        lines.append(f"- {s.label}: slope within 10% "
                     + _verdict(abs(err) <= 0.10, f"median {_pct(err)}, "
                                f"{100 * (abs(err) - 0.10):.1f} points beyond the target")
                     + f"; coverage {_coverage(s.covered / s.cells)}")
    cov_t = totals["covered"] / totals["checked"]
    lines += [
        "",
        f"**3. Consistent totals** (bank_alerts count by typology x exploitation_stream, "
        f"20 cells, 10 totals per release): totals add up to their released cells in "
        f"{_pct(totals['adds_up'] / totals['releases'])} of releases; 95% coverage of the "
        f"totals {_pct(cov_t)} over {totals['checked']:,} totals: {_coverage(cov_t)}; "
        f"of the cells {_pct(totals['cells_covered'] / totals['cells'])} "
        f"({totals['cells']:,} cells). "
        + _noise("Noise", described["consistent totals"]) + ".",
        "",
        "**4. Time per release** (calibrate_plan + release, median) against the exact DuckDB "
        "aggregate of the same grouping with no bounding (fresh connection, median of 7):",
        "",
        "| query | release s | of which calibrate_plan s | exact s | ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {label} | {r:.3f} | {c:.3f} | {e:.3f} | {r / e:.1f}x |"
              for label, r, c, e in times]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=200)
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    args = parser.parse_args()
    started = time.perf_counter()
    rng = random.Random(SEED)  # noqa: S311 - synthetic input data, not privacy noise
    with tempfile.TemporaryDirectory(prefix="tahub-utility-") as tmp:
        hub = Hub.open(Path(tmp))
        cases = case_records(rng)
        alerts = bank_alerts(rng, hub.registry.get("bank_alerts", 1))
        load(hub, cases, alerts)
        sizes = {"ngo": len(cases.ngo), "police": len(cases.police),
                 "persons": sum(cases.persons.values()),
                 "alerts": sum(len(r) for r in alerts.values()), "bank_extracts": len(alerts)}
        print(f"committed {hub.commits} extracts in {time.perf_counter() - started:.0f} s")
        columns = (TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn())
        with Progress(*columns) as progress:
            routes = measure_routes(hub, cases, args.releases, progress)
            trend = measure_trend(hub, args.releases, progress)
            totals = measure_totals(hub, args.releases, progress)
        times = measure_time(hub)
        text = report(args.releases, sizes, routes, trend, totals, times,
                      time.perf_counter() - started, hub.policies, hub.described)
        hub.db.dispose()
    print(text)
    if not args.no_record:
        with args.results.open("a") as out:
            out.write(f"\n## utility, {dt.date.today()}\n\n{text}\n")


if __name__ == "__main__":
    main()

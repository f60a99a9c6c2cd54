"""Contribution bounding paid at commit: its cost per million rows, and what it buys a query.

Run:  .venv/bin/python bench/bounding_commit.py [--rows 10000000] [--units 2500000] [--repeat 3]

Synthetic pooled bank alerts: ``--rows`` rows from 5 partners (one extract each) over about
``--units`` privacy units, skewed (most units 1-5 rows, some 6-20, 0.5% with 50-200), tokens
as the connector writes them. Measured in one run (2 cores; only ratios compare across runs):

* **commit**: each extract through the real ``IngestService`` (upload, re-validation of
  every row, numbering, canonical copy, visible). The numbering's own share is the commit
  time minus ``check_extract`` of the same file without numbering (same rows, same write);
* **query**: ``QueryEngine.aggregate`` (bounded: ``__seq <= 10``) of count and fixed-point
  sum of amount by (origin_country, destination_country) over the full public grid, against
  (a) the plain exact DuckDB aggregate of the same grouping with no bounding, and (ref) the
  same bounding done at query time with ``row_number() over (partition by subject)``.

The median of ``--repeat`` runs is reported and appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import hmac
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from fractions import Fraction
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from hub.actors import Actor, MemberKind, Role
from hub.contracts.extractformat import extract_schema
from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.governance.policies import Function
from hub.ingest.extracts import check_extract
from hub.ingest.service import IngestService, UploadRequest
from hub.ingest.units import UnitIndex
from hub.privacy.accounting import BudgetLimits, Cost, Measure
from hub.query.engine import Part, QueryEngine
from hub.query.plan import DimensionPlan, MeasurePlan, PostProcessPlan, QueryPlan
from hub.settings import Settings
from hub.storage.db import make_engine, organisations, upgrade, utcnow
from hub.storage.objects import open_store
from hub.storage.sandbox import DuckLimits

PARTNERS = 5
MAX_ROWS = 10
COUNTRIES = 60  # countries present in the data; the grid is the whole public domain


def _units_per_row(rows: int, units: int, rng: np.random.Generator) -> np.ndarray:
    """A unit id per row, skewed, about ``units`` distinct, in random (arrival) order."""
    kind = rng.random(units)
    counts = np.where(kind < 0.90, rng.integers(1, 6, units),
                      np.where(kind < 0.995, rng.integers(6, 21, units),
                               rng.integers(50, 201, units)))
    ids = np.repeat(np.arange(units, dtype=np.int64), counts)
    rng.shuffle(ids)
    if len(ids) < rows:
        ids = np.concatenate([ids, rng.integers(0, units, rows - len(ids))])
    return ids[:rows]


def _tokens(units: int) -> pa.Array:
    key = b"bench network key"
    key_id = hmac.new(key, b"tahub key id", hashlib.sha256).hexdigest()[:8]
    return pa.array([f"{key_id}.{hashlib.sha256(b'%d' % i).hexdigest()}" for i in range(units)])


def _write_extracts(folder: Path, contract: Contract, rows: int, units: int) -> list[Path]:
    rng = np.random.default_rng(7)
    unit = _units_per_row(rows, units, rng)
    tokens = _tokens(units)
    countries = np.array(contract.field("origin_country").codes[:COUNTRIES], dtype=object)
    weights = 1 / np.arange(1, COUNTRIES + 1)
    weights /= weights.sum()
    indicators = np.array(contract.field("indicator").codes, dtype=object)
    typologies = np.array(contract.field("typology").codes, dtype=object)
    months = np.array([f"2025-{m:02d}" for m in range(1, 13)], dtype=object)
    schema = extract_schema(contract, {
        "tahub.dataset": contract.dataset, "tahub.contract_version": str(contract.version),
        "tahub.key_id": tokens[0].as_py()[:8], "tahub.connector_version": "bench"})
    paths = []
    for p, part in enumerate(np.array_split(np.arange(rows), PARTNERS)):
        n = len(part)
        table = pa.table({
            "subject": tokens.take(pa.array(unit[part])),
            "indicator": indicators[rng.integers(0, len(indicators), n)],
            "typology": typologies[rng.integers(0, len(typologies), n)],
            "exploitation_stream": pa.nulls(n, pa.string()),
            "origin_country": countries[rng.choice(COUNTRIES, n, p=weights)],
            "destination_country": countries[rng.choice(COUNTRIES, n, p=weights)],
            "amount": np.round(rng.lognormal(7, 1.5, n), 2),
            "period": months[rng.integers(0, 12, n)],
        }).cast(schema)
        path = folder / f"partner-{p}.parquet"
        pq.write_table(table, path, compression="zstd", row_group_size=512 * 1024)
        paths.append(path)
    return paths


def _plan(contract: Contract) -> QueryPlan:
    keys = contract.field("origin_country").codes
    measure = Measure.ZCDP
    return QueryPlan(
        dataset=contract.dataset, contract=contract, contract_version=contract.version,
        rule="bench",
        dimensions=(DimensionPlan("origin_country", FieldType.CATEGORY, keys),
                    DimensionPlan("destination_country", FieldType.CATEGORY, keys)),
        measures=(MeasurePlan(Function.COUNT, None, None),
                  MeasurePlan(Function.SUM, "amount", (0.0, 50000.0))),
        filters=(), max_rows=MAX_ROWS, accounting=measure,
        limits=BudgetLimits(measure, Fraction(10), Fraction(5), Fraction(1), date(2026, 1, 1)),
        min_partners=1, cost=Cost(measure, Fraction(1, 10)), target=None,
        postprocess=PostProcessPlan(),
    )


def _median(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _duckdb(sql: str, files: list[str]) -> None:
    con = duckdb.connect(config={"threads": 2, "memory_limit": "2GB"})
    try:
        con.execute(sql, [files]).fetchall()
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--units", type=int, default=2_500_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", action=argparse.BooleanOptionalAction, default=True,
                        help="also time query-time bounding by a window function (slow)")
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    contract = ContractRegistry.load().get("bank_alerts", 1)
    with tempfile.TemporaryDirectory(prefix="tahub-bench-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        sources = _write_extracts(root, contract, args.rows, args.units)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - t0:.1f} s")
        settings = Settings(data_dir=root / "data", chunk_bytes=256 * 1024 * 1024,
                            max_extract_bytes=64 * 1024**3)
        settings.data_dir.mkdir()
        db = make_engine(settings.database_url)
        upgrade(db)
        orgs = [f"org_bench{p:07d}" for p in range(PARTNERS)]
        with db.begin() as conn:
            conn.execute(sa.insert(organisations), [
                {"id": o, "name": o, "kind": MemberKind.BANK, "created_at": utcnow()}
                for o in orgs])
        store = open_store(settings.storage, settings)
        registry = ContractRegistry.load()
        ingest = IngestService(engine=db, store=store, registry=registry, settings=settings)
        commit_s, check_s, numbered_s = 0.0, 0.0, 0.0
        duck = DuckLimits(2, "2GB", root)
        side_index = UnitIndex(root / "side-index")  # the same numbering, timed on its own
        for org, path in zip(orgs, sources, strict=True):
            start = time.perf_counter()
            check_extract(path, contract, canonical=root / "plain.parquet", duck=duck)
            check_s += time.perf_counter() - start
            start = time.perf_counter()
            check_extract(path, contract, canonical=root / "numbered.parquet", duck=duck,
                          units=side_index, partner=org)
            numbered_s += time.perf_counter() - start
            actor = Actor(client_id="cli", org=org, org_name=org, roles=frozenset({Role.PARTNER}))
            start = time.perf_counter()
            data = path.read_bytes()
            up = ingest.start_upload(actor, UploadRequest(
                dataset=contract.dataset, contract_version=1, size=len(data),
                sha256=hashlib.sha256(data).hexdigest())).upload
            if up is None:
                raise SystemExit("the same extract was committed twice")
            step = settings.chunk_bytes
            for offset in range(0, len(data), step):
                ingest.append_chunk(actor, up.id, offset, data[offset:offset + step])
            ingest.commit_upload(actor, up.id)
            commit_s += time.perf_counter() - start
            print(f"committed {org}: {time.perf_counter() - start:.1f} s")
        numbering_s = numbered_s - check_s
        per_m = 1e6 / args.rows
        engine = QueryEngine(store=store, ingest=ingest, settings=settings)
        plan = _plan(contract)
        parts = [Part("count"), Part("sum", "amount", (0.0, 50000.0), 2)]
        files = [str(store.local_path(e.object_key))
                 for e in ingest.visible_extracts(contract.dataset)]
        result = engine.aggregate(plan, parts)
        kept = sum(result[0])
        exact_sql = ("SELECT origin_country, destination_country, count(*), sum(amount) "
                     "FROM read_parquet(?) GROUP BY ALL")
        window_sql = (
            "SELECT origin_country, destination_country, count(*), sum(amount) FROM "
            "(SELECT *, row_number() OVER (PARTITION BY subject) AS rn FROM read_parquet(?)) "
            f"WHERE rn <= {MAX_ROWS} GROUP BY ALL")
        exact = _median(lambda: _duckdb(exact_sql, files), args.repeat)
        bounded = _median(lambda: engine.aggregate(plan, parts), args.repeat)
        window = _median(lambda: _duckdb(window_sql, files), 1) if args.window else None
        lines = [
            f"{args.rows:,} rows from {PARTNERS} partners, ~{args.units:,} skewed units; "
            f"bounded kept {kept:,} rows (max_rows {MAX_ROWS}); median of {args.repeat}; "
            f"{os.cpu_count()} cores, Python {platform.python_version()}",
            "",
            "| step | seconds | per million rows |",
            "|---|---|---|",
            f"| commit through IngestService (upload, check, number, write), all | "
            f"{commit_s:.2f} | {commit_s * per_m:.2f} |",
            f"| check_extract + canonical copy, without numbering | {check_s:.2f} | "
            f"{check_s * per_m:.2f} |",
            f"| check_extract + canonical copy, with numbering | {numbered_s:.2f} | "
            f"{numbered_s * per_m:.2f} |",
            f"| numbering (the difference: index join, window, index update, 3 more "
            f"columns) | {numbering_s:.2f} | {numbering_s * per_m:.2f} |",
            f"| (a) exact DuckDB count+sum by 2 dims, no bounding | {exact:.3f} | |",
            f"| QueryEngine.aggregate, bounded (__seq <= {MAX_ROWS}), full grid | "
            f"{bounded:.3f} | |",
        ]
        if window is not None:
            lines.append(f"| (ref) bounding by window function at query time | {window:.2f} | |")
        lines += ["", f"Bounded / exact: **{bounded / exact:.2f}x**"]
        if window is not None:
            lines[-1] += f"; window / exact: {window / exact:.1f}x"
        text = "\n".join(lines)
        print(text)
        if not args.no_record:
            with open(Path(__file__).with_name("RESULTS.md"), "a") as out:
                out.write(f"\n## bounding_commit, {dt.date.today()}\n\n{text}\n")
        db.dispose()


if __name__ == "__main__":
    main()

"""Commit-time numbering for contribution bounding (hub.ingest.units), through the real
IngestService.

Every behaviour test runs on both indexes: the DuckDB files of the embedded default (SQLite
metadata store) and PostgreSQL's tables (a throwaway PostgreSQL database per test); and
concurrent commits of one dataset from two spawned processes on each.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from hub.contracts.model import Contract, ContractRegistry
from hub.ingest.units import PostgresUnitIndex, UnitIndex, UnitNumbering
from hub.storage.db import make_engine, upgrade
from tests.hub import unit_workers
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.extract_files import token, valid_rows
from tests.hub.pooled import ORG_C, Pool
from tests.hub.postgres import postgres_database

BACKENDS = ["duckdb", "postgresql"]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database without members (one per test)."""
    with postgres_database() as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
        finally:
            engine.dispose()
        yield url


@pytest.fixture(params=BACKENDS)
def pool(request: pytest.FixtureRequest, tmp_path: Path, migrated_db: Path,
         registry: ContractRegistry) -> Iterator[Pool]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    p = Pool.create(tmp_path, migrated_db, registry, database_url=url)
    expected = PostgresUnitIndex if url else UnitIndex
    assert isinstance(p.ingest.units, expected)
    yield p
    p.close()


@pytest.fixture
def alerts(registry: ContractRegistry) -> Contract:
    return registry.get("bank_alerts", 1)


def rows_of(contract: Contract, subjects: list[str], seed: int = 0) -> list[dict[str, Any]]:
    rows = valid_rows(contract, len(subjects), seed=seed)
    for row, subject in zip(rows, subjects, strict=True):
        row["subject"] = token(subject)
    return rows


def stored(pool: Pool, extract_id: str) -> list[dict[str, Any]]:
    (extract,) = [e for e in pool.ingest.visible_extracts("bank_alerts") if e.id == extract_id]
    path = pool.store.local_path(extract.object_key)
    return pq.read_table(path, columns=["subject", "__unit", "__seq", "__partner"]).to_pylist()


def test_rows_are_numbered_per_unit_in_arrival_order_across_partners_and_commits(
    pool: Pool, alerts: Contract
) -> None:
    first = pool.commit(ORG_A, alerts, rows_of(alerts, ["x", "y", "x", "z", "x"]))
    second = pool.commit(ORG_B, alerts, rows_of(alerts, ["y", "x", "w", "x"], seed=10))
    third = pool.commit(ORG_C, alerts, rows_of(alerts, ["x", "x", "w"], seed=20))

    a, b, c = stored(pool, first), stored(pool, second), stored(pool, third)
    seq = lambda rows: [(r["subject"], r["__seq"]) for r in rows]  # noqa: E731
    x, y, z, w = (token(s) for s in "xyzw")
    assert seq(a) == [(x, 1), (y, 1), (x, 2), (z, 1), (x, 3)]
    assert seq(b) == [(y, 2), (x, 4), (w, 1), (x, 5)]
    assert seq(c) == [(x, 6), (x, 7), (w, 2)]
    assert {r["__partner"] for r in a} == {ORG_A} and {r["__partner"] for r in c} == {ORG_C}
    # one compact id per token, the same at every partner; distinct tokens, distinct ids
    ids: dict[str, int] = {}
    for r in a + b + c:
        assert ids.setdefault(r["subject"], r["__unit"]) == r["__unit"]
    assert sorted(ids.values()) == [1, 2, 3, 4]
    assert pool.ingest.units.rows_seen("bank_alerts") == {
        x: (ids[x], 7), y: (ids[y], 2), z: (ids[z], 1), w: (ids[w], 2)}


def test_a_datasets_salt_is_made_at_its_first_commit_and_kept(
    pool: Pool, alerts: Contract
) -> None:
    """What a move to the cluster's index carries over (hub.ingest.clustered)."""
    assert pool.ingest.units.salt("bank_alerts") is None
    pool.commit(ORG_A, alerts, rows_of(alerts, ["x"]))
    salt = pool.ingest.units.salt("bank_alerts")
    assert salt is not None and len(salt) == 32
    pool.commit(ORG_B, alerts, rows_of(alerts, ["y"], seed=3))
    assert pool.ingest.units.salt("bank_alerts") == salt
    assert pool.ingest.units.salt("case_records") is None


def test_withdrawal_and_rejected_uploads_never_lower_rows_seen(
    pool: Pool, alerts: Contract
) -> None:
    first = pool.commit(ORG_A, alerts, rows_of(alerts, ["x", "x"]))
    pool.withdraw(ORG_A, first)
    bad = rows_of(alerts, ["x"], seed=5)
    bad[0]["amount"] = -1.0  # breaks the contract: refused before numbering
    with pytest.raises(Exception, match="break contract"):
        pool.commit(ORG_B, alerts, bad)
    again = pool.commit(ORG_B, alerts, rows_of(alerts, ["x"], seed=7))
    # the withdrawn rows leave a gap (seq 1, 2 are gone): x keeps fewer rows, never more
    assert [r["__seq"] for r in stored(pool, again)] == [3]
    assert pool.ingest.units.rows_seen("bank_alerts")[token("x")][1] == 3


def test_datasets_have_separate_indexes(pool: Pool, registry: ContractRegistry,
                                        alerts: Contract) -> None:
    cases = registry.get("case_records", 1)
    pool.commit(ORG_A, alerts, rows_of(alerts, ["x"]))
    case_rows = valid_rows(cases, 2)
    for r in case_rows:
        r["subject"] = token("x")
    pool.commit(ORG_B, cases, case_rows)
    assert pool.ingest.units.rows_seen("bank_alerts")[token("x")] == (1, 1)
    assert pool.ingest.units.rows_seen("case_records")[token("x")] == (1, 2)
    files = sorted(p.name for p in (pool.settings.data_dir / "index" / "units").glob("*.duckdb"))
    if isinstance(pool.ingest.units, UnitIndex):
        assert files == ["bank_alerts.duckdb", "case_records.duckdb"]
    else:  # nothing on the local disk: hub processes on other hosts share the index
        assert files == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_refuses_names_that_are_not_dataset_names(
        request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> None:
    engine = make_engine(request.getfixturevalue("pg_url")) if backend == "postgresql" else None
    try:
        index: UnitNumbering = UnitIndex(tmp_path) if engine is None else PostgresUnitIndex(engine)
        with pytest.raises(ValueError, match="not a dataset name"):
            index.rows_seen("../escape")
        assert index.rows_seen("bank_alerts") == {}
    finally:
        if engine is not None:
            engine.dispose()
    with pytest.raises(ValueError, match="not a dataset name"):
        UnitIndex(tmp_path).path("../escape")


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_commits_from_two_processes_never_share_an_id_or_a_number(
        request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> None:
    """Two spawned processes commit extracts of one dataset at once, over the same units."""
    where = request.getfixturevalue("pg_url") if backend == "postgresql" \
        else str(tmp_path / "index")
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(2), spawn.Queue()
    procs = [spawn.Process(target=unit_workers.commit_extracts, args=(
        backend, where, partner, n + 1, 20, 300, 3000, barrier, results))
        for n, partner in enumerate((ORG_A, ORG_B))]
    for p in procs:
        p.start()
    try:
        reports = [results.get(timeout=180) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
    assert [r for r in reports if isinstance(r, str)] == []  # no process failed
    assert [p.exitcode for p in procs] == [0, 0]
    stored = [row for report in reports for row in report]
    assert len(stored) == 2 * 20 * 300

    unit_of: dict[str, int] = {}
    seqs: dict[str, list[int]] = {}
    for tok, unit, seq in stored:
        assert unit_of.setdefault(tok, unit) == unit  # one id per token, in every commit
        seqs.setdefault(tok, []).append(seq)
    # never the same id for two tokens; compact ids, no gaps when nothing failed
    assert sorted(unit_of.values()) == list(range(1, len(unit_of) + 1))
    # each unit's rows are numbered 1..n exactly once across both processes' commits
    assert all(sorted(s) == list(range(1, len(s) + 1)) for s in seqs.values())
    if backend == "postgresql":
        engine = make_engine(where)
        try:
            index: UnitNumbering = PostgresUnitIndex(engine)
            assert index.rows_seen("bank_alerts") == {
                t: (unit_of[t], len(s)) for t, s in seqs.items()}
        finally:
            engine.dispose()
    else:
        assert UnitIndex(Path(where)).rows_seen("bank_alerts") == {
            t: (unit_of[t], len(s)) for t, s in seqs.items()}

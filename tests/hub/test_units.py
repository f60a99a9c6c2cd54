"""Commit-time numbering for contribution bounding (hub.units), through the real IngestService."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from hub.contracts import Contract, ContractRegistry
from hub.units import UnitIndex
from tests.hub.conftest import ORG_A, ORG_B
from tests.hub.extract_files import token, valid_rows
from tests.hub.pooled import ORG_C, Pool


@pytest.fixture
def pool(tmp_path: Path, migrated_db: Path, registry: ContractRegistry) -> Iterator[Pool]:
    p = Pool.create(tmp_path, migrated_db, registry)
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
    assert sorted(p.name for p in (pool.settings.data_dir / "index" / "units").glob("*.duckdb")) \
        == ["bank_alerts.duckdb", "case_records.duckdb"]


def test_index_refuses_names_that_are_not_dataset_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a dataset name"):
        UnitIndex(tmp_path).path("../escape")
    assert UnitIndex(tmp_path).rows_seen("bank_alerts") == {}

"""The Spark engine (hub.query.spark, hub.query.dialect) equals DuckDB's, cell for cell, before
noise: random plans over random extracts, committed through the real IngestService, run by
the real query engine on DuckDB and on a real Spark standalone cluster on loopback (a
master, two workers and a Spark Connect server; tests/sparkcluster.py).

Run alone with ``pytest -m spark``."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from hub.contracts.model import Contract, ContractRegistry
from hub.errors import Unavailable
from hub.query import bounds
from hub.query.engine import QueryEngine
from hub.query.plan import QueryPlan
from hub.query.sql import Part
from tests.hub.pooled import ORGS, Pool, plan
from tests.hub.test_engine import ALL_PARTS, MONTHS, STREAMS, TYPOLOGIES, alert
from tests.sparkcluster import SparkCluster

pytestmark = pytest.mark.spark

Groups = list[tuple[tuple[str | None, ...], list[Any]]]


def spark_engine(pool: Pool, remote: str, **settings: Any) -> QueryEngine:
    """A query engine on Spark over ``pool``'s extracts, with cut files of its own."""
    spark = pool.settings.model_copy(update={
        "engine": "spark", "spark_remote": remote, "data_dir": pool.root / "spark",
        **settings})
    return QueryEngine(store=pool.store, ingest=pool.ingest, settings=spark)


def groups(engine: QueryEngine, p: QueryPlan, parts: Sequence[Part]) -> Groups:
    """The engine's groups in key order, each list of values sorted (an unordered bag)."""
    out = [(key, [sorted(v) if part.kind == "values" else v
                  for v, part in zip(values, parts, strict=True)])
           for key, values in engine.groups(p, parts)]
    return sorted(out, key=lambda g: [(k is None, k or "") for k in g[0]])


@pytest.fixture(scope="module")
def alerts(registry: ContractRegistry) -> Contract:
    return registry.get("bank_alerts", 1)


@pytest.fixture(scope="module")
def cluster(spark_cluster: SparkCluster) -> SparkCluster:
    return spark_cluster


@pytest.fixture
def pool(tmp_path: Path, migrated_db: Path, registry: ContractRegistry) -> Iterator[Pool]:
    p = Pool.create(tmp_path, migrated_db, registry)
    yield p
    p.close()


# -- property: Spark == DuckDB ------------------------------------------------------------------
row_strategy = st.fixed_dictionaries({
    "subject": st.sampled_from("abcdef"),
    "typology": st.sampled_from(TYPOLOGIES[:3]),
    "stream": st.none() | st.sampled_from(STREAMS),
    "amount": st.integers(0, 150_000).map(lambda c: c / 100),
    "period": st.sampled_from(MONTHS),
})
commit_strategy = st.tuples(st.sampled_from(ORGS), st.lists(row_strategy, min_size=1, max_size=12))
SELECT = (Part("count"), Part("select_units", limit=1))


# No shrinking: each example runs Spark jobs (seconds), and a failing example is printed
# as generated, which is enough to reproduce it.
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # a long example
@given(
    commits=st.lists(commit_strategy, min_size=1, max_size=3),
    withdraw=st.sets(st.integers(0, 2), max_size=1),
    max_rows=st.integers(1, 4),
    dims=st.sampled_from([(), ("typology",), ("typology", "exploitation_stream"),
                          ("exploitation_stream", "period")]),
    filtered=st.booleans(),
    shape=st.sampled_from(["units", "rows", "sums", "select"]),
    per_period=st.booleans(),
)
def test_spark_aggregates_equal_duckdb_cell_for_cell(
    migrated_db: Path, registry: ContractRegistry, alerts: Contract, cluster: SparkCluster,
    commits: list[tuple[str, list[dict[str, Any]]]], withdraw: set[int], max_rows: int,
    dims: tuple[str, ...], filtered: bool, shape: str, per_period: bool,
) -> None:
    parts = {"units": ALL_PARTS,
             "rows": [p for p in ALL_PARTS if "units" not in p.kind],
             "sums": [p for p in ALL_PARTS if p.kind in ("count", "sum")],
             "select": SELECT}[shape]
    as_rows = [(org, [alert(alerts, r["subject"], r["typology"], r["amount"], r["stream"],
                            r["period"]) for r in rows]) for org, rows in commits]
    assume(len({(org, str(rows)) for org, rows in as_rows}) == len(as_rows))
    domain = {"typology": TYPOLOGIES, "exploitation_stream": (*STREAMS, None),
              "period": MONTHS}
    filters = {"period": ("2025-01", "2025-03")} if filtered else {}
    p = dataclasses.replace(plan(alerts, [(d, domain[d]) for d in dims], filters,
                                 max_rows=max_rows), per_period=per_period)
    # sums: the dropped rows are always subtracted (compile_subtracted), on both engines
    share = 1.0 if shape == "sums" else bounds._DROPPED_SHARE
    with tempfile.TemporaryDirectory() as tmp, mock.patch.object(bounds, "_DROPPED_SHARE", share):
        pool = Pool.create(Path(tmp), migrated_db, registry)
        spark = spark_engine(pool, cluster.remote)
        try:
            ids = [pool.commit(org, alerts, rows) for org, rows in as_rows]
            for i in withdraw:
                if i < len(ids):
                    pool.withdraw(as_rows[i][0], ids[i])
            want = groups(pool.engine, p, parts)
            got = groups(spark, p, parts)
            # contribution bounding's helper files: cuts and dropped rows, or their markers
            made = [{f.name for f in (root / "cache" / "bounds").glob("*")}
                    for root in (pool.settings.data_dir, pool.root / "spark")]
        finally:
            spark.close()
            pool.close()
    assert got == want
    # Spark computed its own (folders of files) exactly where DuckDB computed its own
    assert made[1] == made[0]


# -- examples -----------------------------------------------------------------------------------
def test_an_unreachable_cluster_is_a_503_with_nothing_left_open(
    pool: Pool, alerts: Contract, cluster: SparkCluster,
) -> None:
    pool.commit(ORGS[0], alerts, [alert(alerts, "a")])
    closed = f"sc://127.0.0.1:{_closed_port()}"
    spark = spark_engine(pool, closed)
    try:
        with pytest.raises(Unavailable) as refused:
            spark.aggregate(plan(alerts, [("typology", TYPOLOGIES)]), [Part("count")])
    finally:
        spark.close()
    assert refused.value.extra.get("rule") == "spark"
    assert "retry later" in str(refused.value)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

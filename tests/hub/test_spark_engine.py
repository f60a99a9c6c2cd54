"""The Spark engine (hub.engines.spark, hub.engines.dialect) equals DuckDB's, cell for cell, before
noise: random plans over random extracts, committed through the real IngestService, run by
the real query engine on DuckDB and on a real Spark standalone cluster on loopback (a
master, two workers and a Spark Connect server; tests/sparkcluster.py). Over S3 storage (a
moto server, tests/s3server.py) the cluster reads the bucket itself through Hadoop's S3A
connector (hub.storage.s3.s3a_options).

Run alone with ``pytest -m spark``."""

from __future__ import annotations

import dataclasses
import gc
import itertools
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hub.actors import Actor, MemberKind, Role
from hub.contracts.model import Contract, ContractRegistry
from hub.engines.spark import SparkRunner
from hub.errors import ConfigError, Unavailable
from hub.ingest.service import staging_key
from hub.query import bounds
from hub.query.engine import QueryEngine
from hub.query.plan import QueryPlan
from hub.query.sql import Part
from hub.settings import Settings
from hub.storage.folders import COMMON_METADATA
from hub.storage.s3 import S3Store
from tests.api.conftest import Hub, running_hub
from tests.hub.extract_files import token, valid_rows, write_extract
from tests.hub.pooled import ORGS, Pool, plan
from tests.hub.test_direct_uploads import _put, _start
from tests.hub.test_engine import (
    ALL_PARTS,
    SHAPES,
    STREAMS,
    TYPOLOGIES,
    alert,
    commit_strategy,
    drawn,
)
from tests.osint.accepted import accept, route
from tests.s3server import ACCESS_KEY, REGION, SECRET_KEY, S3Bucket
from tests.sparkcluster import SparkCluster
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.spark

Groups = list[tuple[tuple[str | None, ...], list[Any]]]


def spark_engine(pool: Pool, remote: str, **settings: Any) -> QueryEngine:
    """A query engine on Spark over ``pool``'s extracts, with cut files of its own."""
    spark = Settings(data_dir=pool.settings.data_dir, database_url=pool.settings.database_url,
                     engine="spark", spark_remote=remote, spark_shared_dir=pool.root / "spark",
                     **settings)
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
    parts = SELECT if shape == "select" else SHAPES[shape]
    as_rows, p = drawn(alerts, commits, dims, filtered, max_rows, per_period)
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
            # the per-unit contributions behind bound suggestions (hub.query.contributions)
            period = "period" if per_period else None
            assert (sorted(spark.contributions("bank_alerts", period, max_rows))
                    == sorted(pool.engine.contributions("bank_alerts", period, max_rows)))
            # contribution bounding's helper files: cuts and dropped rows, or their markers
            made = [{f.name for f in (root / "cache" / "bounds").glob("*")}
                    for root in (pool.settings.data_dir, pool.root / "spark")]
        finally:
            spark.close()
            pool.close()
    assert got == want
    # Spark computed its own (folders of files) exactly where DuckDB computed its own
    assert made[1] == made[0]


MEANS = ("DebtBondage", "WithholdsDocuments", "RestrictsMovement")
COUNTRIES = ("NG", "RO", "VN")
case_strategy = st.fixed_dictionaries({
    "subject": st.sampled_from("pqrstu"),
    "means": st.none() | st.lists(st.sampled_from(MEANS), max_size=3, unique=True),
    "sector": st.sampled_from(("A", "F", None)),
    "source": st.sampled_from((*COUNTRIES, None)),
    "destination": st.sampled_from((*COUNTRIES, None)),
    "version": st.sampled_from((1, 2)),
})
CASE_PLANS = {
    "lists": ([("means_of_control", (*MEANS, None))], False),
    "lists x sector": ([("means_of_control", (*MEANS, None)), ("sector", ("A", "F", None))],
                       False),
    "routes": ([("source_country", (*COUNTRIES, None)),
                ("destination_country", (*COUNTRIES, None))], True),
}


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # a long example
@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    commits=st.lists(st.tuples(st.sampled_from(ORGS), st.lists(case_strategy, min_size=1,
                                                               max_size=10)),
                     min_size=1, max_size=3),
    shape=st.sampled_from(sorted(CASE_PLANS)),
    list_filter=st.booleans(),
    exact=st.booleans(),
    max_rows=st.integers(1, 3),
)
def test_lists_mixed_versions_routes_and_public_rows_equal_duckdb(
    migrated_db: Path, registry: ContractRegistry, cluster: SparkCluster,
    commits: list[tuple[str, list[dict[str, Any]]]], shape: str, list_filter: bool,
    exact: bool, max_rows: int,
) -> None:
    """Category lists unnested (a NULL or empty list is the unknown key), v1 and v2 extracts
    united by name (v1 has no sector), list filters, route plans that complete each unit's
    stages, and exact plans over public rows (neither bounded nor linked)."""
    versions = {v: registry.get("case_records", v) for v in (1, 2)}

    def case(r: dict[str, Any]) -> dict[str, Any]:
        contract = versions[r["version"]]
        (row,) = valid_rows(contract, 1)
        row.update(subject=token(r["subject"]), means_of_control=r["means"],
                   source_country=r["source"], destination_country=r["destination"])
        if "sector" in row:
            row["sector"] = r["sector"]
        return row

    dims, route = CASE_PLANS[shape]
    filters = {"means_of_control": (MEANS[0], MEANS[2])} if list_filter else {}
    p = dataclasses.replace(plan(versions[2], dims, filters, max_rows=max_rows), route=route,
                            public_rows="test: these rows are public" if exact else None)
    parts = ([Part("count_units"), Part("linked_units"), Part("select_units", limit=2)]
             if route else [Part("count"), Part("count_units"), Part("linked_units")])
    with tempfile.TemporaryDirectory() as tmp:
        pool = Pool.create(Path(tmp), migrated_db, registry)
        spark = spark_engine(pool, cluster.remote)
        try:
            for org, rows in commits:
                for version in (1, 2):  # one extract per contract version
                    mine = [case(r) for r in rows if r["version"] == version]
                    if mine and not any(e.org == org and e.contract_version == version
                                        for e in pool.ingest.visible_extracts("case_records")):
                        pool.commit(org, versions[version], mine)
            want = groups(pool.engine, p, parts)
            got = groups(spark, p, parts)
        finally:
            spark.close()
            pool.close()
    assert got == want


# Py4J (the driver's gateway to its JVM) leaves its sockets to the garbage collector.
@pytest.mark.filterwarnings("ignore::ResourceWarning",
                            "ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_hub_as_the_spark_driver_gives_the_same_aggregates(
    pool: Pool, alerts: Contract,
) -> None:
    """``TAHUB_SPARK_MASTER`` (here ``local[1]``: the cluster's cores serve its Connect
    server): the hub process is Spark's driver, with the same statements and answers."""
    rows = [alert(alerts, s, t, a, stream, m) for s, t, a, stream, m in [
        ("a", "front_company", 10.5, None, "2025-01"), ("a", "unknown", 20.0, STREAMS[0],
                                                        "2025-02"),
        ("a", "unknown", 30.0, None, "2025-01"), ("b", "front_company", 12.0, None, "2025-03")]]
    pool.commit(ORGS[0], alerts, rows)
    pool.commit(ORGS[1], alerts, rows[:2])
    driver = QueryEngine(store=pool.store, ingest=pool.ingest, settings=Settings(
        data_dir=pool.settings.data_dir, database_url=pool.settings.database_url,
        engine="spark", spark_master="local[1]", spark_shared_dir=pool.root / "driver"))
    p = plan(alerts, [("typology", TYPOLOGIES)], max_rows=1)
    try:
        assert driver.runner == "spark"
        assert groups(driver, p, ALL_PARTS) == groups(pool.engine, p, ALL_PARTS)
    finally:
        driver.close()
        gc.collect()  # Py4J's sockets are closed here, under this test's filters


# -- a real hub on Spark, over HTTP ---------------------------------------------------------------
def test_a_hub_on_spark_answers_exactly_the_truth_and_charges_its_dp_queries(
    tmp_path: Path, cluster: SparkCluster,
) -> None:
    """``TAHUB_ENGINE=spark`` through the hub's API: an exact answer over public rows (no
    noise: the engine's aggregates themselves) equals the truth cell for cell, a DP query is
    answered and charged, and a repeated one is its stored release."""
    with running_hub(tmp_path / "hub", engine="spark", spark_remote=cluster.remote,
                     spark_shared_dir=tmp_path / "hub") as hub:
        assert hub.services.query_engine.runner == "spark"
        truth = _incidents(hub)
        creds = hub.member("Analysts Inc", (Role.ANALYST,), MemberKind.NGO)
        with hub.authed(creds) as analyst:
            exact = _ask(analyst, {"group_by": ["source_country", "destination_country"],
                                   "measures": ["count"],
                                   "filters": {"source_type": ["news"]}})
            assert exact["charged"]["amount"] == "0" and exact["measures"][0]["mechanism"] == "none"
            got = {(r["source_country"], r["destination_country"]): r["count"]["value"]
                   for r in exact["rows"] if r["count"]["value"]}
            assert got == truth["news"]
            dp = _ask(analyst, {"group_by": ["destination_country"], "measures": ["count"]})
            assert dp["charged"]["amount"] == "1/10" and dp["measures"][0]["noise_scale"] > 0
            again = _ask(analyst, {"group_by": ["destination_country"], "measures": ["count"]})
            assert again["reused"] and again["rows"] == dp["rows"]


# -- S3 storage: the cluster reads the bucket itself, through Hadoop's S3A connector -------------
NEWS = {"group_by": ["source_country", "destination_country"], "measures": ["count"],
        "filters": {"source_type": ["news"]}}  # public rows: the exact counts, no noise


def _counts(answer: dict[str, Any]) -> Counter[tuple[str, str]]:
    return Counter({(r["source_country"], r["destination_country"]): r["count"]["value"]
                    for r in answer["rows"] if r["count"]["value"]})


def test_a_hub_on_spark_over_s3_commits_folder_objects_the_cluster_reads_itself(
    tmp_path: Path, cluster: SparkCluster, s3_bucket: S3Bucket,
) -> None:
    """Commit on the cluster -> a folder object in the bucket; queries on the cluster read
    it through s3a (the hub downloads nothing) and answer the truth; a partner's direct
    upload (parts PUT to the bucket) commits on the cluster too; the same bucket on
    DuckDB answers the same from local copies of the folder objects; the bucket down is a
    503 with Retry-After."""
    data = tmp_path / "hub"
    s3 = {"storage": s3_bucket.url, "s3_endpoint": s3_bucket.server.endpoint,
          "s3_access_key": ACCESS_KEY, "s3_secret_key": SECRET_KEY, "s3_region": REGION}
    spark = {"engine": "spark", "spark_remote": cluster.remote, "spark_shared_dir": data}
    with running_hub(data, **spark, **s3) as hub:
        store = hub.services.store
        assert isinstance(store, S3Store)
        truth = _incidents(hub)
        (key,) = list(store.keys("extracts/"))
        names = {o.object_name.rsplit("/", 1)[1] for o in s3_bucket.server.client().list_objects(
            s3_bucket.name, prefix=f"{s3_bucket.prefix}/{key}/", recursive=True)}
        assert COMMON_METADATA in names and any(n.startswith("part-") for n in names)
        assert not list((data / "commits").glob("*"))  # the work folder is gone
        creds = hub.member("Analysts Inc", (Role.ANALYST,), MemberKind.NGO)
        with hub.authed(creds) as analyst:
            assert _counts(_ask(analyst, NEWS)) == truth["news"]
            dp = _ask(analyst, {"group_by": ["destination_country"], "measures": ["count"]})
            assert dp["charged"]["amount"] == "1/10" and dp["measures"][0]["noise_scale"] > 0
        assert store.cache.size() == 0  # the cluster read the bucket, not the hub
        # a partner's parts PUT straight to the bucket, committed on the cluster
        alerts = hub.services.registry.get("bank_alerts", 1)
        rows = valid_rows(alerts, 300)
        path = write_extract(tmp_path / "alerts.parquet", alerts, rows)
        bank = hub.member("Bank A", (Role.PARTNER,), MemberKind.BANK)
        partner = Actor(bank.client_id, bank.org_id, bank.org_name, frozenset({Role.PARTNER}))
        up = _start(hub.services.ingest, partner, path, alerts, transfer="direct")
        _put(hub.services.ingest, partner, up, path, list(range(1, (up.parts or 0) + 1)))
        committed = hub.services.ingest.commit_upload(partner, up.id).extract
        (extract,) = hub.services.ingest.visible_extracts("bank_alerts")
        assert extract.id == committed.id and committed.rows == len(rows)
        assert not store.exists(staging_key(bank.org_id, up.id))
        assert pq.read_metadata(store.local_path(extract.object_key)).num_rows == len(rows)

    with running_hub(data, **s3) as hub, hub.authed(creds) as analyst:  # DuckDB, same bucket
        by_destination = _ask(analyst, {**NEWS, "group_by": ["destination_country"]})
        got = {r["destination_country"]: r["count"]["value"] for r in by_destination["rows"]}
        for destination in ("IT", "GB"):
            assert got[destination] == sum(n for (_, d), n in truth["news"].items()
                                           if d == destination)
        store = hub.services.store
        assert isinstance(store, S3Store) and store.cache.size() > 0  # a local copy of it

    with running_hub(data, **spark, **s3) as hub, hub.authed(creds) as analyst:
        with s3_bucket.server.down():
            refused = analyst.post("/v1/queries", json={
                "dataset": "incidents", "cost": "1/10", "group_by": ["source_country"],
                "measures": ["count"]})
        s3_bucket.recreate()  # moto keeps its buckets in memory
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1


def test_an_unreachable_cluster_refuses_a_query_before_its_charge(
    tmp_path: Path, cluster: SparkCluster,
) -> None:
    """The cluster is checked before the charge: 503 with Retry-After, nothing spent; the
    same query is answered once the hub reaches its cluster again."""
    data = tmp_path / "hub"
    body = {"group_by": ["destination_country"], "measures": ["count"]}
    with running_hub(data) as hub:  # committed on DuckDB, before the switch
        _incidents(hub)
        creds = hub.member("Analysts Inc", (Role.ANALYST,), MemberKind.NGO)
    with running_hub(data, engine="spark", spark_remote=f"sc://127.0.0.1:{_closed_port()}",
                     spark_shared_dir=data) as hub, hub.authed(creds) as analyst:
        refused = analyst.post("/v1/queries", json={"dataset": "incidents",
                                                    "cost": "1/10", **body})
        spent = analyst.get("/v1/budgets/incidents").json()["member"]["spent"]
    assert refused.status_code == 503, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    assert refused.json()["rule"] == "spark" and spent == "0"
    with (running_hub(data, engine="spark", spark_remote=cluster.remote,
                      spark_shared_dir=data) as hub,
          hub.authed(creds) as analyst):
        answered = _ask(analyst, body)
    assert answered["charged"]["amount"] == "1/10"


def _incidents(hub: Hub) -> dict[str, Counter[tuple[str, str]]]:
    """Accepted incidents published as the incidents dataset; the true counts of (origin,
    destination) per source type."""
    truth: dict[str, Counter[tuple[str, str]]] = {k: Counter() for k in ("news", "crowd")}
    accepted = []
    for n, (kind, origin, destination) in enumerate(itertools.product(
            ("news", "crowd"), ("NG", "RO", "VN"), ("IT", "GB"))):
        for copy in range(n % 3 + 1):
            accepted.append((f"inc_{n:03d}_{copy}", route(origin, None, destination),
                             ["article"] if kind == "news" else ["report"]))
            truth[kind][origin, destination] += 1
    accept(hub.services.engine, accepted)
    published = hub.services.incidents.publish()
    assert published.rows == len(accepted) and not published.left_out
    return truth


def _ask(analyst: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    answer = analyst.post("/v1/queries", json={"dataset": "incidents", "cost": "1/10", **body})
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


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


def test_a_statement_over_its_time_limit_is_cancelled_on_the_cluster(
    pool: Pool, cluster: SparkCluster,
) -> None:
    """A statement that would run for minutes is interrupted on the cluster at
    ``TAHUB_SPARK_QUERY_TIMEOUT``: 503 naming the setting, within seconds; the next
    statement runs."""
    runner = SparkRunner(Settings(data_dir=pool.settings.data_dir, engine="spark",
                                  spark_remote=cluster.remote, spark_query_timeout=2,
                                  spark_shared_dir=pool.root / "spark"))
    try:
        runner.ready()
        started = time.monotonic()
        with pytest.raises(Unavailable, match="TAHUB_SPARK_QUERY_TIMEOUT") as refused:
            runner.fetch(*_endless(pool.root))
        took = time.monotonic() - started
        assert refused.value.extra.get("rule") == "spark_timeout"
        assert refused.value.extra.get("setting") == "TAHUB_SPARK_QUERY_TIMEOUT"
    finally:
        runner.close()
    assert took < 30  # not the hours the join would take
    # its tasks are gone from the cluster (killed with their executor if they ignore the
    # interrupt): a statement that needs the executors runs within a minute
    _eventually_runs(pool, cluster.remote, deadline=90)


def test_a_cluster_lost_mid_statement_is_a_503_and_the_runner_recovers(
    pool: Pool, cluster: SparkCluster,
) -> None:
    """The connection to the cluster breaks while a long statement runs: 503 within seconds
    (a few quick retries, not Spark Connect's ten minutes), and the next statement, once the
    cluster is reachable again, runs on the same runner."""
    proxy = TcpProxy(("127.0.0.1", cluster.connect_port))
    proxy.start()
    runner = SparkRunner(Settings(data_dir=pool.settings.data_dir, engine="spark",
                                  spark_remote=f"sc://127.0.0.1:{proxy.port}",
                                  spark_shared_dir=pool.root / "spark"))
    try:
        runner.ready()
        threading.Timer(2.0, proxy.stop).start()
        started = time.monotonic()
        with pytest.raises(Unavailable) as lost:
            runner.fetch(*_endless(pool.root))
        took = time.monotonic() - started
        assert lost.value.extra.get("rule") == "spark" and "retry later" in str(lost.value)
        proxy.start()
        deadline = time.monotonic() + 30
        while True:  # gRPC reconnects within its backoff, at most 5 s apart
            try:
                runner.ready()
                break
            except Unavailable:
                assert time.monotonic() < deadline, "the runner never reached the cluster again"
    finally:
        runner.close()
        proxy.stop()
    assert took < 30
    _eventually_runs(pool, cluster.remote, deadline=90)


def _eventually_runs(pool: Pool, remote: str, deadline: float) -> None:
    """A statement over the executors runs on the cluster within ``deadline`` seconds."""
    runner = SparkRunner(Settings(data_dir=pool.settings.data_dir, engine="spark",
                                  spark_remote=remote, spark_query_timeout=int(deadline),
                                  spark_shared_dir=pool.root / "spark"))
    _, params, read = _endless(pool.root)
    try:
        assert runner.fetch("SELECT count(*) FROM read_parquet(?) AS t WHERE t.x % 2 = 0",
                            params[:1], read) == [(1000,)]
    finally:
        runner.close()


def _endless(folder: Path) -> tuple[str, list[Any], list[Path]]:
    """A statement that runs for hours: 2,000 rows joined with themselves four times."""
    path = folder / "numbers.parquet"
    pq.write_table(pa.table({"x": list(range(2000))}), path)
    sources = ", ".join(f"read_parquet(?) AS t{i}" for i in range(4))
    return (f"SELECT count(*) FROM {sources} WHERE hash(t0.x, t1.x, t2.x, t3.x) % 7 = 3",
            [str(path)] * 4, [path])


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("settings", "refused"), [
    ({}, "TAHUB_SPARK_REMOTE"),
    ({"spark_remote": "sc://h:15002", "spark_master": "spark://h:7077"}, "TAHUB_SPARK_REMOTE"),
    ({"spark_remote": "sc://h:15002"}, "TAHUB_SPARK_SHARED_DIR"),
    ({"spark_remote": "sc://h:15002", "spark_shared_dir": "/shared",
      "storage": "memory://"}, "TAHUB_STORAGE must be file:///.* or s3://"),
    ({"spark_master": "http://h:7077", "spark_shared_dir": "/shared"}, "spark_master"),
])
def test_a_spark_engine_without_what_it_needs_is_refused_at_start(
    tmp_path: Path, settings: dict[str, Any], refused: str,
) -> None:
    with pytest.raises(ValueError, match=refused):
        Settings(data_dir=tmp_path, engine="spark", **settings)


def test_a_spark_engine_without_the_spark_extra_names_it(
    pool: Pool, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runtime install (no `spark` extra) serves DuckDB as ever; asked for Spark, it
    says which package is missing and how to install it."""
    for module in ("hub.engines.spark", "hub.engines.dialect"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, "sqlglot", None)
    with pytest.raises(ConfigError, match=r"sqlglot is missing\): pip install 'tahub\[spark\]'"):
        spark_engine(pool, "sc://127.0.0.1:15002")

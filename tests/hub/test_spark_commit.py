"""Commits on the cluster (hub.ingest.clustered) give what the embedded commit gives.

The same extracts are committed in turn by the embedded commit (DuckDB, hub.ingest.units) and
by :class:`ClusterCommit`: every stored row, with its unit id, sequence number, priority and
fixed-point columns, and the index's rows seen, must be equal. The statements run on DuckDB
here (fast: many examples) and on a real Spark cluster on loopback (marker ``spark``).
"""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hub.actors import Actor, MemberKind, Role
from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.engines.runner import DuckRunner, Runner
from hub.errors import ExtractInvalid, Unavailable
from hub.ingest.clustered import ClusterCommit
from hub.ingest.extracts import check_extract
from hub.ingest.service import UploadRequest
from hub.ingest.units import UnitIndex
from hub.settings import Settings
from hub.storage.objects import COMMON_METADATA, parquet_parts, parquet_schema
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb
from tests.api.conftest import running_hub
from tests.hub.extract_files import sha256_of, token, valid_rows, write_extract
from tests.sparkcluster import SparkCluster

LIMITS = DuckLimits(threads=1, memory_limit="256MB")
ORG = "org_partner"
# Doubles the engines write differently as text (1e+20 / 1.0E20), halves, negatives, tiny.
AWKWARD = [0.0, 0.5, 2.5, -0.0, 1e-7, 123456789.125, 1e7, 9.75e12, 3e15, 1e20, 5e300]


def duck_runner() -> DuckRunner:
    return DuckRunner(LIMITS, lambda read: sandboxed_duckdb(LIMITS, read=read))


def extract_rows(contract: Contract, subjects: list[int], seed: int, amounts: list[float]
                 ) -> list[dict[str, Any]]:
    """Valid rows whose privacy unit is ``subjects[i]`` (units repeat within and across
    extracts), numeric measures from ``amounts`` where given."""
    rows = valid_rows(contract, len(subjects), seed=seed)
    unit = contract.privacy_unit.name
    for i, (row, s) in enumerate(zip(rows, subjects, strict=True)):
        row[unit] = token(f"person-{s}")
        for f in contract.extract_fields:
            if f.type is FieldType.NUMBER and amounts and f.domain is not None \
                    and (f.domain.max is None or amounts[i % len(amounts)] <= f.domain.max) \
                    and amounts[i % len(amounts)] >= f.domain.min:
                row[f.name] = amounts[i % len(amounts)]
    return rows


def stored(path: Path) -> list[tuple[Any, ...]]:
    """Every row of a canonical copy (a file or a folder object), sorted, with its columns."""
    table = pq.ParquetDataset(parquet_parts(path)).read()
    names = sorted(table.column_names)
    rows = zip(*(table[n].to_pylist() for n in names), strict=True)
    return sorted(tuple(repr(v) for v in row) for row in rows)


def commit_both(tmp: Path, runner: Runner, contract: Contract,
                extracts: list[list[dict[str, Any]]]) -> tuple[UnitIndex, ClusterCommit]:
    """Commit ``extracts`` in turn both ways; assert each pair of copies equal."""
    embedded = UnitIndex(tmp / "units")
    cluster = ClusterCommit(runner, tmp / "shared")
    for n, rows in enumerate(extracts):
        work = tmp / "shared" / f"work{n}"
        work.mkdir(parents=True)
        raw = write_extract(work / "upload.parquet", contract, rows)
        check_extract(raw, contract, canonical=tmp / f"embedded{n}.parquet", units=embedded,
                      partner=ORG, duck=LIMITS)
        if n == 0:  # the same secret salt, so the same priorities
            with duckdb.connect(str(embedded.path(contract.dataset)), read_only=True) as con:
                ((salt,),) = con.execute("SELECT salt FROM salt").fetchall()
            cluster.begin(contract.dataset, salt)
        report = check_extract(raw, contract, canonical=work / "extract.parquet", partner=ORG,
                               cluster=cluster)
        assert report.rows == len(rows)
        copy = work / "extract.parquet"
        assert copy.is_dir() and (copy / COMMON_METADATA).is_file()
        assert parquet_schema(copy) == pq.read_schema(tmp / f"embedded{n}.parquet")
        assert stored(copy) == stored(tmp / f"embedded{n}.parquet")
    assert cluster.rows_seen(contract.dataset) == embedded.rows_seen(contract.dataset)
    return embedded, cluster


def refused_alike(tmp: Path, cluster: ClusterCommit, contract: Contract,
                  rows: list[dict[str, Any]]) -> None:
    """``rows`` (in ``tmp/shared/work``) are refused by both commits with the same errors."""
    raw = write_extract(tmp / "shared" / "work" / "upload.parquet", contract, rows)
    with pytest.raises(ExtractInvalid) as embedded:
        check_extract(raw, contract, canonical=tmp / "e.parquet",
                      units=UnitIndex(tmp / "units"), partner=ORG, duck=LIMITS)
    with pytest.raises(ExtractInvalid) as clustered:
        check_extract(raw, contract, canonical=raw.with_name("extract.parquet"), partner=ORG,
                      cluster=cluster)
    assert clustered.value.detail == embedded.value.detail
    assert clustered.value.errors == embedded.value.errors


extracts_strategy = st.lists(
    st.tuples(st.lists(st.integers(0, 6), min_size=1, max_size=12),
              st.lists(st.sampled_from(AWKWARD), max_size=4)),
    min_size=1, max_size=3)


@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")  # the registry
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extracts=extracts_strategy, dataset=st.sampled_from([("bank_alerts", 1),
                                                            ("case_records", 2)]))
def test_the_cluster_statements_on_duckdb_number_as_the_embedded_commit(
    tmp_path_factory: pytest.TempPathFactory, registry: ContractRegistry,
    extracts: list[tuple[list[int], list[float]]], dataset: tuple[str, int],
) -> None:
    contract = registry.get(*dataset)
    tmp = tmp_path_factory.mktemp("commit")
    commit_both(tmp, duck_runner(), contract,
                [extract_rows(contract, s, 10 * n, a) for n, (s, a) in enumerate(extracts)])


def test_a_dataset_moved_to_the_cluster_keeps_its_units_rows_seen_and_salt(
    tmp_path: Path, registry: ContractRegistry,
) -> None:
    """A hub that committed on DuckDB and now runs on Spark: the first commit on the cluster
    takes the embedded index's units as they are, so a person's later rows join their unit
    (two ids would give them two bounds) and keep their priorities."""
    contract = registry.get("case_records", 2)
    before = write_extract(tmp_path / "before.parquet", contract,
                           extract_rows(contract, [1, 2, 2, 3], 0, []))
    (tmp_path / "shared" / "work").mkdir(parents=True)
    after = write_extract(tmp_path / "shared" / "work" / "upload.parquet", contract,
                          extract_rows(contract, [2, 3, 3, 4], 10, []))
    embedded = UnitIndex(tmp_path / "units")
    check_extract(before, contract, canonical=tmp_path / "b.parquet", units=embedded,
                  partner=ORG, duck=LIMITS)
    shutil.copytree(tmp_path / "units", tmp_path / "moved")
    check_extract(after, contract, canonical=tmp_path / "a.parquet", units=embedded,
                  partner=ORG, duck=LIMITS)
    cluster = ClusterCommit(duck_runner(), tmp_path / "shared",
                            embedded=UnitIndex(tmp_path / "moved"))
    check_extract(after, contract, canonical=tmp_path / "shared" / "work" / "extract.parquet",
                  partner=ORG, cluster=cluster)
    assert stored(tmp_path / "shared" / "work" / "extract.parquet") == \
        stored(tmp_path / "a.parquet")
    assert cluster.rows_seen(contract.dataset) == embedded.rows_seen(contract.dataset)


def test_a_cluster_commit_refuses_broken_rows_as_the_embedded_commit_and_keeps_no_state(
    tmp_path: Path, registry: ContractRegistry,
) -> None:
    contract = registry.get("bank_alerts", 1)
    cluster = ClusterCommit(duck_runner(), tmp_path / "shared")
    work = tmp_path / "shared" / "work"
    work.mkdir(parents=True)
    rows = extract_rows(contract, [1, 2, 3], 0, [])
    rows[1]["typology"] = "not-a-code"
    refused_alike(tmp_path, cluster, contract, rows)
    assert not (work / "extract.parquet").exists()
    assert cluster.state(contract.dataset).version == 0


# -- on a real Spark cluster ------------------------------------------------------------------
@pytest.fixture(scope="module")
def spark_runner(spark_cluster: SparkCluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[Runner]:
    from hub.engines.spark import SparkRunner

    shared = tmp_path_factory.mktemp("spark-shared")
    runner = SparkRunner(Settings(data_dir=shared, engine="spark",
                                  spark_remote=spark_cluster.remote, spark_shared_dir=shared))
    yield runner
    runner.close()


@pytest.mark.spark
@settings(max_examples=3, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(extracts=extracts_strategy)
def test_a_spark_commit_numbers_as_the_embedded_commit(
    tmp_path_factory: pytest.TempPathFactory, registry: ContractRegistry,
    spark_runner: Runner, extracts: list[tuple[list[int], list[float]]],
) -> None:
    """Bank alerts (awkward doubles in the measures and the priorities' hash) and case
    records (category lists, two link fields), in turn on one Spark cluster."""
    for dataset in (("bank_alerts", 1), ("case_records", 2)):
        contract = registry.get(*dataset)
        tmp = tmp_path_factory.mktemp("spark-commit")
        commit_both(tmp, spark_runner, contract,
                    [extract_rows(contract, s, 10 * n, a) for n, (s, a) in enumerate(extracts)])


@pytest.mark.spark
def test_a_spark_commit_refuses_broken_rows_and_corrupt_pages_and_keeps_no_state(
    tmp_path: Path, registry: ContractRegistry, spark_runner: Runner,
) -> None:
    contract = registry.get("case_records", 2)
    cluster = ClusterCommit(spark_runner, tmp_path / "shared")
    work = tmp_path / "shared" / "work"
    work.mkdir(parents=True)
    rows = extract_rows(contract, [1, 2, 3, 4], 0, [])
    rows[2]["exploitation_type"] = "Unknown"
    rows[3]["means_of_control"] = ["DebtBondage", "DebtBondage"]
    refused_alike(tmp_path, cluster, contract, rows)

    good = extract_rows(contract, list(range(400)), 0, [])
    work = tmp_path / "shared" / "work2"  # a commit's own work folder
    work.mkdir()
    raw = work / "upload.parquet"
    table = pq.read_table(write_extract(raw, contract, good))
    pq.write_table(table, raw, compression="none", write_page_checksum=True)
    data = bytearray(raw.read_bytes())
    at = data.find(good[200][contract.privacy_unit.name].encode())
    data[at + 20] ^= 0x01  # one bit of a page's data; its checksum no longer matches
    raw.write_bytes(bytes(data))
    with pytest.raises(ExtractInvalid, match="corrupt"):
        check_extract(raw, contract, canonical=work / "extract.parquet", partner=ORG,
                      cluster=cluster)
    assert cluster.state(contract.dataset).version == 0


@pytest.mark.spark
def test_a_commit_while_the_cluster_is_unreachable_is_a_503_that_leaves_nothing(
    tmp_path: Path, registry: ContractRegistry, spark_cluster: SparkCluster,
) -> None:
    """Through the hub's ingest service on Spark: an unreachable cluster refuses the commit
    (503, the upload kept for a retry), with nothing stored, indexed or left in the shared
    folder; the same upload commits once the hub reaches a cluster, as a folder object."""
    contract = registry.get("bank_alerts", 1)
    data = tmp_path / "hub"
    rows = extract_rows(contract, [1, 2, 2, 3], 0, [1e20])
    path = write_extract(tmp_path / "extract.parquet", contract, rows)
    spark = {"engine": "spark", "spark_shared_dir": data}
    with running_hub(data, spark_remote=f"sc://127.0.0.1:{closed_port()}", **spark) as hub:
        creds = hub.member("Bank A", (Role.PARTNER,), MemberKind.BANK)
        actor = Actor(creds.client_id, creds.org_id, creds.org_name, frozenset({Role.PARTNER}))
        ingest = hub.services.ingest
        started = ingest.start_upload(actor, UploadRequest(
            dataset=contract.dataset, contract_version=contract.version,
            size=path.stat().st_size, sha256=sha256_of(path)))
        assert started.upload is not None
        upload = started.upload.id
        ingest.append_chunk(actor, upload, 0, path.read_bytes())
        with pytest.raises(Unavailable) as refused:
            ingest.commit_upload(actor, upload)
        assert refused.value.status == 503 and refused.value.extra["rule"] == "spark"
        assert ingest.get_upload(actor, upload).status == "receiving"
        assert ingest.visible_extracts(contract.dataset) == []
        assert list(hub.services.store.keys()) == []
        assert not list((data / "commits").glob("*"))
        assert not (data / "index" / "cluster-units" / contract.dataset / "CURRENT").exists()
    with running_hub(data, spark_remote=spark_cluster.remote, **spark) as hub:
        extract = hub.services.ingest.commit_upload(actor, upload).extract
        assert extract.rows == len(rows)
        (key,) = list(hub.services.store.keys())
        copy = hub.services.store.local_path(key)
        assert copy.is_dir() and len(stored(copy)) == len(rows)
        assert not list((data / "commits").glob("*"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

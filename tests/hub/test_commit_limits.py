"""A commit under a small DuckDB memory limit (issue 16): the unit index's join and the
numbering run in hash passes that fit the limit, so the commit still succeeds, numbers every
row exactly as under a large limit, and its peak memory does not grow with the extract.
Real DuckDB, real limits, nothing timed."""

from __future__ import annotations

import multiprocessing
import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.contracts.model import Contract, ContractRegistry
from hub.errors import OutOfCapacity
from hub.ingest import extracts, units
from hub.ingest.extracts import check_extract
from hub.ingest.units import UnitIndex
from hub.settings import Settings, machine_cores, machine_memory_share
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb
from tests.hub import commit_workers
from tests.hub.extract_files import schema_for, token, valid_rows, write_extract

#: Under this limit one pass over ROWS rows runs out of memory (asserted below).
SMALL = "32MB"
LARGE = "2GB"
ROWS = 150_000
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def alerts() -> Contract:
    return ContractRegistry.load().get("bank_alerts", 1)


def _extract(path: Path, contract: Contract, rows: int, units_: int, seed: int) -> Path:
    """``rows`` valid rows over a pool of ``units_`` units, skewed to the first ones (the same
    pool for every seed: later extracts meet units the index already holds)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    base = pa.Table.from_pylist(valid_rows(contract, 1000, seed=seed), schema=schema_for(contract))
    table = base.take(pa.array([i % 1000 for i in range(rows)]))
    pool = pa.array([token(f"unit-{k}") for k in range(units_)])
    picks = pa.array([min(int(units_ * rng.random() ** 2), units_ - 1) for _ in range(rows)])
    table = table.set_column(table.schema.get_field_index("subject"), "subject",
                             pool.take(picks))
    return write_extract(path, contract, table=table, row_group_size=32 * 1024)


def _commit_all(paths: list[Path], folder: Path, contract: Contract,
                limit: str) -> tuple[pa.Table, dict[str, tuple[int, int]]]:
    """Commit ``paths`` one after the other into a fresh index under ``limit``: every
    numbered row (in a fixed order) and the index. The index gets a fixed salt, so that
    the priorities of two runs compare too."""
    index = UnitIndex(folder / "index")
    path = index.path(contract.dataset)
    path.parent.mkdir(parents=True)
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE salt (salt VARCHAR NOT NULL)")
        con.execute("INSERT INTO salt VALUES ('a fixed salt for the test')")
    tables = []
    for i, path in enumerate(paths):
        canonical = folder / f"canonical-{i}.parquet"
        check_extract(path, contract, canonical=canonical,
                      duck=DuckLimits(2, limit, folder / "tmp"), units=index,
                      partner=f"org_{i}")
        tables.append(pq.read_table(canonical))
    rows = pa.concat_tables(tables).sort_by(
        [("__partner", "ascending"), ("__unit", "ascending"), ("__seq", "ascending")])
    return rows, index.rows_seen(contract.dataset)


def test_under_a_small_limit_a_commit_numbers_every_row_as_under_a_large_one(
        tmp_path: Path, alerts: Contract) -> None:
    paths = [_extract(tmp_path / f"x{i}.parquet", alerts, ROWS, ROWS // 3, seed=i)
             for i in range(2)]
    large, large_index = _commit_all(paths, tmp_path / "large", alerts, LARGE)
    small, small_index = _commit_all(paths, tmp_path / "small", alerts, SMALL)
    assert small.num_rows == large.num_rows == 2 * ROWS
    assert small.equals(large)  # same ids, seqs, priorities, fixed-point columns, values
    assert small_index == large_index
    # the second extract met units the first had brought: numbered after their rows
    second = large.filter(pa.compute.equal(large["__partner"], "org_1"))
    assert pa.compute.max(second["__seq"]).as_py() > pa.compute.max(
        large.filter(pa.compute.equal(large["__partner"], "org_0"))["__seq"]).as_py()
    # compact ids in the order of first appearance: nothing depends on the limit
    assert sorted({u for u, _ in large_index.values()}) == list(range(1, len(large_index) + 1))


def test_one_pass_would_not_fit_the_small_limit(
        tmp_path: Path, alerts: Contract, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the passes are for: the same commit, forced into one pass, is a 507 naming the
    setting, and commits once the passes are allowed again."""
    path = _extract(tmp_path / "x.parquet", alerts, ROWS, ROWS // 3, seed=0)
    monkeypatch.setattr(units, "_MAX_PASSES", 1)
    with pytest.raises(OutOfCapacity) as refused:
        _commit_all([path], tmp_path / "one", alerts, SMALL)
    assert refused.value.extra["setting"] == "TAHUB_DUCKDB_MEMORY_LIMIT"
    monkeypatch.undo()
    rows, _ = _commit_all([path], tmp_path / "passes", alerts, SMALL)
    assert rows.num_rows == ROWS


def test_passes_follow_the_limit_and_the_rows() -> None:
    """One pass for a modest extract under a modest limit; more as rows grow or the limit
    shrinks; powers of two, at most _MAX_PASSES."""
    with duckdb.connect(config={"memory_limit": "64MB"}) as con:
        con.execute("CREATE TABLE t AS SELECT * FROM range(1000000)")
        assert units._passes(con, "t") == units._pass_count(1_000_000, 61 * MiB) > 1
    assert units._pass_count(100_000, 2**30) == 1
    assert units._pass_count(1_000_000, 32 * MiB) == 2 * units._pass_count(1_000_000, 64 * MiB)
    assert units._pass_count(2_000_000, 32 * MiB) == 2 * units._pass_count(1_000_000, 32 * MiB)
    assert units._pass_count(100_000_000, MiB) == units._MAX_PASSES
    assert units._pass_count(20_000_000, 3 * 2**30) == 8  # a fifth of 100M, default on 24 GB
    assert units._bytes("61.0 MiB") == 61 * MiB and units._bytes("2.0 GB") == 2 * 10**9
    assert units._bytes("512 bytes") == 512


def test_a_commits_peak_memory_does_not_grow_with_the_extract(
        tmp_path: Path, alerts: Contract) -> None:
    """Each commit in its own process under a small limit (64 MB): four times the rows,
    about the same peak. The rows stay in DuckDB, which spills them beyond its limit; what
    the process holds besides is an Arrow batch of the file being read and one row group of
    the copy being written (64K rows here, so that both extracts span many). Measured: 150K,
    600K and 1.2M rows grow the peak by 198, 232 and 230 MiB (a plateau once DuckDB's
    buffers and the allocator's arenas are all in use); on a loaded machine two runs of
    the same rows differ by up to 33 MiB, while holding 1.8M more rows would take well
    over 100 MiB."""
    small = _extract(tmp_path / "small.parquet", alerts, 4 * ROWS, 4 * ROWS // 3, seed=0)
    large = _extract(tmp_path / "large.parquet", alerts, 16 * ROWS, 16 * ROWS // 3, seed=1)
    spawn = multiprocessing.get_context("spawn")
    peaks = {}
    for name, path in (("small", small), ("large", large)):
        results = spawn.Queue()
        folder = tmp_path / name
        folder.mkdir()
        proc = spawn.Process(target=commit_workers.commit_and_measure,
                             args=(str(path), str(folder), "64MB", 64 * 1024, results))
        proc.start()
        try:
            report = results.get(timeout=600)
        finally:
            proc.join(timeout=60)
        assert not isinstance(report, str), report
        peaks[name] = report
    (small_rows, small_before, small_peak) = peaks["small"]
    (large_rows, large_before, large_peak) = peaks["large"]
    assert (small_rows, large_rows) == (4 * ROWS, 16 * ROWS)
    small_growth, large_growth = small_peak - small_before, large_peak - large_before
    # four times the rows: the commit's own memory grows by less than 64 MiB more (the noise
    # of the allocators under load), far from four times
    assert large_growth < small_growth + 64 * MiB, (small_growth // MiB, large_growth // MiB)


def test_a_full_spill_disk_is_a_507_naming_the_temp_size_setting() -> None:
    """DuckDB says which limit it hit: the memory, or the disk it may spill to."""
    duck = DuckLimits(2, "1GB", None, "10GB")
    disk = extracts._out_of_capacity(duckdb.OutOfMemoryException(
        "Out of Memory Error: failed to offload data block: could not write file, "
        "max_temp_directory_size (10.0 GiB) exceeded"), duck)
    assert disk.extra["setting"] == "TAHUB_DUCKDB_MAX_TEMP_SIZE"
    assert disk.extra["limit"] == "10GB" and disk.status == 507
    memory = extracts._out_of_capacity(duckdb.OutOfMemoryException(
        "Out of Memory Error: failed to pin block of size 256.0 KiB"), duck)
    assert memory.extra["setting"] == "TAHUB_DUCKDB_MEMORY_LIMIT"
    assert memory.extra["limit"] == "1GB"


def test_the_duckdb_limits_of_a_commit_are_settings_with_machine_defaults(
        tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.duckdb_threads == machine_cores() >= 1
    assert settings.duckdb_memory_limit == machine_memory_share(8)
    limits = DuckLimits.of(settings)
    assert limits.spill_root == tmp_path / "tmp" and limits.max_temp_size is None
    chosen = DuckLimits.of(Settings(data_dir=tmp_path, duckdb_temp_dir=tmp_path / "spill",
                                    duckdb_max_temp_size="20GB", duckdb_threads=1))
    assert (chosen.spill_root, chosen.max_temp_size, chosen.threads) == (
        tmp_path / "spill", "20GB", 1)
    with sandboxed_duckdb(chosen) as con:
        ((threads, size, order),) = con.execute(
            "SELECT current_setting('threads'), current_setting('max_temp_directory_size'), "
            "current_setting('preserve_insertion_order')").fetchall()
    assert (threads, order) == (1, True) and units._bytes(str(size)) >= 18 * 2**30

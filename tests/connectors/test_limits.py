"""The connector's resource limits: settings, the input ceiling, and memory that does not grow
with the file (checked on small limits, in a child process, by its peak RSS; never timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from connectors.partner.cli import app
from connectors.partner.limits import (
    ENV_MAX_INPUT_BYTES,
    ENV_MAX_INPUT_ROWS,
    ENV_MEMORY_LIMIT,
    ConnectorLimits,
)
from connectors.partner.mapping import Mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.preview import check_export
from connectors.partner.pseudonymise import NetworkKey
from hub.contracts.model import ContractRegistry
from hub.errors import ConfigError, OutOfCapacity, TooLarge
from tests.connectors.conftest import FLOWS_HEADER, FLOWS_MAPPING, good_flow, write_csv

ROOT = Path(__file__).resolve().parents[2]


def test_limits_come_from_the_environment_with_defaults() -> None:
    default = ConnectorLimits.from_env({})
    assert default == ConnectorLimits()
    assert default.memory_limit == 512 * 10**6 and default.threads == 2
    assert default.max_input_bytes == 100 * 10**9 and default.max_input_rows is None
    set_ = ConnectorLimits.from_env({
        ENV_MEMORY_LIMIT: "1.5GiB",
        "TAHUB_CONNECT_THREADS": "1",
        "TAHUB_CONNECT_TEMP_DIR": "/data/tahub-spill",
        "TAHUB_CONNECT_BATCH_ROWS": "20_000",
        ENV_MAX_INPUT_BYTES: "none",
        ENV_MAX_INPUT_ROWS: "5000000",
    })  # fmt: skip
    assert set_ == ConnectorLimits(
        memory_limit=int(1.5 * 2**30), threads=1, temp_dir=Path("/data/tahub-spill"),
        batch_rows=20_000, max_input_bytes=None, max_input_rows=5_000_000,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "value"),
    [(ENV_MEMORY_LIMIT, "lots"), (ENV_MEMORY_LIMIT, "1MB"), ("TAHUB_CONNECT_THREADS", "0"),
     (ENV_MAX_INPUT_ROWS, "-3"), (ENV_MAX_INPUT_BYTES, "10 XB")],
)  # fmt: skip
def test_a_bad_setting_is_refused_naming_it(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConnectorLimits.from_env({name: value})
    assert name in str(caught.value)


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "connector.md").read_text(encoding="utf-8")
    source = (ROOT / "connectors" / "partner" / "limits.py").read_text(encoding="utf-8")
    names = {line.split('"')[1] for line in source.splitlines() if line.startswith("ENV_")}
    assert len(names) == 6
    for name in names:
        assert f"`{name}`" in text, name


def _flows(path: Path, rows: int) -> Path:
    return write_csv(path, FLOWS_HEADER, [good_flow(i) for i in range(rows)])


def test_an_export_over_the_byte_ceiling_is_refused_before_anything_is_written(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    source = _flows(tmp_path / "flows.csv", 200)
    out, rejects = tmp_path / "out.parquet", tmp_path / "rejects.csv"
    with pytest.raises(TooLarge) as caught:
        prepare_extract(source, flows_mapping, key=key, out_path=out, rejects_path=rejects,
                        registry=registry, limits=ConnectorLimits(max_input_bytes=1000))
    err = caught.value
    assert ENV_MAX_INPUT_BYTES in err.detail and "1.0 KB" in err.detail
    assert err.field == ENV_MAX_INPUT_BYTES and err.problem()["limit"] == 1000
    assert err.status == 413 and not out.exists() and not rejects.exists()


def test_an_export_over_the_row_ceiling_is_refused_before_anything_is_written(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    source = _flows(tmp_path / "flows.csv", 200)
    out, rejects = tmp_path / "out.parquet", tmp_path / "rejects.csv"
    with pytest.raises(TooLarge) as caught:
        prepare_extract(source, flows_mapping, key=key, out_path=out, rejects_path=rejects,
                        registry=registry, limits=ConnectorLimits(max_input_rows=150))
    assert "200 rows" in caught.value.detail and "150" in caught.value.detail
    assert ENV_MAX_INPUT_ROWS in caught.value.detail
    assert not out.exists() and not rejects.exists()
    fine = prepare_extract(source, flows_mapping, key=key, out_path=out, registry=registry,
                           limits=ConnectorLimits(max_input_rows=200))
    assert fine.rows_valid == 200


def test_push_over_the_ceiling_uploads_nothing(tmp_path: Path, key: NetworkKey) -> None:
    from typer.testing import CliRunner

    source = _flows(tmp_path / "flows.csv", 50)
    mapping = tmp_path / "flows.mapping.yaml"
    mapping.write_text(FLOWS_MAPPING, encoding="utf-8")
    result = CliRunner().invoke(
        app,
        ["push", str(source), "-m", str(mapping), "--dry-run", "--out",
         str(tmp_path / "x.parquet")],
        env={"TAHUB_NETWORK_KEY": key.export(), ENV_MAX_INPUT_BYTES: "100B"},
    )  # fmt: skip
    assert result.exit_code == 1, result.output
    assert ENV_MAX_INPUT_BYTES in result.output and not (tmp_path / "x.parquet").exists()


def _starved(tmp_path: Path) -> ConnectorLimits:
    """1 MB for DuckDB, below the floor a user may set, so that DuckDB really fails."""
    limits = ConnectorLimits(threads=1, temp_dir=tmp_path / "spill")
    object.__setattr__(limits, "memory_limit", 10**6)
    return limits


def test_running_out_of_memory_names_the_setting_and_leaves_nothing(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    source = _flows(tmp_path / "flows.csv", 2000)
    out, rejects = tmp_path / "out.parquet", tmp_path / "rejects.csv"
    limits = _starved(tmp_path)
    with pytest.raises(OutOfCapacity) as caught:
        prepare_extract(source, flows_mapping, key=key, out_path=out, rejects_path=rejects,
                        registry=registry, limits=limits)
    err = caught.value
    assert isinstance(err.__cause__, duckdb.OutOfMemoryException)
    assert err.code == "out_of_capacity" and err.status == 507
    assert err.problem()["setting"] == ENV_MEMORY_LIMIT and err.problem()["limit"] == 10**6
    assert f"{ENV_MEMORY_LIMIT} (1.0 MB)" in err.detail and str(tmp_path / "spill") in err.detail
    assert "allocate" not in str(err)  # DuckDB's own words stay out
    assert not out.exists() and not rejects.exists()
    assert list((tmp_path / "spill").iterdir()) == []
    with pytest.raises(OutOfCapacity):  # check runs the same pipeline
        check_export(source, flows_mapping, registry=registry, limits=limits)


def test_running_out_of_memory_late_removes_what_was_written(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DuckDB failing after the rejects and the extract were written (in the last stage)."""

    def starved(*_args: object) -> None:
        raise duckdb.OutOfMemoryException("Out of Memory Error: failed to allocate")

    monkeypatch.setattr("connectors.partner.pipeline.left_behind", starved)
    source = _flows(tmp_path / "flows.csv", 200)
    out, rejects = tmp_path / "out.parquet", tmp_path / "rejects.csv"
    with pytest.raises(OutOfCapacity) as caught:
        prepare_extract(source, flows_mapping, key=key, out_path=out, rejects_path=rejects,
                        registry=registry)
    assert caught.value.problem()["limit"] == ConnectorLimits().memory_limit
    assert not out.exists() and not rejects.exists()


def test_small_batches_give_the_same_extract(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    rows = [good_flow(i) for i in range(3000)]
    rows[5][5] = "many"  # a rejected row among the batches
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    one = prepare_extract(source, flows_mapping, key=key, out_path=tmp_path / "a.parquet",
                          registry=registry)
    small = prepare_extract(
        source, flows_mapping, key=key, out_path=tmp_path / "b.parquet", registry=registry,
        limits=ConnectorLimits(batch_rows=7, threads=1, memory_limit=64 * 10**6,
                               temp_dir=tmp_path / "spill"),
    )  # fmt: skip
    assert (small.rows_valid, small.rows_rejected) == (one.rows_valid, one.rows_rejected)
    assert small.sha256 == one.sha256  # the same bytes, whatever the settings
    assert pq.read_table(small.path).num_rows == 2999
    assert list((tmp_path / "spill").iterdir()) == []  # the work folder is gone


_CHILD = """
import json, sys
from pathlib import Path
from connectors.partner.limits import ConnectorLimits
from connectors.partner.mapping import parse_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.pseudonymise import NetworkKey
from tests.connectors.conftest import FLOWS_MAPPING

source, out, spill = map(Path, sys.argv[1:4])
limits = ConnectorLimits(memory_limit=64 * 10**6, threads=1, batch_rows=10_000, temp_dir=spill)
done = prepare_extract(source, parse_mapping(FLOWS_MAPPING, source="test"),
                       key=NetworkKey(bytes(range(32))), out_path=out, limits=limits)
peak = next(int(line.split()[1]) for line in open("/proc/self/status")
            if line.startswith("VmHWM:"))
print(json.dumps({"rows": done.rows_valid, "peak_kb": peak}))
"""


def _peak_mb(tmp_path: Path, rows: int) -> float:
    source = tmp_path / f"flows{rows}.csv"
    with source.open("w", encoding="utf-8") as handle:  # a distinct phone in every row
        handle.write(",".join(FLOWS_HEADER) + "\n")
        for i in range(rows):
            handle.write(f"07400 {100000 + i % 800000},GB,NG,CASH,2024-03,2,{i % 997}.5,N {i}\n")
    run = subprocess.run(
        [sys.executable, "-c", _CHILD, str(source), str(tmp_path / f"o{rows}.parquet"),
         str(tmp_path / "spill")],
        cwd=ROOT, capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["rows"] == rows
    return float(result["peak_kb"]) / 1024


def test_peak_memory_does_not_grow_with_the_file(tmp_path: Path) -> None:
    """Four times the rows (a 4 MB and a 17 MB file) under a 64 MB DuckDB limit: the
    connector that held the whole export took ~1.07 GB per million rows, so the 300,000
    more rows alone would add ~320 MB. Measured now: ~310 MB and ~395 MB; none of the
    growth is Python's (tracemalloc: 29.7 MB at both sizes), a third is DuckDB filling
    its 64 MB, the rest native memory outside its limit, and it stops there (~393 MB at
    800,000 rows; see docs/connector.md, Limitations), so the bound is loose on purpose
    but far below holding the file."""
    small = _peak_mb(tmp_path, 100_000)
    large = _peak_mb(tmp_path, 400_000)
    assert large < small + 160, (small, large)
    assert large < 560, large

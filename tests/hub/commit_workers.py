"""Code run in child processes (multiprocessing, spawn) by the commit limits' tests: a
commit's peak memory is its own process's high-water mark, not pytest's.

Kept apart from the test modules so that a spawned child imports only the hub, not pytest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hub.contracts.model import ContractRegistry
from hub.ingest import extracts
from hub.ingest.extracts import check_extract
from hub.ingest.units import UnitIndex
from hub.storage.sandbox import DuckLimits

__all__ = ["commit_and_measure", "peak_rss_bytes"]


def peak_rss_bytes() -> int:
    """This process's peak resident memory (``VmHWM``), in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def commit_and_measure(extract: str, folder: str, memory_limit: str, row_group_rows: int,
                       results: Any) -> None:
    """Check, number and write ``extract`` as a commit does, under ``memory_limit``, with
    ``row_group_rows`` rows per row group of the canonical copy (the Arrow batches the
    commit holds while it writes; 512K rows in the hub); report (rows, peak RSS before the
    commit, peak RSS after), or the error's text."""
    try:
        extracts._ROW_GROUP_ROWS = row_group_rows
        contract = ContractRegistry.load().get("bank_alerts", 1)
        work = Path(folder)
        before = peak_rss_bytes()
        report = check_extract(Path(extract), contract, canonical=work / "canonical.parquet",
                               duck=DuckLimits(2, memory_limit, work / "tmp"),
                               units=UnitIndex(work / "index"), partner="org_a")
        results.put((report.rows, before, peak_rss_bytes()))
    except Exception as exc:  # reported to the test, which fails on it
        results.put(f"{type(exc).__name__}: {exc}")

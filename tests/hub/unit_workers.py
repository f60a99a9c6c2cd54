"""Code run in child processes (multiprocessing, spawn) by the unit index's concurrency tests.

Kept apart from the test modules so that a spawned child imports only the hub, not pytest.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from hub.contracts.model import ContractRegistry
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN
from hub.ingest.units import PostgresUnitIndex, UnitIndex, UnitNumbering
from hub.storage.db import make_engine
from tests.hub.extract_files import schema_for, token, valid_rows

__all__ = ["commit_extracts"]


def commit_extracts(backend: str, where: str, partner: str, seed: int, commits: int,
                    rows: int, subjects: int, barrier: Any, results: Any) -> None:
    """Number ``commits`` checked bank_alerts extracts of ``rows`` rows in a row, each row one
    of ``subjects`` privacy units drawn at random, with ``backend``'s index (``where``: its
    folder, or the PostgreSQL URL), as a commit does; report every numbered
    (token, unit, seq).

    The extracts are loaded as checked tables before the barrier, so that after it the two
    processes do nothing but number: their index transactions overlap all the time.
    """
    contract = ContractRegistry.load().get("bank_alerts", 1)
    engine = make_engine(where) if backend == "postgresql" else None
    index: UnitNumbering = UnitIndex(Path(where)) if engine is None else PostgresUnitIndex(engine)
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    con = duckdb.connect()
    for i in range(commits):
        chosen = valid_rows(contract, rows, seed=seed * 100_000 + i * rows)
        for row in chosen:
            row["subject"] = token(f"unit-{rng.randrange(subjects)}")
        con.register("upload", pa.Table.from_pylist(chosen, schema=schema_for(contract)))
        con.execute(f"CREATE TABLE checked_{i} AS SELECT *, "
                    f"CAST(row_number() OVER () AS BIGINT) AS {ROW_COLUMN}, "
                    f"CAST([] AS VARCHAR[]) AS {ERRORS_COLUMN} FROM upload")
        con.unregister("upload")
    out: list[tuple[str, int, int]] = []
    try:
        barrier.wait(timeout=60)
        for i in range(commits):
            sql = index.number(con, contract, partner, f"checked_{i}")
            out += con.execute(f"SELECT subject, __unit, __seq FROM ({sql})").fetchall()
    except Exception as exc:  # reported, so that the test fails at once and says why
        results.put(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        con.close()
        if engine is not None:
            engine.dispose()
    results.put(out)

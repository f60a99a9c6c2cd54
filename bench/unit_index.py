"""The unit index's commit cost: the DuckDB file (embedded default) against PostgreSQL.

Run:  .venv/bin/python bench/unit_index.py [--rows 1000000] [--units 250000] [--repeat 3]
      [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

What a commit pays for contribution bounding (``UnitNumbering.number``: token counts, the
index update committed, the window over the extract), on a checked extract held in DuckDB as
the commit check leaves it, with connector-style tokens (73 characters). Two commits per
run, on a fresh index each time:

* **first**: ``--rows`` rows over ``--units`` units, all new to the index (ids handed out);
* **second**: another ``--rows`` rows over the same units plus 10% new ones (mostly
  ``rows_seen`` updates of known tokens), the steady state of a dataset.

PostgreSQL gets a throwaway database on the ``--postgres`` server (created, migrated,
dropped). The median of ``--repeat`` runs is printed and appended to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import duckdb
import sqlalchemy as sa

from hub.contracts.model import Contract, ContractRegistry
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN
from hub.ingest.units import PostgresUnitIndex, UnitIndex, UnitNumbering
from hub.storage.db import make_engine, upgrade

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _checked(con: duckdb.DuckDBPyConnection, name: str, rows: int, units: int,
             salt: int) -> None:
    """A checked extract: ``rows`` valid rows over ``units`` tokens (unit = hash % units)."""
    con.execute(
        f"CREATE OR REPLACE TABLE {name} AS SELECT "
        f"'k0000001.' || sha256(CAST(hash(i + {salt}) % {units} AS VARCHAR)) AS subject, "
        f"i AS {ROW_COLUMN}, CAST([] AS VARCHAR[]) AS {ERRORS_COLUMN} "
        f"FROM range({rows}) t(i)"
    )


@contextmanager
def _postgres(server: str) -> Iterator[sa.Engine]:
    url = sa.make_url(server)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"tahub_bench_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = make_engine(url.set(database=name).render_as_string(hide_password=False))
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _run(index: UnitNumbering, contract: Contract, con: duckdb.DuckDBPyConnection
         ) -> tuple[float, float]:
    times = []
    for table in ("first", "second"):
        start = time.perf_counter()
        index.number(con, contract, "org_bench0000001", table)
        times.append(time.perf_counter() - start)
    return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=250_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("TAHUB_TEST_POSTGRES_URL",
                                                             DEFAULT_PG))
    parser.add_argument("--no-record", action="store_true", help="do not append to RESULTS.md")
    args = parser.parse_args()
    contract = ContractRegistry.load().get("bank_alerts", 1)
    con = duckdb.connect(config={"threads": 2, "memory_limit": "512MB"})
    _checked(con, "first", args.rows, args.units, 0)
    _checked(con, "second", args.rows, args.units + args.units // 10, 7)

    runs: dict[str, list[tuple[float, float]]] = {"DuckDB file": [], "PostgreSQL": []}

    @contextmanager
    def duck(root: Path) -> Iterator[UnitNumbering]:
        yield UnitIndex(root / f"index-{secrets.token_hex(4)}")

    @contextmanager
    def pg(root: Path) -> Iterator[UnitNumbering]:
        with _postgres(args.postgres) as engine:
            yield PostgresUnitIndex(engine)

    backends: dict[str, Callable[[Path], AbstractContextManager[UnitNumbering]]] = {
        "DuckDB file": duck, "PostgreSQL": pg}
    with tempfile.TemporaryDirectory(prefix="tahub-bench-") as tmp:
        for _ in range(args.repeat):
            for name, make in backends.items():
                with make(Path(tmp)) as index:
                    first, second = _run(index, contract, con)
                runs[name].append((first, second))
                print(f"{name}: first {first:.2f} s, second {second:.2f} s")
    con.close()

    per_m = 1_000_000 / args.rows
    lines = [
        f"{args.rows:,} rows per commit over {args.units:,} units (second commit: +10% new "
        f"units); index update committed + window, as UnitNumbering.number; median of "
        f"{args.repeat}; {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}",
        "",
        "| index | first commit (all new) s | per M rows | second commit (mostly known) s "
        "| per M rows |",
        "|---|---|---|---|---|",
    ]
    medians = {}
    for name, values in runs.items():
        first = statistics.median(v[0] for v in values)
        second = statistics.median(v[1] for v in values)
        medians[name] = (first, second)
        lines.append(f"| {name} | {first:.2f} | {first * per_m:.2f} | {second:.2f} | "
                     f"{second * per_m:.2f} |")
    (d1, d2), (p1, p2) = medians["DuckDB file"], medians["PostgreSQL"]
    lines += ["", f"PostgreSQL / DuckDB file: **{p1 / d1:.2f}x** (first), "
                  f"**{p2 / d2:.2f}x** (second)"]
    text = "\n".join(lines)
    print(text)
    if not args.no_record:
        with open(Path(__file__).with_name("RESULTS.md"), "a") as out:
            out.write(f"\n## unit_index, {dt.date.today()}\n\n{text}\n")


if __name__ == "__main__":
    main()

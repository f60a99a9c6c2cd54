"""What runs the engine's SQL: DuckDB in the hub (the default) or an Apache Spark cluster.

:mod:`hub.query.engine` and :mod:`hub.query.bounds` write each statement once, in DuckDB's
dialect with bound parameters (:mod:`hub.query.sql`), and hand it to a :class:`Runner`:

* :class:`DuckRunner` runs it in the hub's DuckDB sandboxes (:mod:`hub.storage.sandbox`);
* :class:`hub.engines.spark.SparkRunner` transpiles it (:mod:`hub.engines.dialect`) and runs it
  on the cluster (``TAHUB_ENGINE=spark``).

Either returns exact aggregates (never released as they are: noise is added by the hub,
:mod:`hub.query.release`) or writes a helper table (contribution bounding's cut files; on
the cluster, a commit's checked rows, unit numbers and canonical copy:
:mod:`hub.ingest.clustered`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import duckdb

from hub.errors import Unavailable
from hub.storage.folders import parquet_parts
from hub.storage.objects import ObjectStore
from hub.storage.sandbox import DuckLimits, sandboxed_duckdb

__all__ = ["DuckRunner", "Location", "Params", "Runner", "UnreadableInput"]

#: Bound parameters of a statement: positional (``?``) or by name (``$name``).
Params = Sequence[Any] | Mapping[str, Any]
#: A Parquet file or folder a statement reads: a local path, or the URI under which a
#: cluster reads an object (``ObjectStore.cluster_location``: ``file://``, ``s3a://``).
Location = str | Path


class UnreadableInput(Unavailable):
    """A file the statement reads cannot be decoded (a corrupt page, a checksum that does
    not match): an uploaded extract's fault (it is refused: :mod:`hub.ingest.extracts`), or,
    for a committed one, a 503 like any failure of the engine."""


class Runner(Protocol):
    """Runs DuckDB-dialect SQL over Parquet files (module docstring)."""

    name: str

    def ready(self) -> None:
        """Raise :class:`~hub.errors.Unavailable` if statements cannot run now (checked
        before a query's charge, so that an outage spends nothing)."""
        ...

    def fetch(self, sql: str, params: Params, read: Sequence[Location]) -> list[tuple[Any, ...]]:
        """The rows of ``sql``, which reads only the files ``read``."""
        ...

    def write(self, sql: str, params: Params, out: Path, read: Sequence[Location]) -> int:
        """Write the rows of ``sql`` as Parquet at ``out`` (a file, or for Spark a folder of
        files; ``out``'s folder must exist) and return how many there are."""
        ...

    def locate(self, store: ObjectStore, key: str) -> list[Location]:
        """What a statement reads for the object ``key`` of ``store``."""
        ...

    def close(self) -> None: ...


class DuckRunner:
    """DuckDB in the hub: queries on cursors of shared read-only sandboxes (``cursor``),
    writes in a sandbox of their own that may write ``out``'s folder only."""

    name = "duckdb"

    def __init__(self, limits: DuckLimits,
                 cursor: Callable[[Iterable[Path]],
                                  AbstractContextManager[duckdb.DuckDBPyConnection]]) -> None:
        self._limits = limits
        self._cursor = cursor

    def ready(self) -> None:
        """Always: DuckDB runs in this process."""

    def fetch(self, sql: str, params: Params, read: Sequence[Location]) -> list[tuple[Any, ...]]:
        with self._cursor([Path(r) for r in read]) as con:
            return con.execute(sql, params).fetchall()

    def write(self, sql: str, params: Params, out: Path, read: Sequence[Location]) -> int:
        copy, bound = _copy(sql, params, out)
        with sandboxed_duckdb(self._limits, read=[Path(r) for r in read],
                              folders=[out.parent]) as con:
            ((count,),) = con.execute(copy, bound).fetchall()
        return int(count)

    def locate(self, store: ObjectStore, key: str) -> list[Location]:
        """The object's local files (downloaded first from S3: hub.storage.extractcache)."""
        return list(parquet_parts(store.local_path(key)))

    def close(self) -> None:
        """Nothing of its own: the sandboxes are their owner's (hub.query.engine)."""


def _copy(sql: str, params: Params, out: Path) -> tuple[str, Params]:
    """``COPY (sql) TO out`` with ``out`` bound like the other parameters."""
    if isinstance(params, Mapping):
        return (f"COPY ({sql}) TO $__out (FORMAT parquet)",
                {**params, "__out": str(out)})
    return f"COPY ({sql}) TO ? (FORMAT parquet)", [*params, str(out)]

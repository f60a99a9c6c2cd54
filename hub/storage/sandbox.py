"""DuckDB as a sandbox: every connection that touches extracts or request-derived SQL.

:func:`sandboxed_duckdb` opens a connection that can reach only what the hub hands it:

* ``read``: files it may read (the extracts of one query, a persons map, a cut file);
* ``folders``: folders it may read and write (a cut folder, the unit index's folder);
* its own temporary folder for spilling, removed when the connection closes;

and nothing else: external access is disabled (no other file, no glob over other folders,
no ``ATTACH`` elsewhere, no network, no secrets), extensions are never installed or loaded,
and the configuration is locked after it is set, so SQL run on the connection cannot lift
a limit (``SET enable_external_access``, ``SET memory_limit``, ``SET threads``, ``RESET``).
A memory limit and a thread limit bound what one query or check can take from the node;
beyond the memory limit DuckDB spills to the temporary folder, up to ``max_temp_size`` of
disk (:class:`DuckLimits`, from the ``TAHUB_DUCKDB_*`` settings).

DuckDB checks the paths itself (``allowed_paths`` / ``allowed_directories``), so the guard
holds for every table function and ``COPY``, whatever SQL reaches it; the hub's own quoting
of names and values (``hub.contracts.validation.quote_ident``, bound parameters) is the first
line, this is the second. tests/hub/test_sandbox.py tries to escape it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from hub.settings import Settings

__all__ = ["DuckLimits", "sandboxed_duckdb"]


@dataclass(frozen=True)
class DuckLimits:
    """What one sandboxed connection may take: threads, memory (DuckDB's syntax, ``2GB``),
    the folder its temporary folder is made in (None: the system's), and how much disk it
    may spill there (None: DuckDB's default, 90% of the free space of that disk).

    DuckDB's ``preserve_insertion_order`` stays on (its default): the commit joins a
    table with its numbers by position (``hub.ingest.units``)."""

    threads: int
    memory_limit: str
    spill_root: Path | None = None
    max_temp_size: str | None = None

    @classmethod
    def of(cls, settings: Settings) -> DuckLimits:
        return cls(settings.duckdb_threads, settings.duckdb_memory_limit,
                   settings.duckdb_temp_dir or settings.data_dir / "tmp",
                   settings.duckdb_max_temp_size)


def _folder(path: Path) -> str:
    return str(path.resolve()).rstrip("/") + "/"


@contextmanager
def sandboxed_duckdb(
    limits: DuckLimits,
    *,
    read: Iterable[Path] = (),
    folders: Iterable[Path] = (),
    database: Path | None = None,
    read_only: bool = False,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A locked-down DuckDB connection (module docstring); closed, and its temporary folder
    removed, on leaving the block. ``database``: a DuckDB file (its folder must be among
    ``folders``), else in memory. ``read_only``: ``database`` opened read-only, so that
    nothing a statement creates (table, view, macro) outlives its connection (temporary
    objects die with it): a database that queries share (hub.query.engine)."""
    if limits.spill_root is not None:
        limits.spill_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="duckdb-", dir=limits.spill_root) as spill:
        config: dict[str, str | bool | int | float | list[str]] = {
            "threads": max(1, limits.threads),
            "memory_limit": limits.memory_limit,
            "temp_directory": spill,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
        }
        if limits.max_temp_size is not None:
            config["max_temp_directory_size"] = limits.max_temp_size
        con = duckdb.connect(str(database) if database is not None else ":memory:",
                             read_only=read_only, config=config)
        try:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET allowed_directories = ?",
                        [sorted({_folder(Path(spill)), *map(_folder, folders)})])
            con.execute("SET allowed_paths = ?", [sorted({str(p.resolve()) for p in read})])
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()

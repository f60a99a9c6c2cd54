"""How much of the machine the connector may use, and the largest export it takes.

The connector's DuckDB holds the export, the parsed fields and the problems in tables it
spills to ``temp_dir`` once they pass ``memory_limit``; everything the connector holds in
Python (the identifiers being hashed, the extract being written, the rejects) goes in
batches of at most ``batch_rows``. So peak memory depends on these settings, not on the
size of the file; the disk under ``temp_dir`` needs room for a few times the export.

Every limit is a setting (``TAHUB_CONNECT_*``, read by :meth:`ConnectorLimits.from_env`,
documented in docs/connector.md); a library caller passes a :class:`ConnectorLimits` to
:func:`~connectors.partner.pipeline.prepare_extract`. An export larger than
``max_input_bytes`` or holding more rows than ``max_input_rows`` is refused with a
:class:`~hub.errors.TooLarge` naming the limit and its setting, before anything is written.
Work that does not fit in ``memory_limit`` even spilling (DuckDB's ``OutOfMemoryException``,
at any stage) is refused with an :class:`~hub.errors.OutOfCapacity` naming the setting
(:meth:`ConnectorLimits.out_of_memory`); nothing is left written then either.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from connectors.common.amounts import size_text
from hub.errors import ConfigError, OutOfCapacity, TooLarge

__all__ = [
    "ENV_BATCH_ROWS",
    "ENV_MAX_INPUT_BYTES",
    "ENV_MAX_INPUT_ROWS",
    "ENV_MEMORY_LIMIT",
    "ENV_TEMP_DIR",
    "ENV_THREADS",
    "ConnectorLimits",
    "parse_size",
]

ENV_MEMORY_LIMIT = "TAHUB_CONNECT_MEMORY_LIMIT"
ENV_THREADS = "TAHUB_CONNECT_THREADS"
ENV_TEMP_DIR = "TAHUB_CONNECT_TEMP_DIR"
ENV_BATCH_ROWS = "TAHUB_CONNECT_BATCH_ROWS"
ENV_MAX_INPUT_BYTES = "TAHUB_CONNECT_MAX_INPUT_BYTES"
ENV_MAX_INPUT_ROWS = "TAHUB_CONNECT_MAX_INPUT_ROWS"

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}  # fmt: skip
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$")


def parse_size(text: str, setting: str) -> int:
    """Bytes in ``"512MB"``, ``"2 GiB"`` or ``"1000000"``; a ConfigError names ``setting``."""
    match = _SIZE_RE.match(text)
    unit = match.group(2).upper() if match else ""
    if match is None or unit not in _UNITS:
        raise ConfigError(
            f"{setting}={text!r} is not a size: write bytes, or a number with KB, MB, GB, "
            "TB (or KiB, MiB, GiB, TiB)",
            field=setting,
        )
    return int(float(match.group(1)) * _UNITS[unit])


@dataclass(frozen=True)
class ConnectorLimits:
    """The connector's resource settings (see the module docstring).

    ``memory_limit``: bytes DuckDB may use before it spills to ``temp_dir`` (default 512 MB;
    the whole process stays under about twice that). ``threads``: DuckDB's threads (default
    2). ``temp_dir``: where DuckDB spills and the connector keeps its work files (default:
    a new folder in the system's temporary folder). ``batch_rows``: rows per batch in
    Python (hashing, writing). ``max_input_bytes`` / ``max_input_rows``: the largest
    export taken (default 100 GB, no row ceiling; ``None``: none).
    """

    memory_limit: int = 512 * 10**6
    threads: int = 2
    temp_dir: Path | None = None
    batch_rows: int = 100_000
    max_input_bytes: int | None = 100 * 10**9
    max_input_rows: int | None = None

    def __post_init__(self) -> None:
        if self.memory_limit < 32 * 10**6:
            raise ConfigError(f"{ENV_MEMORY_LIMIT} must be at least 32MB", field=ENV_MEMORY_LIMIT)
        if self.threads < 1:
            raise ConfigError(f"{ENV_THREADS} must be at least 1", field=ENV_THREADS)
        if self.batch_rows < 1:
            raise ConfigError(f"{ENV_BATCH_ROWS} must be at least 1", field=ENV_BATCH_ROWS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConnectorLimits:
        """The defaults, with each ``TAHUB_CONNECT_*`` variable that is set (and not empty)."""
        env = os.environ if environ is None else environ
        default = cls()

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def count(name: str, fallback: int | None) -> int | None:
            value = text(name)
            if value is None:
                return fallback
            if value.lower() == "none":
                return None
            if not value.replace("_", "").isdigit():
                raise ConfigError(f"{name}={value!r} is not a whole number", field=name)
            return int(value.replace("_", ""))

        memory = text(ENV_MEMORY_LIMIT)
        max_bytes = text(ENV_MAX_INPUT_BYTES)
        temp = text(ENV_TEMP_DIR)
        threads = count(ENV_THREADS, default.threads)
        batch = count(ENV_BATCH_ROWS, default.batch_rows)
        return cls(
            memory_limit=(
                parse_size(memory, ENV_MEMORY_LIMIT) if memory else default.memory_limit
            ),
            threads=threads if threads is not None else default.threads,
            temp_dir=Path(temp) if temp else None,
            batch_rows=batch if batch is not None else default.batch_rows,
            max_input_bytes=(
                default.max_input_bytes if max_bytes is None
                else None if max_bytes.lower() == "none"
                else parse_size(max_bytes, ENV_MAX_INPUT_BYTES)
            ),
            max_input_rows=count(ENV_MAX_INPUT_ROWS, default.max_input_rows),
        )

    def work_folder(self) -> tempfile.TemporaryDirectory[str]:
        """A new private folder for one run (DuckDB's spill files, the connector's work
        files), in ``temp_dir`` when set; removed when the ``with`` block ends."""
        if self.temp_dir is not None:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(prefix="tahub-connect-", dir=self.temp_dir)

    def check_bytes(self, source: Path) -> None:
        """Refuse ``source`` (a file, or a folder's files) when larger than the ceiling."""
        if self.max_input_bytes is None or not source.exists():
            return  # a missing source is the reader's to report
        if source.is_dir():
            size = sum(p.stat().st_size for p in source.iterdir() if p.is_file())
        else:
            size = source.stat().st_size
        if size > self.max_input_bytes:
            raise TooLarge(
                f"{source.name} is {size_text(size)}, more than the connector's ceiling of "
                f"{size_text(self.max_input_bytes)} ({ENV_MAX_INPUT_BYTES}); raise that setting "
                "if the machine has the disk for it, or split the export. Nothing was written "
                "or uploaded",
                field=ENV_MAX_INPUT_BYTES,
                limit=self.max_input_bytes,
                size=size,
            )

    def check_rows(self, source: Path, rows: int) -> None:
        """Refuse an export of ``rows`` rows when more than the ceiling."""
        if self.max_input_rows is None or rows <= self.max_input_rows:
            return
        raise TooLarge(
            f"{source.name} holds {rows:,} rows, more than the connector's ceiling of "
            f"{self.max_input_rows:,} ({ENV_MAX_INPUT_ROWS}); raise that setting or split "
            "the export. Nothing was written or uploaded",
            field=ENV_MAX_INPUT_ROWS,
            limit=self.max_input_rows,
            rows=rows,
        )

    def out_of_memory(self, spill: Path) -> OutOfCapacity:
        """The refusal when DuckDB ran out of ``memory_limit`` even spilling to ``spill``."""
        return OutOfCapacity(
            f"preparing this export needs more memory than {ENV_MEMORY_LIMIT} "
            f"({size_text(self.memory_limit)}) allows, even spilling to {spill}: raise it, or give "
            f"the temporary folder more disk ({ENV_TEMP_DIR}). Nothing was written or uploaded",
            field=ENV_MEMORY_LIMIT,
            rule="memory_limit",
            setting=ENV_MEMORY_LIMIT,
            limit=self.memory_limit,
        )

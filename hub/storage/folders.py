"""Folder objects: an extract written as a folder of Parquet parts (by Spark,
:mod:`hub.ingest.clustered`) with its schema and ``tahub.*`` metadata in
``_common_metadata`` (Parquet's dataset convention). Every store keeps such a folder under
one key, and a folder without its ``_common_metadata`` is incomplete (not an object).
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["COMMON_METADATA", "FOLDER_ENTRY", "check_folder", "parquet_parts", "parquet_schema"]

#: The file of a folder object that holds its schema and ``tahub.*`` metadata (Spark and
#: DuckDB skip files that start with an underscore).
COMMON_METADATA = "_common_metadata"
#: The names a folder object holds: its parts, Spark's ``_SUCCESS`` marker and
#: :data:`COMMON_METADATA`.
FOLDER_ENTRY = re.compile(r"^(part-[A-Za-z0-9_.=-]*\.parquet|_common_metadata|_SUCCESS)$")


def parquet_parts(path: Path) -> list[Path]:
    """The Parquet files of an extract object: the file itself, or a folder object's parts
    (an extract Spark committed, :mod:`hub.ingest.clustered`)."""
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def parquet_schema(path: Path) -> pa.Schema:
    """The schema and ``tahub.*`` metadata of an extract object (:func:`parquet_parts`)."""
    return pq.read_schema(path / COMMON_METADATA if path.is_dir() else path)


def check_folder(source: Path) -> Path:
    """``source``, refused unless it is a whole folder object (its ``_common_metadata``
    written): what a store's ``put_folder`` takes."""
    if not (source / COMMON_METADATA).is_file():
        raise ValueError("a folder object needs its _common_metadata")
    return source

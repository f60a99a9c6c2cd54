"""The extract file the connector uploads: deterministic zstd Parquet.

Columns are exactly the contract's ``extract_fields`` in order, typed ``token``,
``category`` and ``period`` -> string, ``integer`` -> int64, ``number`` -> float64,
``category_list`` -> list<string>. Key-value metadata names the dataset, the contract
version, the network-key generation (``tahub.key_id``) and the connector version. Nothing
in the file depends on the clock or the machine, so the same input and key always give
the same bytes, and the hub recognises a repeated upload by its sha256.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from hub import __version__
from hub.contracts.extractformat import (
    META_CONNECTOR_VERSION,
    META_CONTRACT_VERSION,
    META_DATASET,
    META_KEY_ID,
    extract_schema,
)
from hub.contracts.model import Contract
from hub.errors import ConfigError

__all__ = [
    "ExtractFile",
    "connector_schema",
    "file_sha256",
    "read_extract_metadata",
    "write_extract",
]

_ROW_GROUP_ROWS = 131_072  # fixed: the file's bytes must not depend on settings


@dataclass(frozen=True)
class ExtractFile:
    path: Path
    rows: int
    size: int
    sha256: str


def connector_schema(contract: Contract, key_id: str) -> pa.Schema:
    """The Arrow schema, with the ``tahub.*`` metadata, of the extracts this connector writes."""
    return extract_schema(
        contract,
        {
            META_DATASET: contract.dataset,
            META_CONTRACT_VERSION: str(contract.version),
            META_KEY_ID: key_id,
            META_CONNECTOR_VERSION: __version__,
        },
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def _row_groups(
    data: pa.Table | Iterable[pa.RecordBatch], schema: pa.Schema
) -> Iterator[pa.Table]:
    """``data`` cut into tables of exactly ``_ROW_GROUP_ROWS`` rows (the last one fewer).

    Row groups never depend on how the batches came, so the bytes do not either.
    """
    batches = data.to_batches() if isinstance(data, pa.Table) else data
    held: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        held.append(batch)
        count += batch.num_rows
        while count >= _ROW_GROUP_ROWS:
            table = pa.Table.from_batches(held)
            yield _shaped(table.slice(0, _ROW_GROUP_ROWS), schema)
            rest = table.slice(_ROW_GROUP_ROWS)
            held, count = rest.to_batches(), rest.num_rows
    if count:
        yield _shaped(pa.Table.from_batches(held), schema)


def _shaped(table: pa.Table, schema: pa.Schema) -> pa.Table:
    return table.select(schema.names).cast(schema).combine_chunks()


def write_extract(
    data: pa.Table | Iterable[pa.RecordBatch], contract: Contract, key_id: str, path: Path
) -> ExtractFile:
    """Write ``data`` (a table, or record batches as they come) as ``contract``'s extract
    at ``path`` (atomically: temp + rename), one row group of ``_ROW_GROUP_ROWS`` rows at a
    time: only one row group is held in memory."""
    schema = connector_schema(contract, key_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    rows = 0
    try:
        with pq.ParquetWriter(
            temp,
            schema,
            compression="zstd",
            version="2.6",
            use_dictionary=True,
            write_statistics=True,
            write_page_checksum=True,  # the hub verifies each page's CRC as it reads it
        ) as writer:
            for group in _row_groups(data, schema):
                writer.write_table(group, row_group_size=_ROW_GROUP_ROWS)
                rows += group.num_rows
            if rows == 0:  # one empty row group, as pyarrow writes an empty table
                writer.write_table(schema.empty_table())
        with temp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise ConfigError(f"cannot write the extract to {path}: {exc.strerror}") from None
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return ExtractFile(path=path, rows=rows, size=path.stat().st_size, sha256=file_sha256(path))


def read_extract_metadata(path: Path) -> dict[str, str]:
    """The ``tahub.*`` key-value metadata of an extract file."""
    raw = pq.ParquetFile(path).metadata.metadata or {}
    return {k.decode(): v.decode() for k, v in raw.items() if k.decode().startswith("tahub.")}

"""Real extract files for hub tests: valid rows for any contract, written as the connector does.

Tokens are made exactly as ``tahub-connect`` makes them (keyed HMAC-SHA256 under a test
network key), so that a file built here is what a partner would upload.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hub.contracts.model import Contract, ContractField, FieldType, months_between

NETWORK_KEY = b"test network key, never a real one"
KEY_ID = hmac.new(NETWORK_KEY, b"tahub key id", hashlib.sha256).hexdigest()[:8]

ARROW_TYPES = {
    FieldType.TOKEN: pa.string(),
    FieldType.CATEGORY: pa.string(),
    FieldType.PERIOD: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
    FieldType.CATEGORY_LIST: pa.list_(pa.string()),
}


def token(identifier: str) -> str:
    digest = hmac.new(NETWORK_KEY, identifier.encode(), hashlib.sha256).hexdigest()
    return f"{KEY_ID}.{digest}"


def valid_rows(contract: Contract, n: int = 10, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows that pass every rule of ``contract`` (all required fields filled)."""
    makers = {f.name: _maker(f) for f in contract.extract_fields}
    return [{name: make(i) for name, make in makers.items()} for i in range(seed, seed + n)]


def _maker(f: ContractField) -> Callable[[int], Any]:
    """The value of field ``f`` in row ``i``: cycling through its domain."""
    if f.type is FieldType.TOKEN:
        return lambda i: token(f"{f.name}-{i}")
    if f.type is FieldType.CATEGORY:
        codes = f.codes
        return lambda i: codes[i % len(codes)]
    if f.type is FieldType.CATEGORY_LIST:
        codes = f.codes
        return lambda i: [codes[i % len(codes)], codes[(i + 1) % len(codes)]]
    assert f.domain is not None
    if f.type is FieldType.PERIOD:
        months = months_between(str(f.domain.min), str(f.domain.max))
        return lambda i: months[i % len(months)]
    assert f.domain.clamp is not None
    lo, hi = f.domain.clamp
    if f.type is FieldType.INTEGER:
        return lambda i: int(lo + (i * 7) % int(hi - lo + 1))
    return lambda i: lo + (i * 7) % int(hi - lo + 1) + 0.25


def metadata_for(contract: Contract) -> dict[str, str]:
    return {
        "tahub.dataset": contract.dataset,
        "tahub.contract_version": str(contract.version),
        "tahub.key_id": KEY_ID,
        "tahub.connector_version": "0.1.0",
    }


def schema_for(contract: Contract) -> pa.Schema:
    return pa.schema([pa.field(f.name, ARROW_TYPES[f.type]) for f in contract.extract_fields])


def write_extract(
    path: Path,
    contract: Contract,
    rows: list[dict[str, Any]] | None = None,
    *,
    table: pa.Table | None = None,
    metadata: Mapping[str, str | None] | None = None,
    row_group_size: int | None = None,
) -> Path:
    """Write a zstd Parquet extract; ``metadata`` overrides (None drops a key)."""
    if table is None:
        table = pa.Table.from_pylist(
            valid_rows(contract) if rows is None else rows, schema=schema_for(contract)
        )
    meta: dict[str, str] = metadata_for(contract)
    for key, value in (metadata or {}).items():
        if value is None:
            meta.pop(key, None)
        else:
            meta[key] = value
    table = table.replace_schema_metadata(meta)
    pq.write_table(table, path, compression="zstd", row_group_size=row_group_size)
    return path


def write_bomb(path: Path, contract: Contract, rows: int, *, first: int = 0,
               row_group_size: int = 1_000_000) -> Path:
    """A decompression bomb: ``first`` distinct valid rows, then one valid row repeated
    until the file holds ``rows`` rows (zstd: a few bytes per million copies)."""
    schema = schema_for(contract).with_metadata(metadata_for(contract))
    head = pa.Table.from_pylist(valid_rows(contract, first + 1, seed=1), schema=schema)
    chunk = head.slice(first, 1).take(pa.array([0] * min(row_group_size, rows), pa.int64()))
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        if first:
            writer.write_table(head.slice(0, first))
        left = rows - first
        while left > 0:
            writer.write_table(chunk.slice(0, left), row_group_size=row_group_size)
            left -= chunk.num_rows
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

"""Real extract files for the HTTP tests: Parquet as ``tahub-connect`` writes them.

Values are built from the contract itself (tokens of the right shape, codes from each
field's closed domain, numbers inside their bounds), so the files stay valid when a
contract gains a field.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hub.contracts import Contract, ContractField, FieldType, months_between

KEY_ID = "1a2b3c4d"
_ARROW = {
    FieldType.TOKEN: pa.string(),
    FieldType.CATEGORY: pa.string(),
    FieldType.PERIOD: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
    FieldType.CATEGORY_LIST: pa.list_(pa.string()),
}


def _value(field: ContractField, i: int, salt: str) -> Any:
    d = field.domain
    if field.type is FieldType.TOKEN:
        return f"{KEY_ID}.{hashlib.sha256(f'{salt}:{i}'.encode()).hexdigest()}"
    if field.type is FieldType.CATEGORY:
        return field.codes[i % len(field.codes)]
    if field.type is FieldType.CATEGORY_LIST:
        return [field.codes[i % len(field.codes)]]
    if field.type is FieldType.PERIOD:
        assert d is not None and isinstance(d.min, str) and isinstance(d.max, str)
        months = months_between(d.min, d.max)
        return months[i % len(months)]
    assert d is not None and d.min is not None and not isinstance(d.min, str)
    low = d.clamp[0] if d.clamp else d.min
    if field.type is FieldType.INTEGER:
        return int(low) + i % 5
    return float(low) + (i % 7) * 10.5


def write_extract(
    path: Path,
    contract: Contract,
    rows: int,
    *,
    salt: str = "a",
    override: dict[int, dict[str, Any]] | None = None,
) -> Path:
    """A valid extract of ``rows`` rows; ``override`` replaces cells (row index -> values)."""
    fields = contract.extract_fields
    data = []
    for i in range(rows):
        row = {f.name: _value(f, i, salt) for f in fields}
        row.update((override or {}).get(i, {}))
        data.append(row)
    schema = pa.schema([pa.field(f.name, _ARROW[f.type]) for f in fields]).with_metadata(
        {
            "tahub.dataset": contract.dataset,
            "tahub.contract_version": str(contract.version),
            "tahub.key_id": KEY_ID,
            "tahub.connector_version": "test",
        }
    )
    pq.write_table(pa.Table.from_pylist(data, schema=schema), path, compression="zstd")
    return path


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()

"""The extract file format, written by the connector and checked and stored by the hub.

Parquet with exactly the contract's ``extract_fields`` as columns, in order, typed
``token``/``category``/``period`` -> string, ``integer`` -> int64, ``number`` -> float64,
``category_list`` -> list<string>; key-value metadata names the dataset, the contract
version, the network-key generation (``tahub.key_id``) and the connector's version.
"""

from __future__ import annotations

import pyarrow as pa

from hub.contracts.model import Contract, FieldType

__all__ = [
    "ARROW_TYPES",
    "META_CONNECTOR_VERSION",
    "META_CONTRACT_VERSION",
    "META_DATASET",
    "META_KEY_ID",
    "extract_schema",
]

META_DATASET = "tahub.dataset"
META_CONTRACT_VERSION = "tahub.contract_version"
META_KEY_ID = "tahub.key_id"
META_CONNECTOR_VERSION = "tahub.connector_version"

#: The Arrow type of each field type, as the connector writes and the hub stores it.
ARROW_TYPES: dict[FieldType, pa.DataType] = {
    FieldType.TOKEN: pa.string(),
    FieldType.CATEGORY: pa.string(),
    FieldType.PERIOD: pa.string(),
    FieldType.INTEGER: pa.int64(),
    FieldType.NUMBER: pa.float64(),
    FieldType.CATEGORY_LIST: pa.list_(pa.string()),
}


def extract_schema(contract: Contract, metadata: dict[str, str] | None = None) -> pa.Schema:
    """The extract fields of ``contract``, in order, with their Arrow types and ``metadata``."""
    return pa.schema(
        [pa.field(f.name, ARROW_TYPES[f.type]) for f in contract.extract_fields],
        metadata=metadata,
    )

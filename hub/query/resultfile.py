"""A released query result as a table: Arrow, Parquet or CSV (one definition, used by the
hub's download routes and by the Python client's ``QueryResult.to_arrow``).

Columns: the dimensions (strings; null is the *unknown* key), for a ranked query ``rank``,
``rank_low`` and ``rank_high``, then per measure ``<name>``, ``<name>_low`` and
``<name>_high`` (the 95% interval; null for quantiles, which have none) and, for additive
measures, ``<name>_distinguishable`` (the interval excludes zero).
Counts are int64, other measures float64. Each measure column's metadata holds its mechanism,
noise scale and half-width; the schema metadata ``tahub`` holds everything but the cells.
Only released, differentially private values are ever written: a release is already the
output of the mechanisms, so this is post-processing.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["FORMATS", "encode", "result_table"]

FORMATS = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}


def _number_type(values: Sequence[Any]) -> Any:
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    return pa.float64()


def result_table(result: Mapping[str, Any]) -> Any:
    """The cells of ``result`` (the hub's QueryResult JSON) as a ``pyarrow.Table``."""
    import pyarrow as pa  # loaded only when a table is made (the connector imports lazily)

    rows: list[Mapping[str, Any]] = result.get("rows") or []
    fields: list[Any] = []
    arrays: list[Any] = []
    for name in result.get("dimensions") or []:
        fields.append(pa.field(name, pa.string()))
        arrays.append(pa.array([None if row.get(name) is None else str(row.get(name))
                                for row in rows], pa.string()))
    if any(isinstance(row.get("rank"), Mapping) for row in rows):  # a ranked query
        confidence = repr((result.get("top") or {}).get("rank_confidence", ""))
        for column, part in (("rank", "position"), ("rank_low", "low"),
                             ("rank_high", "high")):
            fields.append(pa.field(column, pa.int64(), metadata={"confidence": confidence}))
            arrays.append(pa.array([(row.get("rank") or {}).get(part) for row in rows],
                                   pa.int64()))
    for m in result.get("measures") or []:
        meta = {"mechanism": m.get("mechanism") or "",
                "noise_scale": "" if m.get("noise_scale") is None else repr(m["noise_scale"]),
                "halfwidth_95": "" if m.get("halfwidth_95") is None
                else repr(m["halfwidth_95"])}
        cells = [row.get(m["name"]) for row in rows]
        for suffix, part in (("", "value"), ("_low", "low"), ("_high", "high")):
            values = [c.get(part) if isinstance(c, Mapping) else None for c in cells]
            kind = _number_type(values)
            fields.append(pa.field(m["name"] + suffix, kind, metadata=meta))
            arrays.append(pa.array(values, kind))
        if any(isinstance(c, Mapping) and "distinguishable" in c for c in cells):
            fields.append(pa.field(m["name"] + "_distinguishable", pa.bool_(), metadata={
                "meaning": "the 95% interval excludes zero"}))
            arrays.append(pa.array([c.get("distinguishable") if isinstance(c, Mapping)
                                    else None for c in cells], pa.bool_()))
    described = {k: v for k, v in result.items() if k != "rows"}
    schema = pa.schema(fields, metadata={"tahub": json.dumps(described, default=str)})
    return pa.Table.from_arrays(arrays, schema=schema)


def encode(result: Mapping[str, Any], fmt: str) -> bytes:
    """``result`` as a CSV (with a header) or zstd Parquet file."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = result_table(result)
    buffer = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buffer)
    else:
        pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()

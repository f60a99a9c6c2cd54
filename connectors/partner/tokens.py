"""Identifiers to tokens, each distinct spelling normalised and hashed once.

For each identifier field, the distinct (respelled value, region) pairs of ``__parsed``
go to :class:`~connectors.partner.pseudonymise.Pseudonymiser` in Python; the result is the
table ``__tokens_<field>`` (raw, region, token, reason) that the extract and the problems
join back. Raw values stay in this process's memory and its private DuckDB only. Without a
key (``tahub-connect check``), values are only normalised: the table says which cannot be.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pyarrow as pa

from connectors.partner.convert import ParsedExport, region_column
from connectors.partner.mapping import Mapping
from connectors.partner.pseudonymise import (
    InvalidIdentifier,
    NetworkKey,
    Pseudonymiser,
    normalise,
)
from hub.contracts.model import Contract, FieldType, IdentifierKind
from hub.contracts.validation import quote_ident

__all__ = ["token_tables"]


def _reason(kind: IdentifierKind, value: str, region: str | None, add_plus: bool) -> str | None:
    try:
        normalise(kind, value, default_region=region, add_plus=add_plus)
    except InvalidIdentifier as exc:
        return str(exc)
    return None


def token_tables(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    mapping: Mapping,
    parsed: ParsedExport,
    key: NetworkKey | None,
    progress: Callable[[str], None],
) -> dict[str, str]:
    """field -> ``__tokens_<field>`` for every mapped identifier field (tokens ``NULL``
    when ``key`` is None)."""
    pseudonymiser = Pseudonymiser(key) if key is not None else None
    columns = set(con.table(parsed.table).columns)
    out: dict[str, str] = {}
    for f in contract.extract_fields:
        fm = mapping.fields.get(f.name)
        if f.type is not FieldType.TOKEN or fm is None:
            continue
        assert f.identifier_kind is not None  # noqa: S101 - guaranteed by ContractField
        name = quote_ident(f.name)
        has_region = region_column(f.name) in columns
        region = quote_ident(region_column(f.name)) if has_region else "NULL::VARCHAR"
        pairs = con.sql(
            f"SELECT DISTINCT {name} AS raw, {region} AS region FROM {parsed.table} "
            f"WHERE {name} IS NOT NULL"
        ).to_arrow_table()
        values = pairs.column("raw").to_pylist()
        regions = pairs.column("region").to_pylist() if has_region else None
        progress(f"pseudonymising {len(values):,} distinct {f.name} values")
        if pseudonymiser is not None:
            tokens, reasons = pseudonymiser.pseudonymise(
                f.identifier_kind,
                values,
                default_region=fm.default_region,
                regions=regions,
                add_plus=fm.add_plus,
            )
        else:
            tokens = [None] * len(values)
            kind, plus = f.identifier_kind, fm.add_plus
            reasons = [
                _reason(kind, v, (regions[i] if regions else None) or fm.default_region, plus)
                for i, v in enumerate(values)
            ]
        table = f"__tokens_{f.name}"
        con.register(
            f"{table}__arrow",
            pa.table(
                {
                    "raw": pairs.column("raw"),
                    "region": pairs.column("region").cast(pa.string()),
                    "token": pa.array(tokens, pa.string()),
                    "reason": pa.array(reasons, pa.string()),
                }
            ),
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS SELECT * FROM {table}__arrow"
        )
        con.unregister(f"{table}__arrow")
        out[f.name] = table
    return out

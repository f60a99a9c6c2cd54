"""Identifiers to tokens, each distinct spelling normalised and hashed once.

For each identifier field, the distinct (respelled value, region) pairs of ``__parsed``
go to :class:`~connectors.partner.pseudonymise.Pseudonymiser` in Python; the result is the
table ``__tokens_<field>`` (raw, region, token, reason) that the extract and the problems
join back. Raw values stay in this process's memory and its private DuckDB only. Without a
key (``tahub-connect check``), values are only normalised: the table says which cannot be.

:func:`start_tokens` reads the distinct values and hands the Python work to a worker
thread; :meth:`TokenJob.tables` waits for it and stores the tables. In between, the caller
runs DuckDB's checks of the other fields: hashing holds the GIL, DuckDB's queries release
it, so both cores work (1M rows, 200k distinct IBANs: the ~1.2 s of hashing is hidden).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from connectors.partner.convert import ParsedExport, region_column
from connectors.partner.mapping import FieldMapping, Mapping
from connectors.partner.pseudonymise import (
    InvalidIdentifier,
    NetworkKey,
    Pseudonymiser,
    normalise,
)
from hub.contracts.model import Contract, FieldType, IdentifierKind
from hub.contracts.validation import quote_ident

__all__ = ["TokenJob", "start_tokens"]

_Column = list[str | None]


@dataclass(frozen=True)
class _Field:
    name: str
    kind: IdentifierKind
    mapping: FieldMapping
    pairs: pa.Table  # raw, region


def _reason(kind: IdentifierKind, value: str, region: str | None, add_plus: bool) -> str | None:
    try:
        normalise(kind, value, default_region=region, add_plus=add_plus)
    except InvalidIdentifier as exc:
        return str(exc)
    return None


def _compute(fields: list[_Field], key: NetworkKey | None) -> list[tuple[_Column, _Column]]:
    """(tokens, reasons) of each field's pairs: pure Python, no DuckDB (runs in the worker)."""
    out = []
    for f in fields:
        values = f.pairs.column("raw").to_pylist()
        regions = f.pairs.column("region").to_pylist()
        fm = f.mapping
        if key is not None:
            out.append(
                Pseudonymiser(key).pseudonymise(
                    f.kind, values, default_region=fm.default_region, regions=regions,
                    add_plus=fm.add_plus,
                )
            )
            continue
        reasons = [
            _reason(f.kind, v, regions[i] or fm.default_region, fm.add_plus)
            for i, v in enumerate(values)
        ]
        out.append(([None] * len(values), reasons))
    return out


class TokenJob:
    """Tokens being made in a worker thread; :meth:`tables` waits for them. Used as a context
    manager, the worker is let go when the block fails."""

    def __init__(self, con: duckdb.DuckDBPyConnection, fields: list[_Field],
                 key: NetworkKey | None) -> None:
        self._con, self._fields = con, fields
        self._tables: dict[str, str] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tahub-tokens")
        self._future: Future[list[tuple[_Column, _Column]]] = self._pool.submit(
            _compute, fields, key
        )

    def tables(self) -> dict[str, str]:
        """field -> ``__tokens_<field>`` for every mapped identifier field (tokens ``NULL``
        without a key); the tables are stored once."""
        if self._tables is not None:
            return self._tables
        try:
            results = self._future.result()
        finally:
            self._pool.shutdown()
        out: dict[str, str] = {}
        for f, (tokens, reasons) in zip(self._fields, results, strict=True):
            table = f"__tokens_{f.name}"
            arrow = pa.table({
                "raw": f.pairs.column("raw"),
                "region": f.pairs.column("region").cast(pa.string()),
                "token": pa.array(tokens, pa.string()),
                "reason": pa.array(reasons, pa.string()),
            })  # fmt: skip
            self._con.register(f"{table}__arrow", arrow)
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS "
                f"SELECT * FROM {table}__arrow"
            )
            self._con.unregister(f"{table}__arrow")
            out[f.name] = table
        self._tables = out
        return out

    def __enter__(self) -> TokenJob:
        return self

    def __exit__(self, *exc: object) -> None:
        self._future.cancel()  # a no-op once it has run
        self._pool.shutdown(wait=False)


def start_tokens(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    mapping: Mapping,
    parsed: ParsedExport,
    key: NetworkKey | None,
    progress: Callable[[str], None],
) -> TokenJob:
    """Read each identifier field's distinct values and start tokenising them."""
    columns = set(con.table(parsed.table).columns)
    fields = []
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
        progress(f"pseudonymising {pairs.num_rows:,} distinct {f.name} values")
        fields.append(_Field(f.name, f.identifier_kind, fm, pairs))
    return TokenJob(con, fields, key)

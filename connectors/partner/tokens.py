"""Identifiers to tokens, each distinct spelling normalised and hashed once.

For each identifier field, the distinct (respelled value, region) pairs of ``__parsed``
go to :class:`~connectors.partner.pseudonymise.Pseudonymiser` in Python; the result is the
table ``__tokens_<field>`` (raw, region, token, reason, and ``raw_hash``: DuckDB's
``hash(raw)``) that the extract and the problems join back. Raw values stay in this
process's memory and its private DuckDB only (and in its private temporary folder,
removed when the run ends). Without a key (``tahub-connect check``), values are only
normalised: the table says which cannot be.

:func:`start_tokens` has DuckDB write each field's distinct pairs to a Parquet file in its
temporary folder and hands the Python work to a worker thread; :meth:`TokenJob.tables`
waits for it and loads the tables. The worker reads the pairs ``batch_rows`` at a time and
writes each batch's tokens as it goes, so Python never holds more than one batch of
identifiers, however many distinct ones the export has. In between, the caller runs
DuckDB's checks of the other fields: hashing holds the GIL, DuckDB's queries release it, so
both cores work (1M rows, 200k distinct IBANs: the ~1.2 s of hashing is hidden).
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.partner.convert import ParsedExport, lit, region_column
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
_TOKENS = pa.schema(
    [("raw", pa.string()), ("region", pa.string()), ("token", pa.string()),
     ("reason", pa.string())]
)  # fmt: skip


@dataclass(frozen=True)
class _Field:
    name: str
    kind: IdentifierKind
    mapping: FieldMapping
    pairs: Path  # raw, region: the distinct pairs, written by DuckDB
    tokens: Path  # raw, region, token, reason: written by the worker


def _reason(kind: IdentifierKind, value: str, region: str | None, add_plus: bool) -> str | None:
    try:
        normalise(kind, value, default_region=region, add_plus=add_plus)
    except InvalidIdentifier as exc:
        return str(exc)
    return None


def _tokens(
    f: _Field, key: NetworkKey | None, values: list[str], regions: _Column
) -> tuple[_Column, _Column]:
    fm = f.mapping
    if key is not None:
        return Pseudonymiser(key).pseudonymise(
            f.kind, values, default_region=fm.default_region, regions=regions,
            add_plus=fm.add_plus,
        )
    reasons = [
        _reason(f.kind, v, regions[i] or fm.default_region, fm.add_plus)
        for i, v in enumerate(values)
    ]
    return [None] * len(values), reasons


def _compute(
    fields: list[_Field], key: NetworkKey | None, batch_rows: int, stop: threading.Event
) -> None:
    """Each field's pairs file to its tokens file, one batch at a time: pure Python and
    pyarrow, no DuckDB (runs in the worker; ``stop`` ends it between two batches)."""
    for f in fields:
        written = 0
        with pq.ParquetWriter(f.tokens, _TOKENS, compression="lz4") as writer:
            for batch in pq.ParquetFile(f.pairs).iter_batches(batch_size=batch_rows):
                if stop.is_set():
                    return
                raw = batch.column("raw")
                region = batch.column("region").cast(pa.string())
                tokens, reasons = _tokens(f, key, raw.to_pylist(), region.to_pylist())
                made = [pa.array(tokens, pa.string()), pa.array(reasons, pa.string())]
                writer.write_batch(pa.record_batch([raw, region, *made], schema=_TOKENS))
                written += batch.num_rows
            if not written:
                writer.write_table(_TOKENS.empty_table())  # a readable file without pairs
        f.pairs.unlink(missing_ok=True)


class TokenJob:
    """Tokens being made in a worker thread; :meth:`tables` waits for them. Used as a context
    manager, the worker is let go when the block fails."""

    def __init__(self, con: duckdb.DuckDBPyConnection, fields: list[_Field],
                 key: NetworkKey | None, batch_rows: int) -> None:
        self._con, self._fields = con, fields
        self._tables: dict[str, str] | None = None
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tahub-tokens")
        self._future: Future[None] = self._pool.submit(
            _compute, fields, key, batch_rows, self._stop
        )

    def tables(self) -> dict[str, str]:
        """field -> ``__tokens_<field>`` for every mapped identifier field (tokens ``NULL``
        without a key); the tables are stored once."""
        if self._tables is not None:
            return self._tables
        try:
            self._future.result()
        finally:
            self._pool.shutdown()
        out: dict[str, str] = {}
        for f in self._fields:
            table = f"__tokens_{f.name}"
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS "
                f"SELECT *, hash(raw) AS raw_hash FROM read_parquet({lit(str(f.tokens))})"
            )
            f.tokens.unlink(missing_ok=True)
            out[f.name] = table
        self._tables = out
        return out

    def __enter__(self) -> TokenJob:
        return self

    def __exit__(self, *exc: object) -> None:
        # Stopped after its current batch and waited for, so that it writes nothing into a
        # temporary folder being removed.
        self._stop.set()
        self._future.cancel()  # a no-op once it has started
        self._pool.shutdown(wait=True)


def start_tokens(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    mapping: Mapping,
    parsed: ParsedExport,
    key: NetworkKey | None,
    progress: Callable[[str], None],
    *,
    batch_rows: int = 100_000,
) -> TokenJob:
    """Write each identifier field's distinct values to a file and start tokenising them.

    The files go to a new folder in DuckDB's temporary folder (removed with it).
    """
    columns = set(con.table(parsed.table).columns)
    ((temp,),) = con.execute("SELECT current_setting('temp_directory')").fetchall()
    Path(str(temp)).mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tokens-", dir=str(temp)))
    fields = []
    for i, f in enumerate(contract.extract_fields):
        fm = mapping.fields.get(f.name)
        if f.type is not FieldType.TOKEN or fm is None:
            continue
        assert f.identifier_kind is not None  # noqa: S101 - guaranteed by ContractField
        name = quote_ident(f.name)
        has_region = region_column(f.name) in columns
        region = quote_ident(region_column(f.name)) if has_region else "NULL::VARCHAR"
        pairs, tokens = work / f"pairs{i}.parquet", work / f"tokens{i}.parquet"
        ((distinct,),) = con.execute(
            f"COPY (SELECT DISTINCT {name} AS raw, CAST({region} AS VARCHAR) AS region "
            f"FROM {parsed.table} WHERE {name} IS NOT NULL) TO {lit(str(pairs))} "
            f"(FORMAT parquet, COMPRESSION lz4, ROW_GROUP_SIZE {int(batch_rows)})"
        ).fetchall()
        progress(f"pseudonymising {int(distinct):,} distinct {f.name} values")
        fields.append(_Field(f.name, f.identifier_kind, fm, pairs, tokens))
    return TokenJob(con, fields, key, batch_rows)

"""From a partner's export to a checked, pseudonymised extract file, in one call.

:func:`prepare_extract` runs, in one sandboxed in-memory DuckDB::

    source (CSV / Parquet / Excel / SQL)      connectors.partner.sources, .csvsource
      -> each field parsed as the mapping says connectors.partner.convert (one SQL pass)
      -> every value checked by the contract   connectors.partner.checking (the hub's checks)
      -> normalise + pseudonymise identifiers connectors.partner.tokens (distinct values once)
      -> magnitudes against the contract       connectors.partner.magnitude
      -> zstd Parquet extract + rejects CSV   connectors.partner.extract, .rejects
      -> columns left behind                  connectors.partner.leftovers

A row with any problem (a line that cannot be read, a cell that cannot be parsed, a value
the contract refuses, an identifier that cannot be normalised) is rejected whole and
listed in the rejects CSV with its row, line, field and reason. No extract is written when
every row is rejected, when more than ``max_reject_ratio`` of them are (the mapping's
setting, 5% by default), or when a number field's values lie mostly above the contract's
range (amounts in cents read as euros); the rejects file is still written.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import duckdb
import pyarrow as pa

from connectors.partner.checking import Problems, collect_problems
from connectors.partner.convert import ParsedExport, parse_export, region_column
from connectors.partner.extract import write_extract
from connectors.partner.leftovers import left_behind
from connectors.partner.limits import ConnectorLimits
from connectors.partner.magnitude import MagnitudeWarning, magnitude_warnings
from connectors.partner.mapping import Mapping
from connectors.partner.pseudonymise import NetworkKey
from connectors.partner.rejects import first_rejects, reasons, write_rejects
from connectors.partner.report import PreparedExtract, ReasonCount
from connectors.partner.sources import SourceTable, load_source, open_duckdb
from connectors.partner.tokens import start_tokens
from hub.contracts.model import Contract, ContractRegistry, FieldType
from hub.contracts.validation import ROW_COLUMN, quote_ident
from hub.errors import EmptyExtract, ExtractInvalid, SourceError

__all__ = ["ProgressHook", "extract_sql", "prepare_extract", "read_export"]

#: Called with a short description of each stage ("validating 1,000 rows", ...).
ProgressHook = Callable[[str], None]


def _check_columns(mapping: Mapping, src: SourceTable) -> None:
    missing = [c for c in mapping.mapped_columns() if c not in src.columns]
    if not missing:
        return
    found = ", ".join(src.columns) or "none"
    hints = []
    for name in missing:
        lower = {c.lower().strip(): c for c in src.columns}
        close = lower.get(name.lower().strip()) or next(
            iter(difflib.get_close_matches(name, src.columns, n=1)), None
        )
        if close is not None:
            hints.append(f"{name!r} -> {close!r}?")
    raise SourceError(
        f"{src.path.name}: column(s) {', '.join(map(repr, missing))} named in the mapping "
        f"are not in the export; its columns are: {found}"
        + (f" (did you mean {'; '.join(hints)})" if hints else ""),
        field="column",
    )


def read_export(
    con: duckdb.DuckDBPyConnection,
    source: Path,
    contract: Contract,
    mapping: Mapping,
    progress: ProgressHook,
    limits: ConnectorLimits | None = None,
) -> tuple[SourceTable, ParsedExport]:
    """Load ``source`` and parse every field (``__parsed``); shared by ``check``.

    ``limits``: an export over its ceilings is refused (``TooLarge``) before it is parsed.
    """
    limits = limits or ConnectorLimits()
    limits.check_bytes(source)
    progress(f"reading {source.name}")
    src = load_source(con, source, mapping.source, keep=mapping.mapped_columns())
    _check_columns(mapping, src)
    if src.rows == 0 and not src.bad_lines:
        raise EmptyExtract(f"{source.name} has no data rows", field="source")
    limits.check_rows(source, src.rows + len(src.bad_lines))
    progress(f"parsing {src.rows:,} rows")
    return src, parse_export(con, contract, mapping, src)


def extract_sql(
    contract: Contract,
    parsed: ParsedExport,
    problems: Problems,
    tokens: dict[str, str],
    *,
    rows: tuple[int, int] | None = None,
) -> str:
    """The valid rows of ``__parsed``, identifiers replaced by tokens, in input order.

    ``rows``: only those whose ``__row`` lies in this range (both ends included).
    """
    row = quote_ident(ROW_COLUMN)
    cols, joins = [], []
    for i, f in enumerate(contract.extract_fields):
        name = quote_ident(f.name)
        if f.name in tokens:
            alias = f"t{i}"
            region = region_column(f.name)
            same = (
                f" AND p.{quote_ident(region)} IS NOT DISTINCT FROM {alias}.region"
                if region in parsed.columns
                else ""
            )
            table = quote_ident(tokens[f.name])
            if rows is not None:  # only the range's identifiers: the join holds those, not
                # every distinct identifier of the export (2M at 10M rows: past the memory
                # limit), whatever the size of the export. They are picked by their hash
                # (the join then compares the values): each range reads the whole token
                # table, and comparing 64-bit hashes there costs a third of comparing text
                table = (
                    f"(SELECT * FROM {table} WHERE raw_hash IN (SELECT hash({name}) FROM "
                    f"{parsed.table} WHERE {row} BETWEEN {int(rows[0])} AND {int(rows[1])}))"
                )
            joins.append(f"LEFT JOIN {table} AS {alias} ON p.{name} = {alias}.raw{same}")
            cols.append(f"{alias}.token AS {name}")
        elif f.type is FieldType.INTEGER:
            cols.append(f"CAST(p.{name} AS BIGINT) AS {name}")
        elif f.type is FieldType.TOKEN:
            cols.append(f"CAST(NULL AS VARCHAR) AS {name}")
        else:
            cols.append(f"p.{name}")
    within, ranks = "", "__rank IS NOT NULL"
    if rows is not None:
        within = f"p.{row} BETWEEN {int(rows[0])} AND {int(rows[1])} AND "
        ranks = f"__rank BETWEEN {int(rows[0])} AND {int(rows[1])}"
    return (
        f"SELECT {', '.join(cols)} FROM {parsed.table} AS p {' '.join(joins)} "
        f"WHERE {within}p.{row} NOT IN (SELECT __rank FROM {problems.table} WHERE {ranks}) "
        f"ORDER BY p.{row}"
    )


def _extract_batches(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    parsed: ParsedExport,
    problems: Problems,
    tokens: dict[str, str],
    batch_rows: int,
) -> Generator[pa.RecordBatch, None, None]:
    """The extract's rows in input order, ``batch_rows`` rows of ``__parsed`` at a time.

    Each batch is one query over a range of ``__row`` (DuckDB skips the rest of the table:
    it is stored in row order), joined to the token tables and sorted on its own: what is
    held is one batch, however large the export. (Joining and sorting every row in one
    query needs memory that grows with the export, past DuckDB's limit.)

    The next range's query runs in a worker thread while the caller writes this one (each
    is mostly one thread's work, and both DuckDB and pyarrow's writer release the GIL), so
    two batches are held at most. ``con`` is used by one thread at a time: the caller must
    not use it until this generator is exhausted or closed (closing waits for the query).
    """

    def fetch(low: int) -> pa.Table:
        sql = extract_sql(contract, parsed, problems, tokens, rows=(low, low + batch_rows - 1))
        return con.sql(sql).to_arrow_table()

    lows = range(1, parsed.rows + 1, batch_rows)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tahub-extract") as pool:
        pending = [pool.submit(fetch, low) for low in lows[:1]]
        for low in lows[1:]:
            table = pending.pop().result()
            pending.append(pool.submit(fetch, low))
            yield from table.to_batches()
        for future in pending:
            yield from future.result().to_batches()


def _refusal(
    rows: int, rejected: int, ratio: float, counted: list[ReasonCount], where: str
) -> str:
    top = "; ".join(f"{r.field}: {r.reason} ({r.rows:,})" for r in counted[:3])
    if rejected == rows:
        head = f"every one of the {rows:,} rows was rejected"
    else:
        head = (
            f"{rejected:,} of {rows:,} rows ({rejected / rows:.1%}) were rejected, more than "
            f"the {ratio:.1%} allowed (max_reject_ratio)"
        )
    return (
        f"{head}, so no extract was written and nothing can be uploaded{where}. "
        f"Most rejected for: {top}. The first rejected rows, with their lines:"
    )


def _magnitude_refusal(warnings: list[MagnitudeWarning], where: str) -> str:
    said = "\n".join(f"  - {w}" for w in warnings)
    return (
        f"implausible magnitudes, so no extract was written and nothing can be uploaded{where}:"
        f"\n{said}"
    )


def prepare_extract(
    source: Path,
    mapping: Mapping,
    *,
    key: NetworkKey,
    out_path: Path,
    rejects_path: Path | None = None,
    registry: ContractRegistry | None = None,
    max_reject_ratio: float | None = None,
    progress: ProgressHook | None = None,
    limits: ConnectorLimits | None = None,
) -> PreparedExtract:
    """Read ``source``, check and pseudonymise it, and write the extract to ``out_path``.

    Raises ``SourceError`` (unreadable export, missing column), ``EmptyExtract`` (no data
    rows), ``TooLarge`` (over a ceiling of ``limits``), ``OutOfCapacity`` (more memory than
    ``limits.memory_limit`` even spilling: then neither file is left) or ``ExtractInvalid``
    (every row, or more than ``max_reject_ratio`` of them, rejected, default the mapping's;
    or implausible magnitudes). The rejects file is written in every case where rows were
    read, but for ``OutOfCapacity``. On any error nothing is left at ``out_path``.

    Memory: DuckDB works within ``limits.memory_limit`` and spills the rest to a temporary
    folder (in ``limits.temp_dir``); the extract is written from DuckDB's result one row
    group at a time, the rejects file in batches, identifiers hashed ``limits.batch_rows``
    at a time (see :mod:`connectors.partner.limits`).
    """
    limits = limits or ConnectorLimits()
    ratio = mapping.max_reject_ratio if max_reject_ratio is None else max_reject_ratio
    if not 0.0 <= ratio <= 1.0:
        raise ValueError("max_reject_ratio must lie between 0 and 1")
    report = progress or (lambda _stage: None)
    registry = registry if registry is not None else ContractRegistry.load()
    contract = registry.get(mapping.dataset, mapping.contract_version)
    source = source.resolve()
    out_path = out_path.resolve()
    rejects_path = rejects_path.resolve() if rejects_path is not None else None
    folders = [source if source.is_dir() else source.parent, out_path.parent]
    if rejects_path is not None:
        folders.append(rejects_path.parent)
    for folder in folders[1:]:
        folder.mkdir(parents=True, exist_ok=True)
    wrote: list[Path] = []
    with limits.work_folder() as temp:
        con = open_duckdb(folders, temp_dir=Path(temp), search_path=folders[0], limits=limits)
        try:
            src, parsed = read_export(con, source, contract, mapping, report, limits)
            with start_tokens(
                con, contract, mapping, parsed, key, report, batch_rows=limits.batch_rows
            ) as job:
                report(f"checking {parsed.rows:,} rows against {contract.dataset} "
                       f"v{contract.version}")
                problems = collect_problems(con, contract, parsed, src.bad_lines, job.tables)
            tokens = job.tables()
            rows = parsed.rows + len(src.bad_lines)
            rejected, counted = problems.rejected_rows, reasons(con, problems)
            errors = first_rejects(con, problems, src)
            if rejects_path is not None:
                write_rejects(con, problems, src, rejects_path)
                wrote.append(rejects_path)
            where = f"; see {rejects_path}" if rejects_path is not None else ""
            if rejected == rows or rejected / rows > ratio:
                raise ExtractInvalid(
                    _refusal(rows, rejected, ratio, counted, where),
                    errors=errors,
                    total_errors=problems.total,
                )
            warnings = [
                w for w in magnitude_warnings(con, contract, mapping, parsed) if w.enforced
            ]
            if warnings:
                raise ExtractInvalid(_magnitude_refusal(warnings, where))
            report(f"writing {rows - rejected:,} rows to {out_path.name}")
            with closing(
                _extract_batches(con, contract, parsed, problems, tokens, limits.batch_rows)
            ) as batches:
                written = write_extract(batches, contract, key.key_id, out_path)
            wrote.append(out_path)
            dropped = left_behind(con, contract, mapping, src)
        except duckdb.OutOfMemoryException as exc:  # at any stage: nothing is left written
            for path in wrote:
                path.unlink(missing_ok=True)
            raise limits.out_of_memory(Path(temp).parent) from exc
        finally:
            con.close()
    return PreparedExtract(
        dataset=contract.dataset,
        contract_version=contract.version,
        key_id=key.key_id,
        source=source,
        rows_read=rows,
        rows_valid=rows - rejected,
        rows_rejected=rejected,
        total_errors=problems.total,
        path=written.path,
        size=written.size,
        sha256=written.sha256,
        reasons=counted,
        errors=errors,
        dropped=dropped,
        rejects_path=rejects_path,
        notes=[*src.notes, *parsed.notes],
    )

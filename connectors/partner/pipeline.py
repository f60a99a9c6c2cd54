"""From a partner's export to a checked, pseudonymised extract file, in one call.

:func:`prepare_extract` runs, in one sandboxed in-memory DuckDB::

    source (CSV / Parquet / Excel / SQL)      connectors.partner.sources
      -> map and recode to contract fields    SQL built from the mapping, below
      -> validate every row                   hub.contracts.rowcheck.check_relation(Side.PARTNER)
      -> normalise + pseudonymise identifiers connectors.partner.pseudonymise (distinct values once)
      -> keep only the contract's columns     every other column is dropped (and reported)
      -> zstd Parquet extract + rejects CSV   connectors.partner.extract

A row with any problem is rejected whole and listed in the rejects CSV (row, field,
reason, and the value only for fields that are not identifiers). A run in which every row
is rejected, or more than ``max_reject_ratio`` of them, writes no extract.

SQL text here is built only from identifiers passed through ``quote_ident`` and literals
escaped by ``_lit``.
"""

from __future__ import annotations

import difflib
import os
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from connectors.partner.extract import write_extract
from connectors.partner.mapping import FieldMapping, Mapping
from connectors.partner.pseudonymise import NetworkKey, Pseudonymiser
from connectors.partner.report import DroppedColumn, PreparedExtract, ReasonCount, column_hint
from connectors.partner.sources import SourceTable, load_source, open_duckdb
from hub.contracts.model import Contract, ContractField, ContractRegistry, FieldType, IdentifierKind
from hub.contracts.rowcheck import check_relation, valid_rows_sql, write_rejects
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN, Side, quote_ident
from hub.errors import MAX_LISTED_ERRORS, EmptyExtract, ExtractInvalid, RowError, SourceError

__all__ = ["ProgressHook", "mapped_sql", "prepare_extract"]

#: Called with a short description of each stage ("validating 1,000 rows", ...).
ProgressHook = Callable[[str], None]

_MAPPED, _CHECKED, _FINAL = "__mapped", "__checked", "__final"
_NUMERIC_SOURCE = ("FLOAT", "DOUBLE", "DECIMAL")
_TEMPORAL_SOURCE = ("DATE", "TIMESTAMP")


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _recode(expr: str, fm: FieldMapping) -> str:
    if not fm.recode:
        return expr
    whens = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in fm.recode.items())
    return f"CASE {expr} {whens} ELSE {expr} END"


def _field_expr(f: ContractField, fm: FieldMapping | None, src: SourceTable, decimal: str) -> str:
    """The SQL expression giving contract field ``f`` from the export's columns."""
    if fm is None:
        return "CAST(NULL AS VARCHAR[])" if f.type is FieldType.CATEGORY_LIST else "NULL"
    if fm.constant is not None:
        text = (
            str(int(fm.constant))
            if isinstance(fm.constant, float) and (fm.constant.is_integer())
            else str(fm.constant)
        )
        if f.type is FieldType.CATEGORY_LIST:
            return f"string_split({_lit(text)}, {_lit(fm.separator)})"
        return _lit(text)
    assert fm.column is not None  # noqa: S101 - FieldMapping has a column or a constant
    col = quote_ident(fm.column)
    kind = src.types.get(fm.column, "VARCHAR").upper()
    text = f"CAST({col} AS VARCHAR)"
    if kind.startswith(_NUMERIC_SOURCE):  # 4.477e11 written as 447700900123, not '...0'
        text = (
            f"CASE WHEN {col} = trunc({col}) AND abs({col}) < 1e18 "
            f"THEN CAST(CAST({col} AS HUGEINT) AS VARCHAR) ELSE {text} END"
        )
    if f.type is FieldType.TOKEN:
        return text
    if f.type is FieldType.CATEGORY:
        return _recode(f"trim({text})", fm)
    if f.type is FieldType.CATEGORY_LIST:
        item = _recode("trim(CAST(v AS VARCHAR))", fm)
        if kind.endswith("[]"):
            return f"list_transform({col}, lambda v: {item})"
        return (
            f"CASE WHEN {col} IS NOT NULL THEN "
            f"list_transform(string_split({text}, {_lit(fm.separator)}), lambda v: {item}) END"
        )
    if f.type in (FieldType.INTEGER, FieldType.NUMBER):
        if decimal == "," and kind == "VARCHAR":
            return f"replace(replace(trim({col}), '.', ''), ',', '.')"
        return col
    # period: a month, a date, or a timestamp (from a typed column or as text)
    if kind.startswith(_TEMPORAL_SOURCE):
        return f"strftime({col}, '%Y-%m')"
    # Only text longer than a date ('2024-03-15 10:00') is tried as a timestamp: failed
    # casts are slow, and months and dates are the validator's business.
    return (
        f"CASE WHEN length(trim({text})) > 10 THEN coalesce(strftime(TRY_CAST(trim({text}) "
        f"AS TIMESTAMP), '%Y-%m-%d'), {text}) ELSE {text} END"
    )


def mapped_sql(contract: Contract, mapping: Mapping, src: SourceTable) -> str:
    """``SELECT __row, <one column per extract field>`` over the loaded export."""
    cols = [quote_ident(ROW_COLUMN)]
    for f in contract.extract_fields:
        expr = _field_expr(f, mapping.fields.get(f.name), src, mapping.source.decimal_separator)
        cols.append(f"{expr} AS {quote_ident(f.name)}")
    return f"SELECT {', '.join(cols)} FROM {quote_ident(src.relation)}"


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


# Cheap respelling in DuckDB before the distinct values go to Python: it only drops what
# the kind's normaliser drops anyway (separators, case), so that "GB29 NWBK ..." and
# "gb29nwbk..." are normalised and hashed once instead of once per spelling.
_PRESPELL = {
    IdentifierKind.IBAN: "upper(regexp_replace({v}, '[\\s.-]+', '', 'g'))",
    IdentifierKind.DOCUMENT: "upper(regexp_replace({v}, '[\\s.-]+', '', 'g'))",
    IdentifierKind.PHONE: "regexp_replace({v}, '[\\s().-]+', '', 'g')",
    IdentifierKind.EMAIL: "lower(trim({v}))",
    IdentifierKind.GENERIC: "{v}",
}


def _pseudonymise(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    mapping: Mapping,
    src: SourceTable,
    key: NetworkKey,
    progress: ProgressHook,
) -> None:
    """Replace raw identifiers in the checked rows by tokens; reject unnormalisable ones.

    Each distinct (value, region) is normalised and hashed once, in Python; DuckDB joins
    the tokens back. Raw values stay in this process's memory only.
    """
    pseudonymiser = Pseudonymiser(key)
    problems: list[str] = []
    select = [f"c.{quote_ident(ROW_COLUMN)}"]
    joins: list[str] = []
    by_row = (
        f"JOIN {quote_ident(src.relation)} AS s "
        f"ON s.{quote_ident(ROW_COLUMN)} = c.{quote_ident(ROW_COLUMN)}"
    )
    needs_source = False
    for f in contract.extract_fields:
        col = quote_ident(f.name)
        if f.type is not FieldType.TOKEN:
            select.append(f"c.{col}")
            continue
        assert f.identifier_kind is not None  # noqa: S101 - guaranteed by ContractField
        fm = mapping.fields.get(f.name)
        region, source_join = "NULL::VARCHAR", ""
        if fm is not None and fm.region_column is not None:
            region = f"NULLIF(upper(trim(CAST(s.{quote_ident(fm.region_column)} AS VARCHAR))), '')"
            source_join = by_row
        alias = f"__tokens_{len(joins)}"
        raw = _PRESPELL[f.identifier_kind].format(v=f"c.{col}")
        pairs = con.execute(
            f"SELECT DISTINCT {raw}, {region} FROM {_CHECKED} AS c {source_join} "
            f"WHERE c.{col} IS NOT NULL"
        ).fetchall()
        values = [p[0] for p in pairs]
        regions = [p[1] for p in pairs]
        progress(f"pseudonymising {len(values):,} distinct {f.name} values")
        tokens, reasons = pseudonymiser.pseudonymise(
            f.identifier_kind,
            values,
            default_region=fm.default_region if fm is not None else None,
            regions=regions,
        )
        con.register(
            alias,
            pa.table(
                {
                    "raw": values,
                    "region": pa.array(regions, pa.string()),
                    "token": pa.array(tokens, pa.string()),
                    "reason": pa.array(reasons, pa.string()),
                }
            ),
        )
        same_region = f" AND {alias}.region IS NOT DISTINCT FROM {region}" if source_join else ""
        joins.append(f"LEFT JOIN {alias} ON {raw} = {alias}.raw{same_region}")
        needs_source = needs_source or bool(source_join)
        select.append(f"{alias}.token AS {col}")
        problems.append(
            f"{{'field': {_lit(f.name)}, 'reason': {alias}.reason, 'value': NULL::VARCHAR}}"
        )
    errors = f"c.{ERRORS_COLUMN}"
    if problems:
        added = f"list_filter([{', '.join(problems)}], lambda e: e.reason IS NOT NULL)"
        errors = f"list_concat({errors}, {added})"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_FINAL} AS SELECT {', '.join(select)}, "
        f"{errors} AS {ERRORS_COLUMN} FROM {_CHECKED} AS c {by_row if needs_source else ''} "
        f"{' '.join(joins)}"
    )
    for i in range(len(joins)):
        con.unregister(f"__tokens_{i}")


def _summary(con: duckdb.DuckDBPyConnection) -> tuple[int, int, int, list[ReasonCount]]:
    ((rows, rejected, total),) = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE len({ERRORS_COLUMN}) > 0), "
        f"coalesce(sum(len({ERRORS_COLUMN})), 0) FROM {_FINAL}"
    ).fetchall()
    reasons = con.execute(
        f"SELECT e.field, e.reason, count(*) FROM (SELECT unnest({ERRORS_COLUMN}) AS e "
        f"FROM {_FINAL}) GROUP BY ALL ORDER BY 3 DESC, 1, 2"
    ).fetchall()
    return (
        int(rows),
        int(rejected),
        int(total),
        [ReasonCount(str(f), str(r), int(n)) for f, r, n in reasons],
    )


def _first_errors(con: duckdb.DuckDBPyConnection) -> list[RowError]:
    listed = con.execute(
        f"SELECT {ROW_COLUMN}, e.field, e.reason, e.value FROM (SELECT {ROW_COLUMN}, "
        f"unnest({ERRORS_COLUMN}) AS e, unnest(range(len({ERRORS_COLUMN}))) AS i "
        f"FROM {_FINAL} WHERE len({ERRORS_COLUMN}) > 0) ORDER BY 1, i LIMIT {MAX_LISTED_ERRORS}"
    ).fetchall()
    return [RowError(field=f, reason=r, row=int(n), value=v) for n, f, r, v in listed]


def _dropped(
    con: duckdb.DuckDBPyConnection, mapping: Mapping, src: SourceTable
) -> list[DroppedColumn]:
    used = set(mapping.mapped_columns())
    out = []
    for name in src.columns:
        if name in used:
            continue
        col = quote_ident(name)
        sample = con.execute(
            f"SELECT CAST({col} AS VARCHAR) FROM {quote_ident(src.relation)} "
            f"WHERE {col} IS NOT NULL LIMIT 200"
        ).fetchall()
        out.append(DroppedColumn(name, column_hint(name, [str(v[0]) for v in sample])))
    return out


def _write_rejects(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    try:
        write_rejects(con, temp, table=_FINAL)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def prepare_extract(
    source: Path,
    mapping: Mapping,
    *,
    key: NetworkKey,
    out_path: Path,
    rejects_path: Path | None = None,
    registry: ContractRegistry | None = None,
    max_reject_ratio: float = 1.0,
    progress: ProgressHook | None = None,
) -> PreparedExtract:
    """Read ``source``, check and pseudonymise it, and write the extract to ``out_path``.

    Raises ``SourceError`` (unreadable export, missing column), ``EmptyExtract`` (no data
    rows) or ``ExtractInvalid`` (every row, or more than ``max_reject_ratio`` of them,
    rejected; the rejects file is still written so that the partner can fix them). On any
    error nothing is left at ``out_path``.
    """
    if not 0.0 <= max_reject_ratio <= 1.0:
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
    with tempfile.TemporaryDirectory(prefix="tahub-connect-") as temp:
        con = open_duckdb(folders, temp_dir=Path(temp), search_path=folders[0])
        try:
            report(f"reading {source.name}")
            src = load_source(con, source, mapping.source)
            _check_columns(mapping, src)
            if src.rows == 0:
                raise EmptyExtract(f"{source.name} has no data rows", field="source")
            report(f"validating {src.rows:,} rows against {contract.dataset} v{contract.version}")
            con.execute(f"CREATE TEMP VIEW {_MAPPED} AS {mapped_sql(contract, mapping, src)}")
            check_relation(con, contract, _MAPPED, Side.PARTNER, table=_CHECKED)
            _pseudonymise(con, contract, mapping, src, key, report)
            rows, rejected, total, reasons = _summary(con)
            errors = _first_errors(con)
            if rejects_path is not None:
                _write_rejects(con, rejects_path)
            where = f"; see {rejects_path}" if rejects_path is not None else ""
            if rejected == rows:
                raise ExtractInvalid(
                    f"every one of the {rows:,} rows was rejected, so no extract was "
                    f"written{where}",
                    errors=errors,
                    total_errors=total,
                )
            if rejected / rows > max_reject_ratio:
                raise ExtractInvalid(
                    f"{rejected:,} of {rows:,} rows ({rejected / rows:.1%}) were rejected, more "
                    f"than the {max_reject_ratio:.1%} allowed, so no extract was written{where}",
                    errors=errors,
                    total_errors=total,
                )
            report(f"writing {rows - rejected:,} rows to {out_path.name}")
            table = con.sql(valid_rows_sql(contract, _FINAL)).to_arrow_table()
            written = write_extract(table, contract, key.key_id, out_path)
            dropped = _dropped(con, mapping, src)
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
        total_errors=total,
        path=written.path,
        size=written.size,
        sha256=written.sha256,
        reasons=reasons,
        errors=errors,
        dropped=dropped,
        rejects_path=rejects_path,
    )

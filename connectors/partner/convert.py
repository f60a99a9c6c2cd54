"""From the export's cells to contract values: each field's parser, compiled to one SQL pass.

:func:`parse_export` materialises ``__parsed``: ``__row``, one column per extract field
holding the value the validator will check (``VARCHAR`` codes, months and raw identifiers,
``DOUBLE`` numbers, ``VARCHAR[]`` lists), and, per field that can fail to parse, a column
``__p_<field>`` that is ``NULL`` or ``{reason, value}``: the reason the cell could not be
read, with the cell's text. How each type is read:

* **text of any cell**: trimmed; empty, or one of the field's ``unknown`` values (compared
  ignoring case), is unknown (``NULL``); ``columns:`` are joined first (``join``, a space);
* **categories**: the distinct values are looked up once, in Python (:mod:`recode`):
  ``recode``, then the contract's own codes, both compared after ``fold``; the lookup is
  written back as a ``CASE`` (or a join, for many values);
* **numbers**: thousands separators dropped (their groups must have three digits), the
  decimal mark made a point, then cast; ``minor_units`` divides by the currency's minor
  unit, ``rates`` converts each row's currency to the contract's unit;
* **periods**: ``formats`` (strptime, tried in order), else ISO (``YYYY-MM``, a date, a
  timestamp, with or without offset); times of day written in ``timezone`` are converted to
  UTC before the month is taken (``month_in: local`` keeps the local month); a date without
  a time keeps its own month;
* **identifiers**: respelled cheaply (spaces, case) so that each spelling is normalised and
  hashed once (:mod:`connectors.partner.tokens`).

SQL text here is built only from identifiers passed through ``quote_ident`` and literals
escaped by ``lit``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from connectors.partner.fieldmapping import CATEGORY_TYPES, NUMBER_TYPES, FieldMapping, MonthIn
from connectors.partner.mapping import Mapping
from connectors.partner.rates import minor_digits
from connectors.partner.recode import CategoryLookup
from connectors.partner.sources import SourceTable
from hub.contracts.model import Contract, ContractField, FieldType, IdentifierKind
from hub.contracts.validation import ROW_COLUMN, quote_ident

__all__ = ["PARSED", "ParsedExport", "lit", "parse_export", "problem_column", "region_column"]

PARSED = "__parsed"
_NUMERIC_SOURCE = (
    "FLOAT", "DOUBLE", "DECIMAL", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
    "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT",
)  # fmt: skip
_CASE_LIMIT = 64  # more distinct values than this: a join instead of a CASE


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def problem_column(name: str) -> str:
    return f"__p_{name}"


def region_column(name: str) -> str:
    return f"__region_{name}"


@dataclass(frozen=True)
class ParsedExport:
    """``__parsed`` in DuckDB, and what the report says about how fields were read."""

    table: str
    rows: int
    columns: tuple[str, ...]
    parse_fields: tuple[str, ...]  # fields with a ``__p_<field>`` column
    notes: list[str] = field(default_factory=list)


@dataclass
class _Sql:
    """One field in the three stages of the pass: its cells, what they parse to, and its
    final value and problem. ``__s``, ``__n``, ``__c``, ``__t`` and ``__v`` name its own
    helper columns; :func:`parse_export` gives them the field's prefix."""

    cells: list[str] = field(default_factory=list)
    parsed: list[str] = field(default_factory=list)
    value: str = "NULL"
    problem: str = "NULL"


# -- cell text ------------------------------------------------------------------------------
def _col(name: str) -> str:
    """A column of the export (``s``, the source, in the pass's first SELECT)."""
    return f"s.{quote_ident(name)}"


def _as_text(col: str, kind: str) -> str:
    """A cell as text; whole floats (4.477e11 phone numbers) written without '.0'."""
    text = f"CAST({col} AS VARCHAR)"
    if kind.startswith(("FLOAT", "DOUBLE", "DECIMAL")):
        return (
            f"CASE WHEN {col} = trunc({col}) AND abs({col}) < 1e18 "
            f"THEN CAST(CAST({col} AS HUGEINT) AS VARCHAR) ELSE {text} END"
        )
    return text


def _unknown(expr: str, fm: FieldMapping) -> str:
    """``expr`` (trimmed text) with the field's 'unknown' values made NULL."""
    markers = sorted({u.strip().lower() for u in fm.unknown if u.strip()})
    if not markers:
        return expr
    listed = ", ".join(lit(m) for m in markers)
    return f"CASE WHEN lower({expr}) IN ({listed}) THEN NULL ELSE {expr} END"


def _cell(fm: FieldMapping, src: SourceTable) -> str:
    """The trimmed text of the field's column(s), NULL when empty or unknown."""
    if fm.columns is not None:
        parts = [
            f"NULLIF(trim({_as_text(_col(c), src.types.get(c, 'VARCHAR'))}), '')"
            for c in fm.columns
        ]
        joined = f"NULLIF(trim(concat_ws({lit(fm.join)}, {', '.join(parts)})), '')"
    else:
        assert fm.column is not None  # noqa: S101 - FieldMapping has column(s) or a constant
        kind = src.types.get(fm.column, "VARCHAR").upper()
        joined = f"NULLIF(trim({_as_text(_col(fm.column), kind)}), '')"
    return _unknown(joined, fm)


# -- numbers ----------------------------------------------------------------------------------
def _char_class(chars: str) -> str:
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in chars) + "]"


def _number(fm: FieldMapping, src: SourceTable, decimal_default: str) -> _Sql:
    """The cell (``__s``) and the number it holds (``__n``), before units; ``problem`` is the
    reason a cell that is not a number is rejected for (a SQL expression)."""
    if fm.column is not None and fm.columns is None and not fm.unknown:
        kind = src.types.get(fm.column, "VARCHAR").upper()
        if kind.startswith(_NUMERIC_SOURCE):  # a typed column: nothing to parse
            col = _col(fm.column)
            return _Sql(
                cells=[f"{_as_text(col, kind)} AS __s", f"CAST({col} AS DOUBLE) AS __t"],
                parsed=["__t AS __n"],
                problem="'not a number'",
            )
    s = "__s"
    decimal = fm.decimal_mark(decimal_default)
    marks = fm.thousands_marks(decimal)
    cleaned = s
    if marks:
        cleaned = f"regexp_replace({s}, {lit(_char_class(marks))}, '', 'g')"
    if decimal == ",":
        cleaned = f"replace({cleaned}, ',', '.')"
    value = f"TRY_CAST({cleaned} AS DOUBLE)"
    reason = "'not a number'"
    if marks or decimal != ".":
        said = f"decimal {decimal!r}" + (
            f", thousands {', '.join(repr(m) for m in fm.thousands or ['.'])}" if marks else ""
        )
        reason = lit(f"not a number ({said})")
    if marks:
        dec = "\\" + decimal
        grouped = f"[+-]?\\d{{1,3}}({_char_class(marks)}\\d{{3}})+({dec}\\d+)?"
        bad_groups = (
            f"regexp_matches({s}, {lit(_char_class(marks))}) "
            f"AND NOT regexp_full_match({s}, {lit(grouped)})"
        )
        value = f"CASE WHEN {bad_groups} THEN NULL ELSE {value} END"
        reason = (
            f"CASE WHEN {bad_groups} THEN 'digits between thousands separators are not in "
            f"groups of three' ELSE {reason} END"
        )
    return _Sql(cells=[f"{_cell(fm, src)} AS __s"], parsed=[f"{value} AS __n"], problem=reason)


def _amount(fm: FieldMapping, f: ContractField, src: SourceTable, decimal_default: str) -> _Sql:
    """A number field: the cell, the number it holds, then units applied."""
    sql = _number(fm, src, decimal_default)
    reason = sql.problem
    sql.value = "__n"
    sql.problem = (
        f"CASE WHEN __s IS NOT NULL AND __n IS NULL THEN {{'reason': {reason}, 'value': __s}} END"
    )
    if fm.currency_column is not None:
        assert fm.rates is not None  # noqa: S101 - FieldMapping requires rates
        cur = f"upper(trim(CAST({_col(fm.currency_column)} AS VARCHAR)))"
        sql.cells.append(f"NULLIF({cur}, '') AS __c")
        rates = fm.rates.per_unit
        factor = " ".join(
            f"WHEN {lit(code)} THEN {rate * (10 ** minor_digits(code) if fm.minor_units else 1)!r}"
            for code, rate in sorted(rates.items())
        )
        sql.value = f"__n / CASE __c {factor} END"
        sql.problem = (
            f"CASE WHEN __s IS NOT NULL AND __n IS NULL THEN {{'reason': {reason}, 'value': __s}} "
            "WHEN __s IS NOT NULL AND __c IS NULL THEN {'reason': 'no currency', 'value': NULL} "
            f"WHEN __s IS NOT NULL AND NOT list_contains({_codes(sorted(rates))}, __c) THEN "
            f"{{'reason': 'no rate for this currency in ' || {lit(fm.rates.file)}, "
            "'value': left(__c, 12)} END"
        )
    else:
        divisor = 1.0
        if fm.minor_units and fm.unit is not None:
            divisor *= 10 ** minor_digits(fm.unit)
        if fm.rates is not None and fm.unit is not None:
            divisor *= fm.rates.per_unit[fm.unit]
        if divisor != 1.0:
            sql.value = f"__n / {divisor!r}"
    if f.type is FieldType.INTEGER and sql.value != "__n":
        sql.value = f"round({sql.value}, 9)"  # 1234 cents / 100 stays a whole number
    return sql


def _codes(codes: list[str]) -> str:
    return "[" + ", ".join(lit(c) for c in codes) + "]"


# -- periods ----------------------------------------------------------------------------------
_OFFSET_RE = r"(Z|[+-]\d{2}(:?\d{2})?)$"


def _month(ts: str, fm: FieldMapping, *, zoned: bool) -> str:
    """The 'YYYY-MM' of timestamp expression ``ts`` under the field's time-zone rule."""
    rule = fm.month_rule()
    if zoned:  # a TIMESTAMPTZ: an instant
        if rule is MonthIn.LOCAL:
            return f"strftime(timezone({lit(fm.timezone or 'UTC')}, {ts}), '%Y-%m')"
        return f"strftime(timezone('UTC', {ts}), '%Y-%m')"
    if rule is MonthIn.UTC:  # local wall-clock time -> the instant -> its UTC month
        return f"strftime(timezone('UTC', timezone({lit(fm.timezone or 'UTC')}, {ts})), '%Y-%m')"
    return f"strftime({ts}, '%Y-%m')"


def _iso_period(s: str, fm: FieldMapping) -> str:
    timestamp = (
        f"CASE WHEN regexp_matches({s}, {lit(_OFFSET_RE)}) "
        f"THEN {_month(f'TRY_CAST({s} AS TIMESTAMPTZ)', fm, zoned=True)} "
        f"ELSE {_month(f'TRY_CAST({s} AS TIMESTAMP)', fm, zoned=False)} END"
    )
    return (
        f"CASE WHEN regexp_full_match({s}, '\\d{{4}}-\\d{{2}}') THEN {s} "
        f"WHEN length({s}) <= 10 THEN strftime(TRY_CAST({s} AS DATE), '%Y-%m') "
        f"ELSE {timestamp} END"
    )


def _period(fm: FieldMapping, src: SourceTable) -> _Sql:
    """A period field: the cell, then its month by the field's formats and time-zone rule."""
    if fm.column is not None and fm.columns is None:
        kind = src.types.get(fm.column, "VARCHAR").upper()
        col = _col(fm.column)
        if kind == "DATE":
            return _Sql(cells=[f"strftime({col}, '%Y-%m') AS __v"], value="__v")
        if kind.startswith("TIMESTAMP WITH TIME ZONE") or kind == "TIMESTAMPTZ":
            return _Sql(cells=[f"{_month(col, fm, zoned=True)} AS __v"], value="__v")
        if kind.startswith("TIMESTAMP"):
            return _Sql(cells=[f"{_month(col, fm, zoned=False)} AS __v"], value="__v")
    tries = []
    timed, untimed = fm.timed_formats()
    zoned = any("%z" in f for f in fm.formats)
    if timed:
        tries.append(_month(f"try_strptime(__s, {_codes(timed)})", fm, zoned=zoned))
    if untimed:
        tries.append(f"strftime(try_strptime(__s, {_codes(untimed)}), '%Y-%m')")
    tries.append(_iso_period("__s", fm))
    month = tries[0] if len(tries) == 1 else f"coalesce({', '.join(tries)})"
    if fm.formats:
        shown = ", ".join(fm.formats)
        reason = lit(f"not a date in the format{'s' if len(fm.formats) > 1 else ''} {shown}")
    else:
        reason = "'not a month (''YYYY-MM'') or a date'"
    return _Sql(
        cells=[f"{_cell(fm, src)} AS __s"],
        parsed=[f"{month} AS __v"],
        value="__v",
        problem=(
            f"CASE WHEN __s IS NOT NULL AND __v IS NULL "
            f"THEN {{'reason': {reason}, 'value': __s}} END"
        ),
    )


# -- identifiers --------------------------------------------------------------------------------
# Cheap respelling in DuckDB before the distinct values go to Python: it only drops what
# the kind's normaliser drops anyway (separators, case), so that "GB29 NWBK ..." and
# "gb29nwbk..." are normalised and hashed once instead of once per spelling. The common
# spellings take a fast path (no regular expression).
_PRESPELL = {
    IdentifierKind.IBAN: (
        "CASE WHEN regexp_full_match(__s, '[0-9A-Za-z ]*') THEN upper(replace(__s, ' ', '')) "
        "ELSE upper(regexp_replace(__s, '[\\s.-]+', '', 'g')) END"
    ),
    IdentifierKind.PHONE: (
        "CASE WHEN regexp_full_match(__s, '[0-9+ ]*') THEN replace(__s, ' ', '') "
        "ELSE regexp_replace(__s, '[\\s().-]+', '', 'g') END"
    ),
    IdentifierKind.EMAIL: "lower(__s)",
    IdentifierKind.GENERIC: "__s",
}
_PRESPELL[IdentifierKind.DOCUMENT] = _PRESPELL[IdentifierKind.IBAN]


def _identifier(f: ContractField, fm: FieldMapping, src: SourceTable) -> _Sql:
    """An identifier field: the cell, respelled (the token comes later, from Python)."""
    assert f.identifier_kind is not None  # noqa: S101 - guaranteed by ContractField
    value = _PRESPELL[f.identifier_kind]
    # only an empty cell is missing: a cell of separators alone (" - . ") stays as written,
    # so that normalising it rejects it for what it is ("empty", "not an IBAN"), not as
    # "required". The cell is already trimmed, and NULL when empty (``_cell``): testing or
    # trimming it again here doubled the cost of this column.
    return _Sql(
        cells=[f"{_cell(fm, src)} AS __s"],
        parsed=[f"coalesce(NULLIF({value}, ''), __s) AS __v"],
        value="__v",
    )


# -- categories -------------------------------------------------------------------------------
def _case(expr: str, table: dict[str, str | None]) -> str:
    whens = " ".join(
        f"WHEN {lit(k)} THEN {lit(v) if v is not None else 'NULL'}" for k, v in table.items()
    )
    return f"CASE {expr} {whens} ELSE {expr} END" if whens else expr


def _distinct(con: duckdb.DuckDBPyConnection, expr: str, src: SourceTable) -> list[str]:
    rows = con.execute(
        f"SELECT DISTINCT v FROM (SELECT {expr} AS v FROM {quote_ident(src.relation)} AS s) "
        "WHERE v IS NOT NULL"
    ).fetchall()
    return [str(r[0]) for r in rows]


def _category(
    con: duckdb.DuckDBPyConnection,
    f: ContractField,
    fm: FieldMapping,
    src: SourceTable,
    joins: list[str],
) -> str:
    """The SQL value of a category field: trimmed, then looked up when the mapping says so."""
    cell = _cell(fm, src)
    lookup = CategoryLookup(f, fm)
    if f.type is FieldType.CATEGORY_LIST:
        kind = src.types.get(fm.column or "", "VARCHAR").upper()
        if kind.endswith("[]") and fm.column is not None:
            items = f"list_transform({_col(fm.column)}, lambda x: trim(CAST(x AS VARCHAR)))"
        else:
            items = f"list_transform(string_split({cell}, {lit(fm.separator)}), lambda x: trim(x))"
        if lookup.active:
            distinct = _distinct(con, f"unnest({items})", src)
            table = lookup.table(distinct)
            items = f"list_transform({items}, lambda x: {_case('x', table)})"
        kept = f"list_filter({items}, lambda x: x IS NOT NULL AND x <> '')"
        return f"CASE WHEN len({kept}) > 0 THEN {kept} END"
    if not lookup.active:
        return cell
    table = lookup.table(_distinct(con, cell, src))
    if len(table) <= _CASE_LIMIT:
        return _case(cell, table)
    name = f"__lookup_{f.name}"
    con.register(
        f"{name}__arrow",
        pa.table({"raw": list(table), "code": pa.array(list(table.values()), pa.string())}),
    )
    con.execute(f"CREATE OR REPLACE TEMP TABLE {quote_ident(name)} AS SELECT * FROM {name}__arrow")
    con.unregister(f"{name}__arrow")
    alias = f"__l{len(joins)}"
    joins.append(f"LEFT JOIN {quote_ident(name)} AS {alias} ON {alias}.raw = {cell}")
    return f"CASE WHEN {alias}.raw IS NOT NULL THEN {alias}.code ELSE {cell} END"


def _constant(f: ContractField, fm: FieldMapping) -> str:
    text = (
        str(int(fm.constant))
        if isinstance(fm.constant, float) and fm.constant.is_integer()
        else str(fm.constant)
    )
    if f.type is FieldType.CATEGORY_LIST:
        return f"string_split({lit(text)}, {lit(fm.separator)})"
    if f.type in NUMBER_TYPES:
        return f"TRY_CAST({lit(text)} AS DOUBLE)"
    if f.type is FieldType.PERIOD:
        return _iso_period(lit(text), fm)
    return lit(text)


# -- the pass -----------------------------------------------------------------------------------
def _empty(f: ContractField) -> str:
    if f.type is FieldType.CATEGORY_LIST:
        return "CAST(NULL AS VARCHAR[])"
    return "CAST(NULL AS DOUBLE)" if f.type in NUMBER_TYPES else "CAST(NULL AS VARCHAR)"


def _describe(f: ContractField, fm: FieldMapping, decimal_default: str) -> str | None:
    """A sentence for the report when a field is read with options worth repeating."""
    said = []
    if f.type in NUMBER_TYPES and fm.constant is None:
        decimal = fm.decimal_mark(decimal_default)
        marks = fm.thousands_marks(decimal)
        if decimal != "." or marks:
            said.append(
                f"decimal {decimal!r}"
                + (f", thousands {', '.join(map(repr, fm.thousands or ['.']))}" if marks else "")
            )
        if fm.minor_units:
            said.append("in minor units (cents)")
        if fm.currency_column is not None and fm.rates is not None:
            said.append(
                f"currency from column {fm.currency_column}, converted to {f.unit} at the rates "
                f"of {fm.rates.date.isoformat()} ({fm.rates.file})"
            )
        elif fm.unit is not None and fm.unit != f.unit and fm.rates is not None:
            rate = fm.rates.per_unit[fm.unit]
            said.append(
                f"{fm.unit} converted to {f.unit} at {rate:g} {fm.unit} per {f.unit} "
                f"({fm.rates.date.isoformat()}, {fm.rates.file})"
            )
    if f.type is FieldType.PERIOD and fm.constant is None:
        if fm.formats:
            said.append(f"formats {', '.join(fm.formats)}")
        if fm.timezone is not None:
            rule = fm.month_rule()
            said.append(
                f"times in {fm.timezone}, month taken "
                + ("in UTC" if rule is MonthIn.UTC else "in local time")
            )
    if f.type in CATEGORY_TYPES and (fm.fold or fm.recode):
        if fm.fold:
            said.append(f"codes matched ignoring {', '.join(fm.fold)}")
        if fm.recode:
            said.append(f"{len(fm.recode)} spelling(s) recoded")
    if fm.unknown:
        said.append(f"unknown: {', '.join(map(repr, fm.unknown))}")
    if fm.columns is not None:
        said.append(f"joined from {', '.join(fm.columns)}")
    return f"{f.name}: " + "; ".join(said) if said else None


def parse_export(
    con: duckdb.DuckDBPyConnection, contract: Contract, mapping: Mapping, src: SourceTable
) -> ParsedExport:
    """Materialise ``__parsed`` (see the module docstring) in one pass over the export.

    Three nested SELECTs: the cells (and category lookups, identifiers), the numbers and
    months they hold, then each field's value (units applied) and parse problem.
    """
    decimal_default = mapping.source.decimal_separator
    cells = [f"s.{quote_ident(ROW_COLUMN)} AS {quote_ident(ROW_COLUMN)}"]
    parsed: list[str] = []
    final = [quote_ident(ROW_COLUMN)]
    joins: list[str] = []
    parse_fields: list[str] = []
    notes: list[str] = []
    for f in contract.extract_fields:
        fm = mapping.fields.get(f.name)
        name = quote_ident(f.name)
        if fm is None or fm.constant is not None:
            cells.append(f"{_empty(f) if fm is None else _constant(f, fm)} AS {name}")
            final.append(name)
            continue
        note = _describe(f, fm, decimal_default)
        if note:
            notes.append(note)
        if f.type in NUMBER_TYPES or f.type in (FieldType.PERIOD, FieldType.TOKEN):
            if f.type in NUMBER_TYPES:
                sql = _amount(fm, f, src, decimal_default)
            elif f.type is FieldType.PERIOD:
                sql = _period(fm, src)
            else:
                sql = _identifier(f, fm, src)
            prefix = f"__{len(cells)}"

            def own(text: str, prefix: str = prefix) -> str:
                return re.sub(r"\b__([sncvt])\b", lambda m: f"{prefix}{m.group(1)}", text)

            cells += [own(x) for x in sql.cells]
            parsed += [own(x) for x in sql.parsed]
            final.append(f"{own(sql.value)} AS {name}")
            if f.type is not FieldType.TOKEN:
                final.append(f"{own(sql.problem)} AS {quote_ident(problem_column(f.name))}")
                parse_fields.append(f.name)
            if f.type is FieldType.TOKEN and fm.region_column is not None:
                region = quote_ident(region_column(f.name))
                cells.append(
                    f"NULLIF(upper(trim(CAST({_col(fm.region_column)} AS VARCHAR))), '') "
                    f"AS {region}"
                )
                final.append(region)
        else:
            assert f.type in CATEGORY_TYPES  # noqa: S101 - every other type is handled above
            cells.append(f"{_category(con, f, fm, src, joins)} AS {name}")
            final.append(name)
    stage1 = f"SELECT {', '.join(cells)} FROM {quote_ident(src.relation)} AS s {' '.join(joins)}"
    stage2 = f"SELECT *{''.join(', ' + p for p in parsed)} FROM ({stage1})"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {PARSED} AS SELECT {', '.join(final)} FROM ({stage2})"
    )
    ((rows,),) = con.execute(f"SELECT count(*) FROM {PARSED}").fetchall()
    columns = tuple(con.table(PARSED).columns)
    return ParsedExport(PARSED, int(rows), columns, tuple(parse_fields), notes)

"""Every row checked against the contract, with the hub's own checks, in two passes.

The contract's checks (``hub.contracts.validation``, partner side) are the same the hub
runs again on upload. Each field's reason depends on that field's value alone, so the
connector runs the hub's validating query over each category, list and period field's
*distinct* values (the other fields set to values the contract accepts) instead of over
every row: a million alerts hold a dozen countries and a few hundred months, and list
lookups against a 249-code domain are paid a dozen times instead of a million. One pass
over ``__parsed`` collects all those fields' distinct values (a grouping set each), and
one run of the query checks them. Numbers and identifiers have about as many distinct
values as rows and cheap checks: they are checked row by row, in one more run of the same
query (the other fields again set to accepted values). ``tests/connectors/test_checking.py``
holds that the verdicts are those of the row-by-row query over every field.

:func:`collect_problems` then gathers, in ``__problems``, one line per problem: ``__order``
(file order), ``__rank`` (the ``__row`` of ``__parsed``; NULL for a line that is not a
row), ``__row`` and ``__line`` (known only for lines that are not rows), ``__i`` (field
order), ``field``, ``reason`` and ``value``, for

* the lines that could not be read as rows (ragged, bad bytes), with their line;
* cells that could not be parsed (``__p_<field>`` of :mod:`connectors.partner.convert`);
* values the contract refuses (a parse problem, when there is one, stands for its field);
* identifiers that cannot be normalised (:mod:`connectors.partner.tokens`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from connectors.partner.convert import ParsedExport, lit, problem_column, region_column
from connectors.partner.csvsource import BadLine
from hub.contracts.model import Contract, ContractField, FieldType
from hub.contracts.validation import (
    ERRORS_COLUMN,
    ROW_COLUMN,
    Side,
    no_identity_reason,
    quote_ident,
    validation_sql,
)

__all__ = ["PROBLEMS", "Problems", "collect_problems", "invalid_values"]

PROBLEMS = "__problems"
_SCHEMA = pa.schema(
    [
        ("__order", pa.float64()),
        ("__rank", pa.int64()),
        (ROW_COLUMN, pa.int64()),
        ("__line", pa.int64()),
        ("__i", pa.int64()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("value", pa.string()),
    ]
)


@dataclass(frozen=True)
class Problems:
    """How many rows ``__problems`` rejects, and how many problems it holds."""

    table: str
    rejected_rows: int
    total: int


def _accepted(f: ContractField) -> str:
    """A value of ``f`` the contract's checks accept (stands in for the other fields)."""
    if f.type is FieldType.TOKEN:
        return "'x'"
    if f.type is FieldType.CATEGORY:
        return lit(f.codes[0])
    if f.type is FieldType.CATEGORY_LIST:
        return f"[{lit(f.codes[0])}]"
    assert f.domain is not None  # noqa: S101 - guaranteed by ContractField
    if f.type is FieldType.PERIOD:
        return lit(str(f.domain.min))
    return f"CAST({f.domain.min!r} AS DOUBLE)"


_BY_ROW = (FieldType.TOKEN, FieldType.NUMBER, FieldType.INTEGER)


def _by_row(f: ContractField) -> bool:
    """Whether ``f`` is checked row by row: numbers and identifiers have about as many
    distinct values as rows (and cheap checks), so collecting those first gains nothing."""
    return f.type in _BY_ROW


def _only(contract: Contract, keep: list[ContractField]) -> Contract:
    """``contract`` restricted to ``keep`` (and its privacy unit, which its rule needs).

    Each field's reason in the hub's query depends on that field's value alone, so the
    query of the restricted contract gives those fields' verdicts, without building and
    filtering the other fields' (accepted) problems on every row. A copy, not validated
    again: it is only compiled to SQL here."""
    names = {f.name for f in keep} | {contract.privacy_unit.name}
    return contract.model_copy(update={"fields": [f for f in contract.fields if f.name in names]})


def _grouping_id(fields: list[ContractField], i: int) -> int:
    """``GROUPING_ID`` over ``fields`` of the grouping set that holds field ``i`` alone."""
    k = len(fields)
    return (1 << k) - 1 - (1 << (k - 1 - i))


def invalid_values(
    con: duckdb.DuckDBPyConnection, contract: Contract, parsed: ParsedExport
) -> dict[str, str]:
    """``__bad_<field>`` (v, reason, value): each field's values the contract refuses, for
    the fields checked on their distinct values (categories, lists, periods) that have any.

    One pass over ``__parsed`` collects every such field's distinct values (one grouping
    set each), and one run of the hub's query checks them all, each field's values beside
    values of the other fields that the contract accepts.
    """
    fields = [f for f in contract.extract_fields if not _by_row(f)]
    if not fields:
        return {}
    names = [quote_ident(f.name) for f in fields]
    row = quote_ident(ROW_COLUMN)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __distinct AS SELECT row_number() OVER () AS {row}, "
        f"GROUPING_ID({', '.join(names)}) AS __g, {', '.join(names)} FROM {parsed.table} "
        f"GROUP BY GROUPING SETS ({', '.join(f'({n})' for n in names)})"
    )
    ids = {f.name: _grouping_id(fields, i) for i, f in enumerate(fields)}
    checked = _only(contract, fields)
    columns = [row]
    for g in checked.extract_fields:
        name = quote_ident(g.name)
        if g.name in ids:
            columns.append(f"CASE WHEN __g = {ids[g.name]} THEN {name} ELSE {_accepted(g)} END "
                           f"AS {name}")
        else:
            columns.append(f"{_accepted(g)} AS {name}")
    relation = f"(SELECT {', '.join(columns)} FROM __distinct)"
    own = " ".join(f"WHEN {ids[f.name]} THEN {lit(f.name)}" for f in fields)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __refused AS SELECT {row}, x.e.field AS field, "
        f"x.e.reason AS reason, x.e.value AS value FROM (SELECT {row}, __g, "
        f"unnest({ERRORS_COLUMN}) AS e FROM ({validation_sql(checked, relation, Side.PARTNER)})"
        f" JOIN __distinct USING ({row})) AS x WHERE x.e.field = CASE x.__g {own} END"
    )
    refused = {str(f) for (f,) in con.execute("SELECT DISTINCT field FROM __refused").fetchall()}
    out = {}
    for f in fields:
        if f.name not in refused:
            continue
        bad = f"__bad_{f.name}"
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote_ident(bad)} AS SELECT d.{quote_ident(f.name)} "
            f"AS v, r.reason, r.value FROM __refused AS r JOIN __distinct AS d USING ({row}) "
            f"WHERE r.field = {lit(f.name)}"
        )
        out[f.name] = bad
    con.execute("DROP TABLE __refused")
    con.execute("DROP TABLE __distinct")
    return out


def _row_checks(contract: Contract, parsed: ParsedExport) -> str | None:
    """The problems (``__problems``' columns) the hub's query finds row by row in the
    fields checked that way (numbers, identifiers), the other fields set to accepted
    values; a cell that could not be parsed is left to its parse problem."""
    fields = [f for f in contract.extract_fields if _by_row(f)]
    if not fields:
        return None
    row = quote_ident(ROW_COLUMN)
    checked = _only(contract, fields)
    columns = [row]
    for g in checked.extract_fields:
        name = quote_ident(g.name)
        if g.name in parsed.parse_fields:
            parse = quote_ident(problem_column(g.name))
            columns.append(f"CASE WHEN {parse} IS NULL THEN {name} ELSE {_accepted(g)} END "
                           f"AS {name}")
        else:
            columns.append(name)
    relation = f"(SELECT {', '.join(columns)} FROM {parsed.table})"
    index = {f.name: i for i, f in enumerate(contract.extract_fields)}
    order = " ".join(f"WHEN {lit(f.name)} THEN {index[f.name]}" for f in fields)
    listed = ", ".join(lit(f.name) for f in fields)
    rule = no_identity_reason(contract)  # its own part of __problems
    skip = f" AND x.e.reason <> {lit(rule)}" if rule is not None else ""
    return (
        f"SELECT CAST({row} AS DOUBLE), {row}, NULL, NULL, CASE x.e.field {order} END, "
        f"x.e.field, x.e.reason, x.e.value FROM (SELECT {row}, unnest({ERRORS_COLUMN}) AS e "
        f"FROM ({validation_sql(checked, relation, Side.PARTNER)})) AS x "
        f"WHERE x.e.field IN ({listed}){skip}"
    )


def _lines_table(bad_lines: list[BadLine]) -> pa.Table:
    """The lines that are not rows, placed between the ranks of the rows read around them
    (bad line j, 1-based in file order, has ``row - j`` rows read before it)."""
    numbered = sorted((b for b in bad_lines if b.row is not None), key=lambda b: b.row or 0)
    order = {id(b): (b.row or 0) - j + 0.5 for j, b in enumerate(numbered, 1)}
    n = len(bad_lines)
    return pa.table(
        {
            "__order": pa.array([order.get(id(b)) for b in bad_lines], pa.float64()),
            "__rank": pa.array([None] * n, pa.int64()),
            ROW_COLUMN: pa.array([b.row for b in bad_lines], pa.int64()),
            "__line": pa.array([b.line for b in bad_lines], pa.int64()),
            "__i": pa.array([-1] * n, pa.int64()),
            "field": pa.array([None] * n, pa.string()),
            "reason": pa.array([b.reason for b in bad_lines], pa.string()),
            "value": pa.array([None] * n, pa.string()),
        },
        schema=_SCHEMA,
    )


def collect_problems(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    parsed: ParsedExport,
    bad_lines: list[BadLine],
    tokens: Callable[[], dict[str, str]],
) -> Problems:
    """Build ``__problems`` (see the module docstring).

    ``tokens`` gives field -> token table; it is called once the contract's checks of every
    field have run, so that identifiers can be tokenised meanwhile (see
    :mod:`connectors.partner.tokens`).
    """
    bad = invalid_values(con, contract, parsed)
    by_row = _row_checks(contract, parsed)
    if by_row is not None:  # before waiting for the tokens: this runs while they are made
        con.execute(f"CREATE OR REPLACE TEMP TABLE {PROBLEMS}__rows AS {by_row}")
    token_table = tokens()
    con.register(f"{PROBLEMS}__lines", _lines_table(bad_lines))
    parts = [f"SELECT * FROM {PROBLEMS}__lines"]
    if by_row is not None:
        parts.append(f"SELECT * FROM {PROBLEMS}__rows")
    row = quote_ident(ROW_COLUMN)
    lead = f"CAST(p.{row} AS DOUBLE), p.{row}, NULL, NULL"
    for i, f in enumerate(contract.extract_fields):
        name, label = quote_ident(f.name), lit(f.name)
        parse = quote_ident(problem_column(f.name))
        if f.name in parsed.parse_fields:
            parts.append(
                f"SELECT {lead}, {i}, {label}, p.{parse}.reason, p.{parse}.value "
                f"FROM {parsed.table} AS p WHERE p.{parse} IS NOT NULL"
            )
        refused = bad.get(f.name)
        if refused is not None:
            unparsed = f" AND p.{parse} IS NULL" if f.name in parsed.parse_fields else ""
            parts.append(
                f"SELECT {lead}, {i}, {label}, b.reason, b.value FROM {parsed.table} AS p "
                f"JOIN {quote_ident(refused)} AS b ON p.{name} IS NOT DISTINCT FROM b.v{unparsed}"
            )
        if f.name in token_table:
            region = quote_ident(region_column(f.name))
            has_region = region_column(f.name) in parsed.columns
            same = f" AND p.{region} IS NOT DISTINCT FROM t.region" if has_region else ""
            parts.append(
                f"SELECT {lead}, {i}, {label}, t.reason, NULL FROM {parsed.table} AS p "
                f"JOIN (SELECT * FROM {quote_ident(token_table[f.name])} WHERE reason IS NOT NULL) "
                f"AS t ON p.{name} = t.raw{same}"
            )
    reason = no_identity_reason(contract)
    if reason is not None:  # a row-level rule: none of the person's identifiers is given
        unit = contract.extract_fields.index(contract.privacy_unit)
        empty = " AND ".join(f"p.{quote_ident(f.name)} IS NULL" for f in contract.identity)
        parts.append(f"SELECT {lead}, {unit}, {lit(contract.privacy_unit.name)}, "
                     f"{lit(reason)}, NULL FROM {parsed.table} AS p WHERE {empty}")
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {PROBLEMS} AS "
        + " UNION ALL ".join(f"({p})" for p in parts)
    )
    con.unregister(f"{PROBLEMS}__lines")
    con.execute(f"DROP TABLE IF EXISTS {PROBLEMS}__rows")
    ((rejected, total),) = con.execute(
        f"SELECT count(DISTINCT __rank) + count(*) FILTER (WHERE __rank IS NULL), count(*) "
        f"FROM {PROBLEMS}"
    ).fetchall()
    return Problems(PROBLEMS, int(rejected), int(total))

"""Every row checked against the contract, with the hub's own checks, once per distinct value.

The contract's checks (``hub.contracts.validation``, partner side) are the same the hub
runs again on upload. Each field's reason depends on that field's value alone, so the
connector runs the hub's validating query over each field's *distinct* values (the other
fields set to values the contract accepts) instead of over every row: a million alerts
hold a dozen countries and a few hundred months, and list lookups against a 249-code domain
are paid a dozen times instead of a million. ``tests/connectors/test_checking.py`` holds
that the verdicts are those of the row-by-row query.

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


def invalid_values(
    con: duckdb.DuckDBPyConnection, contract: Contract, parsed: ParsedExport, f: ContractField
) -> str | None:
    """``__bad_<field>`` (v, reason, value): the field's values the contract refuses."""
    name = quote_ident(f.name)
    distinct = f"__distinct_{f.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(distinct)} AS SELECT "
        f"row_number() OVER () AS {quote_ident(ROW_COLUMN)}, v FROM "
        f"(SELECT DISTINCT {name} AS v FROM {parsed.table})"
    )
    columns = [quote_ident(ROW_COLUMN)] + [
        f"v AS {name}" if g.name == f.name else f"{_accepted(g)} AS {quote_ident(g.name)}"
        for g in contract.extract_fields
    ]
    relation = f"(SELECT {', '.join(columns)} FROM {quote_ident(distinct)})"
    bad = f"__bad_{f.name}"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(bad)} AS SELECT d.v AS v, "
        f"x.e.reason AS reason, x.e.value AS value FROM (SELECT {quote_ident(ROW_COLUMN)}, "
        f"unnest({ERRORS_COLUMN}) AS e FROM ({validation_sql(contract, relation, Side.PARTNER)})"
        f") AS x JOIN {quote_ident(distinct)} AS d USING ({quote_ident(ROW_COLUMN)}) "
        f"WHERE x.e.field = {lit(f.name)}"
    )
    con.execute(f"DROP TABLE {quote_ident(distinct)}")
    ((n,),) = con.execute(f"SELECT count(*) FROM {quote_ident(bad)}").fetchall()
    return bad if n else None


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
    bad = {f.name: invalid_values(con, contract, parsed, f) for f in contract.extract_fields}
    token_table = tokens()
    con.register(f"{PROBLEMS}__lines", _lines_table(bad_lines))
    parts = [f"SELECT * FROM {PROBLEMS}__lines"]
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
        refused = bad[f.name]
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
    ((rejected, total),) = con.execute(
        f"SELECT count(DISTINCT __rank) + count(*) FILTER (WHERE __rank IS NULL), count(*) "
        f"FROM {PROBLEMS}"
    ).fetchall()
    return Problems(PROBLEMS, int(rejected), int(total))

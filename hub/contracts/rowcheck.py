"""Run the contract's validation query (``hub.contracts.validation``) in DuckDB.

Shared by the connector and the hub's ingest. The checked rows stay in a temporary DuckDB
table so that the caller can take the valid rows (connector) or refuse the extract
(hub) without running the checks twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from hub.contracts.model import Contract
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN, Side, quote_ident, validation_sql
from hub.errors import MAX_LISTED_ERRORS, RowError

__all__ = ["CheckResult", "check_relation", "listed_sql", "result_of", "summary_sql",
           "valid_rows_sql", "write_rejects"]


@dataclass(frozen=True)
class CheckResult:
    table: str  # temporary table holding every checked row
    rows: int
    rejected_rows: int
    total_errors: int
    errors: list[RowError] = field(default_factory=list)  # the first few, in row order

    @property
    def valid_rows(self) -> int:
        return self.rows - self.rejected_rows


def check_relation(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    relation: str,
    side: Side,
    *,
    table: str = "__checked",
    max_errors: int = MAX_LISTED_ERRORS,
) -> CheckResult:
    """Check every row of ``relation``; keep the result in temporary table ``table``."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {quote_ident(table)} AS "
        f"{validation_sql(contract, relation, side)}"
    )
    t = quote_ident(table)
    # fetchall, not fetchone: DuckDB 2.0 keeps a half-read result open on the connection.
    ((rows, rejected, total),) = con.execute(summary_sql(t)).fetchall()
    listed = con.execute(listed_sql(t, max_errors)).fetchall()
    return result_of(table, (rows, rejected, total), listed)


def summary_sql(relation: str) -> str:
    """(rows, rejected rows, errors) of a checked ``relation``."""
    return (f"SELECT count(*), count(*) FILTER (WHERE array_length({ERRORS_COLUMN}) > 0), "
            f"coalesce(sum(array_length({ERRORS_COLUMN})), 0) FROM {relation}")


def listed_sql(relation: str, max_errors: int = MAX_LISTED_ERRORS) -> str:
    """The first ``max_errors`` (row, field, reason, value) of a checked ``relation``."""
    row = quote_ident(ROW_COLUMN)
    return (f"SELECT {row}, e.field, e.reason, e.value FROM "
            f"(SELECT {row}, unnest({ERRORS_COLUMN}) AS e FROM {relation} "
            f"WHERE array_length({ERRORS_COLUMN}) > 0) ORDER BY 1 LIMIT {int(max_errors)}")


def result_of(table: str, summary: tuple[Any, ...], listed: list[tuple[Any, ...]]
              ) -> CheckResult:
    """The :class:`CheckResult` of :func:`summary_sql`'s and :func:`listed_sql`'s rows."""
    rows, rejected, total = summary
    errors = [RowError(field=f, reason=r, row=int(n), value=v) for n, f, r, v in listed]
    return CheckResult(table, int(rows), int(rejected), int(total), errors)


def valid_rows_sql(contract: Contract, table: str = "__checked") -> str:
    """The rows of a checked table that passed, in input order, typed as the contract says."""
    cols = ", ".join(quote_ident(f.name) for f in contract.extract_fields)
    return (
        f"SELECT {cols} FROM {quote_ident(table)} "
        f"WHERE array_length({ERRORS_COLUMN}) = 0 ORDER BY {quote_ident(ROW_COLUMN)}"
    )


def write_rejects(con: duckdb.DuckDBPyConnection, path: Path, table: str = "__checked") -> int:
    """Write one CSV line per (row, reason) to ``path``; return how many were written."""
    t = quote_ident(table)
    query = (
        f"SELECT {quote_ident(ROW_COLUMN)} AS row, e.field AS field, e.reason AS reason, "
        f"e.value AS value FROM (SELECT {quote_ident(ROW_COLUMN)}, "
        f"unnest({ERRORS_COLUMN}) AS e FROM {t} WHERE array_length({ERRORS_COLUMN}) > 0) ORDER BY 1"
    )
    con.execute(f"COPY ({query}) TO '{_sql_path(path)}' (HEADER, DELIMITER ',')")
    ((count,),) = con.execute(
        f"SELECT coalesce(sum(array_length({ERRORS_COLUMN})), 0) FROM {t}"
    ).fetchall()
    return int(count)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")

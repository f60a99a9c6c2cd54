"""Run the contract's validation query (``hub.contracts.validation``) in DuckDB.

Shared by the connector and the hub's ingest. The checked rows stay in a temporary DuckDB
table so that the caller can take the valid rows (connector) or refuse the extract
(hub) without running the checks twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from hub.contracts.model import Contract
from hub.contracts.validation import ERRORS_COLUMN, ROW_COLUMN, Side, quote_ident, validation_sql
from hub.errors import MAX_LISTED_ERRORS, RowError

__all__ = ["CheckResult", "check_relation", "valid_rows_sql", "write_rejects"]


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
    ((rows, rejected, total),) = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE len({ERRORS_COLUMN}) > 0), "
        f"coalesce(sum(len({ERRORS_COLUMN})), 0) FROM {t}"
    ).fetchall()
    listed = con.execute(
        f"SELECT {quote_ident(ROW_COLUMN)}, e.field, e.reason, e.value FROM "
        f"(SELECT {quote_ident(ROW_COLUMN)}, unnest({ERRORS_COLUMN}) AS e FROM {t} "
        f"WHERE len({ERRORS_COLUMN}) > 0) ORDER BY 1 LIMIT {int(max_errors)}"
    ).fetchall()
    errors = [RowError(field=f, reason=r, row=int(n), value=v) for n, f, r, v in listed]
    return CheckResult(table, int(rows), int(rejected), int(total), errors)


def valid_rows_sql(contract: Contract, table: str = "__checked") -> str:
    """The rows of a checked table that passed, in input order, typed as the contract says."""
    cols = ", ".join(quote_ident(f.name) for f in contract.extract_fields)
    return (
        f"SELECT {cols} FROM {quote_ident(table)} "
        f"WHERE len({ERRORS_COLUMN}) = 0 ORDER BY {quote_ident(ROW_COLUMN)}"
    )


def write_rejects(con: duckdb.DuckDBPyConnection, path: Path, table: str = "__checked") -> int:
    """Write one CSV line per (row, reason) to ``path``; return how many were written."""
    t = quote_ident(table)
    query = (
        f"SELECT {quote_ident(ROW_COLUMN)} AS row, e.field AS field, e.reason AS reason, "
        f"e.value AS value FROM (SELECT {quote_ident(ROW_COLUMN)}, "
        f"unnest({ERRORS_COLUMN}) AS e FROM {t} WHERE len({ERRORS_COLUMN}) > 0) ORDER BY 1"
    )
    con.execute(f"COPY ({query}) TO '{_sql_path(path)}' (HEADER, DELIMITER ',')")
    ((count,),) = con.execute(
        f"SELECT coalesce(sum(len({ERRORS_COLUMN})), 0) FROM {t}"
    ).fetchall()
    return int(count)


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")

"""The rejects: the local CSV file, the first few in the report, and the count by reason.

The rejects file has one line per problem: ``row,line,field,reason,value``. ``row`` counts
the export's data records from 1 (header excluded); ``line`` is the line in the file where
the row's record starts (CSV; for Excel the sheet row), empty for Parquet and query
results; ``field`` is empty for a line that could not be read as a row. ``value`` is the
cell as written, never for identifier fields, and with every identifier-shaped run masked
(:mod:`connectors.partner.masking`) whatever the field: a ragged row can shift an IBAN into
any column. So the rejects file never holds a raw identifier.
"""

from __future__ import annotations

import csv
import os
import uuid
from pathlib import Path

import duckdb

from connectors.partner.checking import Problems
from connectors.partner.masking import mask_identifiers
from connectors.partner.report import ReasonCount
from connectors.partner.sources import SourceTable
from hub.contracts.validation import ROW_COLUMN
from hub.errors import MAX_LISTED_ERRORS, RowError

__all__ = ["REJECTS_HEADER", "first_rejects", "reasons", "write_rejects"]

REJECTS_HEADER = ("row", "line", "field", "reason", "value")
_COLUMNS = f"__rank, {ROW_COLUMN}, __line, field, reason, value"
_ORDER = "ORDER BY __order NULLS LAST, __line, __i"
_LINE_REASON = "(line)"


def _where(
    src: SourceTable, rank: int | None, row: int | None, line: int | None
) -> tuple[int | None, int | None]:
    """(row, line) of a problem: the row's number and line in the file."""
    if rank is not None:
        row = src.row(rank)
    return row, line if line is not None else src.line(row)


def _value(value: str | None) -> str | None:
    return mask_identifiers(value) if value is not None else None


def first_rejects(
    con: duckdb.DuckDBPyConnection, problems: Problems, src: SourceTable
) -> list[RowError]:
    """The first problems, in file order (as the report and errors list them)."""
    listed = con.execute(
        f"SELECT {_COLUMNS} FROM {problems.table} {_ORDER} LIMIT {MAX_LISTED_ERRORS}"
    ).fetchall()
    out = []
    for rank, row, line, f, r, v in listed:
        row, line = _where(src, rank, row, line)
        out.append(RowError(field=f, reason=r, row=row, line=line, value=_value(v)))
    return out


def reasons(con: duckdb.DuckDBPyConnection, problems: Problems) -> list[ReasonCount]:
    """How many problems of each (field, reason), most frequent first."""
    rows = con.execute(
        f"SELECT coalesce(field, {_LINE_REASON!r}), reason, count(*) FROM {problems.table} "
        "GROUP BY ALL ORDER BY 3 DESC, 1, 2"
    ).fetchall()
    return [ReasonCount(str(f), str(r), int(n)) for f, r, n in rows]


def write_rejects(
    con: duckdb.DuckDBPyConnection, problems: Problems, src: SourceTable, path: Path
) -> None:
    """Write the rejects file at ``path`` (atomically: temp + rename)."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
    cursor = con.execute(f"SELECT {_COLUMNS} FROM {problems.table} {_ORDER}")
    try:
        with temp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(REJECTS_HEADER)
            while batch := cursor.fetchmany(10_000):
                writer.writerows(
                    (*_where(src, rank, row, line), f, r, _value(v))
                    for rank, row, line, f, r, v in batch
                )
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)

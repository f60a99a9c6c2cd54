"""Read a partner's export (CSV, Parquet, Excel or a SQL query) into DuckDB.

Every reader ends in the same place: a DuckDB relation with ``__row`` (the 1-based data
row, header excluded; for Excel, the sheet row minus one) and the export's own columns, plus
what the reader had to assume (``notes``) and the lines it could not read as rows
(``bad_lines``, each a rejected row with its line and reason). CSV is read tolerantly, every
column as text (:mod:`connectors.partner.csvsource`): a ragged line or a byte that is not
valid in the encoding is one rejected row, never a failure of the whole file. What cannot be
read at all is a :class:`~hub.errors.SourceError` that says why and what to set in the
mapping (delimiter, encoding, sheet) without ever quoting the file's content.

DuckDB runs sandboxed (:func:`open_duckdb`): it may touch only the folders the connector
names (the source's folder, the output folders and its own temp folder), and it never
installs or loads an extension, so a mapping's ``sql:`` cannot download anything.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from connectors.partner.csvsource import BadLine, LineMap, RowNumbers, read_csv, unique_names
from connectors.partner.limits import ConnectorLimits
from connectors.partner.mapping import Encoding, SourceFormat, SourceOptions
from hub.contracts.validation import ROW_COLUMN, quote_ident
from hub.errors import SourceError

__all__ = ["SourceTable", "detect_format", "load_source", "open_duckdb"]

_SUFFIXES = {
    ".csv": SourceFormat.CSV,
    ".tsv": SourceFormat.CSV,
    ".txt": SourceFormat.CSV,
    ".parquet": SourceFormat.PARQUET,
    ".pq": SourceFormat.PARQUET,
    ".xlsx": SourceFormat.XLSX,
    ".xlsm": SourceFormat.XLSX,
    ".sqlite": SourceFormat.SQLITE,
    ".sqlite3": SourceFormat.SQLITE,
    ".db": SourceFormat.SQLITE,
}
_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class SourceTable:
    """An export loaded into DuckDB: ``relation`` has ``__row`` plus ``columns``.

    ``__row`` orders the rows; :meth:`row` gives the number a row has in the file (for CSV
    they differ after a line that could not be read) and :meth:`line` its line. A CSV file
    loaded with ``keep`` has only those columns in ``relation``; :attr:`samples` reads
    every column (from the file again: for a few values, not for every row).
    """

    path: Path
    format: SourceFormat | None  # None: a DuckDB query over a folder
    relation: str
    columns: tuple[str, ...]
    types: dict[str, str]
    rows: int  # rows read (bad lines not counted)
    bad_lines: list[BadLine] = field(default_factory=list)
    line_of: LineMap | None = None  # CSV and Excel: each row's line in the file
    numbers: RowNumbers = field(default_factory=RowNumbers)  # CSV: __row is a rank
    notes: tuple[str, ...] = ()
    everything: str | None = None  # CSV read with ``keep``: every column, from the file

    def row(self, rank: int) -> int:
        """The number in the file of the row whose ``__row`` is ``rank``."""
        return self.numbers.row(rank)

    @property
    def samples(self) -> str:
        """A relation with every column of :attr:`columns` (not numbered)."""
        return self.everything or self.relation

    def line(self, row: int | None) -> int | None:
        """The line of row ``row`` in the file (None for Parquet and query results)."""
        return self.line_of(row) if self.line_of is not None else None


def open_duckdb(
    folders: Iterable[Path],
    *,
    temp_dir: Path,
    search_path: Path | None = None,
    limits: ConnectorLimits | None = None,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can touch only ``folders`` and ``temp_dir``, no extensions.

    It uses at most ``limits.memory_limit`` bytes and ``limits.threads`` threads, and spills
    what does not fit to ``temp_dir`` (defaults: :class:`ConnectorLimits`).
    """
    limits = limits or ConnectorLimits()
    con = duckdb.connect(
        config={
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": f"{limits.memory_limit // 1000}KB",
            "threads": limits.threads,
        }
    )
    allowed = sorted({str(p.resolve()).rstrip("/") + "/" for p in [*folders, temp_dir]})
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET temp_directory = ?", [str(temp_dir.resolve())])
    if search_path is not None:
        con.execute("SET file_search_path = ?", [str(search_path.resolve())])
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")  # times without a zone mean UTC, on every machine
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def detect_format(path: Path, options: SourceOptions) -> SourceFormat | None:
    """The format the mapping names, else the one the file name says; None for a folder."""
    if options.format is not None:
        return options.format
    if path.is_dir():
        return None
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise SourceError(
            f"{path.name}: cannot tell the format from the file name (known: {known}); "
            "set `format:` under `source:` in the mapping",
            field="source.format",
        )
    return found


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _hide_literals(text: str) -> str:
    """Quoted literals in engine messages may be data values: never show them."""
    return re.sub(r"'[^']*'", "'...'", text)


def _reason(exc: Exception) -> str:
    """A DuckDB/SQLite message reduced to its first line, with quoted literals hidden."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    first = lines[0] if lines else exc.__class__.__name__
    return _hide_literals(re.sub(r"^[A-Za-z ]*Error: ", "", first))


# -- Parquet ---------------------------------------------------------------------------
def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    try:
        con.execute(
            f"CREATE TEMP TABLE {quote_ident(table)} AS "
            f"SELECT * FROM read_parquet({_lit(str(path))})"
        )
    except duckdb.OutOfMemoryException:
        raise  # not the file's fault: the caller names the setting to raise
    except duckdb.Error as exc:
        raise SourceError(
            f"{path.name} is not a readable Parquet file (corrupt or truncated?): {_reason(exc)}"
        ) from None


# -- Excel and SQLite: rows from Python, as text ---------------------------------------
def _cell_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 2**63 else repr(value)
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(" ")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _register_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    names: list[str],
    rows: Iterator[tuple[int, Sequence[Any]]],
) -> None:
    """Create ``table`` (``__row`` plus text columns) from (row number, values) pairs.

    The rows go to DuckDB in batches of ``_BATCH_ROWS`` as they are read (a stream, never
    the whole export in Python), so DuckDB's memory limit bounds the table.
    """
    schema = pa.schema([(ROW_COLUMN, pa.int64()), *[(n, pa.string()) for n in names]])

    def batches() -> Iterator[pa.RecordBatch]:
        numbers: list[int] = []
        columns: list[list[str | None]] = [[] for _ in names]
        for number, values in rows:
            numbers.append(number)
            for i, column in enumerate(columns):
                column.append(_cell_text(values[i]) if i < len(values) else None)
            if len(numbers) >= _BATCH_ROWS:
                yield _batch(schema, numbers, columns)
                numbers, columns = [], [[] for _ in names]
        if numbers:
            yield _batch(schema, numbers, columns)

    failed: list[BaseException] = []

    def kept() -> Iterator[pa.RecordBatch]:  # the reader's own error, not DuckDB's wrapper
        try:
            yield from batches()
        except BaseException as exc:
            failed.append(exc)
            raise

    view = f"{table}__arrow"
    con.register(view, pa.RecordBatchReader.from_batches(schema, kept()))
    try:
        con.execute(f"CREATE TEMP TABLE {quote_ident(table)} AS SELECT * FROM {quote_ident(view)}")
    except duckdb.Error:
        if failed:
            raise failed[0] from None
        raise
    finally:
        con.unregister(view)


def _batch(
    schema: pa.Schema, numbers: list[int], columns: list[list[str | None]]
) -> pa.RecordBatch:
    arrays = [pa.array(numbers, pa.int64())] + [pa.array(c, pa.string()) for c in columns]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _load_xlsx(
    con: duckdb.DuckDBPyConnection, path: Path, options: SourceOptions, table: str
) -> None:
    from openpyxl import load_workbook  # heavy import, only for Excel sources

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # openpyxl's notes on styles
            book = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise SourceError(
            f"{path.name} is not a readable Excel workbook (.xlsx): {exc.__class__.__name__}"
        ) from None
    except Exception as exc:  # openpyxl raises its own InvalidFileException
        if exc.__class__.__name__ != "InvalidFileException":
            raise
        raise SourceError(f"{path.name} is not a readable Excel workbook (.xlsx)") from None
    try:
        if options.sheet is not None and options.sheet not in book.sheetnames:
            raise SourceError(
                f"{path.name} has no sheet {options.sheet!r}; its sheets are: "
                f"{', '.join(book.sheetnames)}",
                field="source.sheet",
            )
        sheet = book[options.sheet] if options.sheet is not None else book.worksheets[0]
        lines = sheet.iter_rows(values_only=True)
        header = next(lines, None)
        if header is None or all(v is None for v in header):
            raise SourceError(f"{path.name}: sheet {sheet.title!r} is empty (no header row)")
        names = unique_names(header)
        rows = (
            (number, values)
            for number, values in enumerate(lines, 1)
            if any(v is not None and v != "" for v in values)
        )
        _register_rows(con, table, names, rows)
    finally:
        book.close()


def _load_sqlite(
    con: duckdb.DuckDBPyConnection, path: Path, options: SourceOptions, table: str
) -> None:
    if options.sql is None:
        raise SourceError(
            f"{path.name} is a SQLite database: give the query that returns the export as "
            "`sql:` under `source:` in the mapping",
            field="source.sql",
        )
    try:
        # read by DuckDB's scan thread, one batch at a time (see _register_rows)
        db = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
        )
    except sqlite3.Error as exc:
        raise SourceError(f"{path.name} cannot be opened by SQLite: {_reason(exc)}") from None
    try:
        cursor = db.execute(options.sql)
        if cursor.description is None:
            raise SourceError("the mapping's sql returns no columns", field="source.sql")
        names = unique_names([d[0] for d in cursor.description])

        def fetched() -> Iterator[tuple[int, Sequence[Any]]]:
            number = 0
            while batch := cursor.fetchmany(_BATCH_ROWS):
                for values in batch:
                    number += 1
                    yield number, values

        _register_rows(con, table, names, fetched())
    except sqlite3.DatabaseError as exc:
        raise SourceError(
            f"the mapping's sql failed in SQLite on {path.name}: {_reason(exc)}",
            field="source.sql",
        ) from None
    finally:
        db.close()


# -- the one entry point ---------------------------------------------------------------
def _source_view(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: SourceFormat, options: SourceOptions,
    table: str,
) -> tuple[list[BadLine], tuple[str, ...]]:
    """The file as the view ``source`` for a DuckDB ``sql:`` (its bad lines, its notes)."""
    if fmt is SourceFormat.CSV:
        read = read_csv(con, path, options, table)
        con.execute(f"CREATE TEMP VIEW source AS SELECT * FROM {quote_ident(table)}")
        return _unnumbered(path, read.bad_lines), read.notes
    if fmt is SourceFormat.PARQUET:
        _load_parquet(con, path, table)
        con.execute(f"CREATE TEMP VIEW source AS SELECT * FROM {quote_ident(table)}")
    else:
        _load_xlsx(con, path, options, table)
        con.execute(
            f"CREATE TEMP VIEW source AS SELECT * EXCLUDE ({quote_ident(ROW_COLUMN)}) "
            f"FROM {quote_ident(table)}"
        )
    return [], ()


def _unnumbered(path: Path, bad: list[BadLine]) -> list[BadLine]:
    """Bad lines of a file a query reads: no row of the result, so the file is named."""
    return [BadLine(None, b.line, f"{path.name}: {b.reason}") for b in bad]


def _folder_tables(
    con: duckdb.DuckDBPyConnection, folder: Path, options: SourceOptions
) -> tuple[list[str], list[BadLine], tuple[str, ...]]:
    """One table per CSV or Parquet file of ``folder``, named after the file (``flows``)."""
    names: list[str] = []
    bad: list[BadLine] = []
    notes: list[str] = []
    for file in sorted(folder.iterdir()):
        fmt = _SUFFIXES.get(file.suffix.lower())
        if not file.is_file() or fmt not in (SourceFormat.CSV, SourceFormat.PARQUET):
            continue
        name = re.sub(r"[^a-z0-9_]", "_", file.stem.lower())
        name = name if name[:1].isalpha() else f"t_{name}"
        if name in names or name.startswith("__"):
            continue
        if fmt is SourceFormat.CSV:
            if file.stat().st_size == 0:
                continue
            read = read_csv(con, file.resolve(), options, name)
            bad += _unnumbered(file, read.bad_lines)
            notes += [f"{file.name}: {n}" for n in read.notes]
        else:
            _load_parquet(con, file.resolve(), name)
        names.append(name)
    return names, bad, tuple(notes)


def _check_options(path: Path, fmt: SourceFormat | None, options: SourceOptions) -> None:
    if options.sheet is not None and fmt is not SourceFormat.XLSX:
        raise SourceError("`sheet:` is only for Excel sources", field="source.sheet")
    if (options.delimiter is not None or options.encoding is not Encoding.AUTO) and (
        fmt not in (SourceFormat.CSV, None)
    ):
        raise SourceError(
            "`delimiter:` and `encoding:` are only for CSV sources", field="source.delimiter"
        )
    if fmt is None and options.sql is None:
        raise SourceError(
            f"{path} is a folder: give the query that returns the export as `sql:` under "
            "`source:` in the mapping",
            field="source.sql",
        )


def _run_query(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: SourceFormat | None, options: SourceOptions,
    table: str,
) -> tuple[list[BadLine], tuple[str, ...]]:
    """Run the mapping's DuckDB ``sql:`` into ``table`` over the file or the folder."""
    assert options.sql is not None  # noqa: S101 - the caller checked
    if fmt is None:
        tables, bad, notes = _folder_tables(con, path, options)
    else:
        tables = ["source"]
        bad, notes = _source_view(con, path, fmt, options, f"{table}__file")
    try:
        con.execute(f"CREATE TEMP TABLE {quote_ident(table)} AS {options.sql}")
    except duckdb.Error as exc:
        reason = _reason(exc)
        if "disabled by configuration" in str(exc):
            folder = path if fmt is None else path.parent
            reason = (
                f"the query may read only the files in {folder}: use their table names "
                f"({', '.join(tables) or 'none'}) or absolute paths inside that folder"
            )
        raise SourceError(f"the mapping's sql failed: {reason}", field="source.sql") from None
    return bad, notes


def load_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    options: SourceOptions,
    *,
    table: str = "__source",
    keep: Sequence[str] | None = None,
) -> SourceTable:
    """Load the export at ``path`` (a file, or a folder for a DuckDB ``sql:``).

    ``keep``: the columns that will be read (CSV: only those are stored; see
    :func:`~connectors.partner.csvsource.read_csv`).
    """
    if not path.exists():
        raise SourceError(f"source {path} does not exist")
    fmt = detect_format(path, options)
    _check_options(path, fmt, options)
    if fmt is SourceFormat.CSV and options.sql is None:
        read = read_csv(con, path, options, table, keep=keep)
        if ROW_COLUMN in read.columns:
            raise SourceError(f"{path.name} has a column named {ROW_COLUMN}, which is reserved")
        return SourceTable(
            path=path,
            format=fmt,
            relation=read.relation,
            columns=read.columns,
            types=dict.fromkeys(read.columns, "VARCHAR"),
            rows=read.rows,
            bad_lines=read.bad_lines,
            line_of=read.line_of,
            numbers=read.numbers,
            notes=read.notes,
            everything=read.everything,
        )
    bad: list[BadLine] = []
    notes: tuple[str, ...] = ()
    numbered = False
    if options.sql is not None and fmt is not SourceFormat.SQLITE:
        bad, notes = _run_query(con, path, fmt, options, table)
    elif fmt is SourceFormat.PARQUET:
        _load_parquet(con, path, table)
    elif fmt is SourceFormat.XLSX:
        _load_xlsx(con, path, options, table)
        numbered = True
    else:
        _load_sqlite(con, path, options, table)
        numbered = True
    rel = con.table(table)
    names, types = list(rel.columns), [str(t) for t in rel.types]
    if numbered:
        relation = table
        names, types = names[1:], types[1:]
    else:
        if ROW_COLUMN in names:
            raise SourceError(f"{path.name} has a column named {ROW_COLUMN}, which is reserved")
        relation = f"{table}__rows"
        con.execute(
            f"CREATE TEMP VIEW {quote_ident(relation)} AS "
            f"SELECT rowid + 1 AS {quote_ident(ROW_COLUMN)}, * FROM {quote_ident(table)}"
        )
    ((count,),) = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchall()
    excel_rows = fmt is SourceFormat.XLSX and options.sql is None
    return SourceTable(
        path=path,
        format=fmt,
        relation=relation,
        columns=tuple(names),
        types=dict(zip(names, types, strict=True)),
        rows=int(count),
        bad_lines=bad,
        line_of=LineMap() if excel_rows else None,
        notes=notes,
    )

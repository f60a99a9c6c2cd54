"""Read a partner's export (CSV, Parquet, Excel or a SQL query) into DuckDB.

Every reader ends in the same place: a DuckDB relation with ``__row`` (the 1-based data
row, header excluded; for Excel, the sheet row minus one) and the export's own columns.
CSV is read with ``all_varchar`` so that a bad value in one row becomes a reject of that
row, never a failure of the whole file. What cannot be read at all is a
:class:`~hub.errors.SourceError` that says why and what to set in the mapping (delimiter,
encoding, sheet) without ever quoting the file's content.

DuckDB runs sandboxed (:func:`open_duckdb`): it may touch only the folders the connector
names (the source's folder, the output folders and its own temp folder), and it never
installs or loads an extension, so a mapping's ``sql:`` cannot download anything.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import sqlite3
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import duckdb
import pyarrow as pa

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
_DELIMITER_CANDIDATES = (";", "\t", "|", ",")
_DELIMITER_NAMES = {";": '";"', "\t": "tab", "|": '"|"', ",": '","'}
_BATCH_ROWS = 50_000


@dataclass(frozen=True)
class SourceTable:
    """An export loaded into DuckDB: ``relation`` has ``__row`` plus ``columns``."""

    path: Path
    format: SourceFormat | None  # None: a DuckDB query over a folder
    relation: str
    columns: tuple[str, ...]
    types: dict[str, str]
    rows: int


def open_duckdb(
    folders: Iterable[Path], *, temp_dir: Path, search_path: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB that can touch only ``folders`` and ``temp_dir``, no extensions."""
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    allowed = sorted({str(p.resolve()).rstrip("/") + "/" for p in [*folders, temp_dir]})
    con.execute("SET allowed_directories = ?", [allowed])
    con.execute("SET temp_directory = ?", [str(temp_dir.resolve())])
    if search_path is not None:
        con.execute("SET file_search_path = ?", [str(search_path.resolve())])
    con.execute("SET enable_progress_bar = false")
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


# -- CSV -------------------------------------------------------------------------------
def _csv_sql(path: Path, options: SourceOptions, delimiter: str | None) -> str:
    args = [
        "all_varchar = true",
        "header = true",
        "skip = 0",
        f"encoding = {_lit(options.encoding)}",
    ]
    if delimiter is not None:
        args.append(f"delim = {_lit(delimiter)}")
    return f"SELECT * FROM read_csv({_lit(str(path))}, {', '.join(args)})"


def _encoding_hint(path: Path, options: SourceOptions) -> str:
    with path.open("rb") as handle:
        head = handle.read(4)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") and options.encoding is not Encoding.UTF16:
        return "it starts like UTF-16; set `encoding: utf-16` under `source:` in the mapping"
    others = ", ".join(e.value for e in Encoding if e is not options.encoding)
    return (
        f"set `encoding:` under `source:` in the mapping to the file's encoding "
        f"(supported: {others})"
    )


def _ragged_line(path: Path, options: SourceOptions, delimiter: str) -> str | None:
    """Where the file stops being a table with ``delimiter``: the first line to blame."""
    try:
        with path.open(encoding=options.encoding, newline="") as handle:
            reader = csv.reader(handle, delimiter=delimiter, strict=True)
            header = next(reader, None)
            if header is None:
                return None
            for record in reader:
                if record and len(record) != len(header):
                    return (
                        f"line {reader.line_num} has {len(record)} fields where the header "
                        f"has {len(header)}"
                    )
    except csv.Error:
        return f"line {reader.line_num}: a quote is not closed"
    except UnicodeError:
        return None
    return None


def _likely_delimiter(header: str) -> str | None:
    counts = {d: header.count(d) for d in _DELIMITER_CANDIDATES}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else None


def _load_csv(
    con: duckdb.DuckDBPyConnection, path: Path, options: SourceOptions, table: str
) -> None:
    if path.stat().st_size == 0:
        raise SourceError(f"{path.name} is empty")
    delimiter = options.delimiter
    try:
        con.execute(
            f"CREATE TEMP TABLE {quote_ident(table)} AS {_csv_sql(path, options, delimiter)}"
        )
    except duckdb.Error as exc:
        _csv_failure(path, options, exc)
    columns = con.table(table).columns
    if columns == ["column0"]:  # DuckDB's name when the header line is blank
        with path.open("rb") as handle:
            blank = not handle.read(1 << 20).strip()
        raise SourceError(
            f"{path.name} is empty"
            if blank
            else f"{path.name}: the first line (the header) is blank"
        )
    if len(columns) == 1:
        guess = _likely_delimiter(columns[0])
        if guess is not None and guess != delimiter:
            if delimiter is not None:
                raise SourceError(
                    f"{path.name}: only one column was found with delimiter "
                    f"{_DELIMITER_NAMES.get(delimiter, repr(delimiter))}, and its name contains "
                    f"{_DELIMITER_NAMES[guess]}; set `delimiter: {_DELIMITER_NAMES[guess]}` under "
                    "`source:` in the mapping",
                    field="source.delimiter",
                )
            ragged = _ragged_line(path, options, guess)
            raise SourceError(
                f"{path.name}: only one column was found, and its name contains "
                f"{_DELIMITER_NAMES[guess]}"
                + (
                    f"; with that delimiter {ragged}"
                    if ragged
                    else f"; set `delimiter: {_DELIMITER_NAMES[guess]}` under `source:` "
                    "in the mapping"
                ),
                field="source.delimiter",
            )


def _csv_failure(path: Path, options: SourceOptions, exc: duckdb.Error) -> NoReturn:
    text = str(exc)
    with path.open("rb") as handle:
        utf16 = handle.read(2) in (b"\xff\xfe", b"\xfe\xff")
    if (utf16 and options.encoding is not Encoding.UTF16) or (
        "Invalid unicode" in text or "not utf-8 encoded" in text.lower()
    ):
        raise SourceError(
            f"{path.name} is not valid {options.encoding.value} text; "
            + _encoding_hint(path, options),
            field="source.encoding",
        ) from None
    if "sniffing" in text or "automatically detect" in text:
        with path.open("rb") as handle:
            first = handle.readline().decode(options.encoding, errors="replace")
        guess = options.delimiter or _likely_delimiter(first) or ","
        ragged = _ragged_line(path, options, guess)
        raise SourceError(
            f"{path.name}: the CSV layout cannot be worked out"
            + (f": {ragged}" if ragged else "")
            + " (check the file, or set `delimiter:` under `source:` in the mapping)",
            field="source.delimiter",
        ) from None
    match = re.search(r"CSV Error on Line: (\d+)", text)
    where = f" on line {match.group(1)}" if match else ""
    detail = next(
        (
            ln.strip()
            for ln in text.splitlines()[1:]
            if ln.strip() and not ln.startswith(("Original Line", "Possible", "  "))
        ),
        _reason(exc),
    )
    raise SourceError(
        f"{path.name} cannot be read as CSV{where}: {_hide_literals(detail)}"
    ) from None


# -- Parquet ---------------------------------------------------------------------------
def _load_parquet(con: duckdb.DuckDBPyConnection, path: Path, table: str) -> None:
    try:
        con.execute(
            f"CREATE TEMP TABLE {quote_ident(table)} AS "
            f"SELECT * FROM read_parquet({_lit(str(path))})"
        )
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


def _unique_names(names: Sequence[Any]) -> list[str]:
    out: list[str] = []
    for i, name in enumerate(names):
        base = str(name).strip() if name is not None and str(name).strip() else f"column{i}"
        candidate, n = base, 1
        while candidate in out:
            candidate, n = f"{base}_{n}", n + 1
        out.append(candidate)
    return out


def _register_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    names: list[str],
    rows: Iterator[tuple[int, Sequence[Any]]],
) -> None:
    """Create ``table`` (``__row`` plus text columns) from (row number, values) pairs."""
    schema = pa.schema([(ROW_COLUMN, pa.int64()), *[(n, pa.string()) for n in names]])
    batches: list[pa.RecordBatch] = []
    numbers: list[int] = []
    columns: list[list[str | None]] = [[] for _ in names]

    def flush() -> None:
        if numbers:
            arrays = [pa.array(numbers, pa.int64())] + [pa.array(c, pa.string()) for c in columns]
            batches.append(pa.RecordBatch.from_arrays(arrays, schema=schema))
            numbers.clear()
            for c in columns:
                c.clear()

    for number, values in rows:
        numbers.append(number)
        for i, column in enumerate(columns):
            column.append(_cell_text(values[i]) if i < len(values) else None)
        if len(numbers) >= _BATCH_ROWS:
            flush()
    flush()
    arrow = pa.Table.from_batches(batches, schema=schema)
    view = f"{table}__arrow"
    con.register(view, arrow)
    try:
        con.execute(f"CREATE TEMP TABLE {quote_ident(table)} AS SELECT * FROM {quote_ident(view)}")
    finally:
        con.unregister(view)


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
        names = _unique_names(header)
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
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise SourceError(f"{path.name} cannot be opened by SQLite: {_reason(exc)}") from None
    try:
        cursor = db.execute(options.sql)
        if cursor.description is None:
            raise SourceError("the mapping's sql returns no columns", field="source.sql")
        names = _unique_names([d[0] for d in cursor.description])

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
def _load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    fmt: SourceFormat,
    options: SourceOptions,
    table: str,
) -> bool:
    """Load ``path`` into ``table``; True when the table already holds ``__row``."""
    if fmt is SourceFormat.CSV:
        _load_csv(con, path, options, table)
        return False
    if fmt is SourceFormat.PARQUET:
        _load_parquet(con, path, table)
        return False
    if fmt is SourceFormat.XLSX:
        _load_xlsx(con, path, options, table)
        return True
    _load_sqlite(con, path, options, table)
    return True


def _folder_views(
    con: duckdb.DuckDBPyConnection, folder: Path, options: SourceOptions
) -> list[str]:
    """One view per CSV or Parquet file of ``folder``, named after the file (``flows``)."""
    names: list[str] = []
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
            select = _csv_sql(file.resolve(), options, options.delimiter)
        else:
            select = f"SELECT * FROM read_parquet({_lit(str(file.resolve()))})"
        try:
            con.execute(f"CREATE TEMP VIEW {quote_ident(name)} AS {select}")
        except duckdb.Error as exc:
            if fmt is SourceFormat.CSV:
                _csv_failure(file, options, exc)
            raise SourceError(
                f"{file.name} is not a readable Parquet file: {_reason(exc)}"
            ) from None
        names.append(name)
    return names


def _check_options(path: Path, fmt: SourceFormat | None, options: SourceOptions) -> None:
    if options.sheet is not None and fmt is not SourceFormat.XLSX:
        raise SourceError("`sheet:` is only for Excel sources", field="source.sheet")
    if (options.delimiter is not None or options.encoding is not Encoding.UTF8) and (
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


def load_source(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    options: SourceOptions,
    *,
    table: str = "__source",
) -> SourceTable:
    """Load the export at ``path`` (a file, or a folder for a DuckDB ``sql:``)."""
    if not path.exists():
        raise SourceError(f"source {path} does not exist")
    fmt = detect_format(path, options)
    _check_options(path, fmt, options)
    numbered = False
    if options.sql is not None and fmt is not SourceFormat.SQLITE:
        tables = ["source"]
        if fmt is None:
            tables = _folder_views(con, path, options)
        else:
            inner = f"{table}__file"
            if _load_file(con, path, fmt, options, inner):
                con.execute(
                    f"CREATE TEMP VIEW source AS SELECT * EXCLUDE ({quote_ident(ROW_COLUMN)}) "
                    f"FROM {quote_ident(inner)}"
                )
            else:
                con.execute(f"CREATE TEMP VIEW source AS SELECT * FROM {quote_ident(inner)}")
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
    else:
        assert fmt is not None  # noqa: S101 - _check_options refuses a folder without sql
        numbered = _load_file(con, path, fmt, options, table)
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
    return SourceTable(
        path=path,
        format=fmt,
        relation=relation,
        columns=tuple(names),
        types=dict(zip(names, types, strict=True)),
        rows=int(count),
    )

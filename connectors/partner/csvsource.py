"""CSV exports, read tolerantly: one bad line is one rejected row, never a refused file.

:func:`sniff_csv` works out how to read the file and says what it assumed
(:attr:`CsvDialect.notes`):

* the **encoding**, when the mapping says ``auto`` (the default): a byte-order mark names
  it; otherwise the first 8 MB are decoded as UTF-8. Valid UTF-8 (or plain ASCII) is
  UTF-8; bytes that are not UTF-8 where no character is a UTF-8 sequence make it Latin-1;
  a file that is mostly UTF-8 with a few bad bytes stays UTF-8, and the lines holding those
  bytes are rejected;
* the **delimiter** (``,``, ``;``, tab or ``|``), unless given: the one that splits the
  header into the most columns while most of the first lines have the same count;
* the **line ending** and the **header** (the first record; blank or repeated names are
  numbered).

:func:`read_csv` then has DuckDB read every column as text, with ``ignore_errors`` and
``store_rejects``: a line with too many or too few fields, a byte that is not valid in the
encoding, or a quoted value with text after its closing quote is left out and becomes a
:class:`BadLine` with its reason. Rows keep the numbers they have in the file: a row's
number counts the data records from 1 (header excluded, rejected ones included;
:class:`RowNumbers` maps DuckDB's ranks to them), and :class:`LineMap` gives each row's
line in the file (the line where its record starts, header = line 1). When a file has no
blank lines and no line breaks inside quoted values, which one count of newlines proves, a
row's line is its number plus one; otherwise one extra pass with Python's ``csv`` module
numbers the lines exactly.

A quote that is opened and never closed would swallow the rest of the file into one value:
that stops the file with a :class:`~hub.errors.SourceError` naming the line. A file that
mixes line endings (some lines ending "\\r\\n", others "\\n") is read from a copy, in
DuckDB's private temporary folder, with every line ending made "\\n". Reasons never quote
the file's content.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import os
import re
import tempfile
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NoReturn

import duckdb

from connectors.common.amounts import size_text
from connectors.partner.mapping import Encoding, SourceOptions
from hub.contracts.validation import ROW_COLUMN, quote_ident
from hub.errors import SourceError

__all__ = [
    "BadLine",
    "CsvDialect",
    "CsvTable",
    "LineMap",
    "RowNumbers",
    "read_csv",
    "sniff_csv",
    "unique_names",
]

_DETECT_BYTES = 8 << 20
_SNIFF_BYTES = 1 << 20
_SNIFF_RECORDS = 200
_DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {";": '";"', "\t": "tab", "|": '"|"', ",": '","'}
_PY_CODECS = {Encoding.UTF8: "utf-8", Encoding.LATIN1: "latin-1", Encoding.UTF16: "utf-16"}
_MAX_LINE_BYTES = 8 << 20
_BUFFER_BYTES = 16 << 20  # DuckDB's default, 16 x max_line_size (128 MB a thread), is too much
_NEWLINE_NAMES = {"\n": "\\n", "\r\n": "\\r\\n", "\r": "\\r"}  # as DuckDB spells them


@dataclass(frozen=True)
class CsvDialect:
    """How a CSV file is read, and what was assumed to read it that way."""

    encoding: Encoding
    delimiter: str
    newline: str
    header: tuple[str, ...]
    bom: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class BadLine:
    """A record that could not be read as a row: its number, its line and why."""

    row: int | None
    line: int | None
    reason: str


@dataclass(frozen=True)
class LineMap:
    """The line in the file where each row's record starts (header = line 1)."""

    lines: array[int] | None = None  # row n -> lines[n - 1]; None: n + 1
    offset: int = 1

    def __call__(self, row: int | None) -> int | None:
        if row is None:
            return None
        if self.lines is None:
            return row + self.offset
        return int(self.lines[row - 1]) if 0 < row <= len(self.lines) else None


@dataclass(frozen=True)
class RowNumbers:
    """Row numbers of the rows read, when some records in between could not be read.

    Rows read are numbered 1, 2, 3... by DuckDB (their *rank*); a record that was left out
    still has its number in the file. Bad record j (1-based, in file order) with number
    ``r_j`` has ``m_j = r_j - j`` rows read before it, so the rank-a row read is row
    ``a + #{j : m_j < a}``.
    """

    marks: tuple[int, ...] = ()  # m_j, in order

    def row(self, rank: int) -> int:
        return rank + bisect.bisect_left(self.marks, rank)

    def order_of_bad(self, j: int, row: int) -> float:
        """Where bad record j (1-based) with number ``row`` sorts among ranks."""
        return row - j + 0.5

    @classmethod
    def of(cls, bad_rows: list[int]) -> RowNumbers:
        return cls(tuple(r - j for j, r in enumerate(sorted(bad_rows), 1)))


@dataclass(frozen=True)
class CsvTable:
    """A CSV file in DuckDB: ``relation`` has ``__row`` (the rank among rows read; see
    :class:`RowNumbers`) then the header's columns (or those kept); ``everything``, when
    set, reads every column from the file again (for samples of those left out)."""

    relation: str
    columns: tuple[str, ...]
    rows: int
    bad_lines: list[BadLine] = field(default_factory=list)
    everything: str | None = None  # every column, read from the file (when ``relation`` has some)
    line_of: LineMap = field(default_factory=LineMap)
    numbers: RowNumbers = field(default_factory=RowNumbers)
    notes: tuple[str, ...] = ()


def unique_names(names: Sequence[object]) -> list[str]:
    """Header names, with blank ones named ``column<i>`` and repeats numbered."""
    out: list[str] = []
    for i, name in enumerate(names):
        base = str(name).strip() if name is not None and str(name).strip() else f"column{i}"
        candidate, n = base, 1
        while candidate in out:
            candidate, n = f"{base}_{n}", n + 1
        out.append(candidate)
    return out


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- encoding ----------------------------------------------------------------------------
def detect_encoding(path: Path) -> tuple[Encoding, str]:
    """The encoding of ``path`` and a sentence saying how it was told (see the module doc)."""
    with path.open("rb") as handle:
        head = handle.read(_DETECT_BYTES)
    if head.startswith(codecs.BOM_UTF8):
        return Encoding.UTF8, "utf-8 (the file starts with a UTF-8 byte-order mark)"
    if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        return Encoding.UTF16, "utf-16 (the file starts with a UTF-16 byte-order mark)"
    if len(head) == _DETECT_BYTES:  # do not judge a character cut in half at the end
        head = head[: head.rfind(b"\n") + 1] or head
    where = f"the first {size_text(len(head))}" if len(head) >= _DETECT_BYTES // 2 else "the file"
    if head.isascii():
        return Encoding.UTF8, f"utf-8 ({where} is plain ASCII)"
    text = head.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - head.count(b"\xef\xbf\xbd")
    non_ascii = len(text) - len(text.encode("ascii", "ignore"))
    sequences = non_ascii - text.count("\ufffd")
    if bad == 0:
        return Encoding.UTF8, f"utf-8 ({where} is valid UTF-8)"
    if sequences > bad:
        are = "byte is" if bad == 1 else "bytes are"
        return Encoding.UTF8, (
            f"utf-8 ({sequences:,} characters in {where} are UTF-8 but {bad:,} {are} not: "
            "the lines holding them are rejected; set `encoding:` under `source:` if the "
            "file is in another encoding)"
        )
    return Encoding.LATIN1, (
        f"latin-1 ({bad:,} {'byte' if bad == 1 else 'bytes'} in {where} "
        f"{'is' if bad == 1 else 'are'} not UTF-8 and none is a UTF-8 sequence; "
        "set `encoding:` under `source:` if the file is in another encoding)"
    )


# -- dialect -----------------------------------------------------------------------------
def _records(text: str, delimiter: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text), delimiter=delimiter, strict=False)
    out: list[list[str]] = []
    try:
        for record in reader:
            if record:
                out.append(record)
            if len(out) >= _SNIFF_RECORDS:
                break
    except csv.Error:
        pass
    return out


def _choose_delimiter(text: str) -> tuple[str, str | None]:
    """The delimiter that splits the header widest while the lines agree with it."""
    best: tuple[bool, int, str, float, int] | None = None
    for d in _DELIMITERS:
        records = _records(text, d)
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        agree = sum(len(r) == width for r in records) / len(records)
        if agree < 0.5:
            continue
        candidate = (agree >= 0.8, width, d, agree, len(records))
        if best is None or candidate[:2] > best[:2]:
            best = candidate
    if best is None:
        return ",", None
    _, width, d, agree, lines = best
    return d, (
        f"delimiter {DELIMITER_NAMES[d]} (detected: the header has {width} columns, as do "
        f"{agree:.0%} of the first {lines:,} lines)"
    )


def _newline(head: bytes, encoding: Encoding) -> str:
    if encoding is Encoding.UTF16:
        text = head.decode("utf-16", errors="replace")
        return "\r\n" if "\r\n" in text[: text.find("\n") + 1] else "\n"
    cut = head.find(b"\n")
    if cut < 0:
        return "\r" if b"\r" in head else "\n"
    return "\r\n" if cut > 0 and head[cut - 1 : cut] == b"\r" else "\n"


def sniff_csv(path: Path, options: SourceOptions) -> CsvDialect:
    """Encoding, delimiter, line ending and header of ``path`` (see the module docstring)."""
    if path.stat().st_size == 0:
        raise SourceError(f"{path.name} is empty")
    notes: list[str] = []
    if options.encoding is Encoding.AUTO:
        encoding, note = detect_encoding(path)
        notes.append(f"encoding {note}")
    else:
        encoding = options.encoding
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    bom = head.startswith(codecs.BOM_UTF8)
    codec = "utf-8-sig" if bom else _PY_CODECS[encoding]
    text = head.decode(codec, errors="replace")
    if len(head) == _SNIFF_BYTES:
        text = text[: text.rfind("\n") + 1] or text
    if not text.strip():
        raise SourceError(f"{path.name} is empty")
    first = text.splitlines()[0] if text.splitlines() else ""
    if not first.strip():
        raise SourceError(f"{path.name}: the first line (the header) is blank")
    if options.delimiter is not None:
        delimiter = options.delimiter
    else:
        delimiter, said = _choose_delimiter(text)
        if said is not None:
            notes.append(said)
    header = _records(text, delimiter)[0]
    return CsvDialect(
        encoding=encoding,
        delimiter=delimiter,
        newline=_newline(head, encoding),
        header=tuple(unique_names(header)),
        bom=bom,
        notes=tuple(notes),
    )


def _likely_delimiter(name: str) -> str | None:
    counts = {d: name.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] > 0 else None


def _check_single_column(path: Path, dialect: CsvDialect, given: bool) -> None:
    if len(dialect.header) != 1:
        return
    guess = _likely_delimiter(dialect.header[0])
    if guess is None or guess == dialect.delimiter:
        return
    named = DELIMITER_NAMES[guess]
    with_given = (
        f" with delimiter {DELIMITER_NAMES.get(dialect.delimiter, repr(dialect.delimiter))}"
        if given
        else ""
    )
    raise SourceError(
        f"{path.name}: only one column was found{with_given}, and its name contains {named}; "
        f"set `delimiter: {named}` under `source:` in the mapping",
        field="source.delimiter",
    )


# -- the tolerant read -------------------------------------------------------------------
_COUNT_RE = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def _reason(error_type: str, message: str, column: str | None, dialect: CsvDialect) -> str:
    kind = error_type.upper()
    if kind in ("TOO MANY COLUMNS", "MISSING COLUMNS"):
        counts = _COUNT_RE.search(message)
        if counts:
            expected, found = int(counts.group(1)), int(counts.group(2))
            return f"the line has {found} fields where the header has {expected}"
        return (
            "the line has more fields than the header"
            if kind.startswith("TOO")
            else "the line has fewer fields than the header"
        )
    if kind in ("INVALID ENCODING", "INVALID UNICODE"):
        where = f" (column {column})" if column else ""
        hint = "; is the file Latin-1?" if dialect.encoding is Encoding.UTF8 else ""
        return f"not valid {dialect.encoding.value} text{where}{hint}"
    if kind == "UNQUOTED VALUE":
        return "a quoted value has text after its closing quote (or its quote is not closed)"
    if kind == "LINE SIZE OVER MAXIMUM":
        return f"the line is longer than {_MAX_LINE_BYTES // (1 << 20)} MB"
    return f"cannot be read as CSV ({kind.lower()})"


def _line_count(path: Path, newline: str) -> int:
    """Lines of the file, trailing blank lines excluded (bytes; not for UTF-16)."""
    mark = b"\r" if newline == "\r" else b"\n"
    count, last = 0, b""
    buffer = bytearray(16 << 20)
    with path.open("rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            chunk = buffer if n == len(buffer) else buffer[:n]
            count += chunk.count(mark)
            last = (last + bytes(chunk[-65536:]))[-65536:]
    trailing = last[len(last.rstrip(b"\r\n \t")) :]
    count -= trailing.count(mark)
    return count + 1 if last.rstrip(b"\r\n \t") else count


def _exact_lines(
    path: Path, dialect: CsvDialect, bad_duck_lines: set[int]
) -> tuple[array[int], dict[int, int]]:
    """(row -> line of its record, DuckDB's line -> row for ``bad_duck_lines``), by csv.

    DuckDB numbers a rejected record by the newlines outside quotes before it (blank lines
    counted); rows it reads are numbered in order, blank lines skipped. Python's reader
    sees the same records and knows each one's physical lines.
    """
    codec = "utf-8-sig" if dialect.bom else _PY_CODECS[dialect.encoding]
    lines = array("q")
    found: dict[int, int] = {}
    with path.open(encoding=codec, errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=dialect.delimiter, strict=False)
        consumed, inside, ordinal = 0, 0, -1
        try:
            for record in reader:
                start, consumed = consumed + 1, reader.line_num
                if not record:
                    continue
                duck_line = start - inside
                inside += consumed - start
                ordinal += 1
                if ordinal == 0:
                    continue  # the header
                lines.append(start)
                if duck_line in bad_duck_lines:
                    found[duck_line] = ordinal
        except csv.Error:
            pass
    return lines, found


def _read(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    table: str,
    args: list[str],
    limit: int | None,
    kept: tuple[str, ...] | None,
    header: tuple[str, ...],
) -> None:
    """Create ``table`` from the file: every column, or only ``kept`` ones.

    DuckDB checks the bytes of the columns a query reads only, so when some are left out
    the query still reads them (a filter on their hash, always true): a line with a bad
    byte in a column left out is a bad line, as it is when every column is kept.
    """
    columns, checked = "*", ""
    if kept is not None:
        columns = ", ".join(quote_ident(c) for c in kept) or "NULL AS __none"
        rest = [quote_ident(c) for c in header if c not in kept]
        if rest:
            checked = f" WHERE hash({', '.join(rest)}) IS NOT NULL"
    con.execute(
        f"CREATE TEMP TABLE {quote_ident(table)} AS "
        f"SELECT {columns} FROM read_csv({_lit(str(path))}, {', '.join(args)}){checked}"
        + (f" LIMIT {int(limit)}" if limit is not None else "")
    )


def _unreadable(name: str, exc: duckdb.Error) -> NoReturn:
    first = next((ln for ln in str(exc).splitlines() if ln.strip()), "")
    raise SourceError(
        f"{name} cannot be read as CSV: "
        + re.sub(r"'[^']*'", "'...'", re.sub(r"^[A-Za-z ]*Error: ", "", first))
    ) from None


def _one_line_ending(con: duckdb.DuckDBPyConnection, path: Path) -> Path:
    """A copy of ``path`` in DuckDB's own temporary folder, every line ending made LF."""
    ((folder,),) = con.execute("SELECT current_setting('temp_directory')").fetchall()
    fd, name = tempfile.mkstemp(suffix=".csv", dir=str(folder))
    carry = b""
    with path.open("rb") as source, os.fdopen(fd, "wb") as target:
        while chunk := source.read(16 << 20):
            chunk = carry + chunk
            carry = b"\r" if chunk.endswith(b"\r") else b""
            chunk = chunk[:-1] if carry else chunk
            target.write(chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        target.write(carry.replace(b"\r", b"\n"))
    return Path(name)


def read_csv(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    options: SourceOptions,
    table: str,
    dialect: CsvDialect | None = None,
    *,
    limit: int | None = None,
    keep: Sequence[str] | None = None,
) -> CsvTable:
    """Read ``path`` into temporary table ``table`` (text columns); ``relation`` numbers it.

    ``limit``: only the first rows (a sample; lines are then not numbered exactly).
    ``keep``: only these columns are stored in the table (every line is still read and
    checked whole); :attr:`CsvTable.everything` then reads the others from the file again.
    Storing the columns a mapping leaves out (free-text notes, the partner's own
    references) was a third of the time spent reading a large export.
    """
    dialect = dialect or sniff_csv(path, options)
    _check_single_column(path, dialect, given=options.delimiter is not None)
    kept = None if keep is None else tuple(c for c in dialect.header if c in set(keep))
    if kept == dialect.header:
        kept = None
    columns = "{" + ", ".join(f"{_lit(n)}: 'VARCHAR'" for n in dialect.header) + "}"
    errors, scans = f"{table}__errors", f"{table}__scans"
    args = [
        f"columns = {columns}",
        "header = true",
        "auto_detect = false",
        f"delim = {_lit(dialect.delimiter)}",
        "quote = '\"'",
        "escape = '\"'",
        f"new_line = {_lit(_NEWLINE_NAMES[dialect.newline])}",
        f"encoding = {_lit(dialect.encoding.value)}",
        f"max_line_size = {_MAX_LINE_BYTES}",
        f"buffer_size = {_BUFFER_BYTES}",
        "ignore_errors = true",
        "store_rejects = true",
        f"rejects_table = {_lit(errors)}",
        f"rejects_scan = {_lit(scans)}",
    ]
    notes = list(dialect.notes)
    name = path.name
    try:
        _read(con, path, table, args, limit, kept, dialect.header)
    except duckdb.OutOfMemoryException:
        raise  # not the file's fault: the caller names the setting to raise
    except duckdb.Error as exc:
        if "state machine" not in str(exc) or dialect.encoding is Encoding.UTF16:
            _unreadable(name, exc)
        # Mixed line endings (a "\r\n" line in a "\n" file) stop DuckDB's strict reader:
        # read a copy with every line ending made "\n" (same lines, same numbers).
        path, dialect = _one_line_ending(con, path), replace(dialect, newline="\n")
        args = [a if not a.startswith("new_line") else "new_line = '\\n'" for a in args]
        notes.append("line endings mixed (\\r\\n and \\n): each read as the end of a line")
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(errors)}")
        con.execute(f"DROP TABLE IF EXISTS {quote_ident(scans)}")
        try:
            _read(con, path, table, args, limit, kept, dialect.header)
        except duckdb.OutOfMemoryException:
            raise
        except duckdb.Error as again:
            _unreadable(name, again)
    ((rows,),) = con.execute(f"SELECT count(*) FROM {quote_ident(table)}").fetchall()
    rejected = con.execute(
        f"SELECT line, first(error_type ORDER BY column_idx), "
        f"first(error_message ORDER BY column_idx), first(column_name ORDER BY column_idx), "
        f"first(csv_line) FROM {quote_ident(errors)} GROUP BY line ORDER BY line"
    ).fetchall()
    bad = []
    for line, kind, message, column, raw in rejected:
        body = str(raw or "").strip("\r\n")
        spanned = body.count("\n") if "\n" in body else body.count("\r")
        if spanned and str(kind).upper() == "UNQUOTED VALUE":
            raise SourceError(
                f"{name}: a quote opened on line {line} is never closed, so the "
                f"{spanned:,} lines after it cannot be read as rows; close that quote "
                "(or double a quote inside a value: \"\")",
                field="source",
            )
        reason = _reason(str(kind), str(message or ""), column, dialect)
        if spanned:
            reason += f" (its quoted value runs over {spanned + 1} lines)"
        bad.append((int(line), reason))
    total = int(rows) + len(bad)
    fast = limit is not None or (
        dialect.encoding is not Encoding.UTF16 and _line_count(path, dialect.newline) == total + 1
    )
    if fast:
        line_of = LineMap()
        bad_lines = [BadLine(line - 1, line, reason) for line, reason in bad]
    else:
        lines, rows_of = _exact_lines(path, dialect, {line for line, _ in bad})
        line_of = LineMap(lines)
        bad_lines = []
        for line, reason in bad:
            row = rows_of.get(line)
            bad_lines.append(BadLine(row, line_of(row) if row else line, reason))
    relation = f"{table}__rows"
    con.execute(
        f"CREATE TEMP VIEW {quote_ident(relation)} AS "
        f"SELECT rowid + 1 AS {quote_ident(ROW_COLUMN)}, * FROM {quote_ident(table)}"
    )
    everything = None
    if kept is not None:
        everything = f"{table}__file"
        plain = [a for a in args if not a.startswith(("store_rejects", "rejects_"))]
        con.execute(
            f"CREATE TEMP VIEW {quote_ident(everything)} AS "
            f"SELECT * FROM read_csv({_lit(str(path))}, {', '.join(plain)})"
        )
    return CsvTable(
        relation=relation,
        everything=everything,
        columns=dialect.header,
        rows=int(rows),
        bad_lines=bad_lines,
        line_of=line_of,
        numbers=RowNumbers.of([b.row for b in bad_lines if b.row is not None]),
        notes=tuple(notes),
    )



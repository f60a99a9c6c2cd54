"""Reading exports: every format, and a clear SourceError for each way a file can be wrong."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.partner.mapping import Mapping, parse_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.pseudonymise import NetworkKey
from hub.contracts.model import ContractRegistry
from hub.errors import EmptyExtract, SourceError
from tests.connectors.conftest import FLOWS_HEADER, FLOWS_MAPPING, good_flow, write_csv

ROWS = [good_flow(i) for i in range(5)]


def _run(
    source: Path, mapping: Mapping, key: NetworkKey, registry: ContractRegistry
) -> tuple[int, int]:
    out = source.parent / f"out-{uuid.uuid4().hex}" / "x.parquet"
    try:
        result = prepare_extract(
            source,
            mapping,
            key=key,
            out_path=out,
            rejects_path=out.with_suffix(".csv"),
            registry=registry,
            max_reject_ratio=1.0,
        )
    except Exception:
        leftovers = list(out.parent.iterdir()) if out.parent.exists() else []
        assert leftovers == [], "a failed run leaves nothing behind"
        raise
    return result.rows_read, result.rows_valid


def _with_source(registry: ContractRegistry, source_yaml: str) -> Mapping:
    return parse_mapping(FLOWS_MAPPING + "source:\n" + source_yaml, registry)


def test_csv_with_sniffed_semicolons_and_latin1(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    rows = [[*r[:-1], "José Müller"] for r in ROWS]
    path = write_csv(tmp_path / "a.csv", FLOWS_HEADER, rows, delimiter=";", encoding="latin-1")
    mapping = _with_source(registry, "  encoding: latin-1\n")
    assert _run(path, mapping, key, registry) == (5, 5)


def test_wrong_delimiter_is_explained(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    path = write_csv(tmp_path / "a.csv", FLOWS_HEADER, ROWS, delimiter=";")
    with pytest.raises(SourceError) as caught:
        _run(path, _with_source(registry, "  delimiter: ','\n"), key, registry)
    message = str(caught.value)
    assert "only one column" in message and 'delimiter: ";"' in message
    assert caught.value.field == "source.delimiter"


def test_tab_delimited_file_read_with_commas(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    path = write_csv(tmp_path / "a.tsv", FLOWS_HEADER, ROWS, delimiter="\t")
    with pytest.raises(SourceError, match="delimiter: tab"):
        _run(path, _with_source(registry, "  delimiter: ','\n"), key, registry)
    assert _run(path, _with_source(registry, "  delimiter: tab\n"), key, registry) == (5, 5)


def test_a_ragged_row_is_one_rejected_row_with_its_line(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    path = write_csv(tmp_path / "a.csv", FLOWS_HEADER, [*ROWS[:2], [*ROWS[2], "jo@example.org"]])
    rejects = tmp_path / "r.csv"
    result = prepare_extract(
        path, flows_mapping, key=key, out_path=tmp_path / "o.parquet", rejects_path=rejects,
        registry=registry, max_reject_ratio=1.0,
    )
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (3, 2, 1)
    (error,) = result.errors
    assert (error.row, error.line, error.field) == (3, 4, None)
    assert error.reason == "the line has 9 fields where the header has 8"
    assert "jo@example.org" not in rejects.read_text()
    assert "jo@example.org" not in str(result.errors)


def test_a_latin1_export_is_detected_and_said(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    path = write_csv(
        tmp_path / "a.csv", FLOWS_HEADER, [[*ROWS[0][:-1], "Zoë Ångström"]], encoding="latin-1"
    )
    out = tmp_path / "o.parquet"
    result = prepare_extract(path, flows_mapping, key=key, out_path=out, registry=registry)
    assert result.rows_valid == 1
    (note,) = [n for n in result.notes if n.startswith("encoding")]
    assert note.startswith("encoding latin-1 (3 bytes in the file are not UTF-8")
    assert "Zo" not in note


def test_bytes_not_valid_in_the_declared_encoding_reject_their_rows(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    path = tmp_path / "a.csv"
    lines = [",".join(FLOWS_HEADER), *(",".join(r) for r in ROWS)]
    data = "\n".join(lines).encode() + b"\n"
    data = data.replace(b"Name 3", b"Zo\xeb 3")  # a Latin-1 byte in a UTF-8 file, row 4
    path.write_bytes(data)
    mapping = _with_source(registry, "  encoding: utf-8\n")
    out = tmp_path / "o.parquet"
    result = prepare_extract(
        path, mapping, key=key, out_path=out, registry=registry, max_reject_ratio=0.25
    )
    assert (result.rows_read, result.rows_valid) == (5, 4)
    (error,) = result.errors
    assert (error.row, error.line) == (4, 5)
    assert error.reason == "not valid utf-8 text (column customer_name); is the file Latin-1?"


def test_utf16_file_is_recognised(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    path = write_csv(tmp_path / "a.csv", FLOWS_HEADER, ROWS, encoding="utf-16")
    assert _run(path, flows_mapping, key, registry) == (5, 5)
    assert _run(path, _with_source(registry, "  encoding: utf-16\n"), key, registry) == (5, 5)


def test_empty_file_and_header_only(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="is empty"):
        _run(empty, flows_mapping, key, registry)
    blank = tmp_path / "blank.csv"
    blank.write_text("\n  \n")
    with pytest.raises(SourceError, match="is empty"):
        _run(blank, flows_mapping, key, registry)
    header_only = write_csv(tmp_path / "h.csv", FLOWS_HEADER, [])
    with pytest.raises(EmptyExtract, match="no data rows"):
        _run(header_only, flows_mapping, key, registry)


def test_missing_file(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        _run(tmp_path / "nope.csv", flows_mapping, key, registry)


def test_missing_mapped_column_lists_the_columns_found(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    header = ["Phone", *FLOWS_HEADER[1:6], "amount_eur", "customer_name"]
    path = write_csv(tmp_path / "a.csv", header, ROWS)
    with pytest.raises(SourceError) as caught:
        _run(path, flows_mapping, key, registry)
    message = str(caught.value)
    assert "'phone', 'total'" in message
    assert "its columns are: Phone, from, to" in message
    assert "'phone' -> 'Phone'?" in message


def test_parquet_keeps_types_and_corrupt_parquet_is_refused(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    table = pa.table(
        {
            "phone": [447400123123.0, 447400123124.0],  # numbers stored as floats
            "from": ["GB", "GB"],
            "to": ["NG", "RO"],
            "payout": ["CASH", "BANK"],
            "month": pa.array([pa.scalar(0, pa.date32()).as_py()] * 2, pa.date32()),
            "n": pa.array([3, 1], pa.int32()),
            "total": [10.5, 0.0],
            "customer_name": ["a", "b"],
        }
    )
    mapping = parse_mapping(
        FLOWS_MAPPING.replace("period: month", "period: {constant: 2024-05}").replace(
            "default_region: GB", "default_region: GB"
        ),
        registry,
    )
    path = tmp_path / "flows.parquet"
    pq.write_table(table, path)
    assert _run(path, mapping, key, registry) == (2, 2)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(SourceError, match="not a readable Parquet file"):
        _run(broken, flows_mapping, key, registry)


def test_excel_sheet_dates_and_blank_rows(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    import datetime as dt

    book = openpyxl.Workbook()
    first = book.active
    assert first is not None
    first.title = "Summary"
    sheet = book.create_sheet("Flows")
    sheet.append(FLOWS_HEADER)
    sheet.append(["+447400123123", "GB", "NG", "CASH", dt.datetime(2024, 3, 15), 2, 99.5, "x"])
    sheet.append([None] * 8)  # a blank spreadsheet row is skipped, numbering kept
    sheet.append([447400123124, "GB", "NG", "BANK", dt.date(2024, 4, 1), 1.0, 10, "y"])
    sheet.append(["+447400123125", "GB", "NG", "WIRE", "2024-05", 1, 10, "z"])
    path = tmp_path / "flows.xlsx"
    book.save(path)
    mapping = _with_source(registry, "  sheet: Flows\n")
    out = tmp_path / "o.parquet"
    result = prepare_extract(
        path, mapping, key=key, out_path=out, registry=registry, max_reject_ratio=0.5
    )
    assert (result.rows_read, result.rows_valid) == (3, 2)
    # row 4 of the data is sheet row 5 (the header is sheet row 1; a blank row is skipped)
    assert [(e.row, e.line, e.field, e.value) for e in result.errors] == [
        (4, 5, "channel", "WIRE")
    ]
    assert pq.read_table(out).column("period").to_pylist() == ["2024-03", "2024-04"]
    with pytest.raises(SourceError, match="no sheet 'Nope'; its sheets are: Summary, Flows"):
        prepare_extract(
            path,
            _with_source(registry, "  sheet: Nope\n"),
            key=key,
            out_path=out,
            registry=registry,
        )
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(SourceError, match="not a readable Excel workbook"):
        prepare_extract(bad, mapping, key=key, out_path=out, registry=registry)


def _sqlite(path: Path) -> Path:
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE flows (phone TEXT, c_from TEXT, c_to TEXT, payout TEXT, "
            "month TEXT, n INTEGER, total REAL)"
        )
        db.executemany(
            "INSERT INTO flows VALUES (?,?,?,?,?,?,?)",
            [
                ("07400 123123", "GB", "NG", "CASH", "2024-03-02", 2, 12.5),
                ("07400 123124", "GB", "RO", "BANK", "2024-04-02", 3, 7.0),
            ],
        )
    db.close()
    return path


def test_sqlite_query_runs_in_sqlite(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    db = _sqlite(tmp_path / "crm.sqlite")
    query = (
        '  sql: SELECT phone, c_from AS "from", c_to AS "to", payout, month, n, total FROM flows\n'
    )
    assert _run(db, _with_source(registry, query), key, registry) == (2, 2)
    with pytest.raises(SourceError, match="give the query"):
        _run(db, parse_mapping(FLOWS_MAPPING, registry), key, registry)
    with pytest.raises(SourceError, match=r"failed in SQLite.*no such table"):
        _run(db, _with_source(registry, "  sql: SELECT * FROM missing_table\n"), key, registry)
    not_db = tmp_path / "fake.db"
    not_db.write_text("hello")
    with pytest.raises(SourceError, match="not a database"):
        _run(not_db, _with_source(registry, "  sql: SELECT * FROM flows\n"), key, registry)


def test_duckdb_query_over_a_folder_and_over_the_source(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    write_csv(folder / "people.csv", ["pid", "phone"], [[1, "07400 123123"], [2, "07400 123124"]])
    write_csv(
        folder / "flows.csv",
        ["pid", "from", "to", "payout", "month", "n", "total"],
        [[1, "GB", "NG", "CASH", "2024-03", 2, 5], [2, "GB", "NG", "BANK", "2024-03", 1, 5]],
    )
    query = (
        "  sql: SELECT p.phone, f.* EXCLUDE (pid) FROM flows f "
        "JOIN people p USING (pid) ORDER BY pid\n"
    )
    assert _run(folder, _with_source(registry, query), key, registry) == (2, 2)
    by_path = query.replace("flows f", f"read_csv('{folder / 'flows.csv'}') f")
    assert _run(folder, _with_source(registry, by_path), key, registry) == (2, 2)
    relative = query.replace("flows f", "read_csv('flows.csv') f")
    with pytest.raises(SourceError, match="use their table names"):
        _run(folder, _with_source(registry, relative), key, registry)
    source_query = "  sql: SELECT * FROM source WHERE payout = 'CASH'\n"
    csv_file = write_csv(
        tmp_path / "a.csv", FLOWS_HEADER, [*ROWS[:3], [*ROWS[3][:3], "BANK", *ROWS[3][4:]]]
    )
    assert _run(csv_file, _with_source(registry, source_query), key, registry) == (3, 3)
    with pytest.raises(SourceError, match="is a folder"):
        _run(folder, parse_mapping(FLOWS_MAPPING, registry), key, registry)


def test_duckdb_query_is_sandboxed(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    outside = write_csv(tmp_path / "secret.csv", FLOWS_HEADER, ROWS)
    escape = f"  sql: SELECT * FROM read_csv('{outside}')\n"
    with pytest.raises(SourceError, match="may read only the files in"):
        _run(folder, _with_source(registry, escape), key, registry)
    with pytest.raises(SourceError, match="sql failed"):
        _run(folder, _with_source(registry, "  sql: INSTALL sqlite\n"), key, registry)


def test_unknown_extension_needs_a_format(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    path = write_csv(tmp_path / "export.dat", FLOWS_HEADER, ROWS)
    with pytest.raises(SourceError, match="set `format:`"):
        _run(path, flows_mapping, key, registry)
    assert _run(path, _with_source(registry, "  format: csv\n"), key, registry) == (5, 5)
    with pytest.raises(SourceError, match="only for Excel"):
        _run(path, _with_source(registry, "  format: csv\n  sheet: x\n"), key, registry)

"""Row-level tolerance: one bad line is one rejected row with its line, never a refused file.

Real files written in tmp dirs: ragged rows (too many and too few fields), bytes that are
not valid in the encoding, blank lines and line breaks inside quoted values (lines still
numbered exactly), a quote never closed (the file stops, naming the line), the reject-rate
threshold (nothing written, a summary with the first lines), and the rejects file, which
never holds a raw identifier, wherever a shifted row puts it.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.partner.mapping import Mapping, parse_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.pseudonymise import NetworkKey
from hub.contracts.model import ContractRegistry
from hub.errors import ExtractInvalid, SourceError
from tests.connectors.conftest import FLOWS_HEADER, FLOWS_MAPPING, good_flow

HEADER = ",".join(FLOWS_HEADER)
IBAN = "GB82WEST12345698765432"
ALERTS_MAPPING = """\
dataset: bank_alerts
contract_version: 1
fields:
  subject: iban
  indicator: indicator
  typology: {constant: unknown}
  origin_country: from
  destination_country: to
  amount: {column: amount, unit: EUR}
  period: date
"""


def _line(i: int) -> str:
    return ",".join(good_flow(i))


def _prepare(
    path: Path, mapping: Mapping, key: NetworkKey, registry: ContractRegistry, **kwargs: object
):  # type: ignore[no-untyped-def]
    return prepare_extract(
        path,
        mapping,
        key=key,
        out_path=path.parent / "out.parquet",
        rejects_path=path.parent / "rejects.csv",
        registry=registry,
        **kwargs,  # type: ignore[arg-type]
    )


def _rejects(path: Path) -> list[dict[str, str]]:
    with (path.parent / "rejects.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_ragged_lines_are_rejected_and_the_rest_goes_on(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    lines = [HEADER] + [_line(i) for i in range(40)]
    lines[5] += ",an extra field"  # row 5, line 6: 9 fields
    lines[12] = ",".join(good_flow(12)[:6])  # row 12, line 13: 6 fields
    lines[20] = lines[20].replace("2024-03", "2024-13")  # a bad value after the ragged lines
    path = tmp_path / "flows.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _prepare(path, flows_mapping, key, registry, max_reject_ratio=0.1)
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (40, 37, 3)
    assert [(e.row, e.line, e.field, e.reason) for e in result.errors] == [
        (5, 6, None, "the line has 9 fields where the header has 8"),
        (12, 13, None, "the line has 6 fields where the header has 8"),
        (20, 21, "period", "not a month ('YYYY-MM') or a date"),
    ]
    assert [r["line"] for r in _rejects(path)] == ["6", "13", "21"]
    assert pq.read_table(result.path).num_rows == 37
    assert {(r.field, r.reason): r.rows for r in result.reasons}[
        ("(line)", "the line has 9 fields where the header has 8")
    ] == 1


def test_lines_stay_exact_across_blank_lines_and_quoted_line_breaks(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    note = '"a note\nwritten over\nthree lines"'
    lines = [
        HEADER,  # line 1
        _line(1),  # line 2, row 1
        "",  # line 3: blank, not a row
        ",".join([*good_flow(2)[:7], note]),  # lines 4-6, row 2
        _line(3) + ",ragged",  # line 7, row 3
        _line(4).replace("CASH", "WIRE"),  # line 8, row 4
        "\r",  # line 9: blank too
        _line(5).replace(",2,", ",two,"),  # line 10, row 5
    ]
    path = tmp_path / "flows.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _prepare(path, flows_mapping, key, registry, max_reject_ratio=1.0)
    assert result.rows_read == 5
    assert "line endings mixed (\\r\\n and \\n): each read as the end of a line" in result.notes
    assert [(e.row, e.line, e.field) for e in result.errors] == [
        (3, 7, None),
        (4, 8, "channel"),
        (5, 10, "transfer_count"),
    ]


def test_windows_line_endings_and_a_byte_order_mark(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    lines = [HEADER] + [_line(i) for i in range(3)]
    lines[2] += ",x"
    path = tmp_path / "flows.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    result = _prepare(path, flows_mapping, key, registry, max_reject_ratio=1.0)
    assert result.rows_valid == 2
    assert [(e.row, e.line) for e in result.errors] == [(2, 3)]
    assert any("byte-order mark" in n for n in result.notes)
    assert pq.read_table(result.path).column("channel").to_pylist() == ["cash_pickup"] * 2


def test_utf8_with_a_stray_latin1_byte_stays_utf8_and_rejects_that_line(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    rows = [good_flow(i) for i in range(30)]
    rows[3][-1] = "José Müller"  # UTF-8 names: the file is UTF-8
    rows[7][-1] = "Zoë"
    text = "\n".join([HEADER, *(",".join(r) for r in rows)]) + "\n"
    data = text.encode().replace("Zoë".encode(), b"Zo\xeb")  # ...but one Latin-1 byte
    path = tmp_path / "flows.csv"
    path.write_bytes(data)
    result = _prepare(path, flows_mapping, key, registry)
    assert [(e.row, e.line, e.reason) for e in result.errors] == [
        (8, 9, "not valid utf-8 text (column customer_name); is the file Latin-1?")
    ]
    (note,) = [n for n in result.notes if n.startswith("encoding")]
    assert note.startswith("encoding utf-8 (2 characters in the file are UTF-8 but 1 byte is not")
    assert "the lines holding them are rejected" in note


def test_a_quote_never_closed_stops_the_file_naming_its_line(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    lines = [HEADER] + [_line(i) for i in range(6)]
    lines[3] = lines[3].replace("Name 2", '"Name 2')
    path = tmp_path / "flows.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError) as caught:
        _prepare(path, flows_mapping, key, registry)
    message = str(caught.value)
    assert "a quote opened on line 4 is never closed" in message
    assert "the 3 lines after it cannot be read" in message
    assert "Name" not in message
    assert not (tmp_path / "out.parquet").exists()


def test_the_reject_rate_stops_the_file_with_a_summary(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    lines = [HEADER] + [_line(i) for i in range(100)]
    for i in (10, 20, 30, 40, 50, 60):  # 6% of the rows ragged: over the default 5%
        lines[i] += ",x"
    path = tmp_path / "flows.csv"
    path.write_text("\n".join(lines) + "\n")
    mapping = parse_mapping(FLOWS_MAPPING, registry)
    with pytest.raises(ExtractInvalid) as caught:
        _prepare(path, mapping, key, registry)
    message = str(caught.value)
    assert "6 of 100 rows (6.0%) were rejected, more than the 5.0% allowed" in message
    assert "nothing can be uploaded" in message
    assert "(line): the line has 9 fields where the header has 8 (6)" in message
    assert "line 11, row 10: the line has 9 fields" in message  # the first lines that show it
    assert not (tmp_path / "out.parquet").exists()
    assert len(_rejects(path)) == 6  # the rejects file is written, to fix the export
    # The mapping's own threshold, then the caller's, let it through.
    lenient = parse_mapping(FLOWS_MAPPING + "max_reject_ratio: 10%\n", registry)
    assert _prepare(path, lenient, key, registry).rows_valid == 94
    assert _prepare(path, mapping, key, registry, max_reject_ratio=0.06).rows_valid == 94


def test_the_rejects_file_never_holds_a_raw_identifier(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    mapping = parse_mapping(ALERTS_MAPPING, registry)
    spaced = " ".join(IBAN[i : i + 4] for i in range(0, 22, 4))
    header = "iban,indicator,from,to,amount,date,customer,notes"
    good = f"{IBAN},other,RO,GB,100.5,2025-03-02,Jane Doe,ok"
    lines = [header, *[good] * 30]
    # a field left out before the IBAN and one too many after it: the IBAN lands in `to`
    lines[2] = f"other,{spaced},RO,GB,100.5,2025-03-02,Jane Doe,ok"
    lines[3] = f"{IBAN},other,RO,GB,{IBAN},2025-03-02,Jane Doe,ok"  # in the amount column
    lines[4] = f"{IBAN},other,RO,GB,100.5,2025-03-02,Jane, Doe,+44 7400 123456"  # ragged
    lines[5] = f"{IBAN},other,{IBAN.lower()},GB,100.5,2025-03-02,Jane Doe,ok"  # a country
    lines[6] = f"{IBAN},jo@example.org,RO,GB,100.5,2025-03-02,Jane Doe,ok"
    lines[7] = f"{IBAN},other,RO,GB,100.5,AB1234567,Jane Doe,ok"  # a passport as a date
    path = tmp_path / "alerts.csv"
    path.write_text("\n".join(lines) + "\n")
    result = _prepare(path, mapping, key, registry, max_reject_ratio=1.0)
    assert result.rows_rejected == 6
    written = (tmp_path / "rejects.csv").read_text()
    shown = written + str(result.errors)
    for raw in (IBAN, IBAN.lower(), spaced, "7400 123456", "jo@example.org", "AB1234567"):
        assert raw not in shown, raw
    assert "Jane" not in shown
    values = {r["line"]: r["value"] for r in _rejects(path)}
    assert values["4"] == "GB" + re.sub(r"[A-Za-z0-9]", "*", IBAN[2:])  # masked, shape kept
    assert values["5"] == ""  # a ragged line: no value at all
    assert re.fullmatch(r"j\*@\*+\.\*+", values["7"])


def test_a_folder_query_reports_bad_lines_of_its_files(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "people.csv").write_text("pid,phone\n1,07400 123123\n2,07400 123124\n3,x,y\n")
    (folder / "flows.csv").write_text(
        "pid,from,to,payout,month,n,total\n1,GB,NG,CASH,2024-03,2,5\n2,GB,NG,BANK,2024-03,1,5\n"
    )
    mapping = parse_mapping(
        FLOWS_MAPPING
        + "source:\n  sql: SELECT p.phone, f.* EXCLUDE (pid) FROM flows f JOIN people p "
        "USING (pid) ORDER BY pid\n",
        registry,
    )
    result = prepare_extract(
        folder, mapping, key=key, out_path=tmp_path / "o.parquet", registry=registry,
        max_reject_ratio=0.5,
    )
    assert (result.rows_read, result.rows_valid) == (3, 2)
    (error,) = result.errors
    assert (error.row, error.line) == (None, 4)
    assert error.reason == "people.csv: the line has 3 fields where the header has 2"

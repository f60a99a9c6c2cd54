"""The typed mapping on real export files: each parser, its options, and its rejects.

Day-first dates, decimal commas and no-break-space thousands, cents, several currencies with
a rate table, local times across a DST change and a month boundary, unknown markers, band
spellings, phone numbers without their +, a date from two columns, typed Parquet columns.
Every bad cell is a rejected row with its line and a reason that says what was expected.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.partner.mapping import parse_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.pseudonymise import NetworkKey
from connectors.partner.report import PreparedExtract
from hub.contracts.model import ContractRegistry
from hub.ingest.extracts import check_extract

FLOWS = """\
dataset: corridor_flows
contract_version: 1
fields:
  sender: {{column: phone, default_region: GB}}
  send_country: from
  receive_country: to
  channel: {{column: payout, recode: {{CASH: cash_pickup}}}}
  period: {period}
  transfer_count: {count}
  amount: {amount}
"""
HEADER = ["phone", "from", "to", "payout", "when", "n", "total"]


def _rows(*cells: Sequence[str], **column: Sequence[str]) -> list[list[str]]:
    """Rows of HEADER; keyword arguments replace one column's values, in order."""
    n = max([len(cells)] + [len(v) for v in column.values()])
    rows = [["07400 123456", "GB", "NG", "CASH", "2024-03-15", "2", "10.5"] for _ in range(n)]
    for name, values in column.items():
        i = HEADER.index(name)
        for row, value in zip(rows, values, strict=False):
            row[i] = value
    return rows


def _run(
    folder: Path,
    registry: ContractRegistry,
    key: NetworkKey,
    rows: list[list[str]],
    *,
    period: str = "when",
    count: str = "n",
    amount: str = "{column: total, unit: EUR}",
    header: Sequence[str] = HEADER,
    delimiter: str = ",",
    max_reject_ratio: float = 1.0,
) -> PreparedExtract:
    path = folder / "export.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    mapping = parse_mapping(
        FLOWS.format(period=period, count=count, amount=amount), registry, base_dir=folder
    )
    result = prepare_extract(
        path,
        mapping,
        key=key,
        out_path=folder / "out.parquet",
        rejects_path=folder / "rejects.csv",
        registry=registry,
        max_reject_ratio=max_reject_ratio,
    )
    check_extract(result.path, registry.get("corridor_flows", 1))  # the hub takes it
    return result


def _column(result: PreparedExtract, name: str) -> list[object]:
    return pq.read_table(result.path).column(name).to_pylist()


def _errors(result: PreparedExtract) -> list[tuple[int | None, int | None, str | None, str]]:
    return [(e.row, e.line, e.field, e.reason) for e in result.errors]


def test_day_first_dates_with_dots_or_slashes(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    result = _run(
        tmp_path, registry, key,
        _rows(when=["15.03.2024", "01/02/2024", "2024-04-30", "31.02.2024", "03/15/2024", ""]),
        period='{column: when, formats: ["%d.%m.%Y", "%d/%m/%Y"]}',
    )
    assert _column(result, "period") == ["2024-03", "2024-02", "2024-04"]  # ISO still read
    reason = "not a date in the formats %d.%m.%Y, %d/%m/%Y"
    assert _errors(result) == [
        (4, 5, "period", reason),  # 31 February
        (5, 6, "period", reason),  # month-first
        (6, 7, "period", "required"),
    ]
    assert [e.value for e in result.errors[:2]] == ["31.02.2024", "03/15/2024"]


def test_decimal_commas_and_thousands_with_no_break_spaces(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    nbsp, narrow = "\u00a0", "\u202f"
    totals = ["1.234,56", f"12{nbsp}345,6", f"1{narrow}000", "7,5", "12.34,5", "1,2,3", "abc"]
    result = _run(
        tmp_path, registry, key, _rows(total=totals),
        amount='{column: total, unit: EUR, decimal: ",", thousands: [".", space]}',
        delimiter=";",
    )
    assert _column(result, "amount") == [1234.56, 12345.6, 1000.0, 7.5]
    assert _errors(result) == [
        (5, 6, "amount", "digits between thousands separators are not in groups of three"),
        (6, 7, "amount", "not a number (decimal ',', thousands '.', 'space')"),
        (7, 8, "amount", "not a number (decimal ',', thousands '.', 'space')"),
    ]


def test_amounts_in_cents(tmp_path: Path, registry: ContractRegistry, key: NetworkKey) -> None:
    result = _run(
        tmp_path, registry, key, _rows(total=["123456", "99", "0"]),
        amount="{column: total, unit: EUR, minor_units: true}",
    )
    assert _column(result, "amount") == [1234.56, 0.99, 0.0]
    assert "amount: in minor units (cents)" in result.notes


def test_several_currencies_with_a_rate_table(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    (tmp_path / "fx.csv").write_text("currency,units_per_EUR\nGBP,0.8\nUSD,1.25\nJPY,160\n")
    rows = _rows(total=["8000", "1250", "1600", "500", "500", "500"])
    for row, ccy in zip(rows, ["GBP", "usd", "JPY", "EUR", "XYZ", ""], strict=True):
        row.append(ccy)
    result = _run(
        tmp_path, registry, key, rows, header=[*HEADER, "ccy"],
        amount="{column: total, currency_column: ccy, minor_units: true, "
        "rates: {file: fx.csv, date: 2025-06-30}}",
    )
    # 80.00 GBP, 12.50 USD, 1600 yen (no minor unit), 5.00 EUR
    assert _column(result, "amount") == pytest.approx([100.0, 10.0, 10.0, 5.0])
    assert _errors(result) == [
        (5, 6, "amount", "no rate for this currency in fx.csv"),
        (6, 7, "amount", "no currency"),
    ]
    assert result.errors[0].value == "XYZ"
    assert any("converted to EUR at the rates of 2025-06-30 (fx.csv)" in n for n in result.notes)


def test_one_other_currency(tmp_path: Path, registry: ContractRegistry, key: NetworkKey) -> None:
    (tmp_path / "fx.csv").write_text("currency,EUR_per_unit\nGBP,1.25\n")
    result = _run(
        tmp_path, registry, key, _rows(total=["1,000.00", "80"]),
        amount='{column: total, unit: GBP, thousands: ",", '
        "rates: {file: fx.csv, date: 2025-06-30}}",
    )
    assert _column(result, "amount") == pytest.approx([1250.0, 100.0])


def test_local_times_across_a_dst_change_and_a_month_boundary(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    # Rome: CET (UTC+1) until 31 March 2024 02:00, then CEST (UTC+2).
    times = [
        "01.03.2024 00:30",  # 29 Feb 23:30 UTC: February
        "31.03.2024 01:59",  # 31 Mar 00:59 UTC (still CET): March
        "01.04.2024 01:30",  # 31 Mar 23:30 UTC (CEST): March
        "01.04.2024 02:30",  # 1 Apr 00:30 UTC: April
        "01.04.2024",  # a date without a time keeps its own month
        "2024-03-31T23:30:00-02:00",  # an ISO time with its offset: 1 Apr 01:30 UTC
    ]
    period = (
        '{{column: when, formats: ["%d.%m.%Y %H:%M", "%d.%m.%Y"], timezone: Europe/Rome{}}}'
    )
    utc = _run(tmp_path, registry, key, _rows(when=times), period=period.format(""))
    assert _column(utc, "period") == [
        "2024-02", "2024-03", "2024-03", "2024-04", "2024-04", "2024-04",
    ]
    assert "period: formats %d.%m.%Y %H:%M, %d.%m.%Y; times in Europe/Rome, month taken in UTC" \
        in utc.notes
    local = _run(
        tmp_path, registry, key, _rows(when=times), period=period.format(", month_in: local")
    )
    assert _column(local, "period") == [
        "2024-03", "2024-03", "2024-04", "2024-04", "2024-04", "2024-04",
    ]


def test_a_date_and_a_time_from_two_columns(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    rows = _rows(when=["31.10.2027", "31.10.2027", "01.11.2027"])
    for row, time in zip(rows, ["23:30", "", "00:15"], strict=True):
        row.append(time)
    result = _run(
        tmp_path, registry, key, rows, header=[*HEADER, "time"],
        period='{columns: [when, time], formats: ["%d.%m.%Y %H:%M", "%d.%m.%Y"], '
        "timezone: Europe/London}",
    )
    # London is back on GMT on 31 October 2027; 00:15 on 1 November is November in UTC.
    assert _column(result, "period") == ["2027-10", "2027-10", "2027-11"]
    assert any("joined from when, time" in n for n in result.notes)


def test_unknown_markers(tmp_path: Path, registry: ContractRegistry, key: NetworkKey) -> None:
    result = _run(
        tmp_path, registry, key, _rows(n=["3", "-99", "N/A", ""]),
        count='{column: n, unknown: ["-99", "n/a"]}',
    )
    assert _column(result, "transfer_count") == [3]
    assert _errors(result) == [(r, r + 1, "transfer_count", "required") for r in (2, 3, 4)]


def test_band_spellings_and_codes_matched_folded(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    text = """\
dataset: case_records
contract_version: 2
fields:
  subject: passport
  exploitation_type: {column: type, fold: [case, spaces]}
  means_of_control: {column: control, separator: ";", fold: [case, spaces]}
  age_band:
    column: age
    fold: [case, spaces, punctuation]  # "Under 18" is "under 18"
    recode: {"?": Unknown, "n/k": null, "under 18": 9-17}
  gender: {column: gender, recode: {F: Feminine, M: Masculine}}
  period: {constant: "2025-01"}
"""
    rows = [
        ["AB1234561", "Sexual exploitation", "debt bondage; Withholds documents", "18 - 20", "F"],
        ["AB1234562", "FORCED LABOUR", "", "18\u201320", "M"],
        ["AB1234563", "forced  labour", "", "48 +", "F"],
        ["AB1234564", "Other", "", "?", "F"],
        ["AB1234565", "Other", "", "Under 18", "F"],
        ["AB1234566", "Other", "", "n/k", "F"],
        ["AB1234567", "Slavery", "", "30-38", "X"],
    ]
    path = tmp_path / "cases.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["passport", "type", "control", "age", "gender"])
        writer.writerows(rows)
    result = prepare_extract(
        path, parse_mapping(text, registry), key=key, out_path=tmp_path / "o.parquet",
        registry=registry, max_reject_ratio=1.0,
    )
    data = pq.read_table(result.path).to_pydict()
    assert data["exploitation_type"] == [
        "SexualExploitation", "ForcedLabour", "ForcedLabour", "Other", "Other",
    ]
    assert data["means_of_control"][0] == ["DebtBondage", "WithholdsDocuments"]
    assert data["age_band"] == ["18-20", "18-20", "48+", "Unknown", "9-17"]
    assert data["gender"] == ["Feminine", "Masculine", "Feminine", "Feminine", "Feminine"]
    assert _errors(result) == [
        (6, 7, "age_band", "required"),  # n/k: recoded to unknown, and the band is required
        (7, 8, "exploitation_type", "not in the contract's domain"),
        (7, 8, "gender", "not in the contract's domain"),
    ]
    assert [e.value for e in result.errors[1:]] == ["Slavery", "X"]


def test_phone_numbers_written_without_their_plus(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    text = FLOWS.format(period="when", count="n", amount="{column: total, unit: EUR}").replace(
        "{column: phone, default_region: GB}", "{column: phone, region_column: region, "
        "add_plus: true}"
    )
    phones = ["447400123456", "+44 7400 123456", "07400 123456", "312 345 6789", "4930123456",
              "12"]  # fmt: skip
    regions = ["GB", "GB", "GB", "IT", "DE", "GB"]
    rows = [[*r, region] for r, region in zip(_rows(phone=phones), regions, strict=True)]
    path = tmp_path / "export.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*HEADER, "region"])
        writer.writerows(rows)
    result = prepare_extract(
        path, parse_mapping(text, registry), key=key, out_path=tmp_path / "o.parquet",
        registry=registry, max_reject_ratio=1.0,
    )
    senders = _column(result, "sender")
    assert senders[:3] == [key.token("+447400123456")] * 3
    assert senders[3] == key.token("+393123456789")  # a national Italian mobile, no 0
    assert senders[4] == key.token("+4930123456")  # Berlin, written without its +
    assert _errors(result) == [(6, 7, "sender", "phone number is too short")]


def test_typed_parquet_columns_in_cents_and_times(
    tmp_path: Path, registry: ContractRegistry, key: NetworkKey
) -> None:
    times = [dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.UTC), dt.datetime(2024, 4, 1, 0, 30)]
    path = tmp_path / "flows.parquet"
    pq.write_table(
        pa.table({
            "phone": ["+447400123456", "+447400123457"],
            "from": ["GB", "GB"], "to": ["NG", "NG"], "payout": ["CASH", "CASH"],
            "at": pa.array([t.replace(tzinfo=None) for t in times], pa.timestamp("us")),
            "n": pa.array([2, 3], pa.int32()),
            "cents": pa.array([12345, 99], pa.int64()),
        }),
        path,
    )
    text = FLOWS.format(
        period="{column: at, timezone: Europe/Rome}", count="n",
        amount="{column: cents, unit: EUR, minor_units: true}",
    )
    result = prepare_extract(
        path, parse_mapping(text, registry), key=key, out_path=tmp_path / "o.parquet",
        registry=registry,
    )
    # 23:30 and 00:30 in Rome (CEST) are 21:30 and 22:30 UTC on 31 March
    assert _column(result, "period") == ["2024-03", "2024-03"]
    assert _column(result, "amount") == [123.45, 0.99]
    assert _column(result, "transfer_count") == [2, 3]

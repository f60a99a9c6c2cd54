"""The hub's own check of an uploaded extract: real Parquet files, real DuckDB."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.contracts.extractformat import extract_schema
from hub.contracts.model import Contract, ContractRegistry
from hub.errors import EmptyExtract, ExtractInvalid, ExtractOverLimit, OutOfCapacity, RowError
from hub.ingest import extracts as extracts_module
from hub.ingest.extracts import ExtractLimits, check_extract
from hub.storage.sandbox import DuckLimits
from tests.hub.extract_files import (
    KEY_ID,
    schema_for,
    token,
    valid_rows,
    write_bomb,
    write_extract,
)

REGISTRY = ContractRegistry.load()
ALERTS = REGISTRY.get("bank_alerts", 1)
CASES = REGISTRY.get("case_records", 2)
FLOWS = REGISTRY.get("corridor_flows", 1)
RAW_IBAN = "DE89370400440532013000"


def _reasons(err: ExtractInvalid) -> dict[str | None, str]:
    return {e.field: e.reason for e in err.errors}


def _invalid(path: Path, contract: Contract = ALERTS) -> ExtractInvalid:
    with pytest.raises(ExtractInvalid) as err:
        check_extract(path, contract)
    return err.value


@pytest.mark.parametrize("contract", list(REGISTRY), ids=lambda c: f"{c.dataset}.v{c.version}")
def test_every_shipped_contract_version_accepts_a_valid_extract(
    tmp_path: Path, contract: Contract
) -> None:
    path = write_extract(tmp_path / "x.parquet", contract, valid_rows(contract, 40))
    report = check_extract(path, contract, duck=DuckLimits(1, "1GB", tmp_path / "work"))
    assert (report.dataset, report.contract_version) == contract.key
    assert report.rows == 40
    assert report.key_id == KEY_ID
    assert report.columns == tuple(f.name for f in contract.extract_fields)
    assert report.as_dict()["checked_at"].endswith("+00:00")
    assert list((tmp_path / "work").iterdir()) == []  # DuckDB's spill folder is gone


def test_compatible_arrow_types_are_accepted(tmp_path: Path) -> None:
    rows = valid_rows(FLOWS, 12)
    table = pa.table({
        "sender": pa.array([r["sender"] for r in rows], pa.large_string()),
        "send_country": pa.array([r["send_country"] for r in rows]).dictionary_encode(),
        "receive_country": pa.array([r["receive_country"] for r in rows], pa.string()),
        "channel": pa.array([r["channel"] for r in rows]).dictionary_encode(),
        "period": pa.array([r["period"] for r in rows], pa.large_string()),
        "transfer_count": pa.array([r["transfer_count"] for r in rows], pa.uint8()),
        "amount": pa.array([int(r["amount"]) for r in rows], pa.int32()),  # integers for numbers
    })
    path = write_extract(tmp_path / "f.parquet", FLOWS, table=table)
    assert check_extract(path, FLOWS).rows == 12

    case_rows = valid_rows(CASES, 5)
    case_schema = schema_for(CASES)
    i = case_schema.get_field_index("means_of_control")
    case_schema = case_schema.set(i, pa.field("means_of_control", pa.large_list(pa.large_string())))
    table = pa.Table.from_pylist(case_rows, schema=case_schema)
    assert check_extract(write_extract(tmp_path / "c.parquet", CASES, table=table), CASES).rows == 5

    alert_schema = schema_for(ALERTS)
    j = alert_schema.get_field_index("amount")
    alert_schema = alert_schema.set(j, pa.field("amount", pa.float32()))
    table = pa.Table.from_pylist(valid_rows(ALERTS, 3), schema=alert_schema)
    path = write_extract(tmp_path / "a.parquet", ALERTS, table=table)
    assert check_extract(path, ALERTS).rows == 3


def test_random_bytes_are_not_a_parquet_file_and_the_path_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "secret-folder" / "upl_x.part"
    path.parent.mkdir()
    path.write_bytes(b"PAR1 this is not parquet at all" * 10)
    err = _invalid(path)
    assert "not a readable Parquet file" in err.detail
    assert "secret-folder" not in str(err) and "secret-folder" not in str(err.problem())


def test_a_truncated_file_is_refused(tmp_path: Path) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS, valid_rows(ALERTS, 200))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    assert "not a readable Parquet file" in _invalid(path).detail


def test_corrupt_data_pages_behind_an_intact_footer_are_refused(tmp_path: Path) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS, valid_rows(ALERTS, 2000))
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    for i in range(8, len(data) - footer - 8, 3):  # scramble every page, keep the footer
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    err = _invalid(path)
    assert "cannot be read" in err.detail or "not a readable" in err.detail
    assert str(tmp_path) not in str(err)


def test_an_extract_without_rows_is_empty(tmp_path: Path) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS, [])
    with pytest.raises(EmptyExtract, match="no rows"):
        check_extract(path, ALERTS)


def test_missing_metadata_tells_to_use_the_connector(tmp_path: Path) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS, metadata={
        "tahub.dataset": None, "tahub.contract_version": None, "tahub.key_id": None,
    })
    err = _invalid(path)
    assert set(_reasons(err)) == {"tahub.dataset", "tahub.contract_version", "tahub.key_id"}
    assert all("tahub-connect" in r for r in _reasons(err).values())


def test_metadata_naming_another_dataset_version_or_a_bad_key_id_is_refused(
    tmp_path: Path,
) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS, metadata={
        "tahub.dataset": "corridor_flows", "tahub.contract_version": "2", "tahub.key_id": "XYZ",
    })
    reasons = _reasons(_invalid(path))
    assert "written for dataset 'corridor_flows'" in reasons["tahub.dataset"]
    assert "declares 'bank_alerts'" in reasons["tahub.dataset"]
    assert "version '2'" in reasons["tahub.contract_version"]
    assert "8 lower-case hex digits" in reasons["tahub.key_id"]


def test_case_records_v1_file_is_refused_as_v2(tmp_path: Path) -> None:
    v1 = REGISTRY.get("case_records", 1)
    path = write_extract(tmp_path / "x.parquet", v1, valid_rows(v1, 5))
    reasons = _reasons(_invalid(path, CASES))
    assert "version '1'" in reasons["tahub.contract_version"]
    assert reasons["sector"].startswith("missing column")


def test_missing_wrong_type_and_extra_columns_are_reported_together(tmp_path: Path) -> None:
    rows = valid_rows(ALERTS, 5)
    table = pa.Table.from_pylist(rows, schema=schema_for(ALERTS))
    table = table.drop_columns(["typology"])
    table = table.set_column(table.schema.get_field_index("amount"), "amount",
                             pa.array([str(r["amount"]) for r in rows]))
    table = table.append_column("batch", pa.array(["b1"] * 5))
    err = _invalid(write_extract(tmp_path / "x.parquet", ALERTS, table=table))
    assert err.total_errors == 3
    reasons = _reasons(err)
    assert reasons["typology"] == "missing column: text (string) holding one code"
    assert reasons["amount"] == "wrong type string: expected a number (float64)"
    assert reasons["batch"] == "extra column not in contract bank_alerts v1; remove it"
    assert "never accepts identifiers" not in reasons["batch"]


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("customer_email", ["x1", "x2"]),
        ("FirstName", ["Ana", "Ion"]),
        ("date_of_birth", ["1990-01-01", "1985-02-03"]),
        ("passport_no", ["X1234567", "Y7654321"]),
        ("iban", ["x", "y"]),
        ("phone", ["1", "2"]),
    ],
)
def test_an_extra_column_whose_name_suggests_an_identifier_says_so(
    tmp_path: Path, name: str, values: list[str]
) -> None:
    table = pa.Table.from_pylist(valid_rows(ALERTS, 2), schema=schema_for(ALERTS))
    table = table.append_column(name, pa.array(values))
    reason = _reasons(_invalid(write_extract(tmp_path / "x.parquet", ALERTS, table=table)))[name]
    assert "suggests an identifier" in reason
    assert "the hub never accepts identifiers or free text" in reason


@pytest.mark.parametrize(
    ("values", "hint"),
    [
        (["ana.popescu@example.org", "ion@example.com"], "look like identifiers"),
        (["+40 721 234 567", "+44 20 7946 0958"], "look like identifiers"),
        (["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"], "look like identifiers"),
        (["Victim said she was recruited through a friend at a party in the city"] * 2,
         "look like free text"),
        (["met at bus station then taken to farm"] * 2, "look like free text"),
    ],
)
def test_an_extra_column_whose_values_look_identifying_or_free_text_says_so(
    tmp_path: Path, values: list[str], hint: str
) -> None:
    table = pa.Table.from_pylist(valid_rows(ALERTS, 2), schema=schema_for(ALERTS))
    table = table.append_column("misc", pa.array(values))
    err = _invalid(write_extract(tmp_path / "x.parquet", ALERTS, table=table))
    reason = _reasons(err)["misc"]
    assert hint in reason
    assert "the hub never accepts identifiers or free text" in reason
    for value in values:  # the sniffed values themselves are never echoed
        assert value not in str(err.problem())


def test_ordinary_extra_values_get_no_identifier_hint(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(valid_rows(ALERTS, 3), schema=schema_for(ALERTS))
    table = table.append_column("region", pa.array(["north", "south", "2024-01-02"]))
    reason = _reasons(_invalid(write_extract(tmp_path / "x.parquet", ALERTS, table=table)))
    assert reason["region"] == "extra column not in contract bank_alerts v1; remove it"


def test_the_hub_stamped_partner_column_must_not_be_uploaded(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(valid_rows(ALERTS, 2), schema=schema_for(ALERTS))
    table = table.append_column("partner", pa.array(["org_x", "org_x"]))
    reason = _reasons(_invalid(write_extract(tmp_path / "x.parquet", ALERTS, table=table)))
    assert "stamped by the hub" in reason["partner"]


def test_a_repeated_column_is_refused(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(valid_rows(ALERTS, 2), schema=schema_for(ALERTS))
    table = table.append_column("indicator", table.column("indicator"))
    reasons = _reasons(_invalid(write_extract(tmp_path / "x.parquet", ALERTS, table=table)))
    assert reasons["indicator"] == "the column appears 2 times"


def _with(contract: Contract, n: int, bad: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = valid_rows(contract, n)
    for index, overrides in bad.items():
        rows[index - 1].update(overrides)
    return rows


@pytest.mark.parametrize(
    ("overrides", "field", "reason"),
    [
        ({"subject": RAW_IBAN}, "subject", "not a pseudonymised token"),
        ({"subject": "ana.popescu@example.org"}, "subject", "not a pseudonymised token"),
        ({"subject": None}, "subject", "required"),
        ({"indicator": "looked_nervous"}, "indicator", "not in the contract's domain"),
        ({"origin_country": "XX"}, "origin_country", "not in the contract's domain"),
        ({"amount": float("nan")}, "amount", "NaN and infinity are not allowed"),
        ({"amount": float("inf")}, "amount", "NaN and infinity are not allowed"),
        ({"amount": -5.0}, "amount", "negative values are not allowed"),
        ({"period": "2025-3"}, "period", "not a month"),
        ({"period": "2031-01"}, "period", "outside the contract's months"),
    ],
)
def test_a_bad_row_is_refused_with_its_row_number_and_field(
    tmp_path: Path, overrides: dict[str, Any], field: str, reason: str
) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS, _with(ALERTS, 8, {6: overrides}))
    err = _invalid(path)
    assert err.total_errors == 1
    assert err.errors[0].row == 6 and err.errors[0].field == field
    assert reason in err.errors[0].reason
    assert "1 of 8 rows" in err.detail


def test_raw_identifiers_are_never_echoed_in_the_error(tmp_path: Path) -> None:
    rows = _with(ALERTS, 3, {2: {"subject": RAW_IBAN}})
    path = write_extract(tmp_path / "x.parquet", ALERTS, rows)
    err = _invalid(path)
    assert err.errors == [RowError(field="subject", row=2, reason=err.errors[0].reason)]
    assert err.errors[0].value is None
    assert RAW_IBAN not in str(err) and RAW_IBAN not in repr(err.problem())


def test_category_lists_are_checked_per_code(tmp_path: Path) -> None:
    rows = _with(CASES, 4, {1: {"means_of_control": ["DebtBondage", "Beatings"]},
                            3: {"means_of_control": ["DebtBondage", "DebtBondage"]}})
    err = _invalid(write_extract(tmp_path / "x.parquet", CASES, rows), CASES)
    assert [(e.row, e.reason) for e in err.errors] == [
        (1, "not in the contract's domain: Beatings"), (3, "a code is listed twice"),
    ]


def test_row_numbers_hold_across_row_groups_and_errors_are_capped(tmp_path: Path) -> None:
    bad = {n: {"typology": "bogus"} for n in range(101, 601, 10)}  # 50 bad rows
    path = write_extract(tmp_path / "x.parquet", ALERTS, _with(ALERTS, 1000, bad),
                         row_group_size=64)
    assert pq.ParquetFile(path).num_row_groups > 10
    err = _invalid(path)
    assert err.total_errors == 50
    assert [e.row for e in err.errors] == list(range(101, 301, 10))  # the first 20, in order
    assert "... and 30 more" in str(err)
    assert err.problem()["total_errors"] == 50 and len(err.problem()["errors"]) == 20


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bad_rows=st.sets(st.integers(min_value=1, max_value=60), max_size=8))
def test_exactly_the_broken_rows_are_reported(tmp_path: Path, bad_rows: set[int]) -> None:
    rows = _with(FLOWS, 60, {n: {"transfer_count": 0} for n in bad_rows})
    path = write_extract(tmp_path / "x.parquet", FLOWS, rows, row_group_size=16)
    if not bad_rows:
        assert check_extract(path, FLOWS).rows == 60
        return
    err = _invalid(path, FLOWS)
    assert [e.row for e in err.errors] == sorted(bad_rows)
    assert {e.field for e in err.errors} == {"transfer_count"}


def test_tokens_from_another_network_key_still_have_the_token_shape(tmp_path: Path) -> None:
    # the key id is per network key; the hub checks the shape, the metadata carries the id
    rows = _with(ALERTS, 2, {1: {"subject": "0" * 8 + "." + token("x").split(".")[1]}})
    assert check_extract(write_extract(tmp_path / "x.parquet", ALERTS, rows), ALERTS).rows == 2


def _lie_in_footer(path: Path, actual: float, claimed: float) -> None:
    """Rewrite the footer's statistics so that they claim ``claimed`` where ``actual`` is."""
    data = bytearray(path.read_bytes())
    footer_start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    real, fake = struct.pack("<d", actual), struct.pack("<d", claimed)
    at = data.find(real, footer_start)
    assert at != -1, "the footer should hold the statistic"
    while at != -1:
        data[at:at + 8] = fake
        at = data.find(real, at + 8)
    path.write_bytes(bytes(data))


def test_lying_column_statistics_cannot_hide_a_bad_value(tmp_path: Path) -> None:
    # A crafted footer claims min(amount) = 1.0; DuckDB's own Parquet reader would fold
    # "amount < 0" to false from that claim. The hub never lets the file's statistics in.
    rows = _with(ALERTS, 5, {4: {"amount": -12345.678}})
    path = write_extract(tmp_path / "x.parquet", ALERTS, rows)
    _lie_in_footer(path, -12345.678, 1.0)
    stats = pq.ParquetFile(path).metadata.row_group(0).column(6).statistics
    assert stats.min == 1.0  # the lie is in place
    err = _invalid(path)
    assert [(e.row, e.field, e.reason) for e in err.errors] == [
        (4, "amount", "negative values are not allowed")
    ]


def test_nan_left_out_of_the_statistics_is_still_refused(tmp_path: Path) -> None:
    rows = _with(ALERTS, 8, {6: {"amount": float("nan")}})
    err = _invalid(write_extract(tmp_path / "x.parquet", ALERTS, rows))
    assert [(e.row, e.reason) for e in err.errors] == [(6, "NaN and infinity are not allowed")]


def test_the_canonical_copy_holds_the_checked_rows_in_contract_types(tmp_path: Path) -> None:
    rows = valid_rows(FLOWS, 300)
    table = pa.Table.from_pylist(rows, schema=schema_for(FLOWS))
    table = table.set_column(table.schema.get_field_index("transfer_count"), "transfer_count",
                             table.column("transfer_count").cast(pa.int16()))
    table = table.set_column(table.schema.get_field_index("channel"), "channel",
                             table.column("channel").dictionary_encode())
    source = write_extract(tmp_path / "in.parquet", FLOWS, table=table, row_group_size=50)
    out = tmp_path / "canonical.parquet"
    report = check_extract(source, FLOWS, canonical=out)
    written = pq.read_table(out)
    assert written.schema.remove_metadata() == extract_schema(FLOWS)
    assert written.to_pylist() == rows  # same values, same order
    meta = written.schema.metadata
    assert meta[b"tahub.dataset"] == b"corridor_flows"
    assert meta[b"tahub.contract_version"] == b"1"
    assert meta[b"tahub.key_id"] == KEY_ID.encode() == report.key_id.encode()


def test_no_canonical_copy_is_left_when_the_check_fails(tmp_path: Path) -> None:
    rows = _with(ALERTS, 5, {2: {"typology": "bogus"}})
    out = tmp_path / "canonical.parquet"
    with pytest.raises(ExtractInvalid):
        check_extract(write_extract(tmp_path / "x.parquet", ALERTS, rows), ALERTS, canonical=out)
    assert not out.exists()


def test_a_hub_side_failure_is_not_blamed_on_the_partners_file(tmp_path: Path) -> None:
    # too little memory for DuckDB: the hub's problem, a 507 naming the setting to raise,
    # never "your extract is invalid" (nor "retry later": it would fail the same way)
    path = write_extract(tmp_path / "x.parquet", ALERTS, valid_rows(ALERTS, 20_000))
    with pytest.raises(OutOfCapacity) as err:
        check_extract(path, ALERTS, duck=DuckLimits(1, "1MB"))
    assert err.value.status == 507 and "retry later" not in err.value.detail
    assert err.value.extra["setting"] == "TAHUB_DUCKDB_MEMORY_LIMIT"
    assert err.value.extra["limit"] == "1MB"
    assert check_extract(path, ALERTS).rows == 20_000


# -- limits: row-count and decompression bombs ------------------------------------------------
ALERTS_V1 = REGISTRY.get("bank_alerts", 1)


def _refusal(path: Path, limits: ExtractLimits, canonical: Path | None = None) -> str:
    with pytest.raises(ExtractOverLimit) as err:
        check_extract(path, ALERTS_V1, canonical=canonical, limits=limits)
    assert err.value.code == "extract_over_limit" and err.value.status == 422
    assert canonical is None or not canonical.exists()
    return str(err.value.extra["rule"])


def test_a_decompression_bomb_is_refused_from_its_footer_and_first_rows(tmp_path: Path) -> None:
    # 5 million copies of one row in ~200 KB; the default limits, nothing written
    bomb = write_bomb(tmp_path / "bomb.parquet", ALERTS_V1, 5_000_000)
    assert bomb.stat().st_size < 400_000
    assert _refusal(bomb, ExtractLimits(), tmp_path / "canonical.parquet") == "max_decoded_ratio"
    # the same rows, each limit alone
    assert _refusal(bomb, ExtractLimits(max_rows=4_999_999, max_ratio=10**9)) == (
        "max_extract_rows")
    assert _refusal(bomb, ExtractLimits(max_decoded_bytes=10**8, max_ratio=10**9)) == (
        "max_decoded_bytes")


def test_real_extracts_pass_the_default_limits(tmp_path: Path) -> None:
    path = write_extract(tmp_path / "x.parquet", ALERTS_V1, valid_rows(ALERTS_V1, 5000))
    assert check_extract(path, ALERTS_V1, limits=ExtractLimits()).rows == 5000
    # at the limits exactly: accepted
    assert check_extract(path, ALERTS_V1, limits=ExtractLimits(max_rows=5000)).rows == 5000


def test_the_limits_hold_while_streaming_when_the_footer_understates_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a realistic first row group, then a million copies of one row, as if footer and first
    # rows had passed (the footer check is switched off): the streaming rows are held to the
    # limits, and reading stops within one batch of a limit instead of after the whole file
    bomb = write_bomb(tmp_path / "bomb.parquet", ALERTS_V1, 1_000_000, first=2_000,
                      row_group_size=100_000)
    spent: list[int] = []
    spend = extracts_module._Budget.spend

    def counting(self: Any, batch: pa.RecordBatch) -> None:
        spent.append(batch.num_rows)
        spend(self, batch)

    monkeypatch.setattr(extracts_module._Budget, "check_footer", lambda *_a: None)
    monkeypatch.setattr(extracts_module._Budget, "spend", counting)
    assert _refusal(bomb, ExtractLimits(max_rows=200_000, max_ratio=10**9)) == (
        "max_extract_rows")
    assert 200_000 < sum(spent) <= 200_000 + extracts_module._BATCH_ROWS
    spent.clear()
    assert _refusal(bomb, ExtractLimits(max_decoded_bytes=20_000_000, max_ratio=10**9)) == (
        "max_decoded_bytes")
    assert sum(spent) < 300_000
    spent.clear()
    assert _refusal(bomb, ExtractLimits()) == "max_decoded_ratio"
    assert sum(spent) < 1_000_000


def _corrupt_row_group(path: Path, group: int) -> None:
    """Flip one byte in the middle of the first data page of ``group``'s first column."""
    chunk = pq.ParquetFile(path).metadata.row_group(group).column(0)
    at = chunk.data_page_offset + chunk.total_compressed_size // 2
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_corrupted_page_is_refused_with_its_row_group(tmp_path: Path) -> None:
    table = pa.Table.from_pylist(valid_rows(ALERTS_V1, 300), schema=schema_for(ALERTS_V1))
    table = table.replace_schema_metadata(pq.read_schema(
        write_extract(tmp_path / "m.parquet", ALERTS_V1, valid_rows(ALERTS_V1, 1))).metadata)
    path = tmp_path / "x.parquet"
    # uncompressed, so that a flipped byte is still decodable: only the page's CRC tells
    pq.write_table(table, path, compression="none", row_group_size=100,
                   write_page_checksum=True)
    _corrupt_row_group(path, 1)
    with pytest.raises(ExtractInvalid, match="row group 2 of 3") as err:
        check_extract(path, ALERTS_V1, canonical=tmp_path / "canonical.parquet")
    assert err.value.errors[0].reason == "corrupt Parquet data in row group 2 of 3"
    assert not (tmp_path / "canonical.parquet").exists()
    # without checksums the same flip goes unseen (what the checksums add)
    pq.write_table(table, path, compression="none", row_group_size=100)
    _corrupt_row_group(path, 1)
    assert pq.read_table(path).num_rows == 300

"""prepare_extract end to end on real files: validation, pseudonymisation, the extract file."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.partner.extract import read_extract_metadata
from connectors.partner.mapping import Mapping, load_mapping, parse_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.pseudonymise import NetworkKey
from hub import __version__
from hub.contracts.model import TOKEN_RE, ContractRegistry
from hub.errors import ExtractInvalid
from hub.ingest.extracts import check_extract
from tests.connectors.conftest import FLOWS_HEADER, FLOWS_MAPPING, good_flow, write_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"


def _read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_clean_export_becomes_a_contract_extract(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    rows = [
        ["07400 123123", "GB", "NG", "CASH", "2024-03-15", "2", "150.5", "Jo Bloggs"],
        ["+44 7400 123123", "GB", "RO", "BANK", "2024-04", "1", "20", "Jo Bloggs"],
        ["+447400123999", " GB ", "NG", "mobile_wallet", "2024-04-30 09:15:00", "30", "0", "Al"],
    ]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    out = tmp_path / "out" / "flows.parquet"
    stages: list[str] = []
    result = prepare_extract(
        source, flows_mapping, key=key, out_path=out, registry=registry, progress=stages.append
    )
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (3, 3, 0)
    assert stages[0] == "reading flows.csv" and stages[-1].startswith("writing 3 rows")

    table = pq.read_table(out)
    contract = registry.get("corridor_flows", 1)
    assert table.schema.names == [f.name for f in contract.extract_fields]
    assert [str(t) for t in table.schema.types] == [
        "string",
        "string",
        "string",
        "string",
        "string",
        "int64",
        "double",
    ]
    data = table.to_pydict()
    assert all(re.match(TOKEN_RE, t) for t in data["sender"])
    assert data["sender"][0] == data["sender"][1] == key.token("+447400123123")
    assert data["channel"] == ["cash_pickup", "bank_account", "mobile_wallet"]
    assert data["period"] == ["2024-03", "2024-04", "2024-04"]
    assert data["send_country"] == ["GB", "GB", "GB"]
    assert data["transfer_count"] == [2, 1, 30] and data["amount"] == [150.5, 20.0, 0.0]
    assert read_extract_metadata(out) == {
        "tahub.dataset": "corridor_flows",
        "tahub.contract_version": "1",
        "tahub.key_id": key.key_id,
        "tahub.connector_version": __version__,
    }
    raw = out.read_bytes()
    for secret in (b"7400", b"Bloggs", b"customer_name"):
        assert secret not in raw
    assert [(d.name, d.hint) for d in result.dropped] == [
        ("customer_name", "its name suggests an identifier")
    ]
    assert result.sha256 and result.size == len(raw)
    check_extract(out, contract)  # the hub accepts what the connector writes


def test_every_bad_cell_is_a_reject_with_row_field_and_reason(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    good = good_flow(1)
    rows = [
        good,
        ["07400 123124", "GB", "XX", "CASH", "2024-03", "2", "1", "n"],  # country outside
        ["07400 123125", "GB", "NG", "WIRE", "2024-03", "2", "1", "n"],  # channel outside
        ["07400 123126", "GB", "NG", "CASH", "2024-03", "two", "1", "n"],  # wrong type
        ["07400 123127", "GB", "NG", "CASH", "2024-03", "2", "NaN", "n"],
        ["07400 123128", "GB", "NG", "CASH", "2024-03", "2", "inf", "n"],
        ["07400 123129", "GB", "NG", "CASH", "2024-03", "2", "-3.5", "n"],
        ["", "GB", "NG", "CASH", "2024-03", "2", "1", "n"],  # null privacy unit
        ["07400 1", "GB", "NG", "CASH", "2024-03", "2", "1", "n"],  # unparseable phone
        ["07400 123130", "GB", "NG", "CASH", "March", "1.5", "1", "n"],  # two bad cells
    ]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    rejects = tmp_path / "rejects.csv"
    result = prepare_extract(
        source,
        flows_mapping,
        key=key,
        out_path=tmp_path / "o.parquet",
        rejects_path=rejects,
        registry=registry,
        max_reject_ratio=1.0,
    )
    assert (result.rows_read, result.rows_valid, result.rows_rejected) == (10, 1, 9)
    assert result.total_errors == 10
    got = [(e.row, e.field, e.reason, e.value) for e in result.errors]
    assert got == [
        (2, "receive_country", "not in the contract's domain", "XX"),
        (3, "channel", "not in the contract's domain", "WIRE"),
        (4, "transfer_count", "not a number", "two"),
        (5, "amount", "NaN and infinity are not allowed", "nan"),
        (6, "amount", "NaN and infinity are not allowed", "inf"),
        (7, "amount", "negative values are not allowed", "-3.5"),
        (8, "sender", "required", None),
        (9, "sender", "phone number is too short", None),
        (10, "period", "not a month ('YYYY-MM') or a date", "March"),
        (10, "transfer_count", "not a whole number", "1.5"),
    ]
    assert _read_rejects(rejects) == [
        {"row": str(r), "line": str(r + 1), "field": f, "reason": why, "value": v or ""}
        for r, f, why, v in got
    ]
    assert [e.line for e in result.errors] == [r + 1 for r, *_ in got]
    assert "07400" not in rejects.read_text()
    assert {(r.field, r.reason): r.rows for r in result.reasons}[
        ("amount", "NaN and infinity are not allowed")
    ] == 2
    assert pq.read_table(result.path).num_rows == 1


def test_all_rows_rejected_writes_no_extract_but_the_rejects(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    rows = [[f"07400 12312{i}", "GB", "NG", "CASH", "2024-03", "0", "1", "x"] for i in range(3)]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    out, rejects = tmp_path / "o.parquet", tmp_path / "r.csv"
    with pytest.raises(ExtractInvalid) as caught:
        prepare_extract(
            source, flows_mapping, key=key, out_path=out, rejects_path=rejects, registry=registry
        )
    assert "every one of the 3 rows was rejected" in str(caught.value)
    assert "row 1, transfer_count: below the minimum 1" in str(caught.value)
    assert "07400" not in str(caught.value)
    assert not out.exists()
    assert len(_read_rejects(rejects)) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows.csv", "r.csv"]


def test_max_reject_ratio(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    rows = [good_flow(i) for i in range(3)] + [[*good_flow(9)[:3], "WIRE", *good_flow(9)[4:]]]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    out = tmp_path / "o.parquet"
    with pytest.raises(ExtractInvalid, match=r"1 of 4 rows \(25.0%\).*more than the 10.0%"):
        prepare_extract(
            source, flows_mapping, key=key, out_path=out, registry=registry, max_reject_ratio=0.1
        )
    assert not out.exists()
    result = prepare_extract(
        source, flows_mapping, key=key, out_path=out, registry=registry, max_reject_ratio=0.25
    )
    assert result.rows_valid == 3 and result.reject_ratio == 0.25


def test_output_is_byte_deterministic_and_depends_on_the_key(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry, flows_mapping: Mapping
) -> None:
    rows = [good_flow(i) for i in range(2500)]
    source = write_csv(tmp_path / "flows.csv", FLOWS_HEADER, rows)
    first = prepare_extract(
        source, flows_mapping, key=key, out_path=tmp_path / "a.parquet", registry=registry
    )
    second = prepare_extract(
        source, flows_mapping, key=key, out_path=tmp_path / "b.parquet", registry=registry
    )
    assert first.sha256 == second.sha256
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    other = prepare_extract(
        source,
        flows_mapping,
        key=NetworkKey(b"\x01" * 32),
        out_path=tmp_path / "c.parquet",
        registry=registry,
    )
    assert other.sha256 != first.sha256 and other.key_id != first.key_id


CASES_MAPPING = """\
dataset: case_records
contract_version: 2
source: {decimal_separator: ","}
fields:
  subject: passport
  exploitation_type: {column: type, recode: {SEX: SexualExploitation, LAB: ForcedLabour}}
  means_of_control: {column: control, separator: ";", recode: {debt: DebtBondage}}
  age_band: {constant: Unknown}
  gender: gender
  period: {constant: "2025-01"}
"""


def test_lists_recodes_constants_and_optional_fields(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    mapping = parse_mapping(CASES_MAPPING, registry)
    source = write_csv(
        tmp_path / "cases.csv",
        ["passport", "type", "control", "gender"],
        [
            ["ab 1234567", "SEX", "debt; WithholdsDocuments", "Feminine"],
            ["AB-1234567", "LAB", "", "Masculine"],
            ["CD7654321", "Other", "debt;Nonsense", "Feminine"],
        ],
    )
    result = prepare_extract(
        source, mapping, key=key, out_path=tmp_path / "o.parquet", registry=registry,
        max_reject_ratio=0.5,
    )
    assert [(e.row, e.field, e.reason) for e in result.errors] == [
        (3, "means_of_control", "not in the contract's domain: Nonsense")
    ]
    data = pq.read_table(result.path).to_pydict()
    assert data["subject"][0] == data["subject"][1] == key.token("AB1234567")
    assert data["exploitation_type"] == ["SexualExploitation", "ForcedLabour"]
    assert data["means_of_control"] == [["DebtBondage", "WithholdsDocuments"], None]
    assert data["age_band"] == ["Unknown", "Unknown"] and data["period"] == ["2025-01"] * 2
    assert data["sector"] == [None, None] and data["recruitment"] == [None, None]
    assert pq.read_schema(result.path).field("means_of_control").type == pa.list_(pa.string())
    check_extract(result.path, registry.get("case_records", 2))


def test_typed_parquet_lists_and_decimal_commas(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    source = tmp_path / "cases.parquet"
    pq.write_table(
        pa.table(
            {
                "passport": ["XY1112223"],
                "type": ["SEX"],
                "control": [["debt", "TakesEarnings"]],
                "gender": ["Feminine"],
            }
        ),
        source,
    )
    result = prepare_extract(
        source,
        parse_mapping(CASES_MAPPING, registry),
        key=key,
        out_path=tmp_path / "o.parquet",
        registry=registry,
    )
    assert pq.read_table(result.path).column("means_of_control").to_pylist() == [
        ["DebtBondage", "TakesEarnings"]
    ]
    flows = parse_mapping(
        FLOWS_MAPPING + "source: {delimiter: ';', decimal_separator: ','}\n", registry
    )
    csv_source = write_csv(
        tmp_path / "f.csv", FLOWS_HEADER, [[*good_flow(1)[:6], "1.234,50", "x"]], delimiter=";"
    )
    out = prepare_extract(
        csv_source, flows, key=key, out_path=tmp_path / "f.parquet", registry=registry
    )
    assert pq.read_table(out.path).column("amount").to_pylist() == [1234.5]


def test_phone_region_from_a_column(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    text = FLOWS_MAPPING.replace(
        "sender: {column: phone, default_region: GB}",
        "sender: {column: phone, region_column: region, default_region: GB}",
    )
    source = write_csv(
        tmp_path / "f.csv",
        [*FLOWS_HEADER, "region"],
        [
            [*good_flow(1)[:1], *good_flow(1)[1:], "de"],  # 07400 123001 read as German
            ["030 1234567", *good_flow(2)[1:], "DE"],
            ["07400 123001", *good_flow(3)[1:], ""],  # empty region: default GB
        ],
    )
    result = prepare_extract(
        source,
        parse_mapping(text, registry),
        key=key,
        out_path=tmp_path / "o.parquet",
        registry=registry,
    )
    senders = pq.read_table(result.path).column("sender").to_pylist()
    assert senders[1] == key.token("+49301234567")
    assert senders[2] == key.token("+447400123001")
    assert senders[0] != senders[2]
    assert "region" not in [d.name for d in result.dropped]


EXAMPLE_OF = {
    "northbank": "northbank.bank_alerts.v2.yaml",
    "meridiana": "meridiana.bank_alerts.v2.yaml",
    "swiftsend": "swiftsend.corridor_flows.v1.yaml",
    "swiftsend.bank_alerts": "swiftsend.bank_alerts.v2.yaml",
    "safepassage": "safepassage.case_records.v2.yaml",
    "metpolice": "metpolice.case_records.v1.yaml",
}
# What the demo exports plant on purpose, each found with its line and reason.
PLANTED_REJECTS = {
    "northbank": [(4322, 4323, None, "the line has 13 fields where the header has 12")],
    "meridiana": [
        (2501, 2502, "amount", "digits between thousands separators are not in groups of three")
    ],
}
ALERTS = ("northbank", "meridiana", "swiftsend.bank_alerts")
IDENTIFIERS = ("subject", "customer_phone", "customer_email")


def _persons_seen_twice(tables: dict[str, pa.Table], corridor: tuple[str, str],
                        identifiers: tuple[str, ...] = IDENTIFIERS) -> int:
    """Persons (customers that share a token of ``identifiers``, transitively) flagged on
    ``corridor`` by two or more of the tables' partners: union-find in plain Python."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    rows = [(key, r) for key, t in tables.items() for r in t.to_pylist()]
    for _, r in rows:
        ids = [f"{c}:{r[c]}" for c in identifiers if r[c] is not None]
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    seen: dict[str, set[str]] = {}
    for key, r in rows:
        first = next((f"{c}:{r[c]}" for c in identifiers if r[c] is not None), None)
        if first and (r["origin_country"], r["destination_country"]) == corridor:
            seen.setdefault(find(first), set()).add(key)
    return sum(len(partners) >= 2 for partners in seen.values())


def test_demo_partners_link_across_organisations(
    tmp_path: Path, key: NetworkKey, registry: ContractRegistry
) -> None:
    """The shipped examples read the demo exports, and shared people get shared tokens."""
    from hub.demo.synthetic import LINKED, LINKED_CORRIDOR, write_exports

    files = write_exports(tmp_path / "exports")
    tokens: dict[str, set[str]] = {}
    tables: dict[str, pa.Table] = {}
    for slug, name in EXAMPLE_OF.items():
        mapping = load_mapping(EXAMPLES / name, registry)
        result = prepare_extract(
            files[slug], mapping, key=key, out_path=tmp_path / f"{slug}.parquet", registry=registry
        )
        got = [(e.row, e.line, e.field, e.reason) for e in result.errors]
        assert got == PLANTED_REJECTS.get(slug, []), slug
        check_extract(result.path, registry.get(mapping.dataset, mapping.contract_version))
        column = "sender" if slug == "swiftsend" else "subject"
        tables[slug] = pq.read_table(result.path)
        tokens[slug] = set(tables[slug].column(column).to_pylist()) - {None}
        assert all(d.ignored for d in result.dropped), (slug, result.dropped)
        flagged = {d.name for d in result.dropped if d.hint}
        assert flagged >= {"customer_name", "analyst_notes", "Case notes", "Citizenship",
                           "receiver_name"} & {d.name for d in result.dropped}
    assert len(tokens["northbank"] & tokens["meridiana"]) == 40  # the shared funnel accounts
    assert not tokens["swiftsend.bank_alerts"]  # a money-transfer firm holds no IBANs
    # The persons planted across the banks and the money-transfer firm share no IBAN: only
    # their phone numbers and e-mail addresses, written differently at each, make them one.
    alerts = {k: tables[k] for k in ALERTS}
    assert _persons_seen_twice(alerts, LINKED_CORRIDOR) == LINKED == 360
    assert _persons_seen_twice(alerts, LINKED_CORRIDOR, ("subject",)) == 0  # by IBAN: nobody
    assert _persons_seen_twice(alerts, ("RO", "GB")) == 40
    assert len(tokens["safepassage"] & tokens["metpolice"]) == 60  # the split route

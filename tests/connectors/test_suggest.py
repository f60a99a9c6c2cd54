"""``tahub-connect mapping suggest``: a mapping proposed from a sample, for the engineer to edit.

On the demo's realistic exports and on hand-made messy files: the detected encoding and
delimiter are written out, columns are matched to fields by name and by values, date
formats, number formats and code lists are proposed, guesses are marked, and what cannot be
decided is a TODO. Where the proposal is complete, it loads and reads the export.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import connectors.partner.cli as cli
from connectors.partner.mapping import parse_mapping
from connectors.partner.preview import check_export
from connectors.partner.suggest import suggest_mapping
from hub.contracts.model import ContractRegistry
from hub.demo.synthetic import write_exports, write_rates
from tests.connectors.conftest import write_csv


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_exports(tmp_path_factory.mktemp("exports"))


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_an_italian_bank_export(exports: dict[str, Path], registry: ContractRegistry) -> None:
    text = suggest_mapping(exports["meridiana"], registry)
    lines = _lines(text)
    assert "dataset: bank_alerts" in lines  # chosen: the best fit of the contracts
    chosen = "# dataset chosen as the best fit of: bank_alerts v2"
    assert any(line.startswith(chosen) for line in lines)
    assert any(line.startswith("# encoding latin-1 (") for line in lines)
    assert 'delimiter: ";"' in lines and "encoding: latin-1" in lines
    assert 'subject: "iban_cliente"' in lines and 'indicator: "indicatore"' in lines
    assert 'customer_phone: "cellulare"' in lines and 'customer_email: "email_cliente"' in lines
    assert 'formats: ["%d.%m.%Y %H:%M"]' in lines
    assert any(line.startswith("# timezone: Europe/Rome  # TODO") for line in lines)
    assert 'decimal: ","' in lines
    assert "# TODO: which code is each of these? (front_company, exploitative_employment, " \
           "funnel_account, alternative_payment, unknown)" in lines
    assert '#   "conto_imbuto":' in lines
    assert "#   note: TODO why it is left out" in lines
    assert "IT" not in text.split("fields:")[1].replace("IT*", "")  # no values copied
    parse_mapping(text, registry)  # it loads as proposed: the TODOs are comments


def test_an_ngo_sheet_with_its_own_spellings(
    exports: dict[str, Path], registry: ContractRegistry, tmp_path: Path
) -> None:
    text = suggest_mapping(exports["safepassage"], registry, dataset="case_records")
    lines = _lines(text)
    assert "contract_version: 2" in lines
    assert "fold: [case, spaces]" in lines  # "Sexual exploitation" is SexualExploitation
    assert "fold: [case, spaces, punctuation]" in lines  # "18 - 20" and "18\u201320" are 18-20
    assert '"?": "Unknown"  # unknown' in lines
    assert '"F": "Feminine"  # guessed: check' in lines
    assert '"n/k": "NonSpecifiedUnknown"  # unknown' in lines
    assert 'separator: ";"' in lines
    mapping = parse_mapping(text, registry)
    report = check_export(exports["safepassage"], mapping, registry=registry)
    assert report.rows_rejected == 0 and not report.would_stop
    assert {d.name for d in report.dropped} == {"Case ID", "Citizenship", "Case notes"}


def test_a_money_transfer_export_in_cents(
    exports: dict[str, Path], registry: ContractRegistry, tmp_path: Path
) -> None:
    text = suggest_mapping(exports["swiftsend"], registry)
    lines = _lines(text)
    assert "dataset: corridor_flows" in lines
    assert "add_plus: true  # some numbers start with their country code, without +" in lines
    assert 'region_column: "sender_region"' in lines
    assert 'currency_column: "ccy"' in lines
    assert "minor_units: true  # the column's name says cents (divided by 100)" in lines
    assert '"CASH": "cash_pickup"  # guessed: check' in lines
    write_rates(tmp_path)  # the TODO: a rate table of one's own, next to the mapping
    mapping = parse_mapping(text, registry, base_dir=tmp_path)
    report = check_export(exports["swiftsend"], mapping, registry=registry)
    assert report.rows_rejected == 0 and not report.warnings


def test_a_messy_csv_with_day_first_dates_and_continental_numbers(
    tmp_path: Path, registry: ContractRegistry
) -> None:
    nbsp = "\u00a0"
    rows = [
        [f"+44 7400 12{i:04d}", "GB", "NG", "Bargeld", f"{i % 27 + 1:02d}/0{i % 9 + 1}/2025",
         str(i % 5 + 1) if i % 10 else "-99", f"1{nbsp}2{i % 10}4,5{i % 10}", f"Max Muster {i}"]
        for i in range(60)
    ]  # fmt: skip
    header = ["telefon", "herkunft", "ziel", "kanal", "datum", "anzahl", "betrag_eur", "name"]
    path = write_csv(tmp_path / "export.csv", header, rows, delimiter=";")
    text = suggest_mapping(path, registry)
    lines = _lines(text)
    assert "dataset: corridor_flows" in lines
    assert 'formats: ["%d/%m/%Y"]' in lines
    assert 'decimal: ","' in lines and 'thousands: ["space"]' in lines
    assert "unit: EUR  # from the column's name" in lines
    assert 'unknown: ["-99"]' in lines  # the count's "not known"
    assert 'send_country: "herkunft"' in lines and 'receive_country: "ziel"' in lines
    assert '#   "Bargeld":' in lines  # no code fits: a TODO, not a guess
    assert "#   name: TODO why it is left out" in lines
    assert "Max Muster" not in text


def test_ambiguous_dates_say_day_first_was_assumed(
    tmp_path: Path, registry: ContractRegistry
) -> None:
    rows = [[f"GB82WEST123456987654{i:02d}", f"{i % 12 + 1:02d}.0{i % 9 + 1}.2025"]
            for i in range(20)]  # fmt: skip
    path = write_csv(tmp_path / "a.csv", ["iban", "datum"], rows)
    lines = _lines(suggest_mapping(path, registry, dataset="bank_alerts"))
    assert 'formats: ["%d.%m.%Y"]' in lines
    rows = [[f"GB82WEST123456987654{i:02d}", f"{i % 12 + 1:02d}/0{i % 9 + 1}/2025"]
            for i in range(20)]  # fmt: skip
    path = write_csv(tmp_path / "b.csv", ["iban", "datum"], rows)
    lines = _lines(suggest_mapping(path, registry, dataset="bank_alerts"))
    assert ('formats: ["%d/%m/%Y"]  # day-first assumed: every day in the sample is 12 or '
            "less; check") in lines


def test_the_cli_writes_the_proposal(exports: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "suggested.yaml"
    made = CliRunner().invoke(
        cli.app, ["mapping", "suggest", str(exports["northbank"]), "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    assert "check every line marked TODO" in made.stdout
    assert '"FA": "funnel_account"  # guessed: check' in out.read_text()
    again = CliRunner().invoke(
        cli.app, ["mapping", "suggest", str(exports["northbank"]), "--out", str(out)]
    )
    assert again.exit_code == 2 and "already exists" in again.stderr
    wrong = CliRunner().invoke(
        cli.app, ["mapping", "suggest", str(exports["northbank"]), "--dataset", "shoe_sizes"]
    )
    assert wrong.exit_code == 2 and "unknown dataset 'shoe_sizes'" in wrong.stderr
    sqlite = CliRunner().invoke(cli.app, ["mapping", "suggest", str(exports["metpolice"])])
    assert sqlite.exit_code == 1 and "reads CSV, Parquet or Excel files" in sqlite.stderr

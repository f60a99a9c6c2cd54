"""``tahub-connect check`` and what ``push`` refuses before anything leaves.

Amounts in cents read as euros (100 times too large) are caught by ``check`` and stop
``push`` before any upload; columns no field takes are listed with a masked sample, flagged
when they look identifying or free text or when their values fit a contract field (a
citizenship column next to the origin), and acknowledged by ``ignore:``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from stdnum import iban as stdiban
from typer.testing import CliRunner, Result

import connectors.partner.cli as cli
from connectors.partner.client import HubClient, RetryPolicy
from hub.contracts.model import ContractRegistry
from tests.connectors.conftest import KEY, write_csv
from tests.connectors.fakehub import CLIENT_ID, CLIENT_SECRET, FakeHub

ENV = {
    "TAHUB_NETWORK_KEY": KEY.export(),
    "TAHUB_NETWORK_KEY_FILE": None,
    "TAHUB_HUB_URL": "https://hub.test",
    "TAHUB_CLIENT_ID": CLIENT_ID,
    "TAHUB_CLIENT_SECRET": CLIENT_SECRET,
    "COLUMNS": "220",
}
MAPPING = """\
dataset: bank_alerts
contract_version: 1
source: {{delimiter: ";"}}
fields:
  subject: konto_iban
  indicator: indikator
  typology: {{constant: unknown}}
  origin_country: herkunft
  destination_country: ziel
  amount: {amount}
  period: {{column: datum, formats: ["%d.%m.%Y"]}}
{ignore}"""
HEADER = ["konto_iban", "indikator", "herkunft", "ziel", "betrag_cent", "datum", "kunde",
          "staatsangehoerigkeit", "vermerk"]  # fmt: skip


def _iban(i: int) -> str:
    bban = f"37040044{i:010d}"
    return "DE" + stdiban.calc_check_digits("DE00" + bban) + bban


def _export(folder: Path, rows: int = 200) -> Path:
    """A German bank's export: amounts in cents, a citizenship column, names and notes."""
    rng = random.Random(5)  # noqa: S311 - test data
    data = [
        [
            _iban(i), "other", rng.choice(["RO", "BG", "NG"]), "DE",
            str(round(rng.lognormvariate(6.5, 1.0) * 100)),  # cents
            f"{rng.randint(1, 28):02d}.{rng.randint(1, 12):02d}.2025",
            f"Kunde Nummer {i}", rng.choice(["RO", "BG", "NG", "UA"]),
            "Bargeld in mehreren Filialen eingezahlt, Begleitperson fuehrte das Gespraech",
        ]
        for i in range(rows)
    ]
    return write_csv(folder / "export.csv", HEADER, data, delimiter=";")


def _mapping(folder: Path, amount: str, ignore: str = "") -> Path:
    path = folder / "mapping.yaml"
    path.write_text(MAPPING.format(amount=amount, ignore=ignore))
    return path


def _run(*args: str, env: dict[str, Any] | None = None) -> Result:
    return CliRunner().invoke(cli.app, list(args), env={**ENV, **(env or {})})


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> FakeHub:
    fake = FakeHub(chunk_bytes=4096)

    class Client(HubClient):
        @classmethod
        def from_env(cls, *args: Any, **kwargs: Any) -> HubClient:
            return HubClient.from_env(
                *args,
                transport=fake.transport(),
                retry=RetryPolicy(attempts=3, initial_wait=0, max_wait=0),
                **kwargs,
            )

    monkeypatch.setattr(cli, "HubClient", Client)
    return fake


CENTS_AS_EUROS = "{column: betrag_cent, unit: EUR}"


def test_check_catches_cents_read_as_euros(tmp_path: Path) -> None:
    source = _export(tmp_path)
    mapping = _mapping(tmp_path, CENTS_AS_EUROS)
    result = _run("check", str(source), "-m", str(mapping), env={"TAHUB_NETWORK_KEY": None})
    assert result.exit_code == 1, result.output  # no key needed; 1: push would stop
    out = " ".join(result.stdout.split())
    assert "STOP: implausible magnitude: amount:" in out
    assert "are above 50,000 EUR, the top of the contract's range for it" in out
    assert "divided by 100 they would fit: all are whole numbers; are they in cents? " \
           "add `minor_units: true` to fields.amount" in out
    assert "push would stop: no extract would be written." in out


def test_push_stops_on_implausible_magnitudes_and_uploads_nothing(
    tmp_path: Path, hub: FakeHub
) -> None:
    source = _export(tmp_path)
    mapping = _mapping(tmp_path, CENTS_AS_EUROS)
    out = tmp_path / "x.parquet"
    result = _run("push", str(source), "-m", str(mapping), "--out", str(out))
    assert result.exit_code == 1
    assert "implausible magnitudes, so no extract was written and nothing can be uploaded" in (
        " ".join(result.stderr.split())
    )
    assert not out.exists() and hub.extracts == {}


def test_with_minor_units_the_same_export_goes_through(tmp_path: Path, hub: FakeHub) -> None:
    source = _export(tmp_path)
    mapping = _mapping(tmp_path, "{column: betrag_cent, unit: EUR, minor_units: true}")
    checked = _run("check", str(source), "-m", str(mapping))
    assert checked.exit_code == 0, checked.output
    assert "push would write the extract." in checked.stdout
    pushed = _run("push", str(source), "-m", str(mapping), "--out", str(tmp_path / "x.parquet"))
    assert pushed.exit_code == 0, pushed.output
    assert len(hub.extracts) == 1


def test_check_magnitude_false_lets_the_values_through_with_a_warning(tmp_path: Path) -> None:
    source = _export(tmp_path)
    mapping = _mapping(tmp_path, "{column: betrag_cent, unit: EUR, check_magnitude: false}")
    checked = _run("check", str(source), "-m", str(mapping))
    assert checked.exit_code == 0, checked.output
    assert "warning (check_magnitude: false): implausible magnitude: amount" in " ".join(
        checked.stdout.split()
    )
    validated = _run("validate", str(source), "-m", str(mapping), "--out",
                     str(tmp_path / "x.parquet"))  # fmt: skip
    assert validated.exit_code == 0, validated.output


def test_check_shows_raw_values_beside_what_they_become(tmp_path: Path) -> None:
    source = _export(tmp_path, rows=30)
    mapping = _mapping(tmp_path, "{column: betrag_cent, unit: EUR, minor_units: true}")
    result = _run("check", str(source), "-m", str(mapping), "--samples", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "'09.03.2025' -> 2025-03" in out or "-> 2025-" in out
    assert "'DE** **** **** **** **** **' -> ok: DE********************" not in out  # compact
    assert "-> ok: DE" in out  # identifiers: masked, normalised, never raw
    for i in range(30):
        assert _iban(i) not in out
    assert "Kunde Nummer" not in out
    assert 'delimiter ";"' not in out  # given in the mapping, so not "detected"
    assert "amount: in minor units (cents)" in out


def test_columns_left_behind_are_listed_flagged_and_acknowledged(tmp_path: Path) -> None:
    source = _export(tmp_path, rows=30)
    amount = "{column: betrag_cent, unit: EUR, minor_units: true}"
    mapping = _mapping(tmp_path, amount)
    result = _run("check", str(source), "-m", str(mapping))
    assert result.exit_code == 0, result.output
    out = " ".join(result.stdout.split())
    assert "Columns left behind (never leave this machine)" in out
    assert "kunde" in out and "K**** N***** 0" in out  # masked whole: a name column
    assert "its name suggests an identifier" in out
    assert "of its values are codes of origin_country: map it, or list it under `ignore:`" in out
    assert "its name suggests free text" in out
    assert out.count("not acknowledged: map it or list it under ignore:") == 3
    ignore = (
        "ignore:\n  kunde: the customer's name, never shared\n"
        "  staatsangehoerigkeit: citizenship; herkunft is where the money came from\n"
        "  vermerk: free text, never shared\n"
    )
    mapping = _mapping(tmp_path, amount, ignore)
    acknowledged = " ".join(_run("check", str(source), "-m", str(mapping)).stdout.split())
    assert "not acknowledged" not in acknowledged
    assert "citizenship; herkunft is where the money came from" in acknowledged


def test_check_reports_rejects_and_a_mapping_error_names_its_line(
    tmp_path: Path, registry: ContractRegistry
) -> None:
    source = _export(tmp_path, rows=30)
    text = source.read_text().splitlines()
    text[5] += ";one field too many"
    source.write_text("\n".join(text) + "\n")
    mapping = _mapping(tmp_path, "{column: betrag_cent, unit: EUR, minor_units: true}")
    result = _run("check", str(source), "-m", str(mapping))
    assert result.exit_code == 0, result.output  # 1 of 30 is 3.3%: under the 5% allowed
    assert "line 6, row 5: the line has 10 fields where the header has 9" in result.stdout
    broken = _mapping(tmp_path, "{column: betrag_cent}")
    failed = _run("check", str(source), "-m", str(broken))
    assert failed.exit_code == 2
    assert "line 10, fields.amount: the unit of 'amount' is not declared" in failed.stderr

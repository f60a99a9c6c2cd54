"""The example mappings, each reading its kind of export through the real CLI.

``connectors/examples/`` holds one commented mapping per demo export (a UK bank with
day-first dates, GBP and UK phone numbers, an Italian bank in Latin-1 with local times,
decimal commas, phones without +39 and e-mail addresses, a money-transfer firm's flows with
cents in several currencies and phones without +, and its red-flag alerts keyed by phone
only, an NGO with its own band spellings, a police unit with local times and -99). Each is
run with ``tahub-connect check`` and ``tahub-connect validate`` on the demo's synthetic
export; the demo's own mappings (``hub/demo/mappings/<export key>.yaml``) must say the same.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import connectors.partner.cli as cli
from connectors.partner.mapping import load_mapping
from hub.contracts.model import ContractRegistry
from hub.demo.synthetic import EXPORTS, write_exports, write_rates
from tests.connectors.conftest import KEY

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "connectors" / "examples"
DEMO = ROOT / "hub" / "demo" / "mappings"
EXAMPLE_OF = {  # demo export key -> its example
    "northbank": "northbank.bank_alerts.v2.yaml",
    "meridiana": "meridiana.bank_alerts.v2.yaml",
    "swiftsend": "swiftsend.corridor_flows.v1.yaml",
    "swiftsend.bank_alerts": "swiftsend.bank_alerts.v2.yaml",
    "safepassage": "safepassage.case_records.v2.yaml",
    "metpolice": "metpolice.case_records.v1.yaml",
}
# What each export plants on purpose, as `validate` prints it.
PRINTED = {
    "northbank": [
        "line 4323, row 4322: the line has 13 fields where the header has 12",
        "GBP converted to EUR at 0.8457 GBP per EUR (2025-06-30, fx_rates.csv)",
        "period: formats %d/%m/%Y",
    ],
    "meridiana": [
        "line 2502, row 2501, amount: digits between thousands separators are not in groups "
        "of three (got '12.34,5')",
        "encoding latin-1 (",
        "times in Europe/Rome, month taken in UTC",
    ],
    "swiftsend": ["in minor units (cents); currency from column ccy, converted to EUR"],
    "swiftsend.bank_alerts": [
        "bank_alerts v2", "rejected │ 0 (0.0%)",
        "in minor units (cents); currency from column ccy, converted to EUR",
    ],
    "safepassage": ["age_band: codes matched ignoring spaces, punctuation; 1 spelling(s)"],
    "metpolice": ["times in Europe/London, month taken in UTC"],
}


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return write_exports(tmp_path_factory.mktemp("exports"))


@pytest.mark.parametrize("key", list(EXAMPLE_OF))
def test_each_example_reads_its_export_through_the_cli(
    key: str, exports: dict[str, Path], tmp_path: Path
) -> None:
    mapping = EXAMPLES / EXAMPLE_OF[key]
    env = {"TAHUB_NETWORK_KEY": KEY.export(), "TAHUB_NETWORK_KEY_FILE": None, "COLUMNS": "250"}
    checked = CliRunner().invoke(
        cli.app, ["check", str(exports[key]), "-m", str(mapping)], env=env
    )
    assert checked.exit_code == 0, checked.output
    assert "push would write the extract." in checked.stdout
    out = tmp_path / "extract.parquet"
    result = CliRunner().invoke(
        cli.app,
        ["validate", str(exports[key]), "-m", str(mapping), "--out", str(out)],
        env=env,
    )
    assert result.exit_code == 0, result.output
    printed = " ".join(result.stdout.split())
    for said in PRINTED[key]:
        assert said in printed, (key, said)
    assert "not acknowledged" not in printed  # every column left behind has its reason
    assert pq.read_table(out).num_rows > 1000


@pytest.mark.parametrize("key", list(EXAMPLE_OF))
def test_the_demo_mappings_say_what_the_examples_say(
    key: str, tmp_path: Path, registry: ContractRegistry
) -> None:
    partner = tmp_path / key
    partner.mkdir()
    shutil.copy(DEMO / f"{key}.yaml", partner / "mapping.yaml")
    write_rates(partner)  # the demo writes the rate table next to the partner's mapping
    assert load_mapping(partner / "mapping.yaml", registry) == load_mapping(
        EXAMPLES / EXAMPLE_OF[key], registry
    )


def test_every_demo_export_has_its_example(tmp_path: Path, registry: ContractRegistry) -> None:
    assert [e.key for e in EXPORTS] == list(EXAMPLE_OF)
    assert sorted(p.name for p in DEMO.glob("*.yaml")) == sorted(f"{k}.yaml" for k in EXAMPLE_OF)
    for e in EXPORTS:  # each example is for the contract the demo pushes the export to
        mapping = load_mapping(EXAMPLES / EXAMPLE_OF[e.key], registry)
        assert (mapping.dataset, mapping.contract_version) == (e.dataset, e.contract_version)
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(EXAMPLE_OF.values())
    assert write_rates(tmp_path).read_bytes() == (EXAMPLES / "fx_rates.csv").read_bytes()

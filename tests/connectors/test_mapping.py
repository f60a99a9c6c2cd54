"""Mapping files: checked against their contract, every error with its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.partner.mapping import load_mapping, mapping_template, parse_mapping
from hub.contracts.model import ContractRegistry
from hub.errors import MappingError, RowError

EXAMPLES = Path(__file__).resolve().parents[2] / "connectors" / "examples"

BASE = """\
dataset: corridor_flows
contract_version: 1
fields:
  sender: {column: phone, default_region: GB}
  send_country: from
  receive_country: to
  channel: payout
  period: month
  transfer_count: n
  amount: total
"""


def _errors(text: str, registry: ContractRegistry) -> list[RowError]:
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, registry)
    return caught.value.errors


def _one(text: str, registry: ContractRegistry) -> RowError:
    errors = _errors(text, registry)
    assert len(errors) == 1, errors
    return errors[0]


def test_a_good_mapping_loads_with_shorthand_and_defaults(registry: ContractRegistry) -> None:
    m = parse_mapping(BASE, registry)
    assert m.fields["send_country"].column == "from"
    assert m.fields["sender"].default_region == "GB"
    assert m.fields["channel"].separator == "|"
    assert m.source.encoding == "utf-8" and m.source.delimiter is None
    assert m.mapped_columns() == ["phone", "from", "to", "payout", "month", "n", "total"]


def test_unknown_contract_field_is_named_with_its_line(registry: ContractRegistry) -> None:
    err = _one(BASE + "  customer_name: name\n", registry)
    assert err.line == 11
    assert "'customer_name' is not a field of corridor_flows v1" in err.reason
    assert "sender" in err.reason  # lists the contract's fields


def test_required_field_left_unmapped(registry: ContractRegistry) -> None:
    text = BASE.replace("  amount: total\n", "").replace("  period: month\n", "")
    err = _one(text, registry)
    assert err.line == 3  # the `fields:` key
    assert "period, amount" in err.reason and "not mapped" in err.reason


def test_recode_target_outside_the_domain(registry: ContractRegistry) -> None:
    text = BASE.replace(
        "  channel: payout\n",
        "  channel:\n    column: payout\n    recode: {CASH: cash_pickup, WIRE: wire_transfer}\n",
    )
    err = _one(text, registry)
    assert err.line == 9
    assert "'wire_transfer'" in err.reason and "domain of 'channel'" in err.reason
    assert "cash_pickup" in err.reason  # shows the codes


def test_mapping_the_hub_stamped_partner_field(registry: ContractRegistry) -> None:
    err = _one(BASE + "  partner: bank_name\n", registry)
    assert err.line == 11
    assert "stamped by the hub" in err.reason


def test_several_errors_are_reported_together(registry: ContractRegistry) -> None:
    text = BASE + "  partner: bank\n  nickname: nick\n"
    errors = _errors(text, registry)
    assert [e.line for e in errors] == [11, 12]


@pytest.mark.parametrize(
    ("snippet", "line", "reason"),
    [
        ("  send_country: {column: from, default_region: GB}\n", 5, "only for phone numbers"),
        ("  send_country: {column: from, recode: {1: 2}}\n", 5, "not in the domain"),
        ("  send_country: {column: from, constant: GB}\n", 5, "either column or constant"),
        ("  send_country: {}\n", 5, "either column or constant"),
        ("  send_country: {column: from, separator: ';'}\n", 5, "only for category_list"),
        ("  send_country: {column: from, colour: red}\n", 5, "Extra inputs are not permitted"),
        ("  send_country: {constant: XX}\n", 5, "not in the domain"),
        ("  sender: {constant: '+447400123123'}\n", 4, "identifier cannot be a constant"),
        ("  sender: {column: phone, default_region: Narnia}\n", 4, "not a region"),
        ("  transfer_count: {column: n, recode: {a: b}}\n", 9, "only for category"),
    ],
)
def test_field_options_are_checked(
    registry: ContractRegistry, snippet: str, line: int, reason: str
) -> None:
    name = snippet.split(":")[0].strip()
    lines = [ln for ln in BASE.splitlines(keepends=True) if not ln.startswith(f"  {name}:")]
    at = line - 1
    text = "".join([*lines[:at], snippet, *lines[at:]])
    err = _one(text, registry)
    assert err.line == line, text
    assert reason in err.reason


def test_unknown_dataset_and_version(registry: ContractRegistry) -> None:
    err = _one(BASE.replace("corridor_flows", "shoe_sizes"), registry)
    assert err.line == 1 and "unknown dataset 'shoe_sizes'" in err.reason
    err = _one(BASE.replace("contract_version: 1", "contract_version: 7"), registry)
    assert err.line == 2 and "no contract version 7" in err.reason


def test_source_options(registry: ContractRegistry) -> None:
    text = BASE + "source:\n  delimiter: tab\n  encoding: ISO-8859-1\n  decimal_separator: ','\n"
    m = parse_mapping(text, registry)
    assert (m.source.delimiter, m.source.encoding, m.source.decimal_separator) == (
        "\t",
        "latin-1",
        ",",
    )
    err = _one(BASE + "source:\n  delimiter: ';;'\n", registry)
    assert err.line == 12 and "one character" in err.reason
    err = _one(BASE + "source:\n  encoding: ebcdic\n", registry)
    assert err.line == 12 and "utf-8" in err.reason


def test_yaml_syntax_error_has_a_line(registry: ContractRegistry) -> None:
    err = _one(BASE + "  amount: [unclosed\n", registry)
    assert err.line is not None and err.line >= 11


def test_load_mapping_names_the_file(tmp_path: Path, registry: ContractRegistry) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(BASE + "  partner: x\n")
    with pytest.raises(MappingError) as caught:
        load_mapping(path, registry)
    assert str(path) in str(caught.value) and "line 11" in str(caught.value)
    with pytest.raises(MappingError, match="does not exist"):
        load_mapping(tmp_path / "missing.yaml", registry)


def test_template_of_every_contract_loads_and_maps_every_field(
    registry: ContractRegistry,
) -> None:
    for contract in registry:
        text = mapping_template(contract)
        m = parse_mapping(text, registry)
        assert (m.dataset, m.contract_version) == contract.key
        assert set(m.fields) == {f.name for f in contract.extract_fields}
        assert "partner" not in m.fields


def test_there_is_one_loading_example_per_contract(registry: ContractRegistry) -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    keys = [(m.dataset, m.contract_version) for m in (load_mapping(p, registry) for p in examples)]
    assert sorted(keys) == sorted(c.key for c in registry)


def test_mapping_examples_in_the_docs_load(registry: ContractRegistry) -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "connector.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "dataset:" in b]
    assert blocks
    for block in blocks:
        parse_mapping(block, registry, source="docs/connector.md")

"""Mapping files: checked against their contract, every error with its line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from connectors.partner.mapping import load_mapping, parse_mapping
from connectors.partner.template import mapping_template
from hub.contracts.model import ContractRegistry
from hub.errors import MappingError, RowError
from hub.osint.incidents import DATASET as INCIDENTS

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
  amount: {column: total, unit: EUR}
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
    assert m.source.encoding == "auto" and m.source.delimiter is None
    assert m.max_reject_ratio == 0.05 and m.ignore == {}
    assert m.fields["amount"].unit == "EUR" and not m.fields["amount"].minor_units
    assert m.mapped_columns() == ["phone", "from", "to", "payout", "month", "n", "total"]


def test_unknown_contract_field_is_named_with_its_line(registry: ContractRegistry) -> None:
    err = _one(BASE + "  customer_name: name\n", registry)
    assert err.line == 11
    assert "'customer_name' is not a field of corridor_flows v1" in err.reason
    assert "sender" in err.reason  # lists the contract's fields


def test_required_field_left_unmapped(registry: ContractRegistry) -> None:
    text = BASE.replace("  amount: {column: total, unit: EUR}\n", "")
    text = text.replace("  period: month\n", "")
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
        ("  send_country: {column: from, default_region: GB}\n", 5, "only for phones"),
        ("  send_country: {column: from, recode: {1: 2}}\n", 5, "not in the domain"),
        ("  send_country: {column: from, constant: GB}\n", 5, "one of column, columns or"),
        ("  send_country: {}\n", 5, "one of column, columns or constant"),
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


DOCS = Path(__file__).resolve().parents[2] / "docs" / "connector.md"


def _docs_mappings() -> list[str]:
    docs = DOCS.read_text()
    return [b for b in re.findall(r"```yaml\n(.*?)```", docs, re.S) if "dataset:" in b]


def test_every_contract_has_a_loading_example(registry: ContractRegistry) -> None:
    examples = sorted(EXAMPLES.glob("*.yaml"))
    shipped = [load_mapping(p, registry) for p in examples]
    keys = {(m.dataset, m.contract_version) for m in shipped}
    # the newest version of every contract has a shipped example, but the incidents that the
    # hub makes itself from open sources (hub.osint.incidents), through no connector
    loaded = [d for d in registry.datasets() if d != INCIDENTS]
    assert {(d, max(registry.versions(d))) for d in loaded} <= keys
    assert len(examples) == 6  # one per export of the demo's five partners
    # and every version the hub accepts has one, there or in docs/connector.md
    documented = [parse_mapping(b, registry, source="docs/connector.md", base_dir=EXAMPLES)
                  for b in _docs_mappings()]
    keys |= {(m.dataset, m.contract_version) for m in documented}
    assert keys == {c.key for c in registry if c.dataset != INCIDENTS}


def test_mapping_examples_in_the_docs_load(registry: ContractRegistry) -> None:
    blocks = _docs_mappings()
    assert len(blocks) >= 4
    for block in blocks:  # rate tables: the examples' own fx_rates.csv
        parse_mapping(block, registry, source="docs/connector.md", base_dir=EXAMPLES)


def test_every_mapping_option_is_documented() -> None:
    from connectors.partner.fieldmapping import FieldMapping, RateTable
    from connectors.partner.mapping import Mapping, SourceOptions

    documented = set(re.findall(r"^\| `([a-z_]+)` \|", DOCS.read_text(), re.M))
    options = (
        set(Mapping.model_fields)
        | set(SourceOptions.model_fields)
        | (set(FieldMapping.model_fields) - {"field"})
    )
    assert options - documented == set()
    assert set(RateTable.model_fields) <= {"file", "date"}  # both said in the `rates` row


# -- the typed mapping: every option checked against its field, errors with their line ------
def _amount(block: str) -> str:
    """BASE with its amount entry (line 10) replaced by ``block`` (starting on line 10)."""
    return BASE.replace("  amount: {column: total, unit: EUR}\n", block)


def test_an_amount_without_its_unit_is_refused(registry: ContractRegistry) -> None:
    err = _one(_amount("  amount: total\n"), registry)
    assert err.line == 10 and err.field == "fields.amount"
    assert "the unit of 'amount' is not declared" in err.reason
    assert "`unit: EUR`" in err.reason and "minor_units: true" in err.reason
    err = _one(_amount("  amount: {column: total, unit: EUR cents}\n"), registry)
    assert err.line == 10 and "add `minor_units: true`" in err.reason


def _rates(folder: Path, text: str) -> Path:
    path = folder / "fx.csv"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("table", "line", "reason"),
    [
        (None, 13, "rate table"),  # no file at all
        ("currency,rate\nGBP,0.85\n", 13, "fx.csv line 1: the header must be"),
        ("currency,units_per_EUR\nGBP,abc\n", 13, "fx.csv line 2: the rate is not a positive"),
        ("currency,units_per_EUR\nGBP,0.85\nGBP,0.86\n", 13, "fx.csv line 3: GBP is listed twice"),
        ("currency,units_per_EUR\nUSD,1.08\n", 13, "has no rate for GBP"),
        ("currency,EUR_per_unit\nGBP,1.18\n", None, None),  # the other direction is fine
    ],
)
def test_rate_tables_are_read_when_the_mapping_is(
    tmp_path: Path, registry: ContractRegistry, table: str | None, line: int | None,
    reason: str | None,
) -> None:
    if table is not None:
        _rates(tmp_path, table)
    text = _amount(
        "  amount:\n    column: total\n    unit: GBP\n    rates: {file: fx.csv, date: 2025-06-30}\n"
    )
    if reason is None:
        m = parse_mapping(text, registry, base_dir=tmp_path)
        assert m.fields["amount"].rates is not None
        assert m.fields["amount"].rates.per_unit["GBP"] == pytest.approx(1 / 1.18)
        return
    with pytest.raises(MappingError) as caught:
        parse_mapping(text, registry, base_dir=tmp_path)
    (err,) = caught.value.errors
    assert err.line == line and reason in err.reason, err


def test_load_mapping_reads_rate_tables_next_to_the_mapping(
    tmp_path: Path, registry: ContractRegistry
) -> None:
    _rates(tmp_path, "currency,units_per_EUR\nGBP,0.8\n")
    path = tmp_path / "m.yaml"
    path.write_text(_amount("  amount: {column: total, currency_column: ccy,\n"
                            "           rates: {file: fx.csv, date: 2025-06-30}}\n"))
    m = load_mapping(path, registry)
    assert m.fields["amount"].rates is not None
    assert m.fields["amount"].rates.per_unit == {"GBP": 0.8, "EUR": 1.0}
    assert "ccy" in m.mapped_columns()


@pytest.mark.parametrize(
    ("block", "line", "reason"),
    [
        ("  amount:\n    column: total\n    unit: GBP\n", 10, "need `rates:`"),
        ("  amount:\n    column: total\n    currency_column: ccy\n", 10, "need `rates:`"),
        ("  amount:\n    column: total\n    unit: EUR\n    currency_column: ccy\n", 13,
         "either unit or currency_column"),
        ("  amount:\n    column: total\n    unit: EUR\n    decimal: ';'\n", 13,
         "decimal must be '.' or ','"),
        ("  amount:\n    column: total\n    unit: EUR\n    decimal: ','\n    thousands: ','\n",
         14, "cannot also be the decimal separator"),
        ("  amount:\n    column: total\n    unit: EUR\n    thousands: _\n", 13, "is not one of"),
        ("  amount:\n    column: total\n    unit: EUR\n    formats: ['%d.%m.%Y']\n", 13,
         "only for period fields"),
        ("  amount:\n    column: total\n    columns: [a, b]\n    unit: EUR\n", 10,
         "one of column, columns or constant"),
        ("  amount:\n    column: total\n    join: '-'\n    unit: EUR\n", 10,
         "join is only for columns"),
    ],
)
def test_number_options(registry: ContractRegistry, block: str, line: int, reason: str) -> None:
    err = _one(_amount(block), registry)
    assert err.line == line and reason in err.reason, err


@pytest.mark.parametrize(
    ("snippet", "line", "reason"),
    [
        ("  transfer_count: {column: n, unit: EUR}\n", 9, "has no unit in the contract"),
        ("  transfer_count: {column: n, minor_units: true}\n", 9, "only for amounts"),
        ("  period: {column: month, formats: ['%d.%q.%Y']}\n", 8, "%q is not a strptime"),
        ("  period: {column: month, formats: ['%d.%m']}\n", 8, "must give a year and a month"),
        ("  period: {column: month, formats: ['%Y-%m-%d %z', '%Y-%m-%d']}\n", 8, "UTC offset"),
        ("  period: {column: month, timezone: Mars/Olympus}\n", 8, "not an IANA time zone"),
        ("  period: {column: month, month_in: local}\n", 8, "month_in needs timezone"),
        ("  send_country: {column: from, timezone: UTC}\n", 5, "only for period fields"),
        ("  send_country: {column: from, fold: [case, vowels]}\n", 5, "Input should be"),
        ("  transfer_count: {column: n, fold: case}\n", 9, "only for category fields"),
        ("  sender: {column: phone, add_plus: true, recode: {a: b}}\n", 4, "only for category"),
        ("  send_country: {column: from, add_plus: true}\n", 5, "only for phones"),
        ("  channel: {column: payout, fold: [case], recode: {Cash: cash_pickup, CASH: "
         "bank_account}}\n", 7, "the same once folded"),
    ],
)
def test_typed_options_fit_their_field(
    registry: ContractRegistry, snippet: str, line: int, reason: str
) -> None:
    name = snippet.split(":")[0].strip()
    lines = [ln for ln in BASE.splitlines(keepends=True) if not ln.startswith(f"  {name}:")]
    text = "".join([*lines[: line - 1], snippet, *lines[line - 1 :]])
    err = _one(text, registry)
    assert err.line == line, (text, err)
    assert reason in err.reason


def test_every_typed_option_loads(tmp_path: Path, registry: ContractRegistry) -> None:
    _rates(tmp_path, "currency,units_per_EUR\nGBP,0.85\n")
    text = """\
dataset: corridor_flows
contract_version: 1
max_reject_ratio: 2%
fields:
  sender: {column: phone, add_plus: true, unknown: ["0"]}
  send_country: {column: from, fold: [case, spaces], recode: {UK: GB, "n/a": null}}
  receive_country: {column: to, unknown: [n/a, "-"]}
  channel: {column: payout, recode: {CASH: cash_pickup}}
  period:
    columns: [day, time]
    join: " "
    formats: ["%d.%m.%Y %H:%M", "%d.%m.%Y"]
    timezone: Europe/Rome
    month_in: utc
  transfer_count: {column: n, unknown: [-99]}
  amount:
    column: total
    currency_column: ccy
    minor_units: true
    decimal: ","
    thousands: [".", space]
    rates: {file: fx.csv, date: 2025-06-30}
    check_magnitude: false
ignore:
  customer_name: a name, never shared
"""
    m = parse_mapping(text, registry, base_dir=tmp_path)
    assert m.max_reject_ratio == pytest.approx(0.02)
    assert m.fields["send_country"].recode == {"UK": "GB", "n/a": None}
    assert m.fields["transfer_count"].unknown == ["-99"]
    assert m.fields["period"].timed_formats() == (["%d.%m.%Y %H:%M"], ["%d.%m.%Y"])
    assert m.fields["amount"].thousands_marks(",") == ". \u00a0\u202f"
    assert m.mapped_columns() == ["phone", "from", "to", "payout", "day", "time", "n", "total",
                                  "ccy"]
    assert m.ignore == {"customer_name": "a name, never shared"}


@pytest.mark.parametrize(
    ("tail", "line", "reason"),
    [
        ("ignore: [customer_name]\n", 11, "maps each column to the reason"),
        ("ignore:\n  customer_name:\n", 11, "say why column 'customer_name' is ignored"),
        ("ignore: {total: not needed}\n", 11, "'total' is both mapped (fields.amount) and"),
        ("max_reject_ratio: lots%\n", 11, "a share (0.05) or a percentage"),
        ("max_reject_ratio: 1.5\n", 11, "less than or equal to 1"),
    ],
)
def test_ignore_and_reject_ratio(
    registry: ContractRegistry, tail: str, line: int, reason: str
) -> None:
    err = _one(BASE + tail, registry)
    assert err.line == line and reason in err.reason, err

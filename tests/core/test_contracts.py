"""Data contracts: the shipped ones load, and every rule of the contract model holds."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from hub.contracts.model import (
    Contract,
    ContractRegistry,
    FieldType,
    Role,
    default_contracts_dir,
    json_schema_text,
    months_between,
)
from hub.errors import ContractError, UnknownDataset

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def registry() -> ContractRegistry:
    return ContractRegistry.load()


def test_shipped_contracts_cover_the_shared_datasets(registry: ContractRegistry) -> None:
    assert registry.datasets() == ["bank_alerts", "case_records", "corridor_flows", "incidents"]
    assert registry.versions("case_records") == [1, 2]
    assert registry.get("case_records").version == 2  # newest by default


@pytest.mark.parametrize("key", [("bank_alerts", 1), ("case_records", 1), ("case_records", 2),
                                 ("corridor_flows", 1), ("incidents", 1)])
def test_every_field_declares_role_domain_and_sensitivity(
    registry: ContractRegistry, key: tuple[str, int]
) -> None:
    contract = registry.get(*key)
    assert contract.privacy_unit.type is FieldType.TOKEN
    assert contract.privacy_unit.identifier_kind is not None
    for f in contract.fields:
        assert f.description
        if f.type in (FieldType.CATEGORY, FieldType.CATEGORY_LIST) and f.role is not Role.PARTNER:
            assert len(f.codes) >= 2, f.name
        if f.role is Role.MEASURE:
            assert f.domain is not None and f.domain.clamp is not None, f.name
    # the partner is stamped by the hub, never part of an uploaded extract
    assert all(f.role is not Role.PARTNER for f in contract.extract_fields)


def test_country_domain_is_iso_alpha2_and_yaml_booleans_are_not_mangled(
    registry: ContractRegistry,
) -> None:
    codes = registry.get("bank_alerts").field("origin_country").codes
    assert len(codes) == 249
    assert "NO" in codes  # Norway: unquoted YAML would have read it as False
    assert all(len(c) == 2 and c.isupper() for c in codes)


def test_case_records_domains_follow_htcds_and_ctdc(registry: ContractRegistry) -> None:
    c = registry.get("case_records", 1)
    assert "DebtBondage" in c.field("means_of_control").codes
    assert c.field("means_of_control").type is FieldType.CATEGORY_LIST
    assert c.field("age_band").codes[-1] == "Unknown"
    assert "TransgenderFeminine" in c.field("gender").codes
    assert "sector" not in {f.name for f in c.fields}
    assert "sector" in {f.name for f in registry.get("case_records", 2).fields}


def test_unknown_dataset_and_version_name_what_is_known(registry: ContractRegistry) -> None:
    with pytest.raises(UnknownDataset, match="known datasets: bank_alerts, case_records"):
        registry.get("passports")
    with pytest.raises(UnknownDataset, match="known versions: 1, 2") as err:
        registry.get("case_records", 9)
    assert err.value.field == "contract_version"


def test_months_between_enumerates_a_period_domain() -> None:
    assert months_between("2024-11", "2025-02") == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert len(months_between("2015-01", "2030-12")) == 16 * 12


def test_committed_json_schemas_match_the_models() -> None:
    for kind in ("contract", "domain"):
        committed = (REPO / "contracts" / f"{kind}.schema.json").read_text()
        assert committed == json_schema_text(kind), f"regenerate contracts/{kind}.schema.json"


def test_default_contracts_dir_is_the_repository_folder_in_a_checkout() -> None:
    assert default_contracts_dir() == REPO / "contracts"


# -- the rules, one broken contract each ------------------------------------------------

BASE = """\
dataset: demo
version: 1
title: Demo
description: A test contract.
fields:
  - name: subject
    type: token
    description: Who.
    role: privacy_unit
    sensitivity: identifier
    identifier_kind: generic
{extra}"""


def _write(tmp_path: Path, extra: str, name: str = "demo.v1.yaml") -> Path:
    folder = tmp_path / "contracts"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(BASE.format(extra=textwrap.indent(textwrap.dedent(extra), "  ")))
    return folder


def _load_error(tmp_path: Path, extra: str) -> ContractError:
    with pytest.raises(ContractError) as err:
        ContractRegistry.load(_write(tmp_path, extra))
    return err.value


def test_a_valid_minimal_contract_loads(tmp_path: Path) -> None:
    folder = _write(tmp_path, """\
        - name: amount
          type: number
          description: How much.
          role: measure
          sensitivity: non_sensitive
          domain: {min: 0, clamp: [0, 100]}
        """)
    contract = ContractRegistry.load(folder).get("demo", 1)
    assert isinstance(contract, Contract)
    assert [f.name for f in contract.extract_fields] == ["subject", "amount"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("- {name: notes, type: text, description: d, role: dimension, sensitivity: non_sensitive}",
         "free text is never accepted"),
        ("- {name: notes, type: category, description: d, role: dimension, "
         "sensitivity: free_text, domain: {categories: [a, b]}}",
         "free text is never accepted"),
        ("- {name: amount, type: number, description: d, role: measure, "
         "sensitivity: non_sensitive, domain: {min: 0}}",
         "a measure needs domain.clamp"),
        ("- {name: amount, type: number, description: d, role: measure, "
         "sensitivity: non_sensitive, domain: {min: 0, max: 10, clamp: [0, 50]}}",
         "domain.clamp must lie inside"),
        ("- {name: phone, type: token, description: d, role: dimension, sensitivity: identifier}",
         "needs identifier_kind"),
        ("- {name: kind, type: category, description: d, role: dimension, "
         "sensitivity: identifier, domain: {categories: [a]}}",
         "identifiers must have type token"),
        ("- {name: kind, type: category, description: d, role: dimension, "
         "sensitivity: non_sensitive, domain: {ref: planets}}",
         "unknown shared domain 'planets'"),
        ("- {name: kind, type: category, description: d, role: dimension, "
         "sensitivity: non_sensitive, domain: {categories: [a, a]}}",
         "category 'a' is listed twice"),
        ("- {name: month, type: period, description: d, role: dimension, "
         "sensitivity: non_sensitive, domain: {min: '2025-13', max: '2026-01'}}",
         "is not 'YYYY-MM'"),
        ("- {name: subject, type: integer, description: d, role: measure, "
         "sensitivity: non_sensitive, domain: {min: 0, clamp: [0, 1]}}",
         "field names must be unique"),
        ("- {name: other, type: token, description: d, role: privacy_unit, "
         "sensitivity: identifier, identifier_kind: email}",
         "exactly one privacy_unit"),
        ("- {name: org, type: category, description: d, role: partner, "
         "sensitivity: non_sensitive, domain: {categories: [a, b]}}",
         "partner field must be a category with domain {ref: members}"),
    ],
)
def test_each_contract_rule_is_enforced(tmp_path: Path, extra: str, message: str) -> None:
    err = _load_error(tmp_path, extra)
    assert message in str(err)


def test_errors_carry_the_yaml_line(tmp_path: Path) -> None:
    err = _load_error(tmp_path, """\
        - name: amount
          type: number
          description: How much.
          role: measure
          sensitivity: non_sensitive
          domain: {min: 0}
        """)
    (only,) = err.errors
    assert only.field == "fields.1"
    assert only.line == 12  # the '- name: amount' item in the generated file
    assert "demo.v1.yaml" in err.detail


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    folder = tmp_path / "contracts"
    folder.mkdir()
    (folder / "demo.v1.yaml").write_text("dataset: demo\nfields: [a, b\n")
    with pytest.raises(ContractError) as err:
        ContractRegistry.load(folder)
    assert err.value.errors[0].line is not None
    assert "not valid YAML" in err.value.detail


def test_file_name_must_match_dataset_and_version(tmp_path: Path) -> None:
    folder = _write(tmp_path, "", name="other.v1.yaml")
    (folder / "other.v1.yaml").write_text(
        (folder / "other.v1.yaml").read_text() + "  - {name: n, type: integer, description: d, "
        "role: dimension, sensitivity: non_sensitive, domain: {min: 0}}\n"
    )
    with pytest.raises(ContractError, match="does not match its file name"):
        ContractRegistry.load(folder)

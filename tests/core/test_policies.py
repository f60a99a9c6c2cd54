"""Sharing policies: the shipped ones load, the schema file is current, every rule holds with
the line of the offending entry."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry, Domain
from hub.governance.policies import (
    Function,
    Policy,
    PolicyError,
    PolicySet,
    default_policies_dir,
    load_policy_file,
    policy_context,
    policy_schema_text,
    shared_field,
)
from hub.privacy.accounting import Measure
from hub.yamlfile import validate_document

REPO = Path(__file__).resolve().parents[2]

BASE = """\
dataset: bank_alerts
accounting: zcdp
opened: "2026-01-01"
min_partners: 2
contribution_bounds: {max_rows: 10}
budget:
  global: "2"
  per_member: "1/2"
  per_query: "0.1"
  per_month: "0.2"
rules:
  - name: analysts
    who: {roles: [analyst]}
    dimensions:
      - origin_country
      - period
    max_dimensions: 2
    filters: [period]
    measures:
      - count
      - {function: sum, field: amount}
      - {function: mean, field: amount, clamp: [0, 10000]}
  - name: police
    who: {members: ["Metropolitan Police"]}
    dimensions: [typology]
    max_dimensions: 1
    measures: [linked_units]
"""


@pytest.fixture(scope="module")
def registry() -> ContractRegistry:
    return ContractRegistry.load()


def _validate(text: str, registry: ContractRegistry) -> Policy:
    return validate_document(
        text, Policy, source="bank_alerts.yaml", error=PolicyError,
        context=policy_context(registry),
    )


def test_the_base_document_is_valid(registry: ContractRegistry) -> None:
    policy = _validate(BASE, registry)
    assert policy.accounting is Measure.ZCDP
    limits = policy.limits
    assert (limits.global_total, limits.per_member, limits.per_query, limits.per_month) == (
        Fraction(2), Fraction(1, 2), Fraction(1, 10), Fraction(1, 5)
    )
    assert policy.rules[0].measures[2].clamp == (0, 10000)
    assert policy.rules[0].measures[0].function is Function.COUNT


# (replace this, with this) -> (line, field, part of the reason)
CASES = {
    "unknown dataset": (
        ("dataset: bank_alerts", "dataset: passports"),
        (1, "dataset", "unknown dataset 'passports' (known: bank_alerts"),
    ),
    "unknown key": (
        ("min_partners: 2", "min_partners: 2\nrenew: monthly"),
        (5, "renew", "Extra inputs are not permitted"),
    ),
    "accounting": (
        ("accounting: zcdp", "accounting: approx"),
        (2, "accounting", "'zcdp' or 'pure'"),
    ),
    "opened not a date": (
        ('opened: "2026-01-01"', 'opened: "soon"'),
        (3, "opened", "date"),
    ),
    "min_partners": (
        ("min_partners: 2", "min_partners: 0"),
        (4, "min_partners", "greater than or equal to 1"),
    ),
    "max_rows": (
        ("{max_rows: 10}", "{max_rows: 0}"),
        (5, "contribution_bounds.max_rows", "greater than or equal to 1"),
    ),
    "float budget": (
        ('per_query: "0.1"', "per_query: 0.1"),
        (9, "budget.per_query", "so that they are exact"),
    ),
    "negative budget": (
        ('global: "2"', 'global: "-2"'),
        (7, "budget.global", "cannot be negative"),
    ),
    "zero per query": (
        ('per_query: "0.1"', "per_query: 0"),
        (9, "budget.per_query", "must be positive"),
    ),
    "member above global": (
        ('per_member: "1/2"', 'per_member: "3"'),
        (6, "budget", "per-member budget cannot exceed the global budget"),
    ),
    "query above member": (
        ('per_query: "0.1"', 'per_query: "0.6"'),
        (6, "budget", "per-query cap cannot exceed the per-member budget"),
    ),
    "month above member": (
        ('per_month: "0.2"', 'per_month: "0.7"'),
        (6, "budget", "monthly cap cannot exceed the per-member budget"),
    ),
    "privacy unit as dimension": (
        ("      - period\n", "      - subject\n"),
        (16, "rules.0.dimensions.1", "'subject' is the privacy unit"),
    ),
    "partner as dimension": (
        ("      - origin_country\n", "      - partner\n"),
        (15, "rules.0.dimensions.0", "partner field: per-partner results would reveal"),
    ),
    "measure as dimension": (
        ("      - period\n", "      - amount\n"),
        (16, "rules.0.dimensions.1", "'amount' is a measure, not a dimension"),
    ),
    "unknown dimension": (
        ("      - period\n", "      - iban\n"),
        (16, "rules.0.dimensions.1", "bank_alerts has no field 'iban'"),
    ),
    "identifier as filter": (
        ("filters: [period]", "filters: [period, subject]"),
        (18, "rules.0.filters.1", "can never be a filter"),
    ),
    "dimension twice": (
        ("      - period\n", "      - origin_country\n"),
        (14, "rules.0.dimensions", "listed twice"),
    ),
    "max_dimensions": (
        ("max_dimensions: 2", "max_dimensions: 0"),
        (17, "rules.0.max_dimensions", "greater than or equal to 1"),
    ),
    "sum of a dimension": (
        ("{function: sum, field: amount}", "{function: sum, field: typology}"),
        (21, "rules.0.measures.1", "sum needs a measure field"),
    ),
    "sum without field": (
        ("{function: sum, field: amount}", "{function: sum}"),
        (21, "rules.0.measures.1", "sum needs a field"),
    ),
    "count with a field": (
        ("      - count\n", "      - {function: count, field: amount}\n"),
        (20, "rules.0.measures.0", "count takes no field"),
    ),
    "unknown function": (
        ("      - count\n", "      - median\n"),
        (20, "rules.0.measures.0.function", "Input should be"),
    ),
    "clamp wider than contract": (
        ("clamp: [0, 10000]", "clamp: [0, 90000]"),
        (22, "rules.0.measures.2", "inside the contract's clamp [0, 50000]"),
    ),
    "clamp inverted": (
        ("clamp: [0, 10000]", "clamp: [100, 10]"),
        (22, "rules.0.measures.2", "low <= high"),
    ),
    "measure twice": (
        ("      - count\n", "      - count\n      - count\n"),
        (19, "rules.0.measures", "measure count is listed twice"),
    ),
    "rule names unique": (
        ("  - name: police", "  - name: analysts"),
        (11, "rules", "rule names must be unique: analysts"),
    ),
    "rule name shape": (
        ("  - name: police", "  - name: Police Rule"),
        (23, "rules.1.name", "pattern"),
    ),
    "unknown role": (
        ("who: {roles: [analyst]}", "who: {roles: [analysts]}"),
        (13, "rules.0.who.roles.0", "Input should be"),
    ),
    "public rows: unknown field": (
        ("min_partners: 2", "min_partners: 2\npublic_rows: {field: iban, values: [x], "
                            "reason: published in a register}"),
        (5, "public_rows", "bank_alerts has no field 'iban'"),
    ),
    "public rows: not a category": (
        ("min_partners: 2", "min_partners: 2\npublic_rows: {field: amount, values: [x], "
                            "reason: published in a register}"),
        (5, "public_rows", "needs a category field with a closed domain"),
    ),
    "public rows: value outside the domain": (
        ("min_partners: 2", "min_partners: 2\npublic_rows: {field: origin_country, "
                            "values: [RO, Atlantis], reason: published in a register}"),
        (5, "public_rows", "Atlantis not in the domain of origin_country"),
    ),
    "public rows: no reason": (
        ("min_partners: 2", "min_partners: 2\npublic_rows: {field: origin_country, "
                            "values: [RO], reason: public}"),
        (5, "public_rows.reason", "at least 10 characters"),
    ),
    "public rows: no values": (
        ("min_partners: 2", "min_partners: 2\npublic_rows: {field: origin_country, "
                            "values: [], reason: published in a register}"),
        (5, "public_rows.values", "at least 1 item"),
    ),
    "no rules": (
        (BASE[BASE.index("rules:"):], "rules: []\n"),
        (11, "rules", "at least 1 item"),
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_validation_rule_reports_field_line_and_reason(
    registry: ContractRegistry, case: str
) -> None:
    (old, new), (line, field, reason) = CASES[case]
    assert old in BASE
    with pytest.raises(PolicyError) as err:
        _validate(BASE.replace(old, new, 1), registry)
    assert err.value.code == "policy_invalid" and err.value.status == 422
    found = [(e.line, e.field, e.reason) for e in err.value.errors]
    assert any(
        (ln, f) == (line, field) and reason in r for ln, f, r in found
    ), f"expected line {line} {field}: {reason!r}; got {found}"


def test_every_error_of_a_file_is_reported_together(registry: ContractRegistry) -> None:
    text = BASE.replace("max_dimensions: 2", "max_dimensions: 0").replace(
        "      - period\n", "      - subject\n"
    ).replace('per_query: "0.1"', "per_query: 0.1")
    with pytest.raises(PolicyError) as err:
        _validate(text, registry)
    assert {e.field for e in err.value.errors} == {
        "budget.per_query", "rules.0.dimensions.1", "rules.0.max_dimensions"
    }


def test_a_file_must_be_named_after_its_dataset(
    registry: ContractRegistry, tmp_path: Path
) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(BASE)
    with pytest.raises(PolicyError) as err:
        load_policy_file(path, registry)
    assert err.value.errors[0].line == 1
    assert "must be in bank_alerts.yaml, not alerts.yaml" in err.value.errors[0].reason
    (tmp_path / "bank_alerts.yaml").write_text(BASE)
    assert load_policy_file(tmp_path / "bank_alerts.yaml", registry).dataset == "bank_alerts"


def test_the_shipped_policies_load_against_the_shipped_contracts(
    registry: ContractRegistry,
) -> None:
    policies = PolicySet.of(*(load_policy_file(path, registry)
                              for path in sorted(default_policies_dir().glob("*.yaml"))))
    assert policies.datasets() == ["bank_alerts", "case_records", "corridor_flows", "incidents"]
    analyst = Actor("c", "org_x", "Any Member", frozenset({Role.ANALYST}))
    for policy in policies:
        assert policy.limits.per_query <= policy.limits.per_member <= policy.limits.global_total
        if policy.dataset == "incidents":  # the hub's own rows: one contributor (hub.osint)
            assert policy.min_partners == 1 and policy.max_rows == 1
            # only incidents that no crowd report told are public (hub.query.exact)
            assert policy.public_rows is not None
            assert (policy.public_rows.field, policy.public_rows.values) == (
                "source_type", ["news"])
            continue
        assert policy.public_rows is None  # members' rows are never public
        assert policy.min_partners >= 2
        assert policy.limits.per_query <= policy.limits.per_member <= policy.limits.global_total
        allowed = {m.function for r in policy.rules_for(analyst) for m in r.measures}
        assert Function.LINKED_UNITS in allowed  # the cross-partner output is allowed
    case_dims = {d for r in policies.policies["case_records"].rules_for(analyst)
                 for d in r.dimensions}
    assert {"source_country", "transit_country", "destination_country"} <= case_dims
    cases = policies.policies["case_records"]
    # routes are selected keys: approximate DP, so the policy caps delta as well
    assert cases.accounting is Measure.ZCDP and cases.key_selection is not None
    assert 0 < cases.limits.delta_per_query <= cases.limits.delta_per_member
    assert default_policies_dir() == REPO / "policies"


def test_the_committed_schema_file_equals_the_model() -> None:
    assert (REPO / "policies" / "policy.schema.json").read_text() == policy_schema_text()


def test_who_matches_roles_or_members_and_empty_who_is_nobody(
    registry: ContractRegistry,
) -> None:
    policy = _validate(BASE.replace("who: {roles: [analyst]}", "who: {}"), registry)
    nobody, police = policy.rules
    met = Actor("c1", "org_met", "Metropolitan Police", frozenset({Role.PARTNER}))
    analyst = Actor("c2", "org_a", "Northbank plc", frozenset(Role))
    assert not nobody.who.matches(analyst)  # empty who matches no one, whatever the roles
    assert police.who.matches(met) and not police.who.matches(analyst)
    by_id = _validate(BASE.replace('"Metropolitan Police"', "org_met"), registry)
    assert by_id.rules[1].who.matches(met)
    assert by_id.rules_for(analyst) == [by_id.rules[0]]


def test_a_field_new_in_a_later_version_is_usable_and_marked_missing(
    registry: ContractRegistry,
) -> None:
    versions = [registry.get("case_records", 1), registry.get("case_records", 2)]
    sector, missing = shared_field(versions, "sector") or (None, False)
    assert sector is not None and missing  # v1 rows count as unknown
    period, missing = shared_field(versions, "period") or (None, True)
    assert period is not None and not missing
    assert shared_field(versions, "nonexistent") is None


def test_a_field_defined_differently_across_versions_is_refused(
    registry: ContractRegistry,
) -> None:
    v1 = registry.get("bank_alerts", 1)
    fields = [
        f.model_copy(update={"domain": Domain(categories=[{"code": "a"}, {"code": "b"}])})
        if f.name == "typology" else f
        for f in v1.fields
    ]
    v2 = v1.model_copy(update={"version": 2, "fields": fields})
    two = ContractRegistry(contracts={v1.key: v1, v2.key: v2}, domains=registry.domains)
    with pytest.raises(ValueError, match="defined differently in bank_alerts v1 and v2"):
        shared_field([v1, v2], "typology")
    text = BASE.replace("dimensions: [typology]", "dimensions: [typology, period]")
    with pytest.raises(PolicyError, match="1 error") as err:
        validate_document(text, Policy, source="p", error=PolicyError,
                          context=policy_context(two))
    assert err.value.errors[0].field == "rules.1.dimensions.0"

"""A key written twice in a policy, contract or mapping file is refused with both lines.

YAML loaders keep the last of two equal keys silently, so a reviewer could approve text
(the first ``budget:``) that is not what applies (the second). ``hub.yamlfile`` refuses
them at every depth, in block and flow style, through every loader and ``check`` command
(the proposal API and the web editor: tests/api/test_governance_http.py,
tests/web/test_governance_console.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from connectors.partner.mapping import load_mapping
from hub.cli.main import app
from hub.contracts.model import ContractRegistry
from hub.errors import ConfigError
from hub.governance.policies import load_policy_file
from hub.yamlfile import validate_document

REPO = Path(__file__).resolve().parents[2]
POLICY = (REPO / "policies" / "bank_alerts.yaml").read_text()
CONTRACT = (REPO / "contracts" / "bank_alerts.v2.yaml").read_text()
MAPPING = (REPO / "connectors" / "examples" / "northbank.bank_alerts.v2.yaml").read_text()
END = len(POLICY.splitlines()) + 1  # the line of a key appended to the policy


def _after(text: str, anchor: str, added: str) -> tuple[str, int]:
    """``text`` with ``added`` inserted after the first line holding ``anchor``, and the
    1-based line ``added`` starts on."""
    lines = text.splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if anchor in line) + 1
    return "".join(lines[:at]) + added + "".join(lines[at:]), at + 1


def _env(tmp_path: Path) -> dict[str, str]:
    return {"TAHUB_DATA_DIR": str(tmp_path / "data"), "TAHUB_LOG_LEVEL": "WARNING"}


NESTED = _after(POLICY, "  per_member:", '  per_member: "999"\n')
IN_RULE = _after(POLICY, "    who: {roles: [analyst]}", "    who: {roles: [partner]}\n")
# (text with a duplicate, dotted field, line of the second key)
CASES = {
    "top level": (POLICY + 'budget: {global: "9", per_member: "9", per_query: "9"}\n',
                  "budget", END),
    "nested": (NESTED[0], "budget.per_member", NESTED[1]),
    "in a list item": (IN_RULE[0], "rules.0.who", IN_RULE[1]),
    "flow style": (POLICY.replace("contribution_bounds:", "# was contribution_bounds:", 1)
                   + "contribution_bounds: {max_rows: 10, max_rows: 1000}\n",
                   "contribution_bounds.max_rows", END),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_policy_with_a_duplicate_key_is_refused_with_its_line(
    tmp_path: Path, case: str
) -> None:
    text, field, line = CASES[case]
    path = tmp_path / "bank_alerts.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_policy_file(path, ContractRegistry.load())
    assert err.value.code == "policy_invalid"
    assert [(e.field, e.line) for e in err.value.errors] == [(field, line)]
    (error,) = err.value.errors
    assert "duplicate key" in error.reason and "first at line" in error.reason


class _Doc(BaseModel):
    a: dict[str | int, int]
    b: list[dict[str, int]] = []


def test_equal_keys_in_different_mappings_are_fine_and_an_alias_is_looked_at_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bank_alerts.yaml"
    path.write_text(POLICY)  # every rule has its own `who:`, `dimensions:`...
    assert load_policy_file(path, ContractRegistry.load()).dataset == "bank_alerts"
    with pytest.raises(ConfigError) as err:
        validate_document("a: &x {q: 1, q: 2}\nb: [*x, *x]\n", _Doc, source="doc.yaml")
    assert [(e.field, e.line) for e in err.value.errors] == [("a.q", 1)]
    # keys are compared as YAML reads them: the integer 1 and the string "1" are two keys
    assert validate_document('a: {1: 1, "1": 2}\n', _Doc, source="doc.yaml").a == {1: 1, "1": 2}


def test_a_contract_with_a_duplicate_key_is_refused_by_the_registry_and_the_check(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "contracts"
    shutil.copytree(REPO / "contracts", folder)
    text, line = _after(CONTRACT, "identifier_kind: phone", "    identifier_kind: email\n")
    (folder / "bank_alerts.v2.yaml").write_text(text)
    with pytest.raises(ConfigError) as err:
        ContractRegistry.load(folder)
    assert err.value.code == "contract_invalid"
    assert [(e.field, e.line) for e in err.value.errors] == [("fields.1.identifier_kind", line)]
    result = CliRunner().invoke(
        app, ["contracts", "check", str(folder / "bank_alerts.v2.yaml")], env=_env(tmp_path)
    )
    assert result.exit_code == 1
    assert f"bank_alerts.v2.yaml:{line}: fields.1.identifier_kind: duplicate key" in (
        result.stderr
    )


def test_a_mapping_with_a_duplicate_key_is_refused_with_its_line(tmp_path: Path) -> None:
    text, line = _after(MAPPING, "  subject: customer_iban", "  subject: customer_account\n")
    path = tmp_path / "northbank.bank_alerts.v2.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_mapping(path)
    assert [(e.field, e.line) for e in err.value.errors] == [("fields.subject", line)]


def test_policy_check_names_file_and_line_of_a_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "bank_alerts.yaml"
    path.write_text(NESTED[0])
    result = CliRunner().invoke(app, ["policy", "check", str(path)], env=_env(tmp_path))
    assert result.exit_code == 1, result.stdout
    assert f"bank_alerts.yaml:{NESTED[1]}: budget.per_member: duplicate key" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout

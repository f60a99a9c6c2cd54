"""What the demo prints and the policies it loads, without running a hub: the activation line
for the environment at hand (real folders and scripts in tmp_path), commands never folded at
a narrow terminal, and the demo's budgets (the shipped policies' times six, nothing else)."""

from __future__ import annotations

import io
import os
from fractions import Fraction
from pathlib import Path

import pytest
from rich.console import Console

from hub.contracts.model import ContractRegistry
from hub.demo.banner import Person, Walkthrough, activation, show
from hub.demo.budgets import SCALE, demo_policy_text, write_demo_policies
from hub.governance.policies import default_policies_dir, parse_policy_text

ROOT = Path(__file__).resolve().parents[2]


def _venv(folder: Path, *, activate: bool = True) -> Path:
    """A virtual environment's bin folder: the two commands, and its activate script."""
    bindir = folder / "bin"
    bindir.mkdir(parents=True)
    for name in ("python", "tahub", "tahub-connect"):
        (bindir / name).write_text("#!/bin/sh\n")
        (bindir / name).chmod(0o755)
    if activate:
        (bindir / "activate").write_text("# sourced\n")
    return bindir / "python"


def test_the_activation_line_fits_where_the_demo_runs(tmp_path: Path) -> None:
    python = _venv(tmp_path / "checkout" / ".venv")
    # in the checkout: the README's line, relative
    assert activation(str(python), tmp_path / "checkout", path="/usr/bin") == \
        "source .venv/bin/activate"
    # anywhere else (an installed wheel's environment, another folder): its absolute path
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert activation(str(python), elsewhere, path="/usr/bin") == \
        f"source {tmp_path}/checkout/.venv/bin/activate"
    # already on PATH (an activated environment): nothing to do
    assert activation(str(python), elsewhere, path=f"{python.parent}{os.pathsep}/usr/bin") is None
    # another tahub first on PATH is not this environment's
    other = _venv(tmp_path / "other")
    assert activation(str(python), elsewhere, path=f"{other.parent}{os.pathsep}"
                      f"{python.parent}") is not None
    # an environment without an activate script: its bin folder first on PATH
    bare = _venv(tmp_path / "with space" / "env", activate=False)
    assert activation(str(bare), elsewhere, path="/usr/bin") == \
        f"export PATH='{bare.parent}':\"$PATH\""


def _walkthrough(folder: Path) -> Walkthrough:
    deep = folder / ("a-rather-long-folder-name-" * 3) / "tahub-demo-partners"
    people = [Person(f"{who}@northbank.example", "Pw-0123456789abcdef", role, "Northbank plc")
              for who, role in (("analyst", "analyst"), ("engineer", "partner"),
                                ("officer", "governance"), ("officer2", "governance"),
                                ("reviewer", "reviewer"))]
    return Walkthrough(
        url="http://127.0.0.1:8000", data_dir=folder / "tahub-data", partners_dir=deep,
        partner_env=deep / "northbank" / "partner.env",
        analyst_env=deep / "northbank" / "analyst.env",
        officer_envs=(deep / "safepassage" / "governance.env",
                      deep / "metpolice" / "governance.env"),
        export=deep / "northbank" / "alerts_export.csv",
        mapping=deep / "northbank" / "bank_alerts.mapping.yaml",
        analyst=people[0], engineer=people[1], officers=(people[2], people[3]),
        linked_note="customers flagged by two or more members", reviewer=people[4])


def test_commands_are_printed_whole_at_any_width(tmp_path: Path) -> None:
    out = io.StringIO()
    w = _walkthrough(tmp_path)
    show(Console(file=out, width=60), w, activate="source .venv/bin/activate")
    lines = out.getvalue().splitlines()
    assert lines.count("  source .venv/bin/activate") == 1  # shown once, first
    assert lines.index("  source .venv/bin/activate") < lines.index("  tahub-connect list")
    for command in (
        f"  tahub-connect push {w.export} --mapping {w.mapping}",
        "  tahub query run bank_alerts --by origin_country --by destination_country --measure "
        "linked_units --cost 1/5 --sort linked_units --limit 5",
        f"  set -a; . {w.analyst_env}; set +a",
        "  curl -s -u \"$TAHUB_CLIENT_ID:$TAHUB_CLIENT_SECRET\" -d grant_type=client_credentials "
        "http://127.0.0.1:8000/oauth/token",
    ):
        assert command in lines, command  # one line, however narrow the terminal
    assert not any(line.startswith("  .venv/bin/") for line in lines)
    text = out.getvalue()
    assert ("sign in as engineer@northbank.example  password Pw-0123456789abcdef  (role partner,"
            " Northbank plc)") in text
    assert ("sign in as reviewer@northbank.example  password Pw-0123456789abcdef  (role "
            "reviewer, Northbank plc)") in text
    assert "  Review queue         http://127.0.0.1:8000/ui#/review" in lines
    assert "  Report what you saw  http://127.0.0.1:8000/report" in lines  # the public's page
    out = io.StringIO()
    show(Console(file=out, width=60), w, activate=None)  # already on PATH: no activation
    assert "activate" not in out.getvalue()


def _parsed(text: str, name: str) -> dict[str, object]:
    policy = parse_policy_text(text, ContractRegistry.load(), source=name, filename=name)
    return policy.model_dump()


@pytest.mark.parametrize("path", sorted(default_policies_dir().glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_the_demo_policies_are_the_shipped_ones_with_budgets_times_six(path: Path) -> None:
    shipped_text = path.read_text()
    demo_text = demo_policy_text(shipped_text)
    shipped, demo = _parsed(shipped_text, path.name), _parsed(demo_text, path.name)
    s_budget, d_budget = shipped.pop("budget"), demo.pop("budget")
    assert demo == shipped  # rules, bounds, key selection... as shipped
    assert isinstance(s_budget, dict) and isinstance(d_budget, dict)
    scaled = ("global_total", "per_member", "per_month")
    for key in scaled:
        assert Fraction(d_budget[key]) == Fraction(s_budget[key]) * SCALE
    assert {k: v for k, v in d_budget.items() if k not in scaled} == \
        {k: v for k, v in s_budget.items() if k not in scaled}  # the cap, the deltas
    assert Fraction(d_budget["per_query"]) == Fraction(1, 5)  # every noise scale the docs print
    assert demo_text.count("# shipped: ") == 3 and "hub/demo/budgets.py" in demo_text


def test_the_readme_raises_the_demo_budget_it_has(tmp_path: Path) -> None:
    """The governance walkthrough's sed finds the demo's per_member in bank_alerts."""
    written = write_demo_policies(tmp_path / "policies")
    text = (written / "bank_alerts.yaml").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "sed -i 's|per_member: \"6\" |per_member: \"8\" |'" in readme
    assert text.count('per_member: "6" ') == 1


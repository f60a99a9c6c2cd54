"""What people read in the command lines: privacy amounts as decimals (exact fractions kept),
names instead of ids, and every audit action as a sentence (connectors.common.amounts,
.names, .auditsentences)."""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given

from connectors.common.amounts import amount, decimal, symbol
from connectors.common.auditsentences import SENTENCES, detail_lines, sentence
from connectors.common.names import Names
from hub.governance.audit import Action
from tests.strategies import privacy_amounts

ORG, OTHER = "org_00000000000000a1", "org_00000000000000b2"
ANA, STRANGER = "usr_000000000000000a", "usr_000000000000000b"
CLIENT = "tahub_00000000000000c3"
NAMES = Names({ORG: "Banca Italia", OTHER: "Safe Passage"}, {ANA: ("Ana Silva", ORG)})
IDS = re.compile(r"\b(org|usr|tahub)_[0-9a-f]{6,}")


@pytest.mark.parametrize(("text", "shown"), [
    ("37/25", "1.48"), ("9/20", "0.45"), ("1/10000", "0.0001"), ("1/3", "0.333"),
    ("100/3", "33.3"), ("0", "0"), ("3", "3"), ("1234", "1234"), ("1/8", "0.125"),
    ("201/200", "1.01"), ("9999/10000", "1"), ("1/10000000", "0.0000001"), ("0.45", "0.45"),
    ("2/3", "0.667"), ("-1/3", "-0.333"), ("", ""), (None, ""), ("n/a", "n/a"),
])
def test_amounts_are_decimals_with_three_significant_digits(text: Any, shown: str) -> None:
    assert decimal(text) == shown


@given(privacy_amounts())
def test_a_decimal_is_the_fraction_rounded_half_up_at_its_precision(text: str) -> None:
    exact = Fraction(text)
    shown = decimal(text)
    assert "e" not in shown and not shown.startswith(".")
    places = len(shown.split(".")[1]) if "." in shown else 0
    assert abs(Fraction(Decimal(shown)) - exact) <= Fraction(1, 2 * 10**places)
    if exact >= 1:  # the whole integer part is kept (rounded up at most by one)
        whole = exact.numerator // exact.denominator
        assert int(shown.split(".")[0]) in (whole, whole + 1)
    significant = shown.replace(".", "").lstrip("0")
    assert len(significant.rstrip("0")) <= max(3, len(str(int(exact))))
    assert amount(text, "zcdp") == f"rho {shown}"
    marked = amount(text, exact=True)
    assert marked == shown if Fraction(Decimal(shown)) == exact else (
        marked == f"{shown} (exact {text})")


def test_symbols_name_what_a_policy_spends() -> None:
    assert (symbol("zcdp"), symbol("pure"), symbol(None)) == ("rho", "epsilon", "")
    assert amount("9/20", "pure") == "epsilon 0.45" and amount(None) == "-"


def test_names_show_people_of_the_directory_and_only_organisations_for_the_others() -> None:
    assert NAMES.who(ANA, ORG) == "Ana Silva (Banca Italia)"
    assert NAMES.who(STRANGER, OTHER) == "someone at Safe Passage"  # a name it may not read
    assert NAMES.who(CLIENT, OTHER) == "a client of Safe Passage"
    assert NAMES.who(None, ORG) == "Banca Italia"
    assert NAMES.who(None, None) == "the hub" and NAMES.who("hub:bootstrap") == "the hub"
    assert NAMES.who("cli:alice") == "the hub's administrator (alice)"
    assert NAMES.org("org_unknown") == "org_unknown"  # unknown: the id, never a guess
    directory = {"organisations": [{"id": ORG, "name": "Banca Italia", "kind": "bank"}],
                 "people": [{"id": ANA, "name": "Ana Silva", "org": ORG}]}
    assert Names.from_directory(directory).who(ANA) == "Ana Silva (Banca Italia)"


def _entry(action: str) -> dict[str, Any]:
    """An entry of ``action`` with the fields its service writes (hub.governance.audit)."""
    person = action.startswith(("person.", "auth.refresh", "auth.signed", "auth.sign_in"))
    actor = {"member.": "cli:alice", "client.": "cli:alice", "person.added": "cli:alice",
             "person.password": "cli:alice", "person.roles": "cli:alice",
             "person.disabled": "cli:alice", "policy.loaded": "hub:bootstrap",
             "policy.refused": "hub:bootstrap"}
    who = next((v for k, v in actor.items() if action.startswith(k)), ANA)
    return {"seq": 7, "at": "2026-01-02T03:04:05.000000Z", "actor": who, "org": ORG,
            "action": action, "object_type": "person" if person else "query",
            "object_id": ANA if person else "led_1", "dataset": "bank_alerts",
            "details": {"cost": {"amount": "9/20", "measure": "pure", "value": 0.45},
                        "version": 2, "roles": ["analyst"], "rows": 1200, "size": 5713,
                        "audience": [OTHER], "file": "bank_alerts.yaml", "method": "password",
                        "before": {"per_member": "1", "measure": "zcdp"},
                        "after": {"per_member": "3/2", "measure": "zcdp"},
                        "route": "/v1/queries", "status": 403, "code": "forbidden"}}


def test_every_audit_action_has_a_sentence() -> None:
    """Adding an action to hub.governance.audit.Action without a sentence fails here (and
    tests/web/test_names.py holds the web interface's)."""
    assert set(SENTENCES) == {a.value for a in Action}


@pytest.mark.parametrize("action", [a.value for a in Action])
def test_each_sentence_reads_with_names_and_decimals(action: str) -> None:
    text = sentence(_entry(action), NAMES)
    assert text[0].isupper() and text.endswith("."), text
    assert not IDS.search(text), text  # names, never ids
    assert "9/20" not in text and "{" not in text, text  # decimals, never JSON
    assert action not in text, text  # not the generic fallback


def test_the_example_sentences() -> None:
    charged = _entry("query.charged")
    assert sentence(charged, NAMES) == (
        "Ana Silva (Banca Italia) ran a query on bank_alerts costing epsilon 0.45.")
    assert sentence({**charged, "actor": STRANGER}, NAMES) == (
        "Someone at Banca Italia ran a query on bank_alerts costing epsilon 0.45.")
    assert sentence(_entry("budget.changed"), NAMES) == (
        "The budget of bank_alerts changed with version 2: per member rho 1 -> rho 1.5.")
    assert sentence(_entry("release.published"), NAMES) == (
        "Ana Silva (Banca Italia) published a release of bank_alerts to Safe Passage.")
    assert sentence({**_entry("policy.approved"), "action": "future.action"}, NAMES) == (
        "Ana Silva (Banca Italia): future.action on bank_alerts.")
    lines = detail_lines(charged, NAMES)
    assert "cost: epsilon 0.45 (exact 9/20)" in lines
    assert f"audience: Safe Passage ({OTHER})" in lines  # the id in the detail view
    assert "before:" in lines and "  per member: 1" in lines

"""People read names, in Chromium: the governance console (approvals, budgets, the budget
chart, the audit log) and the partner page show organisation and person names with the ids
on hover and in each entry's details; audit and usage entries read as sentences; privacy
amounts are decimals with the exact fraction on hover. A person's name reaches only its own
organisation and governance officers (hub/identity/directory.py): a data owner sees another
member's analyst as that member."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import httpx
import pytest
from playwright.sync_api import Page, expect

from connectors.common.amounts import decimal, size_text
from hub.actors import MemberKind, Role
from hub.governance.audit import Action
from hub.identity.people import Person
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot
from tests.web.test_signin_pages import PASSWORD, _sign_in

IDS = re.compile(r"\b(org|usr|tahub)_[0-9a-f]{8,}")
COSTS = ("1/10", "37/250")  # Ana's two queries: rho 0.1 and 0.148, 31/125 = 0.248 in all


@dataclass
class Names:
    hub: Hub
    analysts: str  # org ids
    ana: str  # person ids
    ines: str
    oversight1: str
    proposal: str


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Names]:
    base = tmp_path_factory.mktemp("web-names")
    # three officers for a change: a proposal approved once stays pending, with its approval
    with running_hub(base / "data", policy_quorum=3) as hub:
        hub.pool(base, rows=40, name="Names Bank")
        identity = hub.services.identity
        analysts = hub.member("Banca Analitica", (Role.ANALYST,), MemberKind.BANK).org_id
        ana = identity.people.add(analysts, "ana@names.example", "Ana Silva", (Role.ANALYST,),
                                  password=PASSWORD).person
        officers = []
        for n, who, kind in ((1, "Ines Costa", MemberKind.NGO),
                             (2, "Omar Haddad", MemberKind.LAW_ENFORCEMENT)):
            org = hub.member(f"Oversight {n}", (Role.PARTNER,), kind).org_id
            officers.append(identity.people.add(org, f"officer{n}@names.example", who,
                                                (Role.GOVERNANCE,), password=PASSWORD).person)
        identity.people.add(analysts, "pub@names.example", "Paula Reis", (Role.GOVERNANCE,),
                            password=PASSWORD)
        bank = next(m["id"] for m in identity.members() if m["name"] == "Names Bank 0")
        identity.people.add(bank, "eng@names.example", "Eng Bank", (Role.PARTNER,),
                            password=PASSWORD)

        def as_person(person: Person) -> httpx.Client:
            http = hub.client()
            token = identity.issue_person_token(person, "tahub-cli", "openid")
            http.headers["Authorization"] = f"Bearer {token}"
            return http

        with as_person(ana) as http:
            for cost in COSTS:
                resp = http.post("/v1/queries", json={
                    "dataset": "bank_alerts", "group_by": ["typology"],
                    "measures": ["count"], "cost": cost})
                assert resp.status_code == 200, resp.text
        active = next(v for v in hub.services.policy_changes.active_versions()
                      if v.dataset == "bank_alerts")
        with as_person(officers[0]) as http:
            proposed = http.post("/v1/governance/proposals", json={
                "yaml": active.text.replace('per_month: "1/2"', 'per_month: "3/5"', 1),
                "note": "a busier month"})
            assert proposed.status_code == 201, proposed.text
        with as_person(officers[1]) as http:
            approved = http.post(f"/v1/governance/proposals/{proposed.json()['id']}/approve",
                                 json={"note": "checked"})
            assert approved.status_code == 200 and approved.json()["status"] == "pending"
        yield Names(hub, analysts, ana.id, officers[0].id, officers[0].org_id,
                    proposed.json()["id"])


def _console(page: Page, names: Names, email: str) -> None:
    _sign_in(page, names.hub, email)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Governance").click()
    expect(page.get_by_role("heading", name="Active policies")).to_be_visible()


def _shown_text(page: Page) -> str:
    """What a reader sees on the page: not the titles, nor closed details."""
    return page.locator("main").inner_text()


def test_the_governance_console_shows_names_with_the_ids_on_hover(page: Page,
                                                                   names: Names) -> None:
    _console(page, names, "officer2@names.example")
    # approvals: who proposed and who approved, by name; the ids on hover
    proposal = page.locator(f"#proposal-{names.proposal}")
    expect(proposal.locator(".proposed-by")).to_contain_text(
        "Proposed by Ines Costa (Oversight 1)")
    proposer = proposal.locator(".proposed-by .name")
    assert names.ines in (proposer.get_attribute("title") or "")
    assert names.oversight1 in (proposer.get_attribute("title") or "")
    expect(proposal.locator(".approved-by")).to_contain_text(
        'Approved by Omar Haddad (Oversight 2)')
    expect(proposal.locator(".approved-by")).to_contain_text('("checked")')

    # budgets: the member by name (its id on hover), amounts as decimals (exact on hover)
    row = page.locator(f"table[data-budget=bank_alerts] tr[data-org={names.analysts}]")
    member = row.locator("td").first
    expect(member).to_have_text("Banca Analitica")
    expect(member.locator(".name")).to_have_attribute("title", names.analysts)
    spent = row.locator("td").nth(1).locator(".amount")
    total = str(sum(Fraction(c) for c in COSTS))
    expect(spent).to_have_text(decimal(total))  # 0.248
    expect(spent).to_have_attribute("title", f"exact: {total}")
    caption = page.locator("table[data-budget=bank_alerts] caption")
    expect(caption).to_contain_text("global rho 3, per member rho 1")

    # the budget chart: members by name in its legend and marks, never an id
    chart = page.locator("#budget-chart svg")
    expect(chart).to_contain_text("Banca Analitica")
    labels = page.locator("#budget-chart svg [aria-roledescription=point]").evaluate_all(
        "(points) => points.map((p) => p.getAttribute('aria-label'))")
    assert labels and all("member: " in label for label in labels)
    assert any("member: Banca Analitica" in label for label in labels)
    assert not IDS.search(chart.text_content() or "")
    # the id is in the tooltip only ("id: org_..."), with the exact amount
    assert any(f"id: {names.analysts}" in label and "exact: 31/125" in label
               for label in labels), labels
    assert not any(IDS.search(re.sub(r"id: \S+", "", label)) for label in labels), labels

    # the audit log: sentences with names, amounts as decimals, details on demand
    page.get_by_label("action").fill("query.charged")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#audit-entries tbody tr")
    expect(rows).to_have_count(2)
    first = rows.first.locator(".sentence")
    expect(first).to_have_text(
        "Ana Silva (Banca Analitica) ran a query on bank_alerts costing rho 0.1.")
    expect(rows.nth(1).locator(".sentence")).to_have_text(
        "Ana Silva (Banca Analitica) ran a query on bank_alerts costing rho 0.148.")
    assert names.ana in (first.locator(".name").get_attribute("title") or "")
    expect(first.locator(".amount")).to_have_attribute("title", "exact: 1/10")
    details = rows.first.locator("details.entry-details")
    expect(details.get_by_text(names.ana)).to_be_hidden()  # the ids: in the details, closed
    details.locator("summary").click()
    expect(details.get_by_text(names.ana)).to_be_visible()
    expect(details).to_contain_text("query.charged")
    expect(details.locator("> dl.fields").nth(1)).to_contain_text("costrho 0.1")
    assert "{" not in rows.first.inner_text()  # never raw JSON
    details.locator("summary").click()
    # the member filter offers organisations by name
    page.get_by_label("action").fill("")
    page.locator("#audit-member").select_option(label="Banca Analitica")
    page.get_by_role("button", name="Search").click()
    expect(rows.first).to_be_visible()
    sentences = page.locator("#audit-entries .sentence").all_inner_texts()
    assert sentences and all(s.endswith(".") for s in sentences)
    assert any("Banca Analitica" in s for s in sentences)
    assert not IDS.search(_shown_text(page)), _shown_text(page)
    page.evaluate("document.getElementById('audit-entries').scrollIntoView()")
    screenshot(page, "governance-names")


def test_every_audit_action_has_a_sentence_in_the_web_interface(page: Page,
                                                                 names: Names) -> None:
    """auditlog.js's table of sentences covers Action, and its decimals are the command
    line's, digit for digit (sizes in bytes too)."""
    _sign_in(page, names.hub, "officer1@names.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    keys = page.evaluate("async () => Object.keys((await import('/ui/static/auditlog.js'))"
                         ".SENTENCES)")
    assert set(keys) == {a.value for a in Action}
    samples = ["37/25", "9/20", "1/10000", "1/3", "100/3", "0", "3", "201/200", "9999/10000",
               "2/3", "10477/62500", "1/10000000", "1234", "0.45", "-1/3"]
    shown = page.evaluate("async (xs) => { const m = await import('/ui/static/amounts.js');"
                          " return xs.map((x) => m.decimal(x)); }", samples)
    assert shown == [decimal(s) for s in samples]
    sizes = [0, 512, 999, 1000, 1049, 1050, 1250, 65536, 999_999, 2_500_000, 7 * 10**9,
             12_345_678_901_234]
    shown = page.evaluate("async (xs) => { const m = await import('/ui/static/amounts.js');"
                          " return xs.map((x) => m.sizeText(x)); }", sizes)
    assert shown == [size_text(n) for n in sizes]


def test_a_data_owner_sees_who_used_its_data_by_organisation(page: Page,
                                                              names: Names) -> None:
    _sign_in(page, names.hub, "eng@names.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Partner uploads").click()
    usage = page.locator("#usage tbody tr[data-action='query.charged'] .sentence")
    expect(usage).to_have_count(2)
    # Ana is another member's person: her organisation's name, never hers
    expect(usage.first).to_have_text(
        "Someone at Banca Analitica ran a query on bank_alerts costing rho 0.1.")
    expect(usage.first.locator(".amount")).to_have_attribute("title", "exact: 1/10")
    expect(page.locator("#usage")).not_to_contain_text("Ana Silva")
    assert "Ana Silva" not in page.content()
    assert not IDS.search(_shown_text(page).split("Configure the connector")[0])
    screenshot(page, "partner-usage-names")


def test_home_shows_amounts_as_decimals_with_the_exact_value_on_hover(page: Page,
                                                                       names: Names) -> None:
    _sign_in(page, names.hub, "ana@names.example")
    row = page.locator("tr[data-dataset=bank_alerts]")
    expect(row.locator("td").nth(1).locator(".amount")).to_have_text("rho 0.2")
    expect(row.locator("td").nth(1).locator(".amount")).to_have_attribute("title",
                                                                          "exact: 1/5")
    total = sum(Fraction(c) for c in COSTS)
    expect(row.locator("td").nth(2)).to_have_text(decimal(str(total)))
    left = row.get_by_test_id("left").locator(".amount")
    expect(left).to_have_text(decimal(str(1 - total)))  # 0.752
    expect(left).to_have_attribute("title", f"exact: {1 - total}")


def test_a_release_is_published_to_organisations_chosen_by_name(page: Page,
                                                                names: Names) -> None:
    _console(page, names, "pub@names.example")
    audience = page.locator("#publish-audience")
    expect(audience).to_contain_text("Every member")
    choice = audience.get_by_label("Oversight 1")
    expect(choice).to_have_attribute("value", names.oversight1)  # the id, behind the name
    choice.check()
    expect(audience.get_by_label("Only these organisations:")).to_be_checked()
    page.get_by_role("textbox", name="Title", exact=True).fill("Typologies for Oversight 1")
    page.get_by_role("button", name="Publish", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("(published)")
    publisher = names.hub.services.identity.people.by_email("pub@names.example").actor()
    (entry,) = names.hub.services.publications.catalogue(publisher)
    assert entry["audience"] == [names.oversight1]


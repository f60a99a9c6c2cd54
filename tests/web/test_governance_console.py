"""The governance console in Chromium, with two officers of two organisations: one proposes a
budget raise through the form (validated as typed, diffed), the other approves it (four
eyes); invalid text is refused on its line; budget use is charted from the hub's numbers; the
audit log is filtered."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction

import pytest
from playwright.sync_api import Browser, Page, expect

from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot
from tests.web.editor import MARKERS, active_text, marked_lines
from tests.web.test_signin_pages import PASSWORD, _sign_in


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("web-gov")
    with running_hub(base / "data") as started:
        started.pool(base, rows=40, name="Gov Web Bank")
        analyst = started.member("Gov Web Analysts", (Role.ANALYST,), MemberKind.OTHER)
        with started.authed(analyst) as http:
            for cost in ("1/10", "1/20"):
                resp = http.post("/v1/queries", json={
                    "dataset": "bank_alerts", "group_by": ["typology"], "measures": ["count"],
                    "cost": cost})
                assert resp.status_code == 200, resp.text
        for n, kind in ((1, MemberKind.NGO), (2, MemberKind.LAW_ENFORCEMENT)):
            org = started.member(f"Officers {n}", (Role.PARTNER,), kind).org_id
            started.services.identity.people.add(org, f"officer{n}@gov.example", f"Officer {n}",
                                                 (Role.GOVERNANCE,), password=PASSWORD)
        yield started


def _console(page: Page, hub: Hub, email: str) -> None:
    _sign_in(page, hub, email)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()  # signed in, routed
    page.get_by_role("link", name="Governance").click()
    expect(page.get_by_role("heading", name="Active policies")).to_be_visible()


def test_two_officers_raise_a_budget_through_the_console(browser: Browser, page: Page,
                                                         hub: Hub) -> None:
    _console(page, hub, "officer1@gov.example")
    page.get_by_role("button", name="Edit bank_alerts").click()
    area = page.get_by_label("Policy (YAML)")  # the CodeMirror editor's text (contenteditable)
    original = active_text(hub, "bank_alerts")
    expect(area).to_contain_text("dataset: bank_alerts")
    # a mistake is refused on its line, and nothing is proposed
    area.fill(original.replace("max_dimensions: 2", "max_dimensions: 0", 1))
    expect(page.locator("#policy-check [role=alert]")).to_contain_text("rules.0.max_dimensions")
    line = original.splitlines().index("    max_dimensions: 2") + 1
    expect(page.locator(MARKERS)).to_have_count(1)
    assert marked_lines(page) == [(line, "    max_dimensions: 0")]
    # a key written twice is refused on the second one's line (YAML would keep the last)
    kept = original.rstrip("\n")
    area.fill(kept + "\nmin_partners: 1\n")
    expect(page.locator("#policy-check [role=alert]")).to_contain_text(
        "duplicate key 'min_partners'")
    expect(page.locator(MARKERS)).to_have_count(1)
    assert marked_lines(page) == [(len(kept.splitlines()) + 1, "min_partners: 1")]
    area.fill(original)
    expect(page.locator("#policy-check")).to_contain_text("identical to version 1")
    expect(page.locator(MARKERS)).to_have_count(0)
    # the budget form edits the text; the hub validates and diffs it as it is typed
    page.get_by_label("per_member").fill("2")
    expect(page.locator("#policy-check")).to_contain_text("This changes the budget")
    expect(page.locator("#policy-diff .add")).to_contain_text('per_member: "2"')
    expect(area).to_contain_text('per_member: "2"')
    page.get_by_label("Why (shown to reviewers)").fill("the pilot needs more queries")
    page.get_by_role("button", name="Propose this change").click()
    expect(page.locator("#policy-check")).to_contain_text("bank_alerts version 2")
    officer = hub.services.identity.people.by_email("officer1@gov.example").actor()
    [sent] = hub.services.policy_changes.proposals(officer, dataset="bank_alerts",
                                                   status="pending")
    assert hub.services.policy_changes.proposal(officer, sent["id"])["yaml"] == original.replace(
        'per_member: "1"', 'per_member: "2"', 1)  # the editor's text, as edited
    mine = page.locator("article.proposal")
    expect(mine).to_contain_text("Proposed by you")
    expect(mine.get_by_role("button", name="Withdraw")).to_be_visible()
    expect(mine.get_by_role("button", name="Approve bank_alerts version 2")).to_have_count(0)
    assert hub.services.policies.current().get("bank_alerts").budget.per_member == 1  # type: ignore[union-attr]
    page.evaluate("document.getElementById('policy-diff').scrollIntoView()")
    screenshot(page, "governance-console")

    reviewer_context = browser.new_context(viewport={"width": 1280, "height": 860})
    reviewer = reviewer_context.new_page()
    try:
        _console(reviewer, hub, "officer2@gov.example")
        proposal = reviewer.locator("article.proposal")
        proposal.get_by_text("Show the changes").click()
        expect(proposal.locator("pre.diff .add")).to_contain_text('per_member: "2"')
        proposal.get_by_label("Note, or the reason for a rejection").fill("checked")
        proposal.get_by_role("button", name="Approve bank_alerts version 2").click()
        expect(reviewer.get_by_text("No proposal waits for review.")).to_be_visible()
        expect(reviewer.locator("#policies tr[data-dataset=bank_alerts] td").first
               ).to_have_text("2")
    finally:
        reviewer_context.close()
    assert hub.services.policies.current().get("bank_alerts").budget.per_member == 2  # type: ignore[union-attr]


def test_budget_use_is_charted_and_the_audit_log_filters(page: Page, hub: Hub) -> None:
    _console(page, hub, "officer2@gov.example")
    series = hub.services.ledger.spending_over_time("bank_alerts")
    expect(page.locator("#budget-chart svg")).to_be_visible()
    points = page.locator("#budget-chart svg [aria-roledescription=point]")
    expect(points).to_have_count(len(series))
    labels = [points.nth(i).get_attribute("aria-label") or "" for i in range(points.count())]
    drawn = sorted(float(dict(part.split(": ", 1) for part in label.split("; "))
                         ["spent (cumulative)"]) for label in labels)
    assert drawn == sorted(float(Fraction(p["spent"])) for p in series)  # the hub's numbers
    page.get_by_label("action").fill("query.charged")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#audit-entries tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("query.charged")
    page.get_by_label("action").fill("no.such.action")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#audit-entries [role=alert]")).to_contain_text("unknown action")


def test_a_policy_file_is_uploaded_rejected_with_a_reason_and_a_release_published(
    browser: Browser, page: Page, hub: Hub, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("policy-upload")
    active = next(v for v in hub.services.policy_changes.active_versions()
                  if v.dataset == "corridor_flows")
    upload = folder / "corridor_flows.yaml"
    upload.write_text(active.text.replace("min_partners: 2", "min_partners: 3", 1))
    _console(page, hub, "officer1@gov.example")
    page.get_by_role("button", name="Edit corridor_flows").click()
    page.get_by_label("Or load a policy file").set_input_files(str(upload))
    expect(page.locator("#policy-diff .add")).to_contain_text("min_partners: 3")
    page.get_by_role("button", name="Propose this change").click()
    expect(page.locator("#policy-check")).to_contain_text("corridor_flows version 2")

    reviewer_context = browser.new_context()
    reviewer = reviewer_context.new_page()
    try:
        _console(reviewer, hub, "officer2@gov.example")
        proposal = reviewer.locator("article.proposal", has_text="corridor_flows version 2")
        proposal.get_by_role("button", name="Reject").click()  # no reason: refused
        expect(proposal.get_by_role("alert")).to_contain_text("field: reason")
        proposal.get_by_label("Note, or the reason for a rejection").fill(
            "three partners would stop the NGOs")
        proposal.get_by_role("button", name="Reject").click()
        expect(reviewer.get_by_text("No proposal waits for review.")).to_be_visible()
    finally:
        reviewer_context.close()
    rejected = hub.services.policy_changes.proposals(
        hub.services.identity.people.by_email("officer1@gov.example").actor(),
        dataset="corridor_flows", status="rejected")
    assert [p["reason"] for p in rejected] == ["three partners would stop the NGOs"]

    # an officer of the analysts' organisation publishes one of its releases to everyone
    analysts = next(m for m in hub.services.identity.members()
                    if m["name"] == "Gov Web Analysts")
    hub.services.identity.people.add(analysts["id"], "publisher@gov.example", "Pub",
                                     (Role.GOVERNANCE,), password=PASSWORD)
    publisher_context = browser.new_context()
    publisher = publisher_context.new_page()
    try:
        _console(publisher, hub, "publisher@gov.example")
        publisher.get_by_role("textbox", name="Title", exact=True).fill("Typologies 2025")
        publisher.get_by_role("button", name="Publish", exact=True).click()
        expect(publisher.get_by_role("status")).to_contain_text("(published)")
    finally:
        publisher_context.close()
    catalogue = hub.services.publications.catalogue(
        hub.services.identity.people.by_email("officer2@gov.example").actor())
    assert [c["title"] for c in catalogue] == ["Typologies 2025"]

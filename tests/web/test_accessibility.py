"""Every page in Chromium at laptop and tablet widths: no control without a label, nothing
wider than the screen, the skip link first in the keyboard order, and keyboard-only use of
the workspace (Tab to a dimension, Space to choose it, Enter to run)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from hub.actors import Role
from tests.api.conftest import Hub
from tests.web.conftest import query_response
from tests.web.test_governance_console import hub  # noqa: F401 - the module's data hub
from tests.web.test_signin_pages import PASSWORD, _sign_in

UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => el.type !== 'hidden' && el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
    && !el.textContent.trim())
  .map((el) => el.outerHTML.slice(0, 120))"""


def _person(hub: Hub, email: str, *roles: Role) -> None:  # noqa: F811
    org = hub.member(f"A11y {email}", (Role.PARTNER,)).org_id
    hub.services.identity.people.add(org, email, "Ally", roles, password=PASSWORD)


@pytest.mark.parametrize("width", [1280, 820])  # a laptop, a tablet held upright
def test_every_page_is_labelled_and_fits(browser: Browser, hub: Hub, width: int) -> None:  # noqa: F811
    email = f"all-roles-{width}@a11y.example"
    _person(hub, email, Role.ANALYST, Role.GOVERNANCE, Role.PARTNER)
    context = browser.new_context(viewport={"width": width, "height": 1000})
    page = context.new_page()
    try:
        _sign_in(page, hub, email)
        expect(page.get_by_role("heading", name="Home")).to_be_visible()
        for link, heading in (("Home", "Home"), ("Analyst workspace", "Analyst workspace"),
                              ("Governance", "Governance console"),
                              ("Partner uploads", "Partner uploads")):
            page.get_by_role("link", name=link, exact=True).click()
            expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            page.wait_for_load_state("networkidle")
            assert page.evaluate(UNLABELLED) == [], (link, page.evaluate(UNLABELLED))
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, (link, width, overflow)
    finally:
        context.close()


def test_the_workspace_works_from_the_keyboard(page: Page, hub: Hub) -> None:  # noqa: F811
    _person(hub, "keys@a11y.example", Role.ANALYST)
    _sign_in(page, hub, "keys@a11y.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.goto(hub.url + "/ui#/workspace")
    expect(page.get_by_role("heading", name="Your question")).to_be_visible()
    box = page.get_by_role("checkbox", name="typology")
    box.focus()
    page.keyboard.press("Space")
    expect(box).to_be_checked()
    expect(page.locator("#expected")).to_be_visible()
    page.get_by_role("button", name=re.compile("Run the query")).focus()
    with page.expect_response(query_response):
        page.keyboard.press("Enter")
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#chart")).to_have_attribute("data-kind", "bars")

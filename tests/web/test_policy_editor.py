"""The governance console's policy editor (CodeMirror 6) in Chromium, against a real hub: a
mistake typed into a policy is a lint marker on its line, with the hub's reason; far down a
long policy too, reached by scrolling; the line numbers stay level with their lines while the
text scrolls; a valid policy has no marker; the editor is labelled and Tab leaves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, expect

from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot
from tests.web.editor import MARKERS, active_text, aligned_lines, marked_lines
from tests.web.test_signin_pages import PASSWORD, _sign_in

OFFICER = "editor@gov.example"
SCROLLED = "(el) => el.scrollTop"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("web-editor") / "data") as started:
        org = started.member("Editor Officers", (Role.PARTNER,), MemberKind.NGO).org_id
        started.services.identity.people.add(org, OFFICER, "Eda Editor", (Role.GOVERNANCE,),
                                             password=PASSWORD)
        yield started


def _editor(page: Page, hub: Hub, dataset: str) -> Locator:
    """The console's editor of dataset's policy, loaded and checked once by the hub."""
    _sign_in(page, hub, OFFICER)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Governance").click()
    page.get_by_role("button", name=f"Edit {dataset}").click()
    area = page.get_by_label("Policy (YAML)")
    expect(area).to_contain_text(f"dataset: {dataset}")
    expect(page.locator("#policy-check")).to_contain_text("identical to version 1")
    return area


@pytest.fixture(autouse=True)
def _no_page_errors(page: Page) -> Iterator[None]:
    """CodeMirror runs under the page's CSP (no inline script, no eval of its own)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield
    assert errors == []


def _assert_aligned(page: Page, text: str) -> None:
    lines = text.split("\n")  # the editor has the empty line after a final newline
    pairs = aligned_lines(page)
    assert len(pairs) >= 10, pairs
    assert all(drawn == lines[number - 1] for number, drawn in pairs), pairs


def test_a_typed_mistake_is_marked_on_its_line_and_a_valid_policy_has_none(
        page: Page, hub: Hub) -> None:
    area = _editor(page, hub, "case_records")
    text = active_text(hub, "case_records")
    line = text.splitlines().index("    max_dimensions: 3") + 1
    # typed as a person types: to the end of the line, the 3 away, a 0
    page.locator(".policy-editor .cm-line", has_text="max_dimensions: 3").click()
    page.keyboard.press("End")
    page.keyboard.press("Backspace")
    page.keyboard.type("0")
    expect(page.locator("#policy-check [role=alert]")).to_contain_text(f"line {line}: rules.")
    expect(page.locator(MARKERS)).to_have_count(1)
    assert marked_lines(page) == [(line, "    max_dimensions: 0")]
    expect(page.locator(".policy-editor .cm-lintRange-error")).to_have_text(
        "max_dimensions: 0")  # the line itself is underlined
    page.locator(MARKERS).hover()  # the marker says why
    expect(page.locator(".cm-tooltip-lint")).to_contain_text("max_dimensions")
    screenshot(page, "policy-editor")
    # corrected, the policy is valid and no marker is left
    page.keyboard.press("Backspace")
    page.keyboard.type("2")
    expect(page.locator("#policy-check")).to_contain_text("Valid.")
    expect(page.locator(MARKERS)).to_have_count(0)
    expect(page.locator(".policy-editor .cm-lintRange")).to_have_count(0)
    expect(page.locator("#policy-diff .add")).to_contain_text("max_dimensions: 2")
    # labelled, described by the hub's verdict, and Tab leaves it (no keyboard trap)
    expect(area).to_have_attribute("aria-describedby", "policy-keys policy-check")
    expect(area).to_be_focused()
    page.keyboard.press("Tab")
    expect(area).not_to_be_focused()


def test_markers_and_line_numbers_stay_on_their_lines_in_a_long_policy(
        page: Page, hub: Hub) -> None:
    area = _editor(page, hub, "corridor_flows")
    first, *rest = active_text(hub, "corridor_flows").splitlines()
    notes = [f"# note {n}: the policy's history, kept with it" for n in range(1, 151)]
    text = "\n".join([first, *notes, *rest]).replace(
        "max_dimensions: 3", "max_dimensions: 0", 1) + "\n"
    bad = text.splitlines().index("    max_dimensions: 0") + 1
    assert bad > 150
    area.fill(text)
    expect(page.locator("#policy-check [role=alert]")).to_contain_text(f"line {bad}: rules.")
    page.keyboard.press("Control+Home")  # pasted, the cursor was at the end
    scroller = page.locator(".policy-editor .cm-scroller")
    assert scroller.evaluate(SCROLLED) < 20  # at the top
    _assert_aligned(page, text)
    # scrolled with the mouse wheel, step by step: the numbers stay level with their lines
    scroller.hover()
    for step in range(1, 4):
        page.mouse.wheel(0, 400)
        page.wait_for_function("(top) => document.querySelector('.policy-editor .cm-scroller')"
                               ".scrollTop >= top", arg=step * 400)
        _assert_aligned(page, text)
    # F8 goes to the next error: scrolled to it, its marker is on its line
    page.keyboard.press("Control+Home")
    page.keyboard.press("F8")
    marker = page.locator(MARKERS)
    expect(marker).to_be_in_viewport()
    assert scroller.evaluate(SCROLLED) > 2000
    assert marked_lines(page) == [(bad, "    max_dimensions: 0")]
    _assert_aligned(page, text)

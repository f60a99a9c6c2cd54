"""The reviewers' pages in Chromium: a reviewer signs in, sees the queue (what waits and for how
long), claims the next incident from the keyboard, reads the article with the evidence of
each suggested tag highlighted, corrects the tags (removes one, changes a place's role, adds
one) and saves; claims the crowd report next, whose script shows as text and never runs, and
accepts it; the precision report then counts the decisions. The pages are labelled and fit a
tablet's width; an analyst's navigation has no review pages."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from hub.actors import MemberKind, Role
from hub.osint.collection import Collection, NewItem
from hub.osint.sealing import Sealer, new_key
from hub.osint.tagging import Tagger
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot
from tests.web.test_accessibility import UNLABELLED
from tests.web.test_signin_pages import PASSWORD, _sign_in

MILAN = ("Police in Milan freed eleven Nigerian women who had been forced into prostitution "
         "after being recruited in Benin City with promises of jobs as hairdressers. The "
         "women travelled through Niger and Libya before crossing the sea to Sicily, the "
         "police said. Three suspects were arrested on Tuesday and charged with human "
         "trafficking.")
REPORT = ("A girl of 15 sleeps in the back of the nail bar near the bus station in Leeds and "
          "works every day; the owner keeps her passport. <script>window.pwned = 1</script>"
          "<img src=x onerror=\"window.pwned = 2\">")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("web-review")
    key = new_key()
    with running_hub(base / "data", reports_keys=key) as started:
        identity = started.services.identity
        org = identity.register_member("Review Web NGO", MemberKind.NGO, (Role.PARTNER,))
        identity.people.add(org.org_id, "reviewer@ngo.example", "Rita Reviewer",
                            (Role.REVIEWER,), password=PASSWORD)
        identity.people.add(org.org_id, "analyst@ngo.example", "Andy Analyst",
                            (Role.ANALYST,), password=PASSWORD)
        collection = Collection(started.services.engine, tagger=Tagger(languages=["en"]),
                                seal=Sealer([key]).seal)
        collection.add(NewItem("article", "Eleven women freed in Milan", MILAN, language="en",
                               published=dt.datetime(2026, 3, 12, tzinfo=dt.UTC),
                               url="https://news.example/milan"))
        collection.add(NewItem("report", "", REPORT, language="en"))
        yield started


def _labelled_and_fits(page: Page, where: str) -> None:
    page.wait_for_load_state("networkidle")
    assert page.evaluate(UNLABELLED) == [], (where, page.evaluate(UNLABELLED))
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, (where, overflow)


def test_an_analyst_has_no_review_pages(page: Page, hub: Hub) -> None:
    _sign_in(page, hub, "analyst@ngo.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    expect(page.get_by_role("link", name="Analyst workspace")).to_be_visible()
    expect(page.get_by_role("link", name="Review queue")).to_have_count(0)
    expect(page.get_by_role("link", name="Tag precision")).to_have_count(0)


def test_a_reviewer_claims_corrects_accepts_and_reads_the_precision(page: Page, hub: Hub
                                                                    ) -> None:
    _sign_in(page, hub, "reviewer@ngo.example")
    expect(page.get_by_test_id("roles")).to_have_text("reviewer")
    page.get_by_role("link", name="Review queue").click()
    expect(page.get_by_test_id("waiting")).to_contain_text("2 incidents waiting; the oldest for")
    expect(page.locator("#queue tbody tr")).to_have_count(2)
    expect(page.locator("#queue tbody tr").first).to_contain_text("Eleven women freed in Milan")
    _labelled_and_fits(page, "queue")
    screenshot(page, "review-queue")

    claim = page.get_by_role("button", name="Claim the next incident")
    claim.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name=re.compile(r"^Incident inc_"))).to_be_visible()
    article = page.locator("article.item").first
    expect(article).to_contain_text("Published2026-03-12")
    expect(article.get_by_role("link", name="https://news.example/milan")).to_be_visible()
    # the evidence of the exploitation type, highlighted in the text
    marks = article.locator(".item-text mark[data-fields~='exploitation_type']")
    expect(marks.first).to_be_visible()
    assert "Exploitation type: SexualExploitation" in (marks.first.get_attribute("title") or "")
    assert marks.first.inner_text().lower() in MILAN.lower()
    assert article.locator(".item-text").inner_text() == MILAN  # the text, whole, as text
    expect(page.get_by_role("button", name="Accept the suggested tags")).to_be_visible()
    _labelled_and_fits(page, "incident")
    screenshot(page, "review-incident")

    # correct: remove the transit through Niger, make Libya a destination, add recruitment
    page.get_by_role("button", name="Remove Place: Niger (NE), transit").click()
    libya = page.locator("#tags tr[data-tag='location|LY|transit']")
    libya.get_by_role("combobox", name=re.compile("role")).select_option("destination")
    page.get_by_label("Field", exact=True).select_option("recruitment")
    page.get_by_label("Code of the new tag").select_option("ThroughFriendsOrSocialEvents")
    page.get_by_role("button", name="Add the tag").click()
    save = page.get_by_role("button", name="Save the corrected tags")
    with page.expect_response(re.compile(r"/decision$")) as answered:
        save.click()
    assert answered.value.status == 200
    decided = page.get_by_test_id("decided")
    expect(decided).to_contain_text("accepted")
    expect(decided).to_contain_text("Place: Libya (LY), destination")
    expect(decided).to_contain_text("Recruitment: ThroughFriendsOrSocialEvents")
    expect(decided).not_to_contain_text("Niger (NE)")

    # the crowd report: its markup is text, never run
    page.get_by_role("button", name="Claim the next incident").click()
    report = page.locator("article.item").first
    expect(report.get_by_role("heading")).to_have_text("Crowd report 1")
    expect(report.locator(".item-text")).to_contain_text("<script>window.pwned = 1</script>")
    assert report.locator(".item-text script, .item-text img").count() == 0
    assert page.evaluate("window.pwned") is None
    page.set_viewport_size({"width": 820, "height": 1000})
    _labelled_and_fits(page, "report at 820 px")
    page.get_by_role("button", name="Accept the suggested tags").click()
    expect(page.get_by_test_id("decided")).to_contain_text("accepted")

    page.get_by_role("link", name="Tag precision").click()
    expect(page.get_by_test_id("decisions")).to_contain_text("2 decisions (1 accept, "
                                                             "1 correct, 0 reject)")
    added = page.locator("#precision tr[data-tag='recruitment|ThroughFriendsOrSocialEvents|']")
    expect(added.locator("td.num")).to_have_text(["0", "0", "-", "1"])
    niger = page.locator("#precision tr[data-tag='location|NE|transit']")
    expect(niger.locator("td.num")).to_have_text(["1", "0", "0%", "0"])
    exploitation = page.locator("#precision tr[data-tag='exploitation_type|"
                                "SexualExploitation|']")
    expect(exploitation.locator("td.num")).to_have_text(["1", "1", "100%", "0"])
    _labelled_and_fits(page, "precision")
    screenshot(page, "review-precision")
    page.get_by_label("Decided from").fill("2099-01-01")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_test_id("decisions")).to_contain_text("0 decisions")

    page.get_by_role("link", name="Review queue").click()
    expect(page.get_by_test_id("waiting")).to_contain_text("Nothing is waiting")
    expect(page.get_by_test_id("counts").locator("dd[data-state=accepted]")).to_have_text("2")

"""The public report page (/report) in Chromium: no sign-in, the browser's language, the proof
of work in a worker, the receipt, and the report sealed in the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from hub.osint.sealing import Sealer, new_key
from hub.storage.db import osint_items, osint_receipts
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import TIMEOUT_MS, screenshot

KEY = new_key()
REPORT = ("J'ai vu trois jeunes femmes nigérianes dans un appartement à Turin. Un homme garde "
          "leurs passeports et les conduit chaque nuit dans la rue. <script>alert('x')</script>")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("report-page"), reports_keys=KEY,
                     reports_proof_bits=12) as started:
        assert started.services.reports.tagger  # built (the hub starts it at start-up)
        yield started


@pytest.fixture
def french(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 820, "height": 1000}, locale="fr-FR")
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def test_a_report_sent_in_french_gets_its_receipt_and_is_stored_sealed(
    hub: Hub, french: Page
) -> None:
    page = french
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    other: list[str] = []
    page.on("request", lambda r: other.append(r.url) if not r.url.startswith(hub.url) else None)
    page.goto(f"{hub.url}/report")
    # the browser's language, with a switch
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Signaler ce que vous avez vu")
    expect(page.get_by_role("button", name="Français")).to_have_attribute("aria-pressed", "true")
    page.get_by_role("button", name="Español").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Informe de lo que vio")
    page.get_by_role("button", name="Français").click()
    # labelled fields; the honeypot is out of sight and out of the accessibility tree
    text = page.get_by_label("Que s'est-il passé ?")
    text.fill(REPORT)
    expect(page.locator("#report-count")).to_contain_text(f"{len(REPORT)} caractères sur")
    page.get_by_label("Où cela s'est-il passé ? (facultatif)").fill("Turin, Italie")
    page.get_by_label("Quand cela s'est-il passé ? (facultatif)").fill("2026-04-30")
    assert page.get_by_role("textbox", name="Laissez ce champ vide").count() == 0
    box = page.locator("#report-website").bounding_box()
    assert box is not None and box["x"] + box["width"] < 0
    page.get_by_role("button", name="Envoyer le signalement").click()
    done = page.get_by_role("heading", name="Merci : votre signalement a bien été reçu")
    expect(done).to_be_visible()
    receipt = page.locator("#report-receipt").inner_text()
    assert receipt.startswith("rcp_")
    expect(page.get_by_text("Des personnes formées, et pas seulement un ordinateur")
           ).to_be_visible()
    screenshot(page, "report-page-fr")
    assert not dialogs and not errors and not other
    # in the store: sealed, with the language and the date; opened, the text as it was typed
    with hub.services.engine.connect() as conn:
        item_id = conn.execute(sa.select(osint_receipts.c.item_id)
                               .where(osint_receipts.c.id == receipt)).scalar_one()
        item = conn.execute(sa.select(osint_items).where(osint_items.c.id == item_id)).one()
    assert item.text is None and b"passeports" not in item.sealed and item.language == "fr"
    opened = Sealer([KEY]).open(item.sealed)
    assert opened == f"{REPORT}\n\nWhere: Turin, Italie\nWhen: 2026-04-30"
    # another report from the same page
    page.get_by_role("button", name="Envoyer un autre signalement").click()
    expect(page.get_by_label("Que s'est-il passé ?")).to_be_focused()
    expect(page.get_by_label("Que s'est-il passé ?")).to_have_value("")


def test_an_empty_report_is_refused_on_the_page_and_the_hub_without_a_key_says_so(
    page: Page, tmp_path: Path
) -> None:
    with running_hub(tmp_path / "nokey") as bare:
        page.goto(f"{bare.url}/report?lang=es")
        expect(page.get_by_role("alert")).to_contain_text(
            "Este servicio no acepta informes en este momento.")
        expect(page.get_by_role("button", name="Enviar el informe")).to_be_disabled()


def test_an_empty_report_is_refused_before_any_work(hub: Hub, page: Page) -> None:
    page.goto(f"{hub.url}/report?lang=en")
    page.get_by_role("button", name="Send the report").click()
    expect(page.get_by_role("alert")).to_have_text("Please describe what happened.")
    expect(page.get_by_label("What happened?")).to_be_focused()

"""The partner page in Chromium: the organisation's extracts with the hub's checks and row
counts, withdrawing one, the use of its datasets, and the connector set-up with its client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub
from tests.api.test_queries import _upload
from tests.hub.extract_files import valid_rows, write_extract
from tests.web.conftest import screenshot
from tests.web.test_signin_pages import PASSWORD, _sign_in


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("web-partner")
    with running_hub(base / "data") as started:
        yield started


def test_a_partner_sees_and_withdraws_its_extracts(page: Page, hub: Hub, tmp_path: Path) -> None:
    contract = hub.services.registry.get("bank_alerts", 1)
    creds = hub.member("Partner Web Bank", (Role.PARTNER,), MemberKind.BANK)
    other = hub.member("Other Web Bank", (Role.PARTNER,), MemberKind.BANK)
    for n, who in enumerate((creds, creds, other)):
        path = write_extract(tmp_path / f"p{n}.parquet", contract,
                             valid_rows(contract, 10 + n, seed=n))
        with hub.authed(who) as http:
            _upload(http, path, contract)
    hub.services.identity.people.add(creds.org_id, "engineer@bank.example", "Eng",
                                     (Role.PARTNER,), password=PASSWORD)
    _sign_in(page, hub, "engineer@bank.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Partner uploads").click()
    rows = page.locator("#extracts tbody tr")
    expect(rows).to_have_count(2)  # its own two, never the other bank's
    mine = {e.id: e for e in hub.services.ingest.list_extracts(
        hub.services.identity.people.by_email("engineer@bank.example").actor())}
    for extract_id, view in mine.items():
        expect(page.locator(f"tr[data-extract={extract_id}]")).to_contain_text(str(view.rows))
    expect(page.locator("#connector-script")).to_contain_text(
        f"TAHUB_CLIENT_ID={creds.client_id}")
    expect(page.locator("#connector-script")).not_to_contain_text(creds.client_secret)
    screenshot(page, "partner")

    first = next(iter(mine))
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name=f"Withdraw {first}").click()
    expect(page.locator(f"tr[data-extract={first}]")).to_contain_text("withdrawn")
    assert [e.status for e in hub.services.ingest.list_extracts(
        hub.services.identity.people.by_email("engineer@bank.example").actor(),
        include_withdrawn=True) if e.id == first] == ["withdrawn"]

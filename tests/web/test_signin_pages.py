"""Sign in through the real page in Chromium, as each kind of person, and land on a home page
that shows the organisation, the roles and what the organisation may ask."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect

from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot

PASSWORD = "a long demo password"  # noqa: S105 - a test password


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("web")) as started:
        yield started


def _person(hub: Hub, email: str, role: Role) -> str:
    org = hub.member(f"Web {email}", (Role.PARTNER,), MemberKind.NGO).org_id
    hub.services.identity.people.add(org, email, email.split("@")[0].title(), (role,),
                                     password=PASSWORD)
    return f"Web {email}"


def _sign_in(page: Page, hub: Hub, email: str, password: str = PASSWORD) -> None:
    page.goto(hub.url + "/ui")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


@pytest.mark.parametrize("role", [Role.ANALYST, Role.GOVERNANCE, Role.PARTNER])
def test_each_role_signs_in_and_sees_its_home(page: Page, hub: Hub, role: Role) -> None:
    email = f"{role.value}@web.example"
    org = _person(hub, email, role)
    _sign_in(page, hub, email)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    expect(page.get_by_test_id("org")).to_have_text(org)
    expect(page.locator("#who")).to_contain_text(org)
    if role is Role.PARTNER:  # the shipped policies let no partner engineer query
        expect(page.get_by_text("No sharing policy lets you query any dataset")).to_be_visible()
    else:  # analysts and governance officers have rules on every dataset
        rows = page.locator("[data-testid=datasets] tbody tr")
        expect(rows).to_have_count(4)  # the members' three datasets and incidents
        expect(page.locator("tr[data-dataset=bank_alerts] [data-testid=left]")).to_have_text("1")
        rule = "analysts-corridors" if role is Role.ANALYST else "governance-totals"
        expect(page.locator("tr[data-dataset=bank_alerts]")).to_contain_text(rule)
    screenshot(page, f"home-{role.value}")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("E-mail address")).to_be_visible()  # back to the sign-in page


def test_a_wrong_password_is_refused_on_the_page(page: Page, hub: Hub) -> None:
    _person(hub, "typo@web.example", Role.ANALYST)
    _sign_in(page, hub, "typo@web.example", "not the password")
    expect(page.get_by_role("alert")).to_contain_text("wrong e-mail address or password")
    _sign_in(page, hub, "typo@web.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()


def test_calls_that_find_the_token_expired_at_once_share_one_refresh(
    page: Page, hub: Hub
) -> None:
    """A refresh token works once (the hub rotates it, and revokes the session when a used
    one comes back): five calls made together after the access token expired refresh it
    once, all succeed, and the session goes on."""
    _person(hub, "together@web.example", Role.ANALYST)
    _sign_in(page, hub, "together@web.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.wait_for_load_state("networkidle")
    refreshes: list[str] = []
    page.on("request", lambda r: refreshes.append(r.post_data or "")
            if r.url.endswith("/oauth/token") and "refresh_token" in (r.post_data or "")
            else None)
    statuses = page.evaluate("""async () => {
        const { api } = await import('/ui/static/api.js');
        const s = JSON.parse(sessionStorage.getItem('tahub.session'));
        sessionStorage.setItem('tahub.session', JSON.stringify({...s, expires_at: 0,
          access_token: 'expired'}));
        const calls = ['/v1/policies/mine', '/v1/budgets', '/v1/queries', '/v1/releases',
                       '/v1/policies/mine'].map((p) => api(p).then(() => 'ok', (e) => e.status));
        const first = await Promise.all(calls);
        const after = await api('/v1/budgets').then(() => 'ok', (e) => e.status);
        return [...first, after];
    }""")
    assert statuses == ["ok"] * 6
    assert len(refreshes) == 1

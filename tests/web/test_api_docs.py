"""The API docs in Chromium with every other origin unreachable, as on the hub's closed
networks: Swagger UI (/docs) and ReDoc (/redoc) draw every operation of the hub's OpenAPI
document from the hub's own assets, and no request to another origin is even attempted."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import ConsoleMessage, Page, Route, expect

from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot

# every operation drawn: Swagger UI's id is operations-<tag>-<operationId>, ReDoc's section
# ids end in operation/<operationId> (with and without its tag)
SWAGGER_OPERATIONS = """() => [...document.querySelectorAll('.opblock')].map((el) => el.id)"""
REDOC_OPERATIONS = """() => [...document.querySelectorAll('[data-section-id*="operation/"]')]
  .map((el) => el.getAttribute('data-section-id'))"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    with running_hub(tmp_path_factory.mktemp("web-docs") / "data") as started:
        yield started


@pytest.fixture
def offline(page: Page, hub: Hub) -> Iterator[tuple[list[str], list[str]]]:
    """The page with every request not to the hub aborted (and recorded), and its console
    errors and uncaught exceptions recorded (a CSP violation is one)."""
    outside: list[str] = []
    errors: list[str] = []

    def only_the_hub(route: Route) -> None:
        if route.request.url.startswith(hub.url + "/"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort("internetdisconnected")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.route("**/*", only_the_hub)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield outside, errors


def _operation_ids(hub: Hub) -> set[str]:
    with hub.client() as http:
        document = http.get("/openapi.json").json()
    return {op["operationId"] for item in document["paths"].values() for op in item.values()}


def test_swagger_ui_draws_every_operation_offline(page: Page, hub: Hub,
                                                  offline: tuple[list[str], list[str]]) -> None:
    outside, errors = offline
    page.goto(hub.url + "/docs")
    expect(page.get_by_role("heading", name=re.compile("tahub hub"))).to_be_visible()
    wanted = _operation_ids(hub)
    expect(page.locator(".opblock")).to_have_count(len(wanted))
    drawn = {re.sub(r"^operations-[^-]+-", "", i) for i in page.evaluate(SWAGGER_OPERATIONS)}
    assert drawn == wanted
    # an operation opens with its parameters and its problem+json answers
    one = page.locator(".opblock-get", has=page.locator(
        ".opblock-summary-path[data-path='/v1/queries/{query_id}']"))
    one.locator(".opblock-summary").click()
    expect(one).to_contain_text("application/problem+json")
    # Authorize takes a bearer token (no OAuth2 redirect page); Try it out calls the hub
    member = hub.member("Docs Reader")
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux .modal-ux")
    expect(dialog).to_contain_text("HTTPBearer")
    dialog.locator("input").fill(hub.token(member))
    dialog.get_by_role("button", name="Apply credentials").click()
    dialog.get_by_role("button", name="Close").click()
    me = page.locator(".opblock-get", has=page.locator(
        ".opblock-summary-path[data-path='/v1/me']"))
    me.locator(".opblock-summary").click()
    me.get_by_role("button", name="Try it out").click()
    me.get_by_role("button", name="Execute").click()
    expect(me.locator(".live-responses-table .response .response-col_status")).to_have_text("200")
    expect(me.locator(".live-responses-table")).to_contain_text(member.client_id)
    screenshot(page, "api-docs-swagger")
    assert outside == []
    assert errors == []


def test_redoc_draws_every_operation_and_searches_offline(
        page: Page, hub: Hub, offline: tuple[list[str], list[str]]) -> None:
    outside, errors = offline
    page.goto(hub.url + "/redoc")
    expect(page.get_by_role("heading", name="tahub hub")).to_be_visible()
    wanted = _operation_ids(hub)
    expect(page.get_by_role("heading", name="Liveness (no authentication)")).to_be_visible()
    drawn = {i.rsplit("operation/", 1)[1] for i in page.evaluate(REDOC_OPERATIONS)}
    assert drawn == wanted
    # the search runs in a worker made from a blob: URL, which the page's CSP allows
    page.get_by_placeholder("Search...").fill("Liveness")
    expect(page.locator("[data-role='search:results'] [role=menuitem]").first
           ).to_contain_text("Liveness")
    expect(page.get_by_text("API docs by Redocly")).to_be_visible()  # its logo left out
    screenshot(page, "api-docs-redoc")
    assert outside == []
    assert errors == []

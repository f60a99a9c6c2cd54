"""Browser tests: Debian's Chromium, headless, driven by Playwright (never a browser that a
tool downloads itself), against a real hub on a loopback port. Screenshots of the main pages
are kept in tests/artifacts/ as test artifacts.

Chromium must be at /usr/bin/chromium (``.ci/run`` and ``./dev setup`` install Debian's
package when it is missing); without it these tests fail, they are never skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, Response, expect, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
# As the workplace's probe starts it: no background traffic on a closed network.
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# A 2-core machine running the whole suite is slow now and then: wait up to 20 s for a page
# to reach the state a test expects (a failing expectation still fails, only later).
TIMEOUT_MS = 20_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (./dev setup "
                    "does it as root)")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def query_request(request: Request) -> bool:
    """The question the page asks (POST /v1/queries), not the history it refreshes after
    each answer (GET /v1/queries), which a test waiting on the URL alone can catch instead."""
    return request.method == "POST" and request.url.endswith("/v1/queries")


def query_response(response: Response) -> bool:
    """The answer to :func:`query_request`."""
    return query_request(response.request)

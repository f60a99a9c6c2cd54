"""The analyst workspace in Chromium: only what the policy allows is offered, the cost slider
moves the expected error without spending, a query draws its chart from the numbers the hub
returned, and the cells download as CSV."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub
from tests.web.conftest import screenshot
from tests.web.test_signin_pages import PASSWORD, _sign_in


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("web-ws")
    with running_hub(base / "data") as started:
        started.pool(base, rows=60, name="WS Bank")
        yield started


def _analyst(hub: Hub, email: str) -> None:
    org = hub.member(f"WS {email}", (Role.PARTNER,), MemberKind.NGO).org_id
    hub.services.identity.people.add(org, email, "Ana", (Role.ANALYST,), password=PASSWORD)


def _expected_error(page: Page) -> float:
    text = page.locator("#expected tbody td").first.inner_text()
    return float(text.replace("±", "").replace(",", "").strip())


def test_a_query_from_the_workspace_draws_the_returned_numbers(page: Page, hub: Hub,
                                                               tmp_path: Path) -> None:
    _analyst(hub, "ws@web.example")
    _sign_in(page, hub, "ws@web.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Analyst workspace").click()
    dims = page.locator("#dimensions input[name=dimension]")
    expect(dims.first).to_be_visible()
    offered = {dims.nth(i).get_attribute("value") for i in range(dims.count())}
    policy = hub.services.policies.current().get("bank_alerts")
    assert policy is not None
    assert offered == set(policy.rules[0].dimensions)  # exactly the rule's dimensions
    assert "subject" not in offered and "amount" not in offered  # never offered

    page.get_by_role("checkbox", name="origin_country").check()
    expect(page.locator("#expected")).to_be_visible()
    slider = page.get_by_label("Privacy cost: more cost, less noise")
    slider.fill("1")
    expect(page.locator("#cost-value")).to_contain_text("1/250")
    expect(page.locator("#expected")).to_be_visible()
    page.wait_for_timeout(600)
    cheap = _expected_error(page)
    slider.fill("7")
    expect(page.locator("#cost-value")).to_contain_text("1/5")
    page.wait_for_timeout(600)
    dear = _expected_error(page)
    assert dear < cheap  # more cost, less noise; and nothing spent so far
    expect(page.locator("#budget-after")).to_contain_text("4/5")
    with hub.authed(hub.member("WS Watcher", (Role.GOVERNANCE,))) as gov:
        assert gov.get("/v1/governance/budgets").json()[0]["members"] == []

    with page.expect_response(re.compile(r"/v1/queries$")) as answer:
        page.get_by_role("button", name="Run the query (spends budget)").click()
    result = answer.value.json()
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#chart")).to_have_attribute("data-kind", "map")
    expect(page.locator("#charged")).to_contain_text("Charged 1/5")
    # the map is drawn from the returned cells: every shape with a value carries its number
    drawn = page.evaluate("""() => [...document.querySelectorAll('#chart svg path[aria-label]')]
        .map((p) => p.getAttribute('aria-label')).filter((l) => l.includes('value'))""")
    returned = {row["origin_country"]: row["count"]["value"] for row in result["rows"]}
    shown = {}
    for label in drawn:
        parts = dict(p.split(": ", 1) for p in label.split("; "))
        shown[parts["origin_country"]] = float(parts["value"].replace(",", ""))
    assert shown and all(returned[k] == v for k, v in shown.items()), (shown, returned)
    page.evaluate("document.getElementById('r-h').scrollIntoView()")
    screenshot(page, "workspace-map")

    # the access token has expired meanwhile: the download refreshes it, as every call does
    page.evaluate("""() => { const s = JSON.parse(sessionStorage.getItem('tahub.session'));
        sessionStorage.setItem('tahub.session', JSON.stringify({...s, expires_at: 0,
          access_token: 'expired'})); }""")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    path = tmp_path / "cells.csv"
    download.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert {r["origin_country"]: float(r["count"]) for r in rows} == {
        k: float(v) for k, v in returned.items() if k is not None} | (
        {"": float(returned[None])} if None in returned else {})
    expect(page.locator("#history tbody tr")).to_have_count(1)
    assert json.loads(json.dumps(result))["rule"] == "analysts-corridors"


def test_a_dataset_below_its_partner_minimum_says_so_with_the_rule(page: Page,
                                                                    hub: Hub) -> None:
    _analyst(hub, "minimum@web.example")
    _sign_in(page, hub, "minimum@web.example")
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Analyst workspace").click()
    expect(page.get_by_role("heading", name="Your question")).to_be_visible()
    page.get_by_label("Dataset", exact=True).select_option("corridor_flows")  # no uploads
    alert = page.locator("section[aria-labelledby=e-h] [role=alert]")
    expect(alert).to_contain_text("rule: policy:corridor_flows:min_partners")
    expect(page.get_by_role("button", name="Run the query (spends budget)")).to_be_disabled()


@pytest.mark.parametrize(("dims", "kind"), [
    (["origin_country", "destination_country"], "flow"),
    (["period"], "line"),
])
def test_routes_and_months_get_their_pictures_from_the_returned_cells(
    page: Page, hub: Hub, dims: list[str], kind: str
) -> None:
    email = f"{kind}@web.example"
    _analyst(hub, email)
    _sign_in(page, hub, email)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Analyst workspace").click()
    for d in dims:
        page.get_by_role("checkbox", name=d).check()
    with page.expect_response(re.compile(r"/v1/queries$")) as answer:
        page.get_by_role("button", name="Run the query (spends budget)").click()
    result = answer.value.json()
    expect(page.locator("#chart")).to_have_attribute("data-kind", kind)
    expect(page.locator("#chart svg")).to_be_visible()
    if kind == "flow":  # each cell of the matrix is one returned (origin, destination) count
        labels = page.evaluate("""() => [...document.querySelectorAll(
            '#chart svg path[aria-roledescription^=rect]')]
            .map((p) => p.getAttribute('aria-label'))""")
        returned = {(r["origin_country"], r["destination_country"]): r["count"]["value"]
                    for r in result["rows"]}
        assert labels
        for label in labels:
            parts = dict(p.split(": ", 1) for p in label.split("; "))
            key = (parts["origin_country (from)"], parts["destination_country (to)"])
            assert float(parts["count"].replace(",", "")) == returned[key]
    else:  # one point per month, at the returned value, and a band for the interval
        points = page.locator("#chart svg path[aria-roledescription^=point]")
        expect(points).to_have_count(len(result["rows"]))
        drawn = sorted(float(dict(p.split(": ", 1) for p in (points.nth(i).get_attribute(
            "aria-label") or "").split("; "))["value"].replace(",", ""))
            for i in range(points.count()))
        assert drawn == sorted(float(r["count"]["value"]) for r in result["rows"])
        expect(page.locator("#chart svg path[aria-roledescription^=area]")).to_have_count(1)
    screenshot(page, f"workspace-{kind}")

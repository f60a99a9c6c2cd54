"""The analyst workspace in Chromium: only what the policy allows is offered; the default cost
is the one the hub solves for a meaningful view (a target accuracy), and the page says why; the
slider moves the expected error without spending; answers are shown honestly: ranked lists
come from the ranked mechanism or the interval's lower end, never the raw noisy value; cells
not distinguishable from zero are marked, left out of top lists and colour scales until the
toggle shows them, and drawn faded; selected keys are said to be selected; the largest routes
are one click away. Every expectation is read from the hub's own responses."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Response, expect

from connectors.common.amounts import decimal
from hub.actors import MemberKind, Role
from tests.api.conftest import Hub, running_hub, upload_extract
from tests.hub.extract_files import token, valid_rows, write_extract
from tests.osint.accepted import accept, route
from tests.web.conftest import query_request, query_response, screenshot
from tests.web.test_signin_pages import PASSWORD, _sign_in

RUN = "Run the query (spends budget)"
TOGGLE = "Show cells not distinguishable from zero"
GREY = "#b4b4b4"  # charts.js: a cell off the colour scale
FADED = 0.35  # charts.js: the opacity of a cell not distinguishable from zero
NOT_SHOWN = "not distinguishable from zero"  # cells.js: the tag of such a cell
MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]


def _alerts(contract: Any, prefix: str, corridor: tuple[str, str], customers: int,
            each: int, seed: int, **fixed: Any) -> list[dict[str, Any]]:
    """``customers`` customers flagged ``each`` times on one corridor, over six months."""
    rows = valid_rows(contract, customers * each, seed=seed)
    for i, row in enumerate(rows):
        j = i // each
        row.update(subject=token(f"{prefix}-{j}"), origin_country=corridor[0],
                   destination_country=corridor[1], period=MONTHS[(j + i) % len(MONTHS)],
                   **fixed)
    return rows


def _people(contract: Any, prefix: str, n: int, seed: int, **stages: str | None
            ) -> list[dict[str, Any]]:
    rows = valid_rows(contract, n, seed=seed)
    for j, row in enumerate(rows):
        row.update(subject=token(f"{prefix}-{j}"), **stages)
    return rows


def _load(hub: Hub, folder: Path) -> None:
    """Two banks and two case-keeping partners, with cells that stand out of the noise and
    many that do not: 60 background rows per bank spread over the whole grid (one or none per
    country and month); 60 customers flagged 4 times on RO -> GB (40 of them at both banks),
    30 on BG -> DE, 25 on NG -> IT, and 40 on each of MD -> IT and UA -> PL flagged once for
    nothing (amount 0: corridors listed for their customers, whose sums are not told from
    zero). 60 people whose route NG -> LY -> IT only pooling shows (the NGO knows where they
    came from, the police where they were exploited), 30 on RO -> HU -> DE, and 80 people of
    scattered, unique routes."""
    alerts = hub.services.registry.get("bank_alerts", 1)
    banks = [
        valid_rows(alerts, 60, seed=0) + _alerts(alerts, "ro-gb", ("RO", "GB"), 60, 4, 1000)
        + _alerts(alerts, "bg-de", ("BG", "DE"), 30, 3, 2000),
        valid_rows(alerts, 60, seed=7) + _alerts(alerts, "ro-gb", ("RO", "GB"), 40, 4, 3000)
        + _alerts(alerts, "ng-it", ("NG", "IT"), 25, 3, 4000)
        + _alerts(alerts, "md-it", ("MD", "IT"), 40, 1, 5000, amount=0.0)
        + _alerts(alerts, "ua-pl", ("UA", "PL"), 40, 1, 6000, amount=0.0),
    ]
    for i, rows in enumerate(banks):
        path = write_extract(folder / f"ws-bank-{i}.parquet", alerts, rows)
        with hub.authed(hub.member(f"WS Bank {i}")) as http:
            upload_extract(http, path, alerts)
    cases = hub.services.registry.get("case_records", 2)
    ngo = (_people(cases, "ng-ly-it", 60, 100, source_country="NG", transit_country="LY",
                   destination_country=None)
           + _people(cases, "ro-hu-de", 30, 200, source_country="RO", transit_country="HU",
                     destination_country="DE")
           + valid_rows(cases, 40, seed=300))
    police = (_people(cases, "ng-ly-it", 60, 400, source_country=None, transit_country="LY",
                      destination_country="IT")
              + valid_rows(cases, 40, seed=500))
    for name, kind, rows in (("WS NGO", MemberKind.NGO, ngo),
                             ("WS Police", MemberKind.LAW_ENFORCEMENT, police)):
        path = write_extract(folder / f"{name.replace(' ', '-')}.parquet", cases, rows)
        with hub.authed(hub.member(name, (Role.PARTNER,), kind)) as http:
            upload_extract(http, path, cases)
    # the open-source incidents (hub.osint): 60 news stories of the NG -> LY -> IT route and
    # 45 crowd reports of VN -> CN -> GB, which no member's case records show
    accept(hub.services.engine,
           [(f"inc_ng_{i}", route("NG", "LY", "IT"), ["article"]) for i in range(60)]
           + [(f"inc_vn_{i}", route("VN", "CN", "GB", "ForcedLabour"), ["report"])
              for i in range(45)])
    assert hub.services.incidents.publish().rows == 105


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    base = tmp_path_factory.mktemp("web-ws")
    with running_hub(base / "data") as started:
        _load(started, base)
        yield started


def _workspace(page: Page, hub: Hub, email: str) -> str:
    """Signs a new analyst of a new organisation in and opens the workspace: the org id."""
    org = hub.member(f"WS {email}", (Role.PARTNER,), MemberKind.NGO).org_id
    hub.services.identity.people.add(org, email, "Ana", (Role.ANALYST,), password=PASSWORD)
    _sign_in(page, hub, email)
    expect(page.get_by_role("heading", name="Home")).to_be_visible()
    page.get_by_role("link", name="Analyst workspace").click()
    expect(page.get_by_role("heading", name="Your question")).to_be_visible()
    # the first estimate, the history and the names load after the form: let the page settle
    # (a click during a layout shift lands beside its box)
    page.wait_for_load_state("networkidle")
    return org


def _expected_error(page: Page) -> float:
    text = page.locator("#expected tbody td").first.inner_text()
    return float(text.replace("±", "").replace(",", "").strip())


def _parts(label: str | None) -> dict[str, str]:
    return dict(p.split(": ", 1) for p in (label or "").split("; "))


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _estimate_with_target(response: Response, **shape: Any) -> bool:
    """The estimate the workspace asks with a target accuracy (to choose the default cost),
    of a question of this shape (group_by=[...], route=True...)."""
    if not response.url.endswith("/v1/queries/estimate"):
        return False
    body = response.request.post_data_json or {}
    return "target" in body and all(body.get(k) == v for k, v in shape.items())


def _run(page: Page) -> dict[str, Any]:
    with page.expect_response(query_response) as answer:
        page.get_by_role("button", name=RUN).click()
    result: dict[str, Any] = answer.value.json()
    assert answer.value.status == 200, result
    # Chromium accepts zstd: the release came as its stored bytes (hub.query.answer)
    assert answer.value.headers["content-encoding"] == "zstd"
    expect(page.locator("#r-h")).to_have_text(f"Answer: {result['dataset']}")
    return result


def _drawn(page: Page, role: str) -> list[dict[str, Any]]:
    """The chart's marks of one kind: their tooltip fields, fill and opacity."""
    marks = page.evaluate("""(role) => [...document.querySelectorAll(
        `#chart svg path[aria-roledescription^=${role}]`)].map((p) => ({
          label: p.getAttribute('aria-label'), fill: p.getAttribute('fill'),
          opacity: p.getAttribute('opacity') || p.getAttribute('fill-opacity') || '1'}))""",
                          role)
    return [{**m, "parts": _parts(m["label"]), "opacity": float(m["opacity"])} for m in marks]


def _colour_domain(page: Page) -> list[float]:
    domain: list[float] = page.evaluate(
        "document.getElementById('chart').vegaView.scale('color').domain()")
    return domain


def _top_keys(page: Page) -> list[str]:
    return page.locator("#top-list tbody tr").evaluate_all(
        "(rows) => rows.map((r) => r.dataset.key)")


def test_a_query_from_the_workspace_draws_the_returned_numbers(page: Page, hub: Hub,
                                                               tmp_path: Path) -> None:
    org = _workspace(page, hub, "ws@web.example")
    dims = page.locator("#dimensions input[name=dimension]")
    expect(dims.first).to_be_visible()
    offered = {dims.nth(i).get_attribute("value") for i in range(dims.count())}
    policy = hub.services.policies.current().get("bank_alerts")
    assert policy is not None
    assert offered == set(policy.rules[0].dimensions)  # exactly the rule's dimensions
    assert "subject" not in offered and "amount" not in offered  # never offered

    page.get_by_role("checkbox", name="origin_country").check()
    expect(page.locator("#cost-value")).to_contain_text("recommended")
    slider = page.get_by_label("Privacy cost: more cost, less noise")
    stops = json.loads(slider.get_attribute("data-stops") or "[]")
    slider.fill(str(stops.index("1/250")))
    expect(page.locator("#cost-value")).to_contain_text("rho 0.004")  # a decimal: 1/250
    expect(page.locator("#cost-value .amount")).to_have_attribute("title", "exact: 1/250")
    expect(page.locator("#cost-why")).to_contain_text("You chose this cost")
    expect(page.get_by_role("button", name="Use the recommended cost")).to_be_visible()
    expect(page.locator("#estimate-cost")).to_contain_text("Cost rho 0.004")
    cheap = _expected_error(page)
    slider.fill(str(stops.index("1/5")))
    expect(page.locator("#cost-value")).to_contain_text("rho 0.2")
    expect(page.locator("#estimate-cost")).to_contain_text("Cost rho 0.2")
    dear = _expected_error(page)
    assert dear < cheap  # more cost, less noise; and nothing spent so far
    expect(page.locator("#budget-after")).to_contain_text("left after it: 0.8")
    expect(page.locator("#budget-after .amount").first).to_have_attribute("title", "exact: 4/5")
    with hub.authed(hub.member("WS Watcher", (Role.GOVERNANCE,))) as gov:
        spent = [m for b in gov.get("/v1/governance/budgets").json() for m in b["members"]]
    assert all(m["org"] != org for m in spent)

    result = _run(page)
    expect(page.locator("#chart svg")).to_be_visible()
    expect(page.locator("#chart")).to_have_attribute("data-kind", "map")
    expect(page.locator("#charged")).to_contain_text("Charged rho 0.2")
    expect(page.locator("#charged .amount").first).to_have_attribute("title", "exact: 1/5")
    # the map is drawn from the returned cells: every shape with a value carries its number
    returned = {row["origin_country"]: row["count"]["value"] for row in result["rows"]}
    shown = {m["parts"]["origin_country"]: _number(m["parts"]["value"])
             for m in _drawn(page, "geoshape") if "value" in m["parts"]}
    assert shown and all(returned[k] == v for k, v in shown.items()), (shown, returned)
    # public keys: every country is a cell, and the page says so
    expect(page.locator("#keys-note")).to_contain_text(result["keys"]["absent"][1:])
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
    # every cell, those not distinguishable from zero included
    assert {r["origin_country"]: float(r["count"]) for r in rows} == {
        k: float(v) for k, v in returned.items() if k is not None} | (
        {"": float(returned[None])} if None in returned else {})
    expect(page.locator("#history tbody tr")).to_have_count(1)
    assert result["rule"] == "analysts-corridors"


def test_the_default_cost_is_solved_from_a_target_accuracy_and_said(page: Page,
                                                                     hub: Hub) -> None:
    _workspace(page, hub, "target@web.example")
    with page.expect_response(lambda r: _estimate_with_target(r, group_by=["destination_country"])
                              ) as asked:
        page.get_by_role("checkbox", name="destination_country").check()
    request = asked.value.request.post_data_json
    solved = asked.value.json()
    assert asked.value.status == 200, solved
    halfwidth = request["target"]["ci_halfwidth"]
    proposed, can_spend = solved["cost"]["amount"], solved["budget"]["can_spend"]
    # the hub's proposal fits what may be spent now: it is the slider's value, and why is said
    expect(page.locator("#cost-value")).to_contain_text(
        f"rho {decimal(proposed)}, recommended")
    expect(page.locator("#cost-value .amount")).to_have_attribute("title", f"exact: {proposed}")
    why = page.locator("#cost-why")
    expect(why).to_contain_text(f"Recommended cost rho {decimal(proposed)}")
    expect(why).to_contain_text(f"±{halfwidth}")
    expect(why).to_contain_text(
        f"fits what you can spend on one query now (rho {decimal(can_spend)})")
    expect(page.locator("#expected tbody td").first).to_have_text(
        f"± {solved['measures'][0]['halfwidth_95']:g}")
    with page.expect_request(query_request) as sent:
        result = _run(page)
    assert sent.value.post_data_json["cost"] == proposed
    assert result["charged"]["amount"] == proposed
    expect(page.locator("#charged")).to_contain_text(f"Charged rho {decimal(proposed)}")

    # people counted one by one: +/-5 is beyond the per-query cap; the hub says what it would
    # cost, and the workspace takes the largest stop it can afford and says the view is noisier
    page.get_by_role("checkbox", name="count", exact=True).uncheck()
    with page.expect_response(lambda r: _estimate_with_target(r, group_by=["destination_country"])
                              and "count_units" in json.dumps(r.request.post_data_json)
                              ) as refused, page.expect_response(
            re.compile(r"/v1/budgets/bank_alerts$")) as budget:
        page.get_by_role("checkbox", name="count_units").check()
    assert refused.value.status == 403
    problem = refused.value.json()
    assert problem["rule"] == "budget:per_query" and problem["field"] == "target"
    left = budget.value.json()["can_spend"]
    stops = json.loads(page.get_by_label("Privacy cost: more cost, less noise")
                       .get_attribute("data-stops") or "[]")
    expect(why).to_contain_text(f"would cost rho {decimal(problem['requested'])}, more than you "
                                f"can spend on one query now (rho {decimal(left)})")
    expect(why).to_contain_text("this view will be noisier")
    expect(page.locator("#cost-value")).to_contain_text("largest affordable")
    assert stops[-1] == "1/5" and left == "1/5"
    expect(page.locator("#cost-value")).to_contain_text("rho 0.2")
    expect(page.locator("#expected tbody th")).to_have_text("count_units")
    page.evaluate("document.getElementById('cost').scrollIntoView()")
    screenshot(page, "workspace-cost")


def test_the_largest_routes_list_the_pooled_route_first(page: Page, hub: Hub) -> None:
    _workspace(page, hub, "routes@web.example")
    page.get_by_label("Dataset", exact=True).select_option("case_records")
    expect(page.locator("#filter-transit_country")).to_be_attached()  # the routes rule
    with page.expect_response(lambda r: _estimate_with_target(r, route=True)) as asked:
        page.get_by_role("radio", name="Largest routes").check()
    target = asked.value.request.post_data_json
    assert target["route"] is True and target["top"]["k"] == 10
    assert set(target["target"]) == {"top_gap", "confidence"}  # ranked: a gap in the order
    expect(page.locator("#route-stages")).to_have_text(
        "Route: source_country → transit_country → destination_country")
    expect(page.locator("#cost-why")).to_contain_text(
        f"Recommended cost rho {decimal(asked.value.json()['cost']['amount'])}")
    with page.expect_request(query_request) as sent:
        result = _run(page)
    assert sent.value.post_data_json["measures"] == ["count_units"]
    assert result["route"]["stages"] == ["source_country", "transit_country",
                                         "destination_country"]
    first = result["rows"][0]
    route = " → ".join(first[s] for s in result["route"]["stages"])
    assert route == "NG → LY → IT"  # the planted route, first of the ranked answer
    row = page.locator("#top-list tbody tr").first
    expect(row).to_have_attribute("data-key", route)
    rank = first["rank"]
    expect(row).to_contain_text(f"rank 1 ({rank['low']}-{rank['high']}, 90%)")
    cell = first["count_units"]
    expect(row).to_contain_text(f"{cell['value']} ({cell['low']} to {cell['high']})")
    assert _top_keys(page) == [" → ".join(r[s] for s in result["route"]["stages"])
                               for r in result["rows"] if r["count_units"]["distinguishable"]]
    # routes not listed: why, in the hub's words
    note = page.locator("#keys-note")
    expect(note).to_contain_text("Selected routes")
    expect(note).to_contain_text("Routes not listed had too few distinct units to show")
    expect(note).to_contain_text(result["keys"]["absent"].split(":", 1)[1].strip())
    expect(page.locator("#top-note")).to_contain_text(result["top"]["note"][1:])
    expect(page.locator("#chart")).to_have_attribute("data-kind", "ranked")
    bars = _drawn(page, "bar")
    assert bars[0]["parts"]["value"] == str(cell["value"])
    page.evaluate("document.getElementById('r-h').scrollIntoView()")
    screenshot(page, "workspace-routes")


def test_top_lists_leave_out_cells_not_distinguishable_from_zero(page: Page,
                                                                  hub: Hub) -> None:
    _workspace(page, hub, "top@web.example")
    page.get_by_role("radio", name="The largest, ranked").check()
    expect(page.get_by_label("How many (top k)")).to_have_value("10")
    page.get_by_role("checkbox", name="origin_country").check()
    expect(page.locator("#cost-value")).to_contain_text("recommended")
    result = _run(page)
    rows = result["rows"]
    assert [r["rank"]["position"] for r in rows] == list(range(1, len(rows) + 1))
    doubtful = [r["origin_country"] for r in rows if not r["count"]["distinguishable"]]
    assert doubtful, "a ranked list of 249 mostly empty countries has noise in it"
    told = [r["origin_country"] for r in rows if r["count"]["distinguishable"]]
    # in the ranked mechanism's order, and only cells whose interval excludes zero
    expect(page.locator("#top-list tbody tr")).to_have_count(len(told))
    assert _top_keys(page) == told
    for i, key in enumerate(told):
        rank = next(r["rank"] for r in rows if r["origin_country"] == key)
        expect(page.locator("#top-list tbody tr").nth(i)).to_contain_text(
            f"rank {rank['position']} ({rank['low']}-{rank['high']}, 90%)")
    expect(page.locator("#top-list caption")).to_contain_text(f"{len(doubtful)} cell(s) not")
    expect(page.locator("#chart")).to_have_attribute("data-kind", "ranked")
    assert [b["parts"]["origin_country"] for b in _drawn(page, "bar")] == told
    # the table keeps every cell, marked
    expect(page.locator("#cells tbody tr")).to_have_count(len(rows))
    expect(page.locator("#cells .tag")).to_have_count(len(doubtful))
    expect(page.locator("#cells .tag").first).to_have_text("not distinguishable from zero")

    page.get_by_role("checkbox", name=TOGGLE).check()
    expect(page.locator("#top-list tbody tr")).to_have_count(len(rows))
    assert _top_keys(page) == [r["origin_country"] for r in rows]
    expect(page.locator("#top-list tr.uncertain")).to_have_count(len(doubtful))
    drawn = _drawn(page, "bar")
    assert [b["parts"]["origin_country"] for b in drawn] == [r["origin_country"] for r in rows]
    assert all((b["opacity"] == FADED) == (b["parts"]["origin_country"] in doubtful)
               for b in drawn)
    page.evaluate("document.getElementById('top-box').scrollIntoView()")
    screenshot(page, "workspace-top")


def test_the_map_colours_only_cells_told_from_zero_unless_shown(page: Page,
                                                                 hub: Hub) -> None:
    _workspace(page, hub, "scale@web.example")
    page.get_by_role("checkbox", name="destination_country").check()
    expect(page.locator("#cost-value")).to_contain_text("recommended")
    result = _run(page)
    expect(page.locator("#chart")).to_have_attribute("data-kind", "map")
    told = {r["destination_country"]: r["count"] for r in result["rows"]}
    # the top list: cells of highest lower bound, never one whose interval includes zero
    by_low = sorted((r for r in result["rows"]), key=lambda r: -r["count"]["low"])
    expected = [r["destination_country"] for r in by_low if r["count"]["distinguishable"]][:10]
    expect(page.locator("#top-list tbody tr")).to_have_count(len(expected))
    assert _top_keys(page) == expected

    drawn = [m for m in _drawn(page, "geoshape") if "value" in m["parts"]]
    clear = [m for m in drawn if m["parts"]["from zero"] == "distinguishable"]
    doubt = [m for m in drawn if m["parts"]["from zero"] != "distinguishable"]
    assert clear and doubt
    for m in drawn:  # each shape says what the hub said of its cell
        cell = told[m["parts"]["destination_country"]]
        assert _number(m["parts"]["value"]) == cell["value"]
        assert (m in clear) == cell["distinguishable"]
    # cells not told from zero are grey, faded and off the colour scale
    assert all(m["fill"] == GREY and m["opacity"] == FADED for m in doubt)
    assert all(m["fill"] != GREY and m["opacity"] == 1 for m in clear)
    values = [_number(m["parts"]["value"]) for m in clear]
    assert _colour_domain(page) == [min(values), max(values)]
    page.evaluate("document.getElementById('chart').scrollIntoView()")
    screenshot(page, "workspace-map-scale")

    page.get_by_role("checkbox", name=TOGGLE).check()
    expect(page.locator("#top-list tbody tr")).to_have_count(10)
    assert _top_keys(page) == [r["destination_country"] for r in by_low[:10]]
    page.wait_for_function("""() => [...document.querySelectorAll(
        '#chart svg path[aria-roledescription^=geoshape]')].filter((p) =>
        (p.getAttribute('aria-label') || '').includes('not distinguishable')).every((p) =>
        p.getAttribute('fill') !== '#b4b4b4')""")
    shown = [m for m in _drawn(page, "geoshape") if "value" in m["parts"]]
    assert all(m["opacity"] == FADED for m in shown
               if m["parts"]["from zero"] != "distinguishable")
    everything = [_number(m["parts"]["value"]) for m in shown]
    assert _colour_domain(page) == [min(everything), max(everything)]


def test_a_dataset_below_its_partner_minimum_says_so_with_the_rule(page: Page,
                                                                    hub: Hub) -> None:
    _workspace(page, hub, "minimum@web.example")
    page.get_by_label("Dataset", exact=True).select_option("corridor_flows")  # no uploads
    alert = page.locator("section[aria-labelledby=e-h] [role=alert]")
    expect(alert).to_contain_text("rule: policy:corridor_flows:min_partners")
    expect(page.get_by_role("button", name=RUN)).to_be_disabled()


def test_the_flow_matrix_draws_the_selected_corridors(page: Page, hub: Hub) -> None:
    _workspace(page, hub, "flow@web.example")
    page.get_by_role("checkbox", name="origin_country").check()
    page.get_by_role("checkbox", name="destination_country").check()
    page.get_by_role("checkbox", name="sum of amount").check()
    expect(page.locator("#estimate-keys")).to_contain_text("Selected keys")
    result = _run(page)
    assert result["keys"]["mode"] == "selected" and result["rows"]
    expect(page.locator("#chart")).to_have_attribute("data-kind", "flow")
    expect(page.locator("#chart svg")).to_be_visible()
    # the page says the corridors were selected, and what a missing one means
    note = page.locator("#keys-note")
    expect(note).to_contain_text(f"Selected keys: {result['keys']['listed']} listed of 62,001")
    expect(note).to_contain_text(result["keys"]["absent"][1:])
    for measure in ("count", "sum_amount"):
        if measure != "count":
            page.get_by_label("Measure shown").select_option(measure)
            expect(page.locator("#chart")).to_have_attribute("data-measure", measure)
        returned = {(r["origin_country"], r["destination_country"]): r[measure]
                    for r in result["rows"]}
        cells = _drawn(page, "rect")
        assert cells
        for c in cells:  # each cell of the matrix is one returned corridor
            key = (c["parts"]["origin_country"], c["parts"]["destination_country"])
            assert _number(c["parts"]["value"]) == returned[key]["value"]
            faded = not returned[key]["distinguishable"]
            assert (c["fill"] == GREY and c["opacity"] == FADED) == faded, c
        told = [_number(c["parts"]["value"]) for c in cells
                if c["parts"]["from zero"] == "distinguishable"]
        assert told and _colour_domain(page) == [min(told), max(told)]
        if measure == "sum_amount":  # the corridors of zero amounts are listed, and faded
            assert any(c["fill"] == GREY for c in cells), cells
    page.evaluate("document.getElementById('keys-note').scrollIntoView()")
    screenshot(page, "workspace-flow")


def test_a_trend_spans_the_months_of_the_data(page: Page, hub: Hub) -> None:
    _workspace(page, hub, "line@web.example")
    page.get_by_role("checkbox", name="period", exact=True).check()
    expect(page.locator("#cost-value")).to_contain_text("recommended")
    result = _run(page)
    expect(page.locator("#chart")).to_have_attribute("data-kind", "line")
    expect(page.locator("#chart svg")).to_be_visible()
    months = sorted(r["period"] for r in result["rows"])
    assert (months[0], months[-1]) == ("2015-01", "2030-12")  # the contract's whole domain
    # the hub's span: first and last month with an interval that, held together with every
    # month's (Bonferroni), excludes zero; the planted months stand out
    span_of = result["period_span"]
    assert span_of["field"] == "period" and span_of["from"] <= "2024-03" <= span_of["to"]
    assert (span_of["from"], span_of["to"]) != ("2015-01", "2030-12")
    span = [m for m in months if span_of["from"] <= m <= span_of["to"]]
    axis = page.locator("#chart svg [aria-label^=X-axis]")
    expect(axis).to_have_attribute("aria-label", re.compile(
        f"values from {span_of['from']} to {span_of['to']}$"))
    points = _drawn(page, "point")
    assert [p["parts"]["period"] for p in points] == span  # one point per month, in order
    returned = {r["period"]: r["count"] for r in result["rows"]}
    for p in points:
        cell = returned[p["parts"]["period"]]
        assert _number(p["parts"]["value"]) == cell["value"]
        assert (p["opacity"] == FADED) == (not cell["distinguishable"])
    expect(page.locator("#chart svg path[aria-roledescription^=area]")).to_have_count(1)
    expect(page.locator("#top-list")).to_have_count(0)  # a trend is a line, not a ranking
    page.evaluate("document.getElementById('chart').scrollIntoView()")
    screenshot(page, "workspace-line")


def test_the_incidents_are_set_beside_the_case_records_routes(page: Page, hub: Hub) -> None:
    """The largest routes of members' case records, then the same question asked of the
    incidents from open sources: both answers side by side, each with its own noise and
    budget, keyed by route; a route only the public reported shows on its own."""
    _workspace(page, hub, "beside@web.example")
    page.get_by_label("Dataset", exact=True).select_option("case_records")
    expect(page.locator("#filter-transit_country")).to_be_attached()  # the routes rule
    page.get_by_role("radio", name="Largest routes").check()
    first = _run(page)
    choices = page.locator("#beside-dataset option")
    expect(choices).to_have_count(1)  # bank_alerts has no route of these stages
    expect(choices).to_have_text("incidents")
    with page.expect_response(query_response) as answer:
        page.get_by_role("button", name="Ask it the same question (spends its budget)").click()
    second = answer.value.json()
    assert answer.value.status == 200, second
    sent = answer.value.request.post_data_json
    assert sent["dataset"] == "incidents" and sent["route"] is True
    assert sent["measures"] == ["count_units"] and sent["top"]["k"] == 10
    assert second["route"]["stages"] == first["route"]["stages"]
    expect(page.locator("#beside-charged")).to_contain_text("incidents: charged rho")
    expect(page.locator("#beside-answer .note")).to_contain_text("never added")

    def shown(key: str) -> list[str]:
        row = page.locator(f'#beside-table tbody tr[data-key="{key}"]')
        expect(row).to_have_count(1)
        return [c.strip() for c in row.locator("td").all_inner_texts()]

    def text(cell: dict[str, Any]) -> str:
        return f"{cell['value']} ({cell['low']} to {cell['high']})"

    stages = first["route"]["stages"]
    rows = [{" → ".join(r[s] for s in stages): r["count_units"] for r in a["rows"]}
            for a in (first, second)]
    pooled = "NG → LY → IT"
    assert pooled in rows[0] and pooled in rows[1]  # both show the route
    assert [c.split(NOT_SHOWN)[0] for c in shown(pooled)] == [text(rows[0][pooled]),
                                                             text(rows[1][pooled])]
    public_only = "VN → CN → GB"  # only the crowd reports tell it
    assert public_only in rows[1] and public_only not in rows[0]
    assert shown(public_only)[0] == "not listed"
    assert shown(public_only)[1].split(NOT_SHOWN)[0] == text(rows[1][public_only])
    expect(page.locator("#beside-chart")).to_have_attribute("data-kind", "ranked")
    expect(page.locator("#beside-chart svg")).to_be_visible()
    expect(page.locator("#history tbody tr")).to_have_count(2)  # both queries, both spent
    page.evaluate("document.getElementById('beside-h').scrollIntoView()")
    screenshot(page, "workspace-beside")

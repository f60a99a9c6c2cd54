"""Exact answers over a policy's public rows (hub.query.exact), over real HTTP: the shipped
incidents policy declares the incidents that only news articles told public, so a query
filtered to them is answered without noise, at no cost, and equals the truth; a query that
keeps any incident a crowd report told (alone or with articles) is a DP query with its cost.

The incidents are published by the hub's own publisher (hub.osint.incidents) through the
real ingest path, from accepted incidents written to its store with known codes."""

from __future__ import annotations

import csv
import io
import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import connectors.analyst.cli as analyst_cli
from hub.actors import MemberKind, Role
from hub.api.schemas.queries import Estimate, QueryResult
from hub.identity.service import Credentials
from tests.api.conftest import Hub, running_hub
from tests.osint.accepted import accept, route

KINDS = {"news": ["article", "article"], "crowd": ["report"],
         "news_and_crowd": ["article", "report"]}
ORIGINS, DESTINATIONS = ("NG", "RO", "VN", "AL"), ("IT", "GB", "ES")
TYPES = ("SexualExploitation", "ForcedLabour")


@dataclass
class World:
    hub: Hub
    creds: Credentials
    analyst: httpx.Client
    incidents: list[dict[str, Any]]  # source_type, origin, destination, type, sources

    def truth(self, source_types: set[str], *fields: str) -> Counter[tuple[str, ...]]:
        return Counter(tuple(i[f] for f in fields) for i in self.incidents
                       if i["source_type"] in source_types)

    def ask(self, body: dict[str, Any], path: str = "/v1/queries") -> dict[str, Any]:
        answer = self.analyst.post(path, json={"dataset": "incidents", "cost": "1/10", **body})
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        (Estimate if path.endswith("estimate") else QueryResult).model_validate(result)
        return result

    def spent(self) -> str:
        budget = self.analyst.get("/v1/budgets/incidents")
        assert budget.status_code == 200, budget.text
        return str(budget.json()["member"]["spent"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_hub(tmp_path_factory.mktemp("exact")) as hub:
        incidents, accepted = [], []
        combos = itertools.product(KINDS, ORIGINS, DESTINATIONS, TYPES)
        for n, (source_type, origin, destination, kind) in enumerate(combos):
            for copy in range((n * 7) % 4):  # 0-3 incidents of each combination
                items = KINDS[source_type] * (1 + copy % 2)
                incidents.append({"source_type": source_type, "origin": origin,
                                  "destination": destination, "type": kind,
                                  "sources": len(items)})
                accepted.append((f"inc_{n:03d}_{copy}", route(origin, None, destination, kind),
                                 items))
        accept(hub.services.engine, accepted)
        published = hub.services.incidents.publish()
        assert published.rows == len(incidents) and not published.left_out
        creds = hub.member("Analysts Inc", (Role.ANALYST,), MemberKind.NGO)
        with hub.authed(creds) as analyst:
            yield World(hub, creds, analyst, incidents)


def test_a_query_filtered_to_public_rows_is_exact_and_free(world: World) -> None:
    before = world.spent()
    body = {"group_by": ["exploitation_type", "period"],
            "measures": ["count", {"function": "sum", "field": "sources"}],
            "filters": {"source_type": ["news"], "period": ["2026-02", "2026-03"]},
            "postprocess": {"consistent_totals": True}}
    result = world.ask(body)
    assert result["charged"]["amount"] == "0" and world.spent() == before
    assert "news articles" in result["exact"]["reason"]
    assert [m["mechanism"] for m in result["measures"]] == ["none", "none"]
    truth = world.truth({"news"}, "type")
    sources: Counter[str] = Counter()
    for i in world.incidents:
        if i["source_type"] == "news":
            sources[i["type"]] += i["sources"]
    assert result["keys"]["mode"] == "public" and len(result["rows"]) == result["cells"] > 20
    for row in result["rows"]:  # every key of the grid, zeros included, each exact
        n = truth[row["exploitation_type"],] if row["period"] == "2026-03" else 0
        assert row["count"] == {"value": n, "low": n, "high": n, "distinguishable": n > 0}
        s = sources[row["exploitation_type"]] if row["period"] == "2026-03" else 0
        assert row["sum_sources"]["value"] == row["sum_sources"]["low"] == s
    (grand,) = result["totals"][-1]["rows"]
    assert grand["count"]["value"] == sum(truth.values())
    by_type = {r["exploitation_type"]: r["count"]["value"] for r in result["totals"][0]["rows"]}
    assert {k: v for k, v in by_type.items() if v} == {t: truth[t,] for t in TYPES}
    assert result["period_span"]["from"] == result["period_span"]["to"] == "2026-03"
    again = world.analyst.post("/v1/queries", json={"dataset": "incidents", "cost": "1/10",
                                                    **body})
    assert again.json()["reused"] and again.json()["rows"] == result["rows"]
    exported = world.analyst.get(f"/v1/queries/{result['query_id']}/export",
                                 params={"format": "csv"})
    assert exported.status_code == 200, exported.text
    cells = list(csv.DictReader(io.StringIO(exported.text)))
    assert {(r["exploitation_type"], r["period"]): (r["count"], r["count_low"], r["count_high"])
            for r in cells if r["count"] != "0"} == {
        (t, "2026-03"): (str(n), str(n), str(n)) for (t,), n in truth.items()}


@pytest.mark.parametrize("kept", [None, ["news", "crowd"], ["news_and_crowd"], ["crowd"]])
def test_a_query_that_keeps_any_row_a_crowd_report_told_is_a_dp_query(
    world: World, kept: list[str] | None
) -> None:
    before = world.spent()
    result = world.ask({"group_by": ["destination_country"], "measures": ["count"],
                        **({"filters": {"source_type": kept}} if kept else {})})
    assert "exact" not in result
    assert result["charged"]["amount"] == "1/10" and world.spent() != before
    assert result["measures"][0]["mechanism"] != "none"
    assert result["measures"][0]["noise_scale"] > 0


def test_a_ranked_query_over_a_large_grid_lists_present_keys_by_exact_rank(
    world: World
) -> None:
    result = world.ask({"group_by": ["source_country", "destination_country"],
                        "measures": ["count"], "filters": {"source_type": ["news"]},
                        "top": {"k": 5, "by": 0}})
    truth = world.truth({"news"}, "origin", "destination")
    assert result["charged"]["amount"] == "0" and result["top"]["mechanism"] == "none"
    values = [r["count"]["value"] for r in result["rows"]]
    assert values == sorted(truth.values(), reverse=True)[:5]
    for row in result["rows"]:
        key = (row["source_country"], row["destination_country"])
        assert row["count"]["value"] == truth[key]
        rank = row["rank"]  # tied keys share the interval of their positions
        assert rank["low"] == 1 + sum(v > truth[key] for v in values)
        assert rank["high"] == sum(v >= truth[key] for v in values)
        assert rank["low"] <= rank["position"] <= rank["high"]


def test_a_large_grid_lists_the_keys_that_hold_public_rows(world: World) -> None:
    result = world.ask({"group_by": ["source_country", "destination_country"],
                        "measures": ["count_units"], "filters": {"source_type": ["news"]}})
    truth = world.truth({"news"}, "origin", "destination")
    assert result["keys"]["mode"] == "present" and result["cells"] > 2500
    assert {(r["source_country"], r["destination_country"]): r["count_units"]["value"]
            for r in result["rows"]} == dict(truth)


def test_the_estimate_of_an_exact_query_costs_nothing(world: World) -> None:
    estimate = world.ask({"group_by": ["destination_country"], "measures": ["count"],
                          "filters": {"source_type": ["news"]}}, path="/v1/queries/estimate")
    assert estimate["cost"]["amount"] == "0" and estimate["epsilon_delta"]["epsilon"] == 0
    assert estimate["measures"][0]["mechanism"] == "none"
    assert estimate["would_be_refused"] is None


def test_tahub_query_shows_an_exact_answer_as_exact(world: World) -> None:
    out = CliRunner().invoke(analyst_cli.app, [
        "run", "incidents", "--by", "destination_country", "--measure", "count",
        "--filter", "source_type=news", "--cost", "1/10", "--sort", "count"], env={
        "COLUMNS": "200", "TAHUB_HUB_URL": world.hub.url,
        "TAHUB_CLIENT_ID": world.creds.client_id,
        "TAHUB_CLIENT_SECRET": world.creds.client_secret})
    assert out.exit_code == 0, out.output
    truth = world.truth({"news"}, "destination")
    table = [[c.strip() for c in line.split("│")[1:-1]] for line in out.output.splitlines()
             if line.startswith("│")]
    assert table == [[d, str(n)] for (d,), n in sorted(truth.items(),
                                                        key=lambda kv: (-kv[1], kv[0]))]
    text = " ".join(out.output.split())  # the value alone: no interval, no "~"
    assert "247 cells of zero by count are left out" in text and "by chance" not in text
    assert "exact values, without noise: incidents told only by published news" in text
    assert "count: exact, no noise" in text
    assert "Exact answer over public rows: nothing charged" in text  # asked first here

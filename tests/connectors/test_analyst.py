"""AnalystClient: request building, DataFrame shaping, errors and retries against recorded
answers; then the whole client against a real hub (uvicorn on loopback, real DuckDB over real
committed Parquet, real ledger) with a planted cross-bank overlap."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
from typer.testing import CliRunner

import connectors.analyst.cli as analyst_cli
from connectors.analyst.client import AnalystClient, parse_filter, parse_measure
from connectors.analyst.result import Cell, QueryResult, Rank, ResultRow
from connectors.common.session import RetryPolicy
from connectors.partner.client import HubClient
from hub.actors import Role
from hub.errors import HubRequestError, InvalidInput, Unavailable
from hub.identity.service import Credentials
from tests.api.conftest import Hub, running_hub
from tests.api.extract_files import KEY_ID, write_extract
from tests.connectors.analyst_answers import ESTIMATE_ROUTE, RANKED, ROUTE, SELECTED, STAGES

FAST = RetryPolicy(attempts=3, initial_wait=0, max_wait=0)
URL = "http://hub.test"
TOKEN = {"access_token": "tok", "token_type": "Bearer", "expires_in": 3600}


def _cost(amount: str, measure: str = "zcdp") -> dict[str, Any]:
    return {"measure": measure, "amount": amount, "value": float(Fraction(amount))}


BALANCE = {
    "dataset": "bank_alerts", "measure": "zcdp", "opened": "2026-01-01",
    "member": {"spent": "1/10", "left": "9/10"}, "month": {"spent": "1/10", "left": "2/5"},
    "global": {"spent": "1/10", "left": "29/10"}, "per_query": "1/5", "can_spend": "1/5",
    "cumulative": {"measure": "zcdp", "amount": "1/10", "epsilon": 2.3, "delta": 1e-9},
}
#: A QueryResult as the hub answers it (shape of hub.query.service), two dimensions.
RECORDED = {
    "query_id": "led_0123456789abcdef01234567", "dataset": "bank_alerts",
    "contract_version": 1, "rule": "analysts-corridors", "accounting": "zcdp",
    "cost": _cost("1/10"), "charged": _cost("1/10"),
    "epsilon_delta": {"epsilon": 2.35, "delta": 1e-7},
    "dimensions": ["origin_country", "typology"],
    "measures": [
        {"name": "count", "function": "count", "field": None, "mechanism": "discrete_gaussian",
         "noise_scale": 38.7, "halfwidth_95": 76.0, "cost": _cost("1/30")},
        {"name": "sum_amount", "function": "sum", "field": "amount", "clamp": [0, 50000],
         "mechanism": "discrete_gaussian", "noise_scale": 193649.2, "halfwidth_95": 379545.1,
         "cost": _cost("1/30")},
        {"name": "quantile_50_amount", "function": "quantile", "field": "amount",
         "quantile": 0.5, "mechanism": "exponential", "noise_scale": 20.0,
         "halfwidth_95": None, "cost": _cost("1/30"), "note": "no interval"},
    ],
    "rows": [
        {"origin_country": "RO", "typology": "funnel_account",
         "count": {"value": 1203, "low": 1127, "high": 1279},
         "sum_amount": {"value": 1.25e6, "low": 870454.9, "high": 1629545.1},
         "quantile_50_amount": {"value": 980.0}},
        {"origin_country": "RO", "typology": None,
         "count": {"value": 0, "low": 0, "high": 76},
         "sum_amount": {"value": -1520.5, "low": -381065.6, "high": 378024.6},
         "quantile_50_amount": {"value": 12.5}},
    ],
    "totals": [], "bounding": {"max_rows": 10, "note": "at most 10 rows per unit"},
    "postprocess": {"nonnegative": True, "consistent_totals": False}, "cells": 2,
    "query_key": "ab" * 32, "reused": False, "budget": BALANCE,
    "created_at": "2026-11-22T10:00:00Z",
}

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """A MockTransport that answers tokens itself and records every other request."""

    answer: Handler
    requests: list[httpx.Request]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth/token":
            return httpx.Response(200, json=TOKEN)
        self.requests.append(request)
        return self.answer(request)

    def client(self) -> AnalystClient:
        return AnalystClient(URL, "cid", "secret", transport=httpx.MockTransport(self), retry=FAST)

    def paths(self, method: str) -> list[str]:
        return [r.url.path for r in self.requests if r.method == method]


def _recorder(answer: Handler) -> Recorder:
    return Recorder(answer, [])


def _ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=RECORDED)


# -- building the request -----------------------------------------------------------------------
def test_python_arguments_become_the_query_request_json() -> None:
    hub = _recorder(_ok)
    with hub.client() as client:
        client.query(
            "bank_alerts",
            group_by="origin_country",
            measures=["count", "sum:amount", "quantile:amount:0.5",
                      {"function": "mean", "field": "amount"}],
            filters={"period": "2025-01..2025-12", "typology": "funnel_account",
                     "destination_country": ["GB", "IT"]},
            cost=Fraction(1, 100),
        )
        client.query("bank_alerts", measures="count", cost=1)
        client.estimate("bank_alerts", target=50)
    first, second, third = (json.loads(r.content) for r in hub.requests)
    assert first == {
        "dataset": "bank_alerts",
        "group_by": ["origin_country"],
        "measures": ["count", {"function": "sum", "field": "amount"},
                     {"function": "quantile", "field": "amount", "quantile": 0.5},
                     {"function": "mean", "field": "amount"}],
        "filters": {"period": {"from": "2025-01", "to": "2025-12"},
                    "typology": ["funnel_account"], "destination_country": ["GB", "IT"]},
        "cost": "1/100",
    }
    assert second["cost"] == "1" and second["measures"] == ["count"]
    assert third["target"] == {"ci_halfwidth": 50, "measure": 0} and "cost" not in third
    assert hub.paths("POST") == ["/v1/queries", "/v1/queries", "/v1/queries/estimate"]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"cost": 0.01}, "floats are refused"),
        ({"cost": True}, "not a privacy cost"),
        ({"cost": ""}, "not a privacy cost"),
        ({}, "either cost= "),
        ({"cost": "1/10", "target": 5}, "either cost= "),
        ({"target": "5"}, "target='5'"),
    ],
)
def test_mistakes_are_refused_before_anything_is_sent(kwargs: dict[str, Any], says: str) -> None:
    hub = _recorder(_ok)
    with hub.client() as client, pytest.raises(InvalidInput, match=says) as caught:
        client.query("bank_alerts", **kwargs)
    assert caught.value.field in ("cost", "target")
    assert hub.requests == []


def test_measure_and_filter_texts() -> None:
    assert parse_measure("linked_units") == "linked_units"
    assert parse_measure("mean:amount") == {"function": "mean", "field": "amount"}
    assert parse_filter("origin_country=RO, BG") == ("origin_country", ["RO", "BG"])
    assert parse_filter("period=2024-06..2025-01") == (
        "period", {"from": "2024-06", "to": "2025-01"})
    for bad in ("sum:", "a:b:c:d", "quantile:amount:half"):
        with pytest.raises(InvalidInput, match="measure"):
            parse_measure(bad)
    for bad in ("period", "=RO", "origin_country="):
        with pytest.raises(InvalidInput, match="filter"):
            parse_filter(bad)


# -- shaping the answer -------------------------------------------------------------------------
def test_a_release_becomes_arrow_and_pandas_with_value_and_interval_columns() -> None:
    result = QueryResult.model_validate(RECORDED)
    table = result.to_arrow()
    assert table.column_names == [
        "origin_country", "typology",
        "count", "count_low", "count_high", "count_distinguishable",
        "sum_amount", "sum_amount_low", "sum_amount_high", "sum_amount_distinguishable",
        "quantile_50_amount", "quantile_50_amount_low", "quantile_50_amount_high",
    ]  # a quantile has no interval, so nothing to tell apart from zero
    assert table.schema.field("origin_country").type == pa.string()
    assert table.schema.field("count").type == pa.int64()
    assert table.schema.field("sum_amount_low").type == pa.float64()
    assert table.column("typology").to_pylist() == ["funnel_account", None]
    assert table.column("count_high").to_pylist() == [1279, 76]
    assert table.column("quantile_50_amount").to_pylist() == [980.0, 12.5]
    assert table.column("quantile_50_amount_low").null_count == 2  # no interval, and says so
    assert table.schema.field("count").metadata[b"mechanism"] == b"discrete_gaussian"
    # a release stored before cells said it: the same rule from the interval
    assert table.column("count_distinguishable").to_pylist() == [True, False]
    assert table.column("sum_amount_distinguishable").to_pylist() == [True, False]
    assert table.schema.field("count_distinguishable").type == pa.bool_()
    described = json.loads(table.schema.metadata[b"tahub"])
    assert described["query_id"] == RECORDED["query_id"] and "rows" not in described

    frame = result.to_pandas()
    assert list(frame.columns) == table.column_names
    assert frame["count"].tolist() == [1203, 0]
    assert frame["sum_amount"].tolist() == [1.25e6, -1520.5]
    assert frame.attrs["cost"]["amount"] == "1/10" and frame.attrs["reused"] is False
    assert result.cost.exact == Fraction(1, 10) and str(result.cost) == "rho 0.1"
    assert result.budget is not None and result.budget.global_.left == "29/10"
    assert result.measure("count").noise_scale == pytest.approx(38.7)
    with pytest.raises(KeyError, match="no measure 'mean_amount'"):
        result.measure("mean_amount")


# -- the new query forms: keys, ranked, routes, bounding, ranking targets ----------------------
def _answer(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/estimate"):
        return httpx.Response(200, json=ESTIMATE_ROUTE)
    return httpx.Response(200, json=RECORDED)


def test_keys_top_route_bounding_and_gap_targets_become_the_request_json() -> None:
    hub = _recorder(_answer)
    with hub.client() as client:
        client.query("bank_alerts", group_by=["origin_country", "destination_country"],
                     measures=["count", "sum:amount", "linked_units"], keys="selected",
                     top=5, by="linked_units", bounding="total", cost="1/5")
        client.query("case_records", route=True, measures=["count_units", "linked_units"],
                     top={"k": 10, "by": 1}, cost="1/5")
        est = client.estimate("case_records", route=True, measures="count_units", top=10,
                              target={"top_gap": 12, "confidence": 0.9})
        client.estimate("bank_alerts", group_by="period", measures=["count", "sum:amount"],
                        top=3, by="sum:amount", keys="public", bounding="per_period",
                        target={"ci_halfwidth": 40, "measure": 1})
    first, second, third, fourth = (json.loads(r.content) for r in hub.requests)
    assert first == {
        "dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
        "measures": ["count", {"function": "sum", "field": "amount"}, "linked_units"],
        "filters": {}, "cost": "1/5", "top": {"k": 5, "by": 2}, "keys": "selected",
        "bounding": "total",
    }
    assert second == {
        "dataset": "case_records", "group_by": [], "measures": ["count_units", "linked_units"],
        "filters": {}, "cost": "1/5", "top": {"k": 10, "by": 1}, "route": True,
    }
    assert third["target"] == {"top_gap": 12, "confidence": 0.9} and "cost" not in third
    assert third["top"] == {"k": 10, "by": 0} and third["route"] is True
    assert fourth["top"] == {"k": 3, "by": 1} and fourth["bounding"] == "per_period"
    assert fourth["target"] == {"ci_halfwidth": 40, "measure": 1}
    assert fourth["keys"] == "public"
    # the estimate tells the key threshold and how far apart ranked keys must be
    assert est.keys is not None and est.keys.selected
    assert (est.keys.threshold, est.keys.appears_50, est.keys.appears_95) == (19, 19, 25)
    assert est.ranking is not None and est.ranking.k == 10 and est.ranking.by == "count_units"
    assert est.ranking.gap_90 == pytest.approx(12, abs=1e-3)
    assert est.bounding is not None and est.bounding.max_rows == 4
    assert est.cost.exact == Fraction(10477, 62500)
    assert est.cost.exact_delta == Fraction(1, 10**7) and "delta 0.0000001" in str(est.cost)
    assert est.budget is not None and est.budget.delta is not None
    assert est.budget.delta.member.left == "99/10000000"


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"top": 0}, "top", "top=0: give how many keys"),
        ({"top": True}, "top", "top=True"),
        ({"top": {"by": 0}}, "top", "give how many keys"),
        ({"top": 3, "by": "mean_amount"}, "by", r"by='mean_amount' is not one of the "
         r"requested measures \(0: count\)"),
        ({"top": 3, "by": 1}, "by", "by=1 is not one of"),
        ({"by": "count"}, "by", "give top=K too"),
        ({"top": {"k": 3, "by": 0}, "by": "count"}, "by", "give the ranking measure once"),
        ({"keys": "all"}, "keys", "keys='all' is not one of auto, public, selected"),
        ({"bounding": "monthly"}, "bounding", "bounding='monthly' is not one of"),
        ({"cost": None, "target": {"top_gap": 5}}, "target", "ranked query: give top=K"),
        ({"cost": None, "target": {"top_gap": 5, "ci_halfwidth": 3}, "top": 3}, "target",
         "give ci_halfwidth"),
    ],
)
def test_mistakes_in_the_new_forms_are_refused_before_anything_is_sent(
    kwargs: dict[str, Any], field: str, says: str
) -> None:
    hub = _recorder(_ok)
    question = {"cost": "1/10", **kwargs}
    with hub.client() as client, pytest.raises(InvalidInput, match=says) as caught:
        client.query("bank_alerts", **question)
    assert caught.value.field == field
    assert hub.requests == []


def _names(rows: list[ResultRow], dimension: str = "destination_country") -> list[str | None]:
    return [r.keys[dimension] for r in rows]


def test_selected_keys_say_what_an_absent_key_means() -> None:
    result = QueryResult.model_validate(SELECTED)
    assert result.keys is not None and result.keys.selected and result.keys.listed == 10
    assert (result.keys.threshold, result.keys.appears_95) == (18, 23)
    assert result.keys.absent is not None and "absence says nothing more" in result.keys.absent
    assert result.keys.cost is not None and result.keys.cost.delta == "1/10000000"
    assert result.cost.exact_delta == Fraction(1, 10**7) and result.cells == 62001
    assert result.bounding is not None and result.bounding.max_rows == 10
    assert result.bounding.note is not None and "not in the interval" in result.bounding.note
    assert not result.ranked and result.ranking is None and result.route is None
    # --json prints the model: every field of the hub's blocks comes back as written
    dumped = result.model_dump(mode="json", by_alias=True)
    for name in ("keys", "top", "route", "bounding", "rows", "cost"):
        sent = SELECTED[name]
        kept = dumped[name] if not isinstance(sent, dict) else {k: dumped[name][k] for k in sent}
        assert kept == sent, name
    newer = QueryResult.model_validate({**SELECTED, "keys": {**SELECTED["keys"], "seed": 7}})
    assert newer.model_dump(mode="json", by_alias=True)["keys"]["seed"] == 7


def test_a_top_list_goes_by_the_lower_bound_and_leaves_out_noise() -> None:
    result = QueryResult.model_validate(SELECTED)
    # six corridors are told apart from zero, largest lower bound first
    assert _names(result.top(None, "count")) == ["GB", "GR", "NL", "IT", "AE", "US"]
    assert _names(result.top(3)) == ["GB", "GR", "NL"]  # default: the first measure
    gb = result.top(1)[0]
    assert gb["count"] == Cell(value=288, low=237, high=339, distinguishable=True)
    assert str(gb["count"]) == "288 [237, 339]" and gb.label == "RO, GB" and gb.rank is None
    # the four others' intervals hold zero: left out unless asked for, then in the hub's
    # order (their lower bounds tie at 0), never by their noisy values (FR 30 > ES 17)
    assert _names(result.top(None, "count", include_uncertain=True))[6:] == [
        "BE", "DE", "ES", "FR"]
    # no corridor's amount is distinguishable from zero: an honest top list is empty, and
    # ES (the largest noisy sum, 1,507,059) is not put first when asked to show them all
    assert result.top(None, "sum_amount") == []
    assert _names(result.top(None, "sum_amount", include_uncertain=True)) == _names(
        result.records())
    with pytest.raises(InvalidInput, match="'mean_amount' is not a measure"):
        result.top(5, "mean_amount")
    # each interval holds 95% on its own: noise alone passes 2.5% of empty cells (floored at
    # zero, only the upper tail is left), 5% when negative values are kept
    assert result.by_chance("count") == pytest.approx(0.25)
    unfloored = result.model_copy(update={"postprocess": {"nonnegative": False}})
    assert unfloored.by_chance("sum_amount") == pytest.approx(0.5)


def test_a_top_list_of_means_prefers_what_the_data_show_over_the_noisy_value() -> None:
    mean = {"name": "mean_amount", "function": "mean", "field": "amount", "clamp": [0, 20000],
            "mechanism": "discrete_gaussian", "noise_scale": 9000.0, "halfwidth_95": None}
    result = QueryResult.model_validate({
        **RECORDED, "measures": [mean, RECORDED["measures"][2]], "rows": [
            {"origin_country": "RO", "typology": "front_company",  # few alerts: wide interval
             "mean_amount": {"value": 900.0, "low": 400.0, "high": 1400.0},
             "quantile_50_amount": {"value": 800.0}},
            {"origin_country": "RO", "typology": "funnel_account",
             "mean_amount": {"value": 700.0, "low": 650.0, "high": 750.0},
             "quantile_50_amount": {"value": 650.0}},
        ]})
    assert _names(result.top(), "typology") == ["funnel_account", "front_company"]
    assert result.records()[0]["mean_amount"].distinguishable is None  # not a sum or count
    with pytest.raises(InvalidInput, match="quantile: it has no interval"):
        result.top(2, "quantile_50_amount")


def test_a_ranked_release_keeps_its_rank_order_with_rank_intervals() -> None:
    result = QueryResult.model_validate(RANKED)
    assert result.ranked and result.ranking is not None and result.ranking.by == "count"
    assert result.ranking.k == 5 and result.ranking.gap_90 == pytest.approx(109.86, abs=0.01)
    assert result.ranking.note is not None and "110 apart" in result.ranking.note
    order = ["frequent_prepaid_card_purchases", "several_wages_one_account",
             "rapid_movement_of_funds", "linked_to_commercial_sex_ads",
             "cash_deposits_outside_hours"]
    # the mechanism's order, although the noisy counts would put rapid_movement_of_funds first
    assert _names(result.top(), "indicator") == order
    assert _names(result.top(2, "count"), "indicator") == order[:2]
    first = result.top()[0]
    assert first.rank == Rank(position=1, low=1, high=5, confidence=0.9)
    assert str(first.rank) == "1 (1-5)"


def test_a_route_release_names_its_stages_and_leaves_out_unlinked_routes() -> None:
    result = QueryResult.model_validate(ROUTE)
    assert result.route is not None and result.route.stages == STAGES
    assert result.route.assembly is not None and "NGO" in result.route.assembly
    ranked = result.top()
    assert [r.label for r in ranked] == ["NG -> LY -> IT", "VN -> (unknown) -> GB"]
    assert str(ranked[0]["linked_units"]) == "59 [47, 71]" and str(ranked[0].rank) == "1"
    # the second route's linked_units cannot be told from zero: kept in rank order if asked
    assert [r.label for r in result.top(None, "linked_units")] == ["NG -> LY -> IT"]
    assert len(result.top(None, "linked_units", include_uncertain=True)) == 2


def test_arrow_and_pandas_carry_rank_and_distinguishable_columns() -> None:
    ranked = QueryResult.model_validate(RANKED).to_arrow()
    assert ranked.column_names == ["indicator", "rank", "rank_low", "rank_high", "count",
                                   "count_low", "count_high", "count_distinguishable"]
    assert ranked.column("rank").to_pylist() == [1, 2, 3, 4, 5]
    assert set(ranked.column("rank_high").to_pylist()) == {5}
    assert ranked.schema.field("rank").type == pa.int64()
    assert ranked.schema.field("rank").metadata[b"confidence"] == b"0.9"
    selected = QueryResult.model_validate(SELECTED).to_arrow()
    assert selected.column("count_distinguishable").to_pylist() == [
        True, False, False, False, False, True, True, True, True, True]
    assert selected.column("sum_amount_distinguishable").null_count == 0
    assert "rank" not in selected.column_names
    frame = QueryResult.model_validate(ROUTE).to_pandas()
    assert list(frame.columns[:6]) == [*STAGES, "rank", "rank_low", "rank_high"]
    assert frame["linked_units_distinguishable"].tolist() == [True, False]
    assert frame.attrs["top"]["by"] == "count_units" and frame.attrs["route"]["stages"] == STAGES
    # a selection that listed no key still has every column
    empty = QueryResult.model_validate({**SELECTED, "rows": []}).to_arrow()
    assert empty.num_rows == 0 and "count_distinguishable" in empty.column_names


# -- `tahub query` over the client ------------------------------------------------------------
@pytest.fixture
def cli_hub(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, Any]], Recorder]:
    """Point `tahub query` at a recorder answering ``answer`` (and estimates with theirs)."""

    def answering(answer: dict[str, Any]) -> Recorder:
        hub = _recorder(lambda r: httpx.Response(200, json=(
            ESTIMATE_ROUTE if r.url.path.endswith("/estimate") else answer)))
        monkeypatch.setattr(analyst_cli, "_client", lambda *_args: hub.client())
        return hub

    return answering


def _tahub_query(*args: str) -> tuple[int, str]:
    out = CliRunner().invoke(analyst_cli.app, list(args), env={"COLUMNS": "200"})
    return out.exit_code, out.output


def _table_rows(output: str) -> list[str]:
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┡")) + 1
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("└"))
    return lines[start:end]


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.split("│")[1:-1]]


def test_the_cli_prints_a_ranked_route_in_rank_order(cli_hub: Any) -> None:
    hub = cli_hub(ROUTE)
    code, out = _tahub_query("run", "case_records", "--route", "--measure", "count_units",
                             "--measure", "linked_units", "--top", "10", "--top-by",
                             "count_units", "--keys", "selected", "--cost", "1/5",
                             "--include-uncertain")
    assert code == 0, out
    (sent,) = [json.loads(r.content) for r in hub.requests]
    assert sent["route"] is True and sent["top"] == {"k": 10, "by": 0}
    assert sent["keys"] == "selected" and sent["group_by"] == []
    first, second = (_cells(row) for row in _table_rows(out))
    assert first == ["1", "NG", "LY", "IT", "69 [57, 81]", "59 [47, 71]"]
    assert second == ["2", "VN", "(unknown)", "GB", "24 [12, 36]", "~3 [0, 15]"]  # holds 0
    out = " ".join(out.split())  # a title wraps at the table's width
    assert ("the top 10 of source_country -> transit_country -> destination_country by "
            "count_units") in out
    assert "absence says nothing more" in out and "route: each unit's stages" in out
    assert "ranking: keys are chosen by OpenDP's noisy top-k" in out
    assert "bounding: each privacy unit counts with at most 4 rows" in out
    assert "Charged: rho 0.2, delta 0.0000001" in out


def test_the_cli_top_list_is_by_lower_bound_and_hides_noise(cli_hub: Any) -> None:
    cli_hub(SELECTED)
    code, out = _tahub_query("run", "bank_alerts", "--by", "origin_country", "--by",
                             "destination_country", "--measure", "count", "--measure",
                             "sum:amount", "--cost", "1/5", "--sort", "count", "--limit", "3")
    assert code == 0, out
    rows = _table_rows(out)
    assert [_cells(r)[1] for r in rows] == ["GB", "GR", "NL"]
    assert "4 cells not distinguishable from zero by count are left out" in out
    assert "... 3 more (of 10 listed)" in out
    assert "keys: 10 listed of 62,001, chosen by a DP threshold" in out
    code, out = _tahub_query("run", "bank_alerts", "--by", "origin_country", "--by",
                             "destination_country", "--measure", "count", "--cost", "1/5",
                             "--sort", "sum_amount", "--all", "--limit", "0")
    assert code == 0, out
    rows = _table_rows(out)  # every lower bound is 0: the hub's order, not the noisy sums
    assert [_cells(r)[1] for r in rows] == [
        "AE", "BE", "DE", "ES", "FR", "GB", "GR", "IT", "NL", "US"]
    assert _cells(rows[1])[2:] == ["~40 [0, 91]", "~0 [0, 1171691]"]
    assert "not distinguishable from zero by" not in out
    code, out = _tahub_query("run", "bank_alerts", "--cost", "1/5", "--sort", "typology")
    assert code == 1 and "'typology' is not a measure of this release" in out


def test_the_cli_estimate_shows_the_threshold_and_the_ranking_gap(cli_hub: Any) -> None:
    hub = cli_hub(ROUTE)
    code, out = _tahub_query("estimate", "case_records", "--route", "--measure",
                             "count_units", "--top", "10", "--target-gap", "12",
                             "--confidence", "0.9")
    assert code == 0, out
    (sent,) = [json.loads(r.content) for r in hub.requests]
    assert sent["target"] == {"top_gap": 12.0, "confidence": 0.9} and "cost" not in sent
    assert "threshold 19" in out and "95% from 25" in out
    assert "ranking: top 10 by count_units: two keys 12 apart by count_units" in out
    # decimals, with the exact amount after a rounded one (the command line has no hover)
    assert "cost: rho 0.168 (exact 10477/62500), delta 0.0000001" in out
    assert "after it: member left rho 0.832 (exact 52023/62500)" in out
    for wrong, says in (
        (["--cost", "1/5", "--target", "5", "--target-gap", "3", "--top", "2"], "not both"),
        (["--cost", "1/5", "--confidence", "0.9"], "--confidence goes with --target-gap"),
        (["--cost", "1/5", "--keys", "all"], "keys='all' is not one of auto, public"),
        (["--cost", "1/5", "--top-by", "count"], "give top=K too"),
    ):
        code, out = _tahub_query("estimate", "bank_alerts", *wrong)
        assert code == 1 and says in out, out
    assert len(hub.requests) == 1  # refused before anything was sent


# -- errors and retries -------------------------------------------------------------------------
def test_a_refusal_names_the_rule_and_the_amounts() -> None:
    problem = {
        "type": "urn:tahub:problem:budget_exceeded", "title": "Privacy budget exceeded",
        "status": 403, "code": "budget_exceeded",
        "detail": "the query costs rho=1/5 but your budget has rho=1/10 left",
        "rule": "budget:member", "measure": "zcdp", "requested": "1/5", "remaining": "1/10",
    }
    hub = _recorder(lambda _r: httpx.Response(403, json=problem,
                                              headers={"content-type": "application/problem+json"}))
    with hub.client() as client, pytest.raises(HubRequestError) as caught:
        client.query("bank_alerts", cost="1/5")
    message = str(caught.value)
    assert "403 budget_exceeded" in message and "your budget has rho=1/10 left" in message
    assert "rule: budget:member" in message and "requested: 1/5; remaining: 1/10" in message
    assert caught.value.problem_body["rule"] == "budget:member"
    assert caught.value.http_status == 403
    assert len(hub.requests) == 1  # a refusal is never retried


def test_a_query_is_never_sent_again_after_it_reached_the_hub() -> None:
    hub = _recorder(lambda _r: httpx.Response(500, json={"status": 500}))
    with hub.client() as client, pytest.raises(Unavailable, match="not sent again"):
        client.query("bank_alerts", cost="1/10")
    assert len(hub.requests) == 1

    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    hub = _recorder(read_timeout)
    with hub.client() as client, pytest.raises(Unavailable, match="check before repeating"):
        client.query("bank_alerts", cost="1/10")
    assert len(hub.requests) == 1


def test_a_query_is_retried_only_when_the_connection_never_opened() -> None:
    calls = iter([httpx.ConnectError("refused"), None])

    def flaky(request: httpx.Request) -> httpx.Response:
        failure = next(calls)
        if failure is not None:
            raise failure
        return httpx.Response(200, json=RECORDED)

    hub = _recorder(flaky)
    with hub.client() as client:
        assert client.query("bank_alerts", cost="1/10").query_id == RECORDED["query_id"]
    assert len(hub.requests) == 2


def test_reads_and_estimates_are_retried_after_a_5xx() -> None:
    statuses = iter([503, 502, 200])
    hub = _recorder(lambda _r: httpx.Response(next(statuses), json=[BALANCE]))
    with hub.client() as client:
        (balance,) = client.budgets()
    assert balance.member.left == "9/10" and len(hub.requests) == 3


# -- against a real hub -------------------------------------------------------------------------
# Customers flagged by both banks on RO -> GB: enough that every check on them holds at
# better than 6 sigma, even the ranked route query's, whose linked_units scale is 10 (a
# distinguishable cell needs its noisy value above the 95% half-width, 20).
SHARED = 80


def _token(salt: str, i: int) -> str:
    return f"{KEY_ID}.{hashlib.sha256(f'{salt}:{i}'.encode()).hexdigest()}"


@dataclass
class Pooled:
    hub: Hub
    analyst: Credentials  # Bank A's analyst client
    partner: Credentials  # Bank B's partner client (no analyst role)

    def client(self, creds: Credentials | None = None) -> AnalystClient:
        c = creds or self.analyst
        return AnalystClient(self.hub.url, c.client_id, c.client_secret, retry=FAST)


def _bank_extract(hub: Hub, path: Path, salt: str, rows: int) -> Path:
    """Rows 0..SHARED-1 are the shared RO->GB customers; the rest are this bank's own."""
    contract = hub.services.registry.get("bank_alerts", 1)
    override = {
        i: {"subject": _token("shared", i), "origin_country": "RO", "destination_country": "GB"}
        for i in range(SHARED)
    }
    return write_extract(path, contract, rows, salt=salt, override=override)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pooled]:
    folder = tmp_path_factory.mktemp("analyst-hub")
    with running_hub(folder / "data") as hub:
        bank_a = hub.member("Bank A", (Role.PARTNER,))
        bank_b = hub.member("Bank B", (Role.PARTNER,))
        for creds, salt, rows in ((bank_a, "a", 300), (bank_b, "b", 120)):
            path = _bank_extract(hub, folder / f"{salt}.parquet", salt, rows)
            with HubClient(hub.url, creds.client_id, creds.client_secret, retry=FAST) as up:
                up.upload(path, dataset="bank_alerts", contract_version=1)
        analyst = hub.services.identity.add_client(bank_a.org_id, [Role.ANALYST])
        yield Pooled(hub, analyst, bank_b)


QUESTION: dict[str, Any] = {
    "group_by": ["destination_country"],
    "measures": ["linked_units"],
    "filters": {"origin_country": "RO"},
    "cost": "1/5",
}


@pytest.fixture(scope="module")
def first(pooled: Pooled) -> QueryResult:
    with pooled.client() as client:
        return client.query("bank_alerts", **QUESTION)


def test_the_planted_overlap_shows_in_linked_units(first: QueryResult) -> None:
    assert not first.reused and first.cost.exact == Fraction(1, 5)
    assert first.charged is not None and first.charged.exact == Fraction(1, 5)
    frame = first.to_pandas().set_index("destination_country")
    assert list(frame.columns) == ["linked_units", "linked_units_low", "linked_units_high",
                                   "linked_units_distinguishable"]
    assert len(frame) == first.cells and first.cells is not None and first.cells > 100
    assert first.keys is not None and first.keys.mode == "public"  # 249 keys: the whole grid
    gb = frame.loc["GB"]
    scale = first.measure("linked_units").noise_scale
    assert scale is not None and scale <= 6
    # SHARED customers at both banks; the noise is Gaussian with this scale: 6 sigma is never
    # met in practice (probability 2e-9), and the others, with no overlap, stay near 0.
    assert abs(gb["linked_units"] - SHARED) <= 6 * scale
    assert gb["linked_units_low"] <= gb["linked_units"] <= gb["linked_units_high"]
    assert gb["linked_units_distinguishable"]  # 80 against a 95% half-width of at most 12
    assert first.top(1)[0].keys == {"destination_country": "GB"}
    assert frame["linked_units"].drop("GB").max() <= 6 * scale
    assert first.budget is not None and Fraction(first.budget.member.spent or "0") >= Fraction(
        1, 5)


def test_the_same_question_again_is_the_stored_release_at_no_cost(
    pooled: Pooled, first: QueryResult
) -> None:
    with pooled.client() as client:
        before = client.budget("bank_alerts")
        again = client.query("bank_alerts", **QUESTION)
        after = client.budget("bank_alerts")
        stored = client.release(first.query_id)
        history = client.history()
    assert again.reused and again.query_id == first.query_id and again.rows == first.rows
    assert again.charged is not None and again.charged.exact == 0
    assert before.member == after.member and before.global_ == after.global_
    assert stored.rows == first.rows and stored.reused
    (record,) = [r for r in history if r.id == first.query_id]
    assert record.status == "released" and record.cost is not None
    assert record.cost.exact == Fraction(1, 5)


def test_estimate_spends_nothing_and_reports_the_refusal_to_come(
    pooled: Pooled, first: QueryResult
) -> None:
    with pooled.client() as client:
        before = client.budget("bank_alerts")
        est = client.estimate("bank_alerts", group_by=["typology"], measures=["count"],
                              cost="1/5")
        after = client.budget("bank_alerts")
        history = client.history()
    assert before == after and all(r.dataset == "bank_alerts" for r in history)
    assert est.cells >= 5 and est.cost.exact == Fraction(1, 5)
    (m,) = est.measures
    assert m.name == "count" and m.mechanism == "discrete_gaussian" and m.halfwidth_95
    assert est.budget_after["member_left"] == str(Fraction(before.member.left or "0") -
                                                  Fraction(1, 5))


def test_budgets_and_policies_of_the_caller(pooled: Pooled, first: QueryResult) -> None:
    with pooled.client() as client:
        budgets = {b.dataset: b for b in client.budgets()}
        one = client.budget("bank_alerts")
        views = {v["dataset"]: v for v in client.policies()}
        with pytest.raises(HubRequestError) as missing:
            client.budget("no_such_dataset")
    assert budgets["bank_alerts"] == one and one.measure == "zcdp"
    assert Fraction(one.member.spent or "0") + Fraction(one.member.left or "0") == 1
    assert one.per_query == "1/5"
    rules = {r["name"] for r in views["bank_alerts"]["rules"]}
    assert rules == {"analysts-corridors"}  # the governance rule does not apply to analysts
    assert missing.value.http_status == 404


def test_refusals_name_the_rule_and_spend_nothing(pooled: Pooled, first: QueryResult) -> None:
    with pooled.client() as client:
        before = client.budget("bank_alerts")
        with pytest.raises(HubRequestError, match=r"rule: analysts-corridors:measures") as bad:
            client.query("bank_alerts", measures=["sum:subject"], cost="1/10")
        with pytest.raises(HubRequestError,
                           match=r"rule: budget:per_query.*requested: 3/10; remaining: 1/5"):
            client.query("bank_alerts", measures=["count"], cost="3/10")
        with pytest.raises(InvalidInput, match="floats are refused"):
            client.query("bank_alerts", measures=["count"], cost=0.1)  # type: ignore[arg-type]
        after = client.budget("bank_alerts")
    assert bad.value.http_status == 403
    assert before == after


def test_a_client_without_the_analyst_role_is_refused(pooled: Pooled) -> None:
    with pooled.client(pooled.partner) as client, pytest.raises(HubRequestError) as caught:
        client.history()
    assert caught.value.http_status == 403
    assert caught.value.problem_body.get("rule") == "role:analyst"
    assert "rule: role:analyst" in str(caught.value)


def test_a_ranked_route_query_puts_the_planted_corridor_first(
    pooled: Pooled, first: QueryResult
) -> None:
    question: dict[str, Any] = {"route": True, "measures": ["count_units", "linked_units"],
                                "top": 3, "by": "linked_units", "cost": "1/5"}
    with pooled.client() as client:
        before = client.budget("bank_alerts")
        est = client.estimate("bank_alerts", **question)
        assert client.budget("bank_alerts") == before
        ranked = client.query("bank_alerts", **question)
    assert est.keys is not None and est.keys.selected and est.keys.threshold
    assert est.keys.appears_95 is not None and est.keys.appears_95 > est.keys.threshold
    assert est.ranking is not None and est.ranking.by == "linked_units"
    assert est.ranking.gap_90 is not None and 0 < est.ranking.gap_90 < 50
    assert before.delta is not None and est.cost == ranked.cost
    assert ranked.cost.delta == before.delta.per_query  # keys selected: the query's delta
    assert ranked.route is not None
    assert ranked.route.stages == ["origin_country", "destination_country"]
    assert ranked.ranking is not None and ranked.ranking.k == 3
    assert ranked.keys is not None and ranked.keys.selected  # 62,001 corridors
    (top, *_) = ranked.top()
    assert top.label == "RO -> GB" and top.rank is not None and top.rank.position == 1
    scale = ranked.measure("linked_units").noise_scale
    assert scale is not None and abs((top["linked_units"].value or 0) - SHARED) <= 6 * scale
    assert top["linked_units"].distinguishable
    frame = ranked.to_pandas()
    assert list(frame.columns[:5]) == ["origin_country", "destination_country", "rank",
                                       "rank_low", "rank_high"]
    assert frame.loc[0, "rank"] == 1 and bool(frame.loc[0, "linked_units_distinguishable"])

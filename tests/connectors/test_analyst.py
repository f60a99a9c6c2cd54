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

from connectors.analyst.client import AnalystClient, QueryResult, parse_filter, parse_measure
from connectors.common.session import RetryPolicy
from connectors.partner.client import HubClient
from hub.actors import Role
from hub.errors import HubRequestError, InvalidInput, Unavailable
from hub.identity.service import Credentials
from tests.api.conftest import Hub, running_hub
from tests.api.extract_files import KEY_ID, write_extract

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
    names = ["count", "sum_amount", "quantile_50_amount"]
    assert table.column_names == ["origin_country", "typology"] + [
        f"{n}{s}" for n in names for s in ("", "_low", "_high")]
    assert table.schema.field("origin_country").type == pa.string()
    assert table.schema.field("count").type == pa.int64()
    assert table.schema.field("sum_amount_low").type == pa.float64()
    assert table.column("typology").to_pylist() == ["funnel_account", None]
    assert table.column("count_high").to_pylist() == [1279, 76]
    assert table.column("quantile_50_amount").to_pylist() == [980.0, 12.5]
    assert table.column("quantile_50_amount_low").null_count == 2  # no interval, and says so
    assert table.schema.field("count").metadata[b"mechanism"] == b"discrete_gaussian"
    described = json.loads(table.schema.metadata[b"tahub"])
    assert described["query_id"] == RECORDED["query_id"] and "rows" not in described

    frame = result.to_pandas()
    assert list(frame.columns) == table.column_names
    assert frame["count"].tolist() == [1203, 0]
    assert frame["sum_amount"].tolist() == [1.25e6, -1520.5]
    assert frame.attrs["cost"]["amount"] == "1/10" and frame.attrs["reused"] is False
    assert result.cost.exact == Fraction(1, 10) and str(result.cost) == "rho = 1/10 (~0.1)"
    assert result.budget is not None and result.budget.global_.left == "29/10"
    assert result.measure("count").noise_scale == pytest.approx(38.7)
    with pytest.raises(KeyError, match="no measure 'mean_amount'"):
        result.measure("mean_amount")


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
SHARED = 40  # customers flagged by both banks on RO -> GB


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
    contract = hub.services.registry.get("bank_alerts")
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
    assert list(frame.columns) == ["linked_units", "linked_units_low", "linked_units_high"]
    assert len(frame) == first.cells and first.cells is not None and first.cells > 100
    gb = frame.loc["GB"]
    scale = first.measure("linked_units").noise_scale
    assert scale is not None and scale <= 6
    # 40 customers at both banks; the noise is Gaussian with this scale: 6 sigma is never
    # met in practice (probability 2e-9), and the others, with no overlap, stay near 0.
    assert abs(gb["linked_units"] - SHARED) <= 6 * scale
    assert gb["linked_units_low"] <= gb["linked_units"] <= gb["linked_units_high"]
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

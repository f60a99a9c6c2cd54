"""The Python clients and the CLIs tell the hub's refusals as the hub told them.

A real hub on loopback refuses for real: a policy rule (403), a release of no one's (404), a
proposal withdrawn twice (409), a route query counting rows (422, with its field), a member
over its query rate (429, with ``retry_after``), and extracts committed without their
bounding columns (503, rule ``bounding``). Each error keeps the hub's own HTTP status, its
problem ``code`` and ``type``, ``rule``, ``field`` and ``detail``; ``tahub query`` and
``tahub policy`` print them, and the status is never the error class's default 400.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors import AnalystClient, GovernanceClient
from hub.actors import MemberKind, Role
from hub.cli.main import app
from hub.errors import HubRequestError, HubUnavailable, Unavailable
from hub.governance.policies import default_policies_dir
from hub.identity.service import Credentials
from tests.api.conftest import Hub, running_hub

QUERY_RATE = 4  # queries and estimates a minute per member, on this module's hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    folder = tmp_path_factory.mktemp("errors")
    with running_hub(folder / "hub", query_rate_limit_per_minute=QUERY_RATE) as started:
        started.pool(folder)  # two banks' bank_alerts: enough partners for the policy
        yield started


def _env(hub: Hub, creds: Credentials) -> dict[str, str]:
    return {"TAHUB_HUB_URL": hub.url, "TAHUB_CLIENT_ID": creds.client_id,
            "TAHUB_CLIENT_SECRET": creds.client_secret, "TAHUB_LOG_LEVEL": "WARNING"}


def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, " ".join(result.stderr.split())


def _kept(err: HubRequestError, status: int, code: str, rule: str | None,
          field: str | None) -> None:
    """``err`` says what the hub said: its status, code, type, rule, field and detail."""
    body: dict[str, Any] = err.problem_body
    assert body["status"] == status  # the hub's own document, untouched
    assert (err.status, err.http_status, err.problem_code) == (status, status, code)
    assert err.problem_type == body["type"] == f"urn:tahub:problem:{code}"
    assert (err.rule, err.field) == (rule, field)
    assert err.hub_detail == body["detail"] and body["detail"] in str(err)
    assert f"({status} {code})" in str(err)
    shown = err.problem()  # the connector's own problem: the hub's status and facts
    assert shown["status"] == status and shown.get("rule") == rule
    assert shown.get("field") == field


def test_a_policy_rule_refusal_keeps_403_its_code_and_rule(hub: Hub) -> None:
    analyst = hub.member("Rule Analysts", (Role.ANALYST,), MemberKind.NGO)
    with (AnalystClient(hub.url, analyst.client_id, analyst.client_secret) as client,
          pytest.raises(HubRequestError) as refused):
        client.query("bank_alerts", measures=["sum:subject"], cost="1/10")
    _kept(refused.value, 403, "forbidden", "analysts-corridors:measures", "measures.0")
    assert not isinstance(refused.value, Unavailable)
    code, err = _cli(_env(hub, analyst), "query", "run", "bank_alerts", "--measure",
                     "sum:subject", "--cost", "1/10")
    assert code == 1
    assert "the hub refused POST /v1/queries (403 forbidden): measure sum of subject" in err
    assert "[rule: analysts-corridors:measures; field: measures.0]" in err


def test_a_release_of_no_one_keeps_404(hub: Hub) -> None:
    analyst = hub.member("Lost Analysts", (Role.ANALYST,), MemberKind.NGO)
    with (AnalystClient(hub.url, analyst.client_id, analyst.client_secret) as client,
          pytest.raises(HubRequestError) as missing):
        client.release("led_nothing")
    _kept(missing.value, 404, "not_found", None, "query_id")
    code, err = _cli(_env(hub, analyst), "query", "show", "led_nothing")
    assert code == 1 and "(404 not_found): no release 'led_nothing'" in err


def test_a_proposal_withdrawn_twice_keeps_409_and_its_rule(hub: Hub) -> None:
    officer = hub.member("Officers", (Role.GOVERNANCE,), MemberKind.NGO)
    text = (default_policies_dir() / "corridor_flows.yaml").read_text()
    changed = text.replace('per_member: "1"', 'per_member: "2"', 1)
    assert changed != text
    with GovernanceClient(hub.url, officer.client_id, officer.client_secret) as client:
        proposal = client.propose(changed, note="a test")["id"]
        client.withdraw(proposal)
        with pytest.raises(HubRequestError) as conflict:
            client.withdraw(proposal)
    _kept(conflict.value, 409, "conflict", "proposal:status", None)
    code, err = _cli(_env(hub, officer), "policy", "withdraw", proposal)
    assert code == 1
    assert f"(409 conflict): proposal {proposal} is withdrawn, not pending" in err
    assert "[rule: proposal:status]" in err


def test_a_route_counting_rows_keeps_422_and_its_field(hub: Hub) -> None:
    analyst = hub.member("Route Analysts", (Role.ANALYST,), MemberKind.NGO)
    with (AnalystClient(hub.url, analyst.client_id, analyst.client_secret) as client,
          pytest.raises(HubRequestError) as invalid):
        client.query("case_records", route=True, measures=["count"], top=5, cost="1/10")
    _kept(invalid.value, 422, "invalid_input", "route:measures", "measures.0")
    code, err = _cli(_env(hub, analyst), "query", "run", "case_records", "--route",
                     "--measure", "count", "--top", "5", "--cost", "1/10")
    assert code == 1 and "(422 invalid_input): a route counts people" in err
    assert "[rule: route:measures; field: measures.0]" in err


def test_over_the_query_rate_keeps_429_its_rule_and_retry_after(hub: Hub) -> None:
    analyst = hub.member("Busy Analysts", (Role.ANALYST,), MemberKind.NGO)
    with AnalystClient(hub.url, analyst.client_id, analyst.client_secret) as client:
        for _ in range(QUERY_RATE):  # the burst the limit allows
            client.estimate("bank_alerts", cost="1/10")
        with pytest.raises(HubRequestError) as limited:
            client.estimate("bank_alerts", cost="1/10")
    err = limited.value
    _kept(err, 429, "rate_limited", "rate_limit:query", None)
    assert err.retry_after is not None and err.retry_after >= 1
    assert f"retry_after: {err.retry_after}" in str(err)
    code, out = _cli(_env(hub, analyst), "query", "estimate", "bank_alerts", "--cost", "1/10")
    assert code == 1 and "(429 rate_limited)" in out and "rule: rate_limit:query" in out


def test_a_dependency_failing_keeps_503_its_rule_and_is_unavailable(tmp_path: Path) -> None:
    with running_hub(tmp_path / "hub") as hub:
        hub.pool(tmp_path)
        for extract in hub.services.ingest.visible_extracts("bank_alerts"):
            path = hub.services.store.local_path(extract.object_key)
            table = pq.read_table(path)  # as if committed before contribution bounding
            pq.write_table(table.drop_columns(["__unit", "__seq", "__partner"]), path)
        analyst = hub.member("Analysts", (Role.ANALYST,), MemberKind.NGO)
        with (AnalystClient(hub.url, analyst.client_id, analyst.client_secret) as client,
              pytest.raises(HubUnavailable) as failed):
            client.query("bank_alerts", cost="1/10")
        code, err = _cli(_env(hub, analyst), "query", "run", "bank_alerts", "--cost", "1/20")
    _kept(failed.value, 503, "unavailable", "bounding", None)
    assert isinstance(failed.value, Unavailable)  # "try again later" handlers catch it
    assert "not sent again" in str(failed.value)  # a query spends: never sent twice
    assert code == 1 and "the hub failed while answering POST /v1/queries (503 unavailable)" \
        in err and "[rule: bounding]" in err

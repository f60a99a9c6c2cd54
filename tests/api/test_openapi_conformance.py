"""The published OpenAPI document against the real hub: schemathesis, for every kind of caller.

A hub of its own (a tmp folder, the shipped policies, its own members and data: nothing of
the session's ``hub`` fixture is spent) serves ``/openapi.json``; for each caller --
anonymous, and clients with the partner, analyst, governance, admin and reviewer roles -- every
operation of the document gets its documented examples, then generated cases that fit the
schema (positive) and cases that break it (negative), a bounded number each, plus, for the
reads, cases whose path names objects that exist (an upload, an extract, a release...) so
that real answers are checked too. Each answer must pass schemathesis' checks: no server
error, a documented status, a documented media type (problem+json for every refusal), a
body that fits the documented schema and the documented headers (``Retry-After``,
``WWW-Authenticate``). Failures are collected over the whole run and reported together.

Rate limits are raised for this hub (a run sends hundreds of requests a minute); their 429
answers are held to the document by a small hub of their own below, and their behaviour by
tests/api/test_rate_limits.py. The two ``/_test`` routes of tests/api/conftest.py, which
fail on purpose, are not the hub's and are left out. No operation is left out: upload chunks
(``PATCH /v1/uploads/{id}``) are declared as an octet stream and sent as one.

Cases are derandomised (the same cases every run): a failure here is reproducible. Set
``CONFORMANCE_EXAMPLES`` to generate more per operation (default 3 of each kind; the module
runs in about two minutes on two cores).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hub.actors import MemberKind, Role
from hub.api.app import create_app
from hub.errors import HubRequestError, RowError, TahubError, error_classes
from hub.osint.sealing import new_key
from hub.settings import Settings
from tests.api.conftest import Hub, make_error, running_hub, upload_extract
from tests.hub.extract_files import sha256_of, valid_rows, write_extract

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "3"))
CALLERS = ("anonymous", Role.PARTNER.value, Role.ANALYST.value, Role.GOVERNANCE.value,
           Role.ADMIN.value, Role.REVIEWER.value)
QUERY = {"dataset": "bank_alerts", "group_by": ["origin_country", "destination_country"],
         "measures": ["count", {"function": "sum", "field": "amount"}],
         "filters": {"period": {"from": "2025-01", "to": "2025-12"}}, "cost": "0.01"}
UNLIMITED = {name: 1_000_000 for name in (
    "rate_limit_per_minute", "query_rate_limit_per_minute", "upload_rate_limit_per_minute",
    "token_rate_limit_per_minute", "reports_per_hour")}


@dataclass
class World:
    hub: Hub
    schema: Any  # schemathesis' OpenApiSchema
    org: str  # the callers' organisation
    tokens: dict[str, str | None]
    known: dict[str, str]  # path parameter -> an object that exists (the member's own)


@dataclass
class Report:
    """What one caller's run did: cases per operation, and every distinct failure."""

    cases: dict[str, int] = field(default_factory=dict)
    failures: dict[tuple[str, str, int], str] = field(default_factory=dict)

    def record(self, case: Case, response: Any, group: FailureGroup) -> None:
        for failure in group.exceptions:
            key = (case.operation.label, failure.title, response.status_code)
            self.failures.setdefault(key, f"{failure.message}"[:600])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    base = tmp_path_factory.mktemp("conformance")
    # crowd reports accepted (a key), so that their routes answer as on a hub that takes them
    with running_hub(base / "data", **UNLIMITED, reports_keys=new_key()) as hub:
        hub.pool(base, banks=2, name="Conformance Pool")  # min_partners of bank_alerts
        identity = hub.services.identity
        first = identity.register_member("Conformance", MemberKind.BANK, (Role.PARTNER,))
        tokens: dict[str, str | None] = {"anonymous": None, "partner": hub.token(first)}
        for role in (Role.ANALYST, Role.GOVERNANCE, Role.ADMIN, Role.REVIEWER):
            tokens[role.value] = hub.token(identity.add_client(first.org_id, (role,)))
        known = _objects(hub, base, tokens)
        schema = schemathesis.openapi.from_url(f"{hub.url}/openapi.json")
        yield World(hub, schema, first.org_id, tokens, known)


def _objects(hub: Hub, base: Path, tokens: dict[str, str | None]) -> dict[str, str]:
    """An extract and an open upload of the partner, a release of the analyst, published by
    the governance officer: the ids the reads are also asked about."""
    contract = hub.services.registry.get("bank_alerts", 1)
    path = write_extract(base / "own.parquet", contract, valid_rows(contract, 20, seed=5))
    with hub.client() as http:
        http.headers["Authorization"] = f"Bearer {tokens['partner']}"
        upload_extract(http, path, contract)
        (extract,) = http.get("/v1/extracts").json()
        started = http.post("/v1/uploads", json={
            "dataset": "bank_alerts", "contract_version": 1, "size": 10, "sha256": "2" * 64})
        assert started.status_code == 201, started.text
        http.headers["Authorization"] = f"Bearer {tokens['analyst']}"
        query = http.post("/v1/queries", json=QUERY)
        assert query.status_code == 200, query.text
        http.headers["Authorization"] = f"Bearer {tokens['governance']}"
        published = http.post("/v1/releases", json={
            "query_id": query.json()["query_id"], "audience": "all", "title": "Corridors"})
        assert published.status_code == 201, published.text
        versions = http.get("/v1/governance/policies").json()
    return {"dataset": "bank_alerts", "version": "1", "number": str(versions[0]["version"]),
            "upload_id": started.json()["id"], "extract_id": extract["id"],
            "query_id": query.json()["query_id"], "release_id": published.json()["id"],
            "proposal_id": versions[0]["id"]}


def _operations(world: World) -> list[Any]:
    found = [result.ok() for result in world.schema.get_all_operations()]
    return [op for op in found if not op.path.startswith("/_test")]


def _run(strategy: Any, limit: int, attempt: Callable[[Case], None]) -> None:
    @settings(max_examples=limit, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Case) -> None:
        attempt(case)

    with contextlib.suppress(Unsatisfiable):  # nothing to negate: no parameters
        run()


def _strategies(world: World, op: Any) -> list[tuple[Any, int]]:
    """The documented examples, positive and negative cases, and for reads the known ids."""
    out: list[tuple[Any, int]] = []
    examples = world.schema.get_strategies_from_examples(op)
    if examples:
        out.append((st.one_of(examples), EXAMPLES))
    out.append((op.as_strategy(generation_mode=GenerationMode.POSITIVE), EXAMPLES))
    out.append((op.as_strategy(generation_mode=GenerationMode.NEGATIVE), EXAMPLES))
    names = {p.name for p in op.path_parameters}
    if op.method.upper() == "GET" and names and names <= set(world.known):
        known = {name: world.known[name] for name in names}
        out.append((op.as_strategy(generation_mode=GenerationMode.POSITIVE,
                                   path_parameters=known), max(EXAMPLES // 2, 1)))
    return out


def _conformance(world: World, who: str) -> Report:
    token = world.tokens[who]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    report = Report()
    with requests.Session() as session:
        for op in _operations(world):

            def attempt(case: Case, op: Any = op) -> None:
                report.cases[op.label] = report.cases.get(op.label, 0) + 1
                response = case.call(base_url=world.hub.url, session=session,
                                     headers=headers, timeout=60)
                try:
                    case.validate_response(response, checks=CHECKS, headers=headers)
                except FailureGroup as group:
                    report.record(case, response, group)

            for strategy, limit in _strategies(world, op):
                _run(strategy, limit, attempt)
    return report


@pytest.mark.parametrize("who", CALLERS)
def test_every_answer_is_the_documented_one(world: World, who: str) -> None:
    report = _conformance(world, who)
    operations = len(_operations(world))
    assert len(report.cases) == operations, sorted(report.cases)
    print(f"{who}: {operations} operations, {sum(report.cases.values())} cases")
    lines = [f"{label} -> {status}: {title}\n    {message}"
             for (label, title, status), message in sorted(report.failures.items())]
    assert not lines, f"{len(lines)} mismatches for {who}:\n" + "\n".join(lines[:40])


def _answer(world: World, who: str, method: str, template: str, status: int,
            **case: Any) -> Any:
    """One request built by schemathesis from the document, its answer held to it."""
    token = world.tokens[who]
    headers = {**case.pop("headers", {}), **({"Authorization": f"Bearer {token}"}
                                              if token else {})}
    made = world.schema[template][method].Case(headers=headers, **case)
    response = made.call(base_url=world.hub.url, timeout=60)
    made.validate_response(response, checks=CHECKS, headers=headers)
    assert response.status_code == status, (method, template, response.text)
    return response


def test_the_success_answers_are_the_documented_ones(world: World, tmp_path: Path) -> None:
    """Generated cases seldom get past validation: every write is driven to success here, in
    each of its documented variants, and held to the document (after the runs above: it
    changes the world, withdrawing and approving)."""
    contract = world.hub.services.registry.get("bank_alerts", 1)
    path = write_extract(tmp_path / "x.parquet", contract, valid_rows(contract, 15, seed=11))
    data = path.read_bytes()
    start = {"dataset": "bank_alerts", "contract_version": 1, "size": len(data),
             "sha256": sha256_of(path)}
    upload = _answer(world, "partner", "POST", "/v1/uploads", 201, body=start).json()
    offset = 0
    while offset < len(data):
        chunk = data[offset:offset + upload["chunk_bytes"]]
        offset = _answer(world, "partner", "PATCH", "/v1/uploads/{upload_id}", 200,
                         path_parameters={"upload_id": upload["id"]}, body=chunk,
                         media_type="application/octet-stream",
                         headers={"Upload-Offset": str(offset)}).json()["offset"]
    extract = _answer(world, "partner", "POST", "/v1/uploads/{upload_id}/commit", 201,
                      path_parameters={"upload_id": upload["id"]}).json()
    assert _answer(world, "partner", "POST", "/v1/uploads", 200, body=start).json()["duplicate"]
    other = _answer(world, "partner", "POST", "/v1/uploads", 201,
                    body={**start, "size": 10, "sha256": "3" * 64}).json()
    _answer(world, "partner", "DELETE", "/v1/uploads/{upload_id}", 204,
            path_parameters={"upload_id": other["id"]})
    _answer(world, "partner", "DELETE", "/v1/extracts/{extract_id}", 200,
            path_parameters={"extract_id": extract["id"]})

    _answer(world, "analyst", "POST", "/v1/queries", 200, body=QUERY)  # reused, free
    publish = {"query_id": world.known["query_id"], "audience": "all", "title": "Corridors"}
    for title in ("Corridors", "Corridors 2025"):  # unchanged, then updated
        _answer(world, "governance", "POST", "/v1/releases", 200,
                body={**publish, "title": title})
    _answer(world, "governance", "DELETE", "/v1/releases/{release_id}", 204,
            path_parameters={"release_id": world.known["release_id"]})

    second = world.hub.token(world.hub.services.identity.add_client(
        world.org, (Role.GOVERNANCE,)))
    world.tokens["second officer"] = second
    (active, *_) = _answer(world, "governance", "GET", "/v1/governance/policies", 200).json()
    proposals = "/v1/governance/proposals"
    decided = proposals + "/{proposal_id}/{decision}"

    def propose(n: int, status: int = 201, **extra: Any) -> dict[str, Any]:
        text = f"{active['yaml']}\n# conformance {n}\n"
        body = {"yaml": text, "note": f"change {n}", **extra}
        proposed: dict[str, Any] = _answer(world, "governance", "POST", proposals, status,
                                           body=body).json()
        return proposed

    _answer(world, "governance", "POST", proposals, 200, body={
        "yaml": f"{active['yaml']}\n# dry\n", "dry_run": True})
    first = propose(1)
    assert propose(1, 200)["outcome"] == "existing"
    _answer(world, "second officer", "POST", decided.replace("{decision}", "reject"), 200,
            path_parameters={"proposal_id": first["id"]}, body={"reason": "not now"})
    withdrawn = propose(2)
    _answer(world, "governance", "POST", decided.replace("{decision}", "withdraw"), 200,
            path_parameters={"proposal_id": withdrawn["id"]})
    auth = {"Authorization": f"Bearer {world.tokens['governance']}"}
    sent = requests.post(  # a named file part, which schemathesis does not send
        world.hub.url + proposals + "/file", headers=auth, data={"note": "from a file"},
        files={"file": ("bank_alerts.yaml", f"{active['yaml']}\n# filed\n")}, timeout=60)
    world.schema[proposals + "/file"]["POST"].Case(headers=auth).validate_response(
        sent, checks=CHECKS, headers=auth)
    assert sent.status_code == 201, sent.text
    filed = sent.json()
    _answer(world, "second officer", "POST", decided.replace("{decision}", "approve"), 200,
            path_parameters={"proposal_id": filed["id"]}, body={"note": "checked"})


def test_rate_limited_answers_are_the_documented_ones(tmp_path: Path) -> None:
    """The run above raises the limits; here a member's route and the token endpoint go
    over theirs, and the 429 (problem+json, Retry-After) is held to the document."""
    with running_hub(tmp_path / "data", rate_limit_per_minute=1,
                     token_rate_limit_per_minute=2) as hub:
        schema = schemathesis.openapi.from_url(f"{hub.url}/openapi.json")
        auth = {"Authorization": f"Bearer {hub.token(hub.member('Limited Bank'))}"}
        me = schema["/v1/me"]["GET"].Case(headers=auth)
        token = schema["/oauth/token"]["POST"].Case(
            body={"grant_type": "client_credentials"},
            media_type="application/x-www-form-urlencoded")
        for case, case_headers in ((me, auth), (token, {})):
            answers = [case.call(base_url=hub.url) for _ in range(2)]
            assert answers[-1].status_code == 429, answers[-1].text
            for answer in answers:
                case.validate_response(answer, checks=CHECKS, headers=case_headers)


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The document of an app that is never started (create_app opens nothing)."""
    app = create_app(Settings(data_dir=tmp_path_factory.mktemp("document")))
    return app.openapi()


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_the_problem_schema_holds_every_error_class(document: dict[str, Any],
                                                    cls: type[TahubError]) -> None:
    problems = [make_error(cls).problem()]
    if not issubclass(cls, HubRequestError):  # the connector's, built from a hub's answer
        problems.append(cls("refused", field="rows", errors=[
            RowError("amount", "too big", row=2), RowError(None, "unreadable", line=3)],
            rule="budget:member", requested="1/10", remaining="0", retry_after=3).problem())
    for problem in problems:
        answer = {**problem, "instance": "/v1/x", "request_id": "r1"}
        errors = list(_validator(document, "Problem").iter_errors(answer))
        assert not errors, (cls.__name__, [e.message for e in errors])


def _validator(document: dict[str, Any], name: str) -> Draft202012Validator:
    schema = {**document["components"]["schemas"][name], "components": document["components"]}
    return Draft202012Validator(schema)


def test_the_document_declares_problem_json_and_no_default_validation_error(
    document: dict[str, Any],
) -> None:
    assert "HTTPValidationError" not in str(document)
    refusals = [(path, method, status, response)
                for path, ops in document["paths"].items() for method, op in ops.items()
                for status, response in op["responses"].items() if status.startswith("4")]
    assert refusals
    for path, method, status, response in refusals:
        if path.startswith(("/oauth/authorize", "/oauth/federated", "/oauth/token")):
            continue  # RFC 6749 JSON errors and sign-in pages
        assert list(response["content"]) == ["application/problem+json"], (path, method, status)

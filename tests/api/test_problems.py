"""One error shape: every TahubError, validation failure and bug becomes problem+json."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.errors import TahubError, error_classes
from tests.api.conftest import Hub, make_error

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
SHAPE = {"type", "title", "status", "detail", "code", "instance", "request_id"}


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_is_mapped_to_its_problem(hub: Hub, cls: type[TahubError]) -> None:
    with hub.client() as http:
        resp = http.get(f"/_test/raise/{cls.__name__}")
    expected = make_error(cls)
    assert resp.status_code == expected.status
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert set(body) >= SHAPE
    assert (body["code"], body["status"], body["title"]) == (cls.code, cls.status, cls.title)
    assert body["type"] == f"urn:tahub:problem:{cls.code}"
    assert body["detail"] == expected.detail
    assert body["instance"] == f"/_test/raise/{cls.__name__}"
    assert body["request_id"] == resp.headers["x-request-id"]
    assert ("www-authenticate" in resp.headers) == (cls.status == 401)


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_code_is_documented(cls: type[TahubError]) -> None:
    doc = (ROOT / "docs" / "errors.md").read_text()
    row = re.search(rf"^\| `{cls.code}` \| (\d+) \| `{cls.__name__}` \|", doc, re.MULTILINE)
    assert row is not None, f"docs/errors.md has no row for {cls.__name__} ({cls.code})"
    assert int(row.group(1)) == cls.status


def test_a_bug_answers_500_without_its_text_and_logs_it_under_the_request_id(
    hub: Hub, capsys: pytest.CaptureFixture[str]
) -> None:
    with hub.client() as http:
        resp = http.get("/_test/crash", headers={"X-Request-ID": "trace-me-42"})
    assert resp.status_code == 500
    assert resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["code"] == "internal_error" and body["request_id"] == "trace-me-42"
    assert resp.headers["x-request-id"] == "trace-me-42"
    assert "hunter2" not in resp.text and "RuntimeError" not in resp.text
    logged = capsys.readouterr().err
    assert "trace-me-42" in logged and "RuntimeError" in logged


def test_request_ids_are_generated_and_insane_ones_replaced(hub: Hub) -> None:
    with hub.client() as http:
        fresh = http.get("/health")
        injected = http.get("/health", headers={"X-Request-ID": "bad id\u2028; rm -rf".encode()})
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    assert re.fullmatch(r"[0-9a-f]{32}", injected.headers["x-request-id"])
    assert {k: fresh.json()[k] for k in ("status", "version")} == {
        "status": "ok", "version": "0.1.0"
    }


def test_request_validation_is_a_422_problem_naming_each_field(hub: Hub) -> None:
    creds = hub.member("Validation Bank")
    with hub.authed(creds) as http:
        resp = http.post("/v1/uploads", json={"dataset": ["x"], "size": "DE893704"})
        not_json = http.post(
            "/v1/uploads", content=b"{nope", headers={"Content-Type": "application/json"}
        )
    assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
    body = resp.json()
    assert body["code"] == "invalid_input" and body["field"] == "dataset"
    fields = {e["field"] for e in body["errors"]}
    assert {"dataset", "size", "contract_version", "sha256"} <= fields
    assert all(set(e) == {"field", "reason"} for e in body["errors"])
    assert "DE893704" not in resp.text  # the input is never echoed
    assert (not_json.status_code, not_json.json()["code"]) == (422, "invalid_input")


def test_unknown_routes_and_methods_are_problems(hub: Hub) -> None:
    with hub.client() as http:
        missing = http.get("/v2/nothing")
        wrong = http.put("/health")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert missing.headers["content-type"] == PROBLEM
    assert (wrong.status_code, wrong.json()["code"]) == (405, "method_not_allowed")
    assert wrong.headers["content-type"] == PROBLEM


def test_contracts_are_served_to_authenticated_callers(hub: Hub) -> None:
    creds = hub.member("Contracts Bank")
    with hub.authed(creds) as http:
        listed = http.get("/v1/contracts").json()
        one = http.get("/v1/contracts/bank_alerts/1").json()
        unknown = http.get("/v1/contracts/bank_alerts/99")
    assert {"dataset": "bank_alerts", "version": 1, "title": one["title"]} in listed
    assert [(c["dataset"], c["version"]) for c in listed] == sorted(
        (c.dataset, c.version) for c in hub.services.registry
    )
    assert one["dataset"] == "bank_alerts" and one["fields"][0]["name"] == "subject"
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_dataset")
    assert unknown.json()["field"] == "contract_version"
    with hub.client() as anonymous:
        assert anonymous.get("/v1/contracts").status_code == 401


def test_the_openapi_document_lists_the_ingest_routes(hub: Hub) -> None:
    with hub.client() as http:
        paths = http.get("/openapi.json").json()["paths"]
    expected = {
        "/health": {"get"},
        "/oauth/token": {"post"},
        "/v1/me": {"get"},
        "/v1/contracts": {"get"},
        "/v1/contracts/{dataset}/{version}": {"get"},
        "/v1/uploads": {"post"},
        "/v1/uploads/{upload_id}": {"get", "patch", "delete"},
        "/v1/uploads/{upload_id}/commit": {"post"},
        "/v1/extracts": {"get"},
        "/v1/extracts/{extract_id}": {"get", "delete"},
    }
    for path, methods in expected.items():
        assert set(paths[path]) == methods, path

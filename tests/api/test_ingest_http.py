"""The ingest API over real HTTP: real Parquet files, chunked uploads, commit, withdraw."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from hub.actors import Role
from hub.contracts.model import Contract
from hub.storage.db import audit_entries
from tests.api.conftest import CHUNK_BYTES, Hub
from tests.api.extract_files import KEY_ID, sha256_of, write_extract
from tests.hub.extract_files import write_bomb

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def alerts(hub: Hub) -> Contract:
    return hub.services.registry.get("bank_alerts", 1)


def _start(http: httpx.Client, path: Path, contract: Contract) -> httpx.Response:
    return http.post(
        "/v1/uploads",
        json={
            "dataset": contract.dataset,
            "contract_version": contract.version,
            "size": path.stat().st_size,
            "sha256": sha256_of(path),
            "filename": path.name,
        },
    )


def _send(http: httpx.Client, upload: dict[str, Any], path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    offset = upload["offset"]
    while offset < len(data):
        chunk = data[offset : offset + upload["chunk_bytes"]]
        resp = http.patch(
            f"/v1/uploads/{upload['id']}",
            content=chunk,
            headers={"Upload-Offset": str(offset), "Content-Type": "application/octet-stream"},
        )
        assert resp.status_code == 200, resp.text
        upload = resp.json()
        offset = upload["offset"]
    return upload


def _upload(http: httpx.Client, path: Path, contract: Contract) -> httpx.Response:
    started = _start(http, path, contract)
    assert started.status_code == 201, started.text
    _send(http, started.json(), path)
    return http.post(f"/v1/uploads/{started.json()['id']}/commit")


def test_multi_chunk_upload_commit_list_and_withdraw(
    hub: Hub, alerts: Contract, tmp_path: Path
) -> None:
    creds = hub.member("Flow Bank")
    path = write_extract(tmp_path / "alerts.parquet", alerts, 5000, salt="flow")
    assert path.stat().st_size > 2 * CHUNK_BYTES  # really several chunks
    with hub.authed(creds) as http:
        started = _start(http, path, alerts)
        assert started.status_code == 201
        upload = started.json()
        assert upload["status"] == "receiving" and upload["offset"] == 0
        assert upload["chunk_bytes"] == CHUNK_BYTES and upload["size"] == path.stat().st_size
        assert http.get("/v1/extracts").json() == []

        sent = _send(http, upload, path)
        assert sent["offset"] == path.stat().st_size
        assert http.get(f"/v1/uploads/{upload['id']}").json()["offset"] == sent["offset"]
        assert http.get("/v1/extracts").json() == []  # nothing visible before the commit

        committed = http.post(f"/v1/uploads/{upload['id']}/commit")
        assert committed.status_code == 201, committed.text
        extract = committed.json()
        assert extract["id"].startswith("ext_")
        assert (extract["partner"], extract["dataset"], extract["contract_version"]) == (
            creds.org_id, "bank_alerts", 1,
        )
        assert (extract["rows"], extract["key_id"], extract["status"]) == (5000, KEY_ID, "visible")
        assert extract["sha256"] == sha256_of(path) and extract["withdrawn_at"] is None

        assert [e["id"] for e in http.get("/v1/extracts").json()] == [extract["id"]]
        assert http.get("/v1/extracts", params={"dataset": "case_records"}).json() == []
        assert http.get(f"/v1/extracts/{extract['id']}").json() == extract
        visible = hub.services.ingest.visible_extracts("bank_alerts")
        assert extract["id"] in {v.id for v in visible}

        withdrawn = http.delete(f"/v1/extracts/{extract['id']}")
        assert withdrawn.status_code == 200
        assert withdrawn.json()["status"] == "withdrawn" and withdrawn.json()["withdrawn_at"]
        assert http.get("/v1/extracts").json() == []
        listed = http.get("/v1/extracts", params={"include_withdrawn": "true"}).json()
        assert [e["status"] for e in listed] == ["withdrawn"]
        again = http.delete(f"/v1/extracts/{extract['id']}")
        assert again.status_code == 200 and again.json() == withdrawn.json()
        assert extract["id"] not in {
            v.id for v in hub.services.ingest.visible_extracts("bank_alerts")
        }


def test_the_same_content_twice_is_a_duplicate(hub: Hub, alerts: Contract, tmp_path: Path) -> None:
    creds = hub.member("Twice Bank")
    path = write_extract(tmp_path / "a.parquet", alerts, 20, salt="twice")
    with hub.authed(creds) as http:
        first = _upload(http, path, alerts)
        assert first.status_code == 201
        again = _start(http, path, alerts)
        assert again.status_code == 200
        assert again.json() == {"duplicate": True, "extract": first.json()}
        assert len(http.get("/v1/extracts").json()) == 1


def test_an_unfinished_upload_resumes_and_offsets_are_enforced(
    hub: Hub, alerts: Contract, tmp_path: Path
) -> None:
    creds = hub.member("Resume Bank")
    path = write_extract(tmp_path / "a.parquet", alerts, 2000, salt="resume")
    data = path.read_bytes()
    with hub.authed(creds) as http:
        upload = _start(http, path, alerts).json()
        first = http.patch(
            f"/v1/uploads/{upload['id']}",
            content=data[:1000],
            headers={"Upload-Offset": "0"},
        )
        assert first.json()["offset"] == 1000

        resumed = _start(http, path, alerts)
        assert resumed.status_code == 200
        assert (resumed.json()["id"], resumed.json()["offset"]) == (upload["id"], 1000)

        wrong = http.patch(
            f"/v1/uploads/{upload['id']}", content=data[:10], headers={"Upload-Offset": "0"}
        )
        assert wrong.status_code == 409
        assert wrong.headers["content-type"] == PROBLEM
        assert (wrong.json()["code"], wrong.json()["offset"]) == ("conflict", 1000)

        early = http.post(f"/v1/uploads/{upload['id']}/commit")
        assert (early.status_code, early.json()["offset"]) == (409, 1000)

        missing_header = http.patch(f"/v1/uploads/{upload['id']}", content=b"x")
        assert missing_header.status_code == 422
        assert missing_header.json()["field"] == "Upload-Offset"

        assert http.delete(f"/v1/uploads/{upload['id']}").status_code == 204
        gone = http.patch(
            f"/v1/uploads/{upload['id']}",
            content=data[1000:1010],
            headers={"Upload-Offset": "1000"},
        )
        assert gone.status_code == 409


def test_another_partners_objects_answer_exactly_like_missing_ones(
    hub: Hub, alerts: Contract, tmp_path: Path
) -> None:
    a, b = hub.member("Owner Bank"), hub.member("Curious Bank")
    path = write_extract(tmp_path / "a.parquet", alerts, 10, salt="owner")
    with hub.authed(a) as http_a:
        extract = _upload(http_a, path, alerts).json()
        pending = _start(http_a, write_extract(tmp_path / "b.parquet", alerts, 5), alerts).json()
    with hub.authed(b) as http_b:
        for method, url in [
            ("GET", f"/v1/uploads/{pending['id']}"),
            ("POST", f"/v1/uploads/{pending['id']}/commit"),
            ("DELETE", f"/v1/uploads/{pending['id']}"),
            ("GET", f"/v1/extracts/{extract['id']}"),
            ("DELETE", f"/v1/extracts/{extract['id']}"),
        ]:
            foreign = http_b.request(method, url)
            missing = http_b.request(method, url.replace(pending["id"], "upl_missing").replace(
                extract["id"], "ext_missing"
            ))
            assert foreign.status_code == missing.status_code == 404, (method, url)
            assert foreign.json()["code"] == missing.json()["code"] == "not_found"
            assert foreign.json()["title"] == missing.json()["title"]
        assert http_b.get("/v1/extracts").json() == []
    with hub.authed(a) as http_a:
        assert http_a.get(f"/v1/extracts/{extract['id']}").json()["status"] == "visible"


def test_an_invalid_extract_lists_row_errors_and_stores_nothing(
    hub: Hub, alerts: Contract, tmp_path: Path
) -> None:
    creds = hub.member("Sloppy Bank")
    path = write_extract(
        tmp_path / "bad.parquet",
        alerts,
        30,
        salt="bad",
        override={2: {"indicator": "not_an_indicator"}, 7: {"subject": "DE89370400440532013000"}},
    )
    with hub.authed(creds) as http:
        resp = _upload(http, path, alerts)
        assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
        body = resp.json()
        assert body["code"] == "extract_invalid" and body["total_errors"] >= 2
        where = {(e["row"], e["field"]) for e in body["errors"]}
        assert {(3, "indicator"), (8, "subject")} <= where
        assert "DE89370400440532013000" not in resp.text  # identifiers are never echoed
        assert http.get("/v1/extracts").json() == []


def test_start_refusals(hub: Hub, alerts: Contract, tmp_path: Path) -> None:
    creds = hub.member("Refused Bank")
    good = {"dataset": "bank_alerts", "contract_version": 1, "size": 10, "sha256": "a" * 64}
    with hub.authed(creds) as http:
        unknown = http.post("/v1/uploads", json={**good, "dataset": "no_such"})
        assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_dataset")
        assert unknown.json()["field"] == "dataset"
        empty = http.post("/v1/uploads", json={**good, "size": 0})
        assert (empty.status_code, empty.json()["code"]) == (422, "extract_empty")
        big = http.post("/v1/uploads", json={**good, "size": hub.settings.max_extract_bytes + 1})
        assert (big.status_code, big.json()["code"], big.json()["field"]) == (
            413, "too_large", "size",
        )
        bad_sha = http.post("/v1/uploads", json={**good, "sha256": "xyz"})
        assert (bad_sha.status_code, bad_sha.json()["field"]) == (422, "sha256")
        extra = http.post("/v1/uploads", json={**good, "subject_name": "x"})
        assert (extra.status_code, extra.json()["field"]) == (422, "subject_name")


def test_chunks_over_the_limit_are_refused_with_413(hub: Hub, alerts: Contract) -> None:
    creds = hub.member("Greedy Bank")
    size = 3 * CHUNK_BYTES
    with hub.authed(creds) as http:
        upload = http.post(
            "/v1/uploads",
            json={"dataset": "bank_alerts", "contract_version": 1, "size": size,
                  "sha256": "b" * 64},
        ).json()
        url = f"/v1/uploads/{upload['id']}"
        declared = http.patch(url, content=b"x" * (CHUNK_BYTES + 1), headers={"Upload-Offset": "0"})
        assert (declared.status_code, declared.json()["code"]) == (413, "too_large")
        assert declared.json()["chunk_bytes"] == CHUNK_BYTES

        def stream() -> Any:  # no Content-Length: the hub counts while it reads
            for _ in range(4):
                yield b"y" * (CHUNK_BYTES // 2)

        streamed = http.patch(url, content=stream(), headers={"Upload-Offset": "0"})
        assert (streamed.status_code, streamed.json()["code"]) == (413, "too_large")
        assert http.get(url).json()["offset"] == 0  # nothing of either was kept


def test_a_client_without_the_partner_role_cannot_upload(hub: Hub) -> None:
    analyst = hub.member("Analyst Org", roles=(Role.ANALYST,))
    with hub.authed(analyst) as http:
        for resp in (
            http.post("/v1/uploads", json={"dataset": "bank_alerts", "contract_version": 1,
                                           "size": 10, "sha256": "c" * 64}),
            http.get("/v1/extracts"),
        ):
            assert resp.status_code == 403
            assert resp.json()["code"] == "forbidden"
            assert resp.json()["rule"] == "role:partner"
            assert "www-authenticate" not in resp.headers


def test_a_decompression_bomb_is_refused_and_a_member_may_be_given_its_own_limits(
    hub: Hub, alerts: Contract, tmp_path: Path
) -> None:
    creds = hub.member("Bomb Bank")
    bomb = write_bomb(tmp_path / "bomb.parquet", alerts, 5_000_000)  # ~200 KB
    with hub.authed(creds) as http:
        for _ in range(2):  # sent again: the same answer, nothing to retry
            resp = _upload(http, bomb, alerts)
            assert resp.status_code == 422 and resp.headers["content-type"] == PROBLEM
            body = resp.json()
            assert (body["code"], body["rule"]) == ("extract_over_limit", "max_decoded_ratio")
            assert "Retry-After" not in resp.headers
        assert http.get("/v1/extracts").json() == []
        # a member whose exports really are this repetitive gets its own ratio
        small = write_bomb(tmp_path / "small.parquet", alerts, 200_000)
        assert _upload(http, small, alerts).json()["rule"] == "max_decoded_ratio"
        identity = hub.services.identity
        identity.set_extract_limits(creds.org_id, {"max_decoded_ratio": 100_000}, actor="test")
        assert _upload(http, small, alerts).status_code == 201
        assert [e["rows"] for e in http.get("/v1/extracts").json()] == [200_000]
        assert identity.set_extract_limits(creds.org_id, {"max_decoded_ratio": None}) == {
            "max_extract_rows": None, "max_decoded_bytes": None, "max_decoded_ratio": None}
    audit = hub.services.ingest.audit
    events = [e for e in audit.scan(audit_entries.c.action == "member.limits_set")
              if e.object_id == creds.org_id]
    assert [e.details["max_decoded_ratio"] for e in events] == [100_000, None]

"""Work that does not fit the hub's configured limits: a 507 naming the setting to raise,
never "retry later", and nothing lost (a real hub on loopback, a real extract, DuckDB's real
memory limit)."""

from __future__ import annotations

from pathlib import Path

from hub.actors import MemberKind, Role
from tests.api.conftest import running_hub
from tests.hub.extract_files import sha256_of, valid_rows, write_extract

PROBLEM = "application/problem+json"


def test_a_commit_over_the_memory_limit_is_a_507_and_commits_once_the_limit_is_raised(
        tmp_path: Path) -> None:
    data = tmp_path / "data"
    with running_hub(data, duckdb_memory_limit="4MB") as hub:
        contract = hub.services.registry.get("bank_alerts", 1)
        path = write_extract(tmp_path / "alerts.parquet", contract, valid_rows(contract, 50_000))
        creds = hub.member("Big Bank", (Role.PARTNER,), MemberKind.BANK)
        with hub.authed(creds) as http:
            started = http.post("/v1/uploads", json={
                "dataset": "bank_alerts", "contract_version": 1,
                "size": path.stat().st_size, "sha256": sha256_of(path), "transfer": "chunks"})
            upload = started.json()
            offset, raw = upload["offset"], path.read_bytes()
            while offset < len(raw):
                offset = http.patch(f"/v1/uploads/{upload['id']}",
                                    content=raw[offset:offset + upload["chunk_bytes"]],
                                    headers={"Upload-Offset": str(offset),
                                             "Content-Type": "application/octet-stream"}
                                    ).json()["offset"]
            refused = http.post(f"/v1/uploads/{upload['id']}/commit")
            assert refused.status_code == 507, refused.text
            assert refused.headers["content-type"] == PROBLEM
            problem = refused.json()
            assert problem["code"] == "out_of_capacity"
            assert problem["setting"] == "TAHUB_DUCKDB_MEMORY_LIMIT"
            assert problem["limit"] == "4MB" and "retry later" not in problem["detail"]
            assert http.get("/v1/extracts").json() == []  # nothing committed
            kept = http.get(f"/v1/uploads/{upload['id']}")
            assert kept.status_code == 200 and kept.json()["status"] != "rejected"
    # the operator raised it: the same upload commits
    with running_hub(data, duckdb_memory_limit="512MB") as hub, hub.authed(creds) as http:
        committed = http.post(f"/v1/uploads/{upload['id']}/commit")
        assert committed.status_code == 201, committed.text
        (extract,) = http.get("/v1/extracts").json()
        assert extract["rows"] == 50_000


def test_a_query_over_the_memory_limit_is_a_507_naming_the_setting(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "extracts").mkdir()
    with running_hub(data) as hub:
        hub.pool(tmp_path / "extracts", banks=2, rows=2_000)
        analyst = hub.member("Analysts", (Role.ANALYST,), MemberKind.OTHER)
    with running_hub(data, duckdb_memory_limit="1MB") as hub, hub.authed(analyst) as http:
        refused = http.post("/v1/queries", json={
            "dataset": "bank_alerts", "group_by": ["origin_country"], "measures": ["count"],
            "cost": "1/10"})
        assert refused.status_code == 507, refused.text
        problem = refused.json()
        assert problem["code"] == "out_of_capacity"
        assert problem["setting"] == "TAHUB_DUCKDB_MEMORY_LIMIT" and problem["limit"] == "1MB"
        assert "stays spent" in problem["detail"] and problem["query_id"]

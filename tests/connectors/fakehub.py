"""An in-memory hub speaking docs/ingest-api.md, served through ``httpx.MockTransport``.

It keeps the protocol's state faithfully (upload offsets, 409 with the current offset,
chunk and size limits, sha256 check on commit, duplicates by content, ownership of tokens)
so that the client's retry and resume logic is tested against the rules, not against a
script. Failures are injected per route: a refused connection, a 5xx, or a *lost
response* (the hub applies the request, then the connection drops before the answer).
"""

from __future__ import annotations

import base64
import hashlib
import io
import itertools
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pyarrow.parquet as pq

CLIENT_ID, CLIENT_SECRET = "cli_test", "s3cret-s3cret"
ORG = "org_test"


@dataclass
class Failure:
    method: str
    path_part: str
    kind: str  # "connect" | "503" | "lost" (of the next successful answers) | "expire"
    times: int


@dataclass
class FakeHub:
    chunk_bytes: int = 1024
    token_ttl: int = 900
    datasets: frozenset[tuple[str, int]] = frozenset(
        {("corridor_flows", 1), ("bank_alerts", 1), ("case_records", 1), ("case_records", 2)}
    )
    uploads: dict[str, dict[str, Any]] = field(default_factory=dict)
    extracts: dict[str, dict[str, Any]] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)
    log: list[tuple[str, str, int]] = field(default_factory=list)
    token_requests: int = 0
    failures: list[Failure] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def url(self) -> str:
        return "https://hub.test"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def fail(self, method: str, path_part: str, kind: str, times: int = 1) -> None:
        self.failures.append(Failure(method, path_part, kind, times))

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def calls(self, method: str, path_part: str = "", *, exact: bool = False) -> list[int]:
        """Statuses answered to ``method`` requests whose path contains (or is) ``path_part``."""
        return [
            s
            for m, p, s in self.log
            if m == method and (p == path_part if exact else path_part in p)
        ]

    # -- dispatch -------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        failure = next(
            (
                f
                for f in self.failures
                if f.times > 0 and f.method == method and f.path_part in path
            ),
            None,
        )
        if failure is not None and failure.kind != "lost":
            failure.times -= 1
            if failure.kind == "connect":
                raise httpx.ConnectError("connection refused", request=request)
            if failure.kind == "503":
                self.log.append((method, path, 503))
                return httpx.Response(503, text="<html>maintenance</html>")
            if failure.kind == "expire":
                self.uploads.clear()
        response = self._route(request)
        self.log.append((method, path, response.status_code))
        if failure is not None and failure.kind == "lost" and response.status_code < 400:
            failure.times -= 1  # the hub did the work; the answer never arrives
            raise httpx.ReadTimeout("response lost", request=request)
        return response

    def _route(self, request: httpx.Request) -> httpx.Response:
        method, parts = request.method, request.url.path.strip("/").split("/")
        if parts == ["oauth", "token"] and method == "POST":
            return self._token(request)
        if parts == ["health"]:
            return httpx.Response(200, json={"status": "ok", "version": "0.1.0"})
        if not self._authorised(request):
            return _problem(
                401,
                "unauthenticated",
                "missing or expired token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        match (method, parts):
            case ("GET", ["v1", "me"]):
                return httpx.Response(
                    200,
                    json={
                        "client_id": CLIENT_ID,
                        "org": ORG,
                        "org_name": "Test Bank",
                        "roles": ["partner"],
                    },
                )
            case ("GET", ["v1", "contracts"]):
                return httpx.Response(
                    200,
                    json=[
                        {"dataset": d, "version": v, "title": d} for d, v in sorted(self.datasets)
                    ],
                )
            case ("POST", ["v1", "uploads"]):
                return self._start(json.loads(request.content))
            case ("GET", ["v1", "uploads", upload_id]):
                upload = self.uploads.get(upload_id)
                return _view(200, upload) if upload else _not_found()
            case ("PATCH", ["v1", "uploads", upload_id]):
                return self._append(upload_id, request)
            case ("POST", ["v1", "uploads", upload_id, "commit"]):
                return self._commit(upload_id)
            case ("DELETE", ["v1", "uploads", upload_id]):
                self.uploads.pop(upload_id, None)
                return httpx.Response(204)
            case ("GET", ["v1", "extracts"]):
                wanted = request.url.params.get("dataset")
                withdrawn = request.url.params.get("include_withdrawn") == "true"
                return httpx.Response(
                    200,
                    json=[
                        _public(e)
                        for e in self.extracts.values()
                        if (wanted is None or e["dataset"] == wanted)
                        and (withdrawn or e["status"] == "visible")
                    ],
                )
            case ("GET", ["v1", "extracts", extract_id]):
                found = self.extracts.get(extract_id)
                return httpx.Response(200, json=_public(found)) if found else _not_found()
            case ("DELETE", ["v1", "extracts", extract_id]):
                found = self.extracts.get(extract_id)
                if found is None:
                    return _not_found()
                if found["status"] == "visible":
                    found.update(status="withdrawn", withdrawn_at=_now().isoformat())
                    found.pop("_bytes", None)
                return httpx.Response(200, json=_public(found))
        return _not_found()

    # -- OAuth2 ---------------------------------------------------------------------------
    def _token(self, request: httpx.Request) -> httpx.Response:
        self.token_requests += 1
        auth = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        form = dict(x.split("=", 1) for x in request.content.decode().split("&") if x)
        if auth != f"Basic {expected}" or form.get("grant_type") != "client_credentials":
            return httpx.Response(401, json={"error": "invalid_client"})
        token = f"tok{next(self._ids)}"
        self.tokens[token] = time.time() + self.token_ttl
        return httpx.Response(
            200, json={"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl}
        )

    def _authorised(self, request: httpx.Request) -> bool:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        return header.startswith("Bearer ") and self.tokens.get(token, 0) > time.time()

    # -- uploads --------------------------------------------------------------------------
    def _start(self, body: dict[str, Any]) -> httpx.Response:
        if (body["dataset"], body["contract_version"]) not in self.datasets:
            return _problem(
                404, "unknown_dataset", f"unknown dataset {body['dataset']!r}", field="dataset"
            )
        if body["size"] == 0:
            return _problem(422, "extract_empty", "the extract is empty")
        for e in self.extracts.values():
            if (e["sha256"], e["dataset"], e["status"]) == (
                body["sha256"],
                body["dataset"],
                "visible",
            ):
                return httpx.Response(200, json={"duplicate": True, "extract": _public(e)})
        for u in self.uploads.values():
            if u["sha256"] == body["sha256"]:
                return _view(200, u)
        upload_id = f"upl_{next(self._ids)}"
        self.uploads[upload_id] = {
            "id": upload_id,
            "dataset": body["dataset"],
            "contract_version": body["contract_version"],
            "size": body["size"],
            "sha256": body["sha256"],
            "offset": 0,
            "status": "receiving",
            "chunk_bytes": self.chunk_bytes,
            "expires_at": (_now() + timedelta(hours=24)).isoformat(),
            "_data": bytearray(),
        }
        return _view(201, self.uploads[upload_id])

    def _append(self, upload_id: str, request: httpx.Request) -> httpx.Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return _not_found()
        offset = int(request.headers["Upload-Offset"])
        if offset != upload["offset"]:
            return _problem(409, "conflict", "wrong offset", offset=upload["offset"])
        data = request.content
        if len(data) > self.chunk_bytes or offset + len(data) > upload["size"]:
            return _problem(413, "too_large", "chunk too large")
        upload["_data"] += data
        upload["offset"] += len(data)
        return _view(200, upload)

    def _commit(self, upload_id: str) -> httpx.Response:
        upload = self.uploads.get(upload_id)
        if upload is None:
            return _not_found()
        if upload["offset"] != upload["size"]:
            return _problem(409, "conflict", "upload incomplete", offset=upload["offset"])
        data = bytes(upload.pop("_data"))
        del self.uploads[upload_id]
        if hashlib.sha256(data).hexdigest() != upload["sha256"]:
            return _problem(422, "extract_invalid", "sha256 does not match")
        meta = pq.ParquetFile(io.BytesIO(data)).schema_arrow.metadata or {}
        extract_id = f"ext_{next(self._ids)}"
        self.extracts[extract_id] = {
            "id": extract_id,
            "partner": ORG,
            "dataset": upload["dataset"],
            "contract_version": upload["contract_version"],
            "rows": pq.ParquetFile(io.BytesIO(data)).metadata.num_rows,
            "size": len(data),
            "sha256": upload["sha256"],
            "key_id": meta.get(b"tahub.key_id", b"").decode(),
            "status": "visible",
            "created_at": _now().isoformat(),
            "withdrawn_at": None,
            "report": {},
            "_bytes": data,
        }
        return httpx.Response(201, json=_public(self.extracts[extract_id]))


def _now() -> datetime:
    return datetime.now(UTC)


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


def _view(status: int, upload: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=_public(upload))


def _problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> httpx.Response:
    body = {
        "type": f"urn:tahub:problem:{code}",
        "title": code,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }
    return httpx.Response(
        status, json=body, headers={"Content-Type": "application/problem+json", **(headers or {})}
    )


def _not_found() -> httpx.Response:
    return _problem(404, "not_found", "no such object")

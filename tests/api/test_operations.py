"""Operations against real servers: /livez, /readyz, /metrics, request ids in JSON logs,
``tahub serve --workers N`` with a settings file, and graceful shutdown on SIGTERM.

The endpoint tests use in-process hubs on loopback (``running_hub``); the worker, log and
signal tests run the real ``tahub serve`` command, its output captured to a file.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from hub.actors import MemberKind, Role
from hub.api.app import _sweep_every
from hub.api.readiness import check_readiness
from hub.contracts.model import Contract, ContractRegistry
from hub.errors import Unavailable
from hub.storage.db import make_engine
from hub.storage.objects import MemoryStore
from tests.api.conftest import running_hub
from tests.api.extract_files import sha256_of, write_extract
from tests.hub.postgres import DEFAULT_URL, postgres_database

PROBLEM = "application/problem+json"
BIN = Path(sys.executable).parent
CHUNK = 64 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus exposition: (name, labels) -> value."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(all_samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return all_samples.get((name, frozenset(labels.items())), 0.0)


def start_upload(http: httpx.Client, path: Path, contract: Contract, sha: str | None = None
                 ) -> dict[str, Any]:
    resp = http.post("/v1/uploads", json={
        "dataset": contract.dataset, "contract_version": contract.version,
        "size": path.stat().st_size, "sha256": sha or sha256_of(path), "filename": path.name,
        "transfer": "chunks"})
    assert resp.status_code == 201, resp.text
    upload: dict[str, Any] = resp.json()
    return upload


def send_chunks(http: httpx.Client, upload_id: str, data: bytes, offset: int,
                until: int | None = None) -> int:
    """PATCH ``data`` from ``offset`` up to ``until`` (default: the end); the new offset."""
    end = len(data) if until is None else until
    while offset < end:
        resp = http.patch(f"/v1/uploads/{upload_id}", content=data[offset:offset + CHUNK],
                          headers={"Upload-Offset": str(offset),
                                   "Content-Type": "application/octet-stream"})
        assert resp.status_code == 200, resp.text
        offset = resp.json()["offset"]
    return offset


# -- liveness and readiness ------------------------------------------------------------------
def test_livez_and_readyz_answer_when_the_hub_is_ready(tmp_path: Path) -> None:
    with running_hub(tmp_path / "data") as hub, hub.client() as http:
        live = http.get("/livez")
        assert (live.status_code, live.json()) == (200, {"status": "alive"})
        ready = http.get("/readyz")
        assert ready.status_code == 200
        assert ready.json() == {"status": "ready", "checks": {"database": "ok", "storage": "ok"}}
        assert http.get("/health").json()["status"] == "ok"  # unchanged


def _assert_not_ready(resp: httpx.Response, failing: str) -> dict[str, Any]:
    assert resp.status_code == 503, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["retry-after"] == "5"
    body: dict[str, Any] = resp.json()
    assert body["code"] == "unavailable" and body["failing"] == [failing]
    assert failing in body["detail"] and body["checks"][failing].startswith("unavailable (")
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


def test_readyz_is_503_while_the_object_store_folder_cannot_be_written(tmp_path: Path) -> None:
    with running_hub(tmp_path / "data") as hub, hub.client() as http:
        root = Path(unquote(urlsplit(hub.settings.storage).path))
        assert http.get("/readyz").status_code == 200
        shutil.rmtree(root)
        root.write_text("a file where the object store folder was")  # even root cannot write
        body = _assert_not_ready(http.get("/readyz"), "storage")
        assert body["checks"]["database"] == "ok"
        assert http.get("/livez").status_code == 200  # alive: a restart would not help
        root.unlink()
        assert http.get("/readyz").status_code == 200  # ready again once it is back


def _drop(url: str) -> None:
    server = sa.make_url(os.environ.get("TAHUB_TEST_POSTGRES_URL", DEFAULT_URL))
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE "{sa.make_url(url).database}" WITH (FORCE)')
    finally:
        admin.dispose()


def test_readyz_is_503_when_the_postgresql_database_is_dropped(tmp_path: Path) -> None:
    with (postgres_database() as url,
          running_hub(tmp_path / "data", database_url=url) as hub,
          hub.client() as http):
        assert http.get("/readyz").json()["checks"] == {"database": "ok", "storage": "ok"}
        _drop(url)
        body = _assert_not_ready(http.get("/readyz"), "database")
        assert body["checks"]["storage"] == "ok"
        assert url not in json.dumps(body)
        assert http.get("/livez").status_code == 200


def test_readiness_names_a_database_behind_a_closed_port() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/tahub")
    try:
        with pytest.raises(Unavailable) as caught:
            check_readiness(engine, MemoryStore())
    finally:
        engine.dispose()
    assert caught.value.extra["checks"] == {"database": "unavailable (OperationalError)",
                                            "storage": "ok"}
    assert caught.value.extra["failing"] == ["database"] and caught.value.extra["retry_after"]


# -- metrics ---------------------------------------------------------------------------------
def test_metrics_move_after_uploads_and_queries_with_route_templates(tmp_path: Path) -> None:
    with running_hub(tmp_path / "data") as hub:
        contract = hub.services.registry.get("bank_alerts", 1)
        sizes = 0
        for n in range(2):
            path = write_extract(tmp_path / f"bank{n}.parquet", contract, 200, salt=f"m{n}")
            sizes += path.stat().st_size
            with hub.authed(hub.member(f"Metric Bank {n}")) as http:
                upload = start_upload(http, path, contract)
                send_chunks(http, upload["id"], path.read_bytes(), 0)
                assert http.post(f"/v1/uploads/{upload['id']}/commit").status_code == 201
        bad = write_extract(tmp_path / "bad.parquet", contract, 20, salt="bad")
        with hub.authed(hub.member("Metric Bank 2")) as http:  # bytes that break their sha256
            upload = start_upload(http, bad, contract, sha="0" * 64)
            send_chunks(http, upload["id"], bad.read_bytes(), 0)
            assert http.post(f"/v1/uploads/{upload['id']}/commit").status_code == 422
        analyst = hub.member("Metric Analysts", (Role.ANALYST,), MemberKind.OTHER)
        query = {"dataset": "bank_alerts", "group_by": ["typology"], "measures": ["count"],
                 "cost": "1/10"}
        with hub.authed(analyst) as http:
            assert http.post("/v1/queries", json=query).status_code == 200
            assert http.post("/v1/queries", json=query).json()["reused"] is True
            assert http.get("/nowhere/upl_123").status_code == 404
        with hub.client() as http:
            resp = http.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    got = samples(resp.text)
    ds = {"dataset": "bank_alerts"}
    assert sample(got, "tahub_uploads_started_total", **ds) == 3
    assert sample(got, "tahub_uploads_committed_total", **ds) == 2
    assert sample(got, "tahub_uploads_rejected_total", **ds) == 1
    assert sample(got, "tahub_committed_bytes_total", **ds) == sizes
    assert sample(got, "tahub_queries_total", **ds, outcome="released") == 1
    assert sample(got, "tahub_queries_total", **ds, outcome="reused") == 1
    assert sample(got, "tahub_privacy_budget_spent_total", **ds, measure="rho") == 0.1
    patch = {"method": "PATCH", "route": "/v1/uploads/{upload_id}", "status": "200"}
    assert sample(got, "tahub_http_requests_total", **patch) >= 3
    assert sample(got, "tahub_http_request_duration_seconds_count", **patch) >= 3
    assert sample(got, "tahub_http_requests_total", method="POST",
                  route="/v1/uploads/{upload_id}/commit", status="422") == 1
    assert sample(got, "tahub_http_requests_total", method="GET", route="(unmatched)",
                  status="404") == 1
    assert "upl_" not in resp.text and "ext_" not in resp.text and "org_" not in resp.text


# -- real `tahub serve` processes ------------------------------------------------------------
@dataclass
class Served:
    """``tahub serve`` as a child process (its own session, so cleanup reaches its workers)."""

    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *args: str) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([str(BIN / "tahub"), "serve", *args], env=self.env,
                                         stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tahub serve exited:\n{self.log.read_text()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"tahub serve did not come up:\n{self.log.read_text()}")

    def sigterm(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> None:
        assert self.proc is not None
        self.proc.wait(timeout)
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        self.sigterm()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the session this test started
            self.proc.wait(10)
        self.proc = None

    def workers(self) -> set[int]:
        """The pids of the worker processes (children of ``tahub serve`` that multiprocessing
        spawned; not its resource tracker)."""
        assert self.proc is not None
        found = set()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if ppid == self.proc.pid and b"spawn_main" in cmdline:
                found.add(int(proc.name))
        return found

    def lines(self) -> list[dict[str, Any]]:
        raw = [line for line in self.log.read_text().splitlines() if line.strip()]
        parsed = []
        for line in raw:
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"a log line is not JSON: {line!r}")
        return parsed

    def cli(self, *args: str) -> str:
        out = subprocess.run([str(BIN / "tahub"), *args], env=self.env, capture_output=True,
                             text=True, timeout=120, check=False)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def partner_token(self, name: str, request_id: str | None = None) -> tuple[str, str]:
        """A new partner member's access token, and its client secret."""
        creds = json.loads(self.cli("admin", "member", "add", name, "--kind", "bank",
                                    "--role", "partner", "--json"))
        headers = {"X-Request-ID": request_id} if request_id else {}
        resp = httpx.post(self.url + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(creds["client_id"], creds["client_secret"]), headers=headers)
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"], creds["client_secret"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAHUB_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    port = free_port()
    env.update(TAHUB_DATA_DIR=str(tmp_path / "data"), TAHUB_PORT=str(port),
               TAHUB_CHUNK_BYTES=str(CHUNK), TAHUB_LOG_JSON="true")
    server = Served(env, port, tmp_path / "hub.log")
    yield server
    server.stop()


def test_serve_two_workers_from_a_settings_file_sum_metrics_and_log_request_ids(
    served: Served, tmp_path: Path
) -> None:
    settings_file = tmp_path / "tahub.toml"
    settings_file.write_text('workers = 2\nlog_json = false\nport = 1\n'
                             'shutdown_grace_seconds = 5\n')
    # The file asks for 2 workers; the environment wins over its port and log format.
    served.env["TAHUB_SETTINGS_FILE"] = str(settings_file)
    served.start()
    workers = served.workers()
    assert len(workers) == 2

    n = 40
    for i in range(n):  # one connection each: the kernel hands them to either worker
        resp = httpx.get(served.url + "/livez", headers={"X-Request-ID": f"probe-{i}"})
        assert resp.status_code == 200 and resp.headers["x-request-id"] == f"probe-{i}"
    token, secret = served.partner_token("Worker Bank", request_id="token-request-1")
    unnamed = httpx.get(served.url + "/v1/me", headers={"Authorization": f"Bearer {token}",
                                                        "X-Request-ID": "bad id!"})
    assert unnamed.status_code == 200 and len(unnamed.headers["x-request-id"]) == 32

    for _ in range(6):  # whichever worker answers, it reports the sum over both
        got = samples(httpx.get(served.url + "/metrics").text)
        assert sample(got, "tahub_http_requests_total", method="GET", route="/livez",
                      status="200") == n

    lines = served.lines()
    answered = {line["pid"] for line in lines
                if line.get("event") == "request" and line.get("path") == "/livez"}
    assert answered == workers  # both workers answered
    probes = [line for line in lines if str(line.get("request_id", "")).startswith("probe-")]
    assert {line["request_id"] for line in probes} == {f"probe-{i}" for i in range(n)}
    issued = [line for line in lines if line.get("event") == "token issued"]
    assert [line["request_id"] for line in issued] == ["token-request-1"]  # a service's line
    me = [line for line in lines if line.get("event") == "request" and line["path"] == "/v1/me"]
    assert me[0]["request_id"] == unnamed.headers["x-request-id"]
    text = served.log.read_text()
    assert token not in text and secret not in text


def _slow_patch(served: Served, token: str, upload_id: str, offset: int, chunk: bytes,
                pause: float) -> int | None:
    """PATCH one chunk in 8 slow pieces, SIGTERM the hub after the first; the status or None
    when the hub closed the connection."""
    sock = socket.create_connection(("127.0.0.1", served.port), timeout=60)
    try:
        sock.sendall(
            (f"PATCH /v1/uploads/{upload_id} HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n"
             f"Authorization: Bearer {token}\r\nUpload-Offset: {offset}\r\n"
             f"Content-Type: application/octet-stream\r\nContent-Length: {len(chunk)}\r\n"
             "Connection: close\r\n\r\n").encode())
        step = len(chunk) // 8
        for i in range(0, len(chunk), step):
            sock.sendall(chunk[i:i + step])
            if i == 0:
                time.sleep(0.5)  # the request is in flight
                served.sigterm()
            time.sleep(pause)
        answer = b""
        while part := sock.recv(65536):
            answer += part
    except OSError:
        return None
    finally:
        sock.close()
    if not answer:
        return None
    return int(answer.split(b" ", 2)[1])


@pytest.mark.parametrize(
    ("workers", "grace", "pause", "finishes"),
    [("2", "30", 0.2, True),  # the chunk arrives within the grace period: it is kept
     ("1", "1", 0.5, False)],  # it does not: it is dropped whole, the upload resumes
)
def test_sigterm_during_a_slow_chunk_leaves_the_upload_consistent_and_resumable(
    served: Served, tmp_path: Path, workers: str, grace: str, pause: float, finishes: bool
) -> None:
    served.env.update(TAHUB_WORKERS=workers, TAHUB_SHUTDOWN_GRACE_SECONDS=grace)
    served.start()
    contract = ContractRegistry.load(None).get("bank_alerts", 1)
    path = write_extract(tmp_path / "alerts.parquet", contract, 5000, salt="sigterm")
    data = path.read_bytes()
    assert len(data) > 2 * CHUNK  # a chunk before, the slow one, and the rest after
    token, _ = served.partner_token("Shutdown Bank")
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served.url, headers=auth, timeout=30) as http:
        upload = start_upload(http, path, contract)
        offset = send_chunks(http, upload["id"], data, 0, until=CHUNK)

    status = _slow_patch(served, token, upload["id"], offset, data[offset:offset + CHUNK],
                         pause)
    served.wait(timeout=int(grace) + 20)
    lines = served.lines()
    shutdown_began = min(line["timestamp"] for line in lines
                         if line.get("event") == "Shutting down")
    slow = [line for line in lines
            if line.get("event") == "request" and line.get("method") == "PATCH"][-1]
    assert slow["timestamp"] > shutdown_began  # it was in flight when the SIGTERM came
    assert slow["status"] == (200 if finishes else None)  # None: cancelled at the deadline
    staged = served.env["TAHUB_DATA_DIR"] + f"/staging/{upload['id']}.part"
    if finishes:
        assert status == 200
        assert os.path.getsize(staged) == 2 * CHUNK
    else:
        assert status is None or status >= 500
        assert os.path.getsize(staged) == CHUNK  # the whole chunk or nothing of it

    served.start()  # restarted (same command, same key): resume where the hub says, commit
    with httpx.Client(base_url=served.url, headers=auth, timeout=60) as http:
        offset = http.get(f"/v1/uploads/{upload['id']}").json()["offset"]
        assert offset == os.path.getsize(staged)
        send_chunks(http, upload["id"], data, offset)
        committed = http.post(f"/v1/uploads/{upload['id']}/commit")
        assert committed.status_code == 201, committed.text
        assert [e["id"] for e in http.get("/v1/extracts").json()] == [committed.json()["id"]]


def test_the_sweep_runs_again_while_the_hub_runs(tmp_path: Path) -> None:
    """An orphan object (no extract row refers to it) left while the hub runs is removed by
    the next periodic sweep, not only at the next start."""
    with running_hub(tmp_path / "hub") as hub:
        orphan = "extracts/org_zzzzzzzzzzzz/bank_alerts/ext_orphan.parquet"
        source = tmp_path / "orphan.parquet"
        source.write_bytes(b"left by a crash between the object put and the commit")
        hub.services.store.put_file(orphan, source)

        async def two_rounds() -> None:
            task = asyncio.create_task(_sweep_every(hub.services, 0.05))
            await asyncio.sleep(0.5)
            task.cancel()

        asyncio.run(two_rounds())
        assert not hub.services.store.exists(orphan)
    assert hub.settings.sweep_interval_minutes == 60  # the default: hourly

"""The crowd-report limit per address holds across hub processes: two real ``tahub serve``
processes on loopback ports, sharing one metadata store (a SQLite file, or a PostgreSQL
database), take reports from one address in turn and refuse it at the configured limit
with 429 and Retry-After; a refused report stores nothing and spends nothing."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hub.osint.challenges import solve
from hub.osint.sealing import Sealer, new_key
from hub.storage.db import make_engine, osint_items, osint_receipts, rate_buckets
from tests.hub.postgres import postgres_database

BIN = Path(sys.executable).parent
KEY = new_key()
BITS = 6
LIMIT = 3
PATH = "/v1/public/reports"
SENDER, OTHER = "198.51.100.20", "198.51.100.21"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def served(env: dict[str, str], log: Path) -> Iterator[str]:
    """One ``tahub serve`` process (its own session) until the block ends; its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen([str(BIN / "tahub"), "serve"], env={**env, "TAHUB_PORT": str(port)},
                                stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"tahub serve exited:\n{log.read_text()}")
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"tahub serve did not come up:\n{log.read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the session this test started
            proc.wait(10)


def _challenge(http: httpx.Client) -> dict[str, str]:
    got = http.get(f"{PATH}/challenge")
    assert got.status_code == 200, got.text
    text = got.json()["challenge"]
    return {"challenge": text, "nonce": solve(text, BITS)}


def _send(http: httpx.Client, address: str, text: str, proof: dict[str, str]
          ) -> httpx.Response:
    return http.post(PATH, json={"text": text, **proof}, headers={"X-Forwarded-For": address})


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_two_hub_processes_on_one_store_refuse_an_address_at_the_limit(
    store: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TAHUB_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(TAHUB_DATA_DIR=str(tmp_path / "data"), TAHUB_REPORTS_KEYS=KEY,
               TAHUB_REPORTS_PROOF_BITS=str(BITS), TAHUB_REPORTS_PER_HOUR=str(LIMIT),
               TAHUB_LOG_LEVEL="WARNING", TAHUB_WORKERS="1")
    with ExitStack() as stack:
        if store == "postgresql":
            env["TAHUB_DATABASE_URL"] = stack.enter_context(postgres_database())
        # one after the other: the first migrates and makes the signing key
        first = stack.enter_context(served(env, tmp_path / "first.log"))
        second = stack.enter_context(served(env, tmp_path / "second.log"))
        hubs = [stack.enter_context(httpx.Client(base_url=url, timeout=120))
                for url in (first, second)]

        accepted = [f"Informe {n}: un taller de costura en Lima retiene a {n + 2} "
                    "trabajadoras sin paga." for n in range(LIMIT)]
        for n, text in enumerate(accepted):  # first, second, first: 3 of 3 across both
            http = hubs[n % 2]
            sent = _send(http, SENDER, text, _challenge(http))
            assert sent.status_code == 202, sent.text
        refused_texts = ["Otro informe desde la misma dirección, al segundo proceso.",
                         "Y otro más desde la misma dirección, al primero."]
        proofs = []
        for http, text in zip((hubs[1], hubs[0]), refused_texts, strict=True):
            proof = _challenge(http)
            over = _send(http, SENDER, text, proof)
            assert over.status_code == 429, over.text
            assert over.headers["content-type"] == "application/problem+json"
            assert over.json()["rule"] == "rate_limit:reports"
            assert f"{LIMIT} requests an hour" in over.json()["detail"]
            retry = int(over.headers["retry-after"])
            assert 3600 // LIMIT - 120 < retry <= 3600 // LIMIT  # a token every 20 minutes
            assert over.json()["retry_after"] == retry
            proofs.append(proof)
        # the refused report's challenge was not spent: another address sends with it
        other = _send(hubs[1], OTHER, "Desde otra dirección: una finca en Cusco.", proofs[0])
        assert other.status_code == 202, other.text

        database = env.get("TAHUB_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'tahub.db'}"
        engine = make_engine(database)
        try:
            with engine.connect() as conn:
                receipts = conn.execute(sa.select(sa.func.count())
                                        .select_from(osint_receipts)).scalar_one()
                sealed = conn.execute(sa.select(osint_items.c.sealed)
                                      .where(osint_items.c.kind == "report")).scalars().all()
                keys = conn.execute(sa.select(rate_buckets.c.key, rate_buckets.c.tokens)
                                    .where(rate_buckets.c.limiter == "reports")).all()
        finally:
            engine.dispose()
    assert receipts == LIMIT + 1 and len(sealed) == LIMIT + 1
    texts = [Sealer([KEY]).open(s) for s in sealed]
    assert not any(refused in text for text in texts for refused in refused_texts)
    # one bucket per address, shared by both processes, keyed by a hash
    assert len(keys) == 2 and not any("198.51" in key for key, _ in keys)
    assert sorted(round(tokens) for _, tokens in keys) == [0, LIMIT - 1]

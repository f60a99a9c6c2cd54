"""Crowd reports over HTTP, on a real hub on loopback (SQLite and PostgreSQL): the challenge,
the proof of work, the rate limit per address, the body limit, the missing key, and what
is stored (sealed text, no address)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from hub.osint.challenges import Challenges, leading_zero_bits, secrets_from_keys, solve
from hub.osint.sealing import Sealer, new_key
from hub.storage.db import metadata, osint_items, osint_receipts, rate_buckets
from tests.api.conftest import Hub, running_hub
from tests.hub.postgres import postgres_database

KEY = new_key()
BITS = 8
PATH = "/v1/public/reports"
REPORT = ("Vi a dos chicas de Paraguay trabajando en un bar de Valencia. El dueño les quitó "
          "los pasaportes y dicen que deben mucho dinero por el viaje.")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Hub]:
    settings = {"reports_keys": KEY, "reports_proof_bits": BITS, "reports_per_hour": 1000}
    data = tmp_path_factory.mktemp(f"reports-{request.param}")
    if request.param == "sqlite":
        with running_hub(data, **settings) as started:
            assert started.services.reports.tagger  # built (the hub starts it at start-up)
            yield started
    else:
        with postgres_database() as url, running_hub(data, database_url=url,
                                                     **settings) as started:
            assert started.services.reports.tagger
            yield started


def solved(http: httpx.Client) -> dict[str, str]:
    got = http.get(f"{PATH}/challenge")
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    body = got.json()
    assert body["bits"] == BITS and body["max_chars"] == 5000
    return {"challenge": body["challenge"], "nonce": solve(body["challenge"], body["bits"])}


def test_a_report_is_received_with_a_receipt_and_stored_sealed_without_the_address(
    hub: Hub
) -> None:
    with hub.client() as http:
        sent = http.post(PATH, json={"text": REPORT, "language": "es", "where": "Valencia",
                                     "when": "2026-03-01", **solved(http)},
                         headers={"X-Forwarded-For": "203.0.113.77"})
    assert sent.status_code == 202, sent.text
    assert set(sent.json()) == {"receipt"} and sent.json()["receipt"].startswith("rcp_")
    engine = hub.services.engine
    with engine.connect() as conn:
        receipt = conn.execute(sa.select(osint_receipts)
                               .where(osint_receipts.c.id == sent.json()["receipt"])).one()
        item = conn.execute(sa.select(osint_items)
                            .where(osint_items.c.id == receipt.item_id)).one()
        # every value of every table, as text: no address, no word of the report
        everything = " ".join(
            str(v) if not isinstance(v, bytes) else v.decode("latin-1")
            for table in metadata.sorted_tables
            for row in conn.execute(sa.select(table)) for v in row)
    for secret in ("203.0.113.77", "127.0.0.1", "Paraguay", "pasaportes", "Valencia"):
        assert secret not in everything
    assert item.text is None and item.language == "es"
    assert Sealer([KEY]).open(item.sealed) == f"{REPORT}\n\nWhere: Valencia\nWhen: 2026-03-01"


def test_the_proof_of_work_must_be_right_fresh_and_used_once(hub: Hub) -> None:
    with hub.client() as http:
        proof = solved(http)
        wrong = next(str(n) for n in range(10_000) if not _passes(proof["challenge"], str(n)))
        refused = http.post(PATH, json={"text": REPORT, "challenge": proof["challenge"],
                                        "nonce": wrong})
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["field"] == "nonce"
        first = http.post(PATH, json={"text": REPORT + " Uno.", **proof})
        assert first.status_code == 202, first.text
        again = http.post(PATH, json={"text": REPORT + " Dos.", **proof})
        assert again.status_code == 409 and again.json()["field"] == "challenge"
        # a challenge the hub signed eleven minutes ago has expired
        old = Challenges(secrets_from_keys([KEY]), BITS,
                         clock=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(minutes=11)
                         ).issue()
        late = http.post(PATH, json={"text": REPORT + " Tres.", "challenge": old.text,
                                     "nonce": solve(old.text, BITS)})
        assert late.status_code == 422 and late.json()["field"] == "challenge"
        assert "expired" in late.json()["detail"]
        honey = http.post(PATH, json={"text": REPORT + " Cuatro.", "website": "x",
                                      **solved(http)})
        assert honey.status_code == 422 and honey.json()["field"] == "website"
        extra = http.post(PATH, json={"text": REPORT, "ip": "1.2.3.4", **solved(http)})
        assert extra.status_code == 422 and extra.json()["field"] == "ip"


def _passes(challenge: str, nonce: str) -> bool:
    return leading_zero_bits(hashlib.sha256(f"{challenge}{nonce}".encode()).digest()) >= BITS


def test_an_oversized_report_is_refused_before_it_is_read(hub: Hub) -> None:
    with hub.client() as http:
        big = http.post(PATH, content=b'{"text": "' + b"a" * 200_000 + b'"}',
                        headers={"Content-Type": "application/json"})
        assert big.status_code == 413, big.text
        assert big.json()["field"] == "body" and "TAHUB_REPORTS_MAX_CHARS" in big.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: refused as it streams
            yield b'{"text": "'
            for _ in range(50):
                yield b"b" * 10_000
            yield b'"}'

        streamed = http.post(PATH, content=chunks(), headers={"Content-Type": "application/json"})
        assert streamed.status_code == 413
        long = http.post(PATH, json={"text": "c" * 5001, **solved(http)})
        assert long.status_code == 422 and long.json()["field"] == "text"
        assert long.json()["max_chars"] == 5000


def test_reports_are_limited_per_address(tmp_path: Path) -> None:
    with running_hub(tmp_path / "limited", reports_keys=KEY, reports_proof_bits=BITS,
                     reports_per_hour=2) as small, small.client() as http:
        assert small.services.reports.tagger  # built before the first report
        def send(address: str, text: str) -> httpx.Response:
            return http.post(PATH, json={"text": text, **solved(http)},
                             headers={"X-Forwarded-For": address})

        assert send("198.51.100.1", "Un hombre recluta chicas en Asunción.").status_code == 202
        assert send("198.51.100.1", "Otra vez el mismo hombre en la plaza.").status_code == 202
        over = send("198.51.100.1", "Y una tercera vez, en el mercado.")
        assert over.status_code == 429, over.text
        assert over.json()["rule"] == "rate_limit:reports" and "an hour" in over.json()["detail"]
        assert int(over.headers["retry-after"]) > 60
        assert send("198.51.100.2", "Desde otra dirección: un taller en Lima.").status_code \
            == 202
        # the limiter keeps no address, only keyed hashes, in the metadata store
        with small.services.engine.connect() as conn:
            keys = conn.execute(sa.select(rate_buckets.c.key)
                                .where(rate_buckets.c.limiter == "reports")).scalars().all()
        assert len(keys) == 2 and not any("198.51" in key for key in keys)


def test_without_a_key_the_hub_refuses_reports_naming_the_setting(tmp_path: Path) -> None:
    with running_hub(tmp_path / "nokey") as bare, bare.client() as http:
        for answer in (http.get(f"{PATH}/challenge"),
                       http.post(PATH, json={"text": REPORT, "challenge": "x", "nonce": "1"})):
            assert answer.status_code == 503, answer.text
            assert answer.json()["rule"] == "reports_keys"
            assert "TAHUB_REPORTS_KEYS" in answer.json()["detail"]
        page = http.get("/report")
        assert page.status_code == 200  # the page says so itself (tests/web)


def test_the_report_page_is_public_with_a_strict_policy(hub: Hub) -> None:
    with hub.client() as http:
        page = http.get("/report")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe" not in csp.split("style-src")[0]
    assert page.headers["x-frame-options"] == "DENY"
    assert 'src="/ui/static/report.js"' in page.text

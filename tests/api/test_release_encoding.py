"""A release goes out as its stored bytes, over real HTTP, on SQLite and on PostgreSQL.

A real hub (uvicorn on loopback) over two banks' committed extracts. The stored release
(``releases.body``, hub.query.answer) is read back from the metadata store and compared
byte for byte with what the wire carried before any client decoding: a client that accepts
zstd gets the stored bytes as they are, closed by one raw block of the answer's own fields;
a client that does not gets the same JSON, decompressed, never re-encoded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import zstandard

from hub.actors import MemberKind, Role
from hub.storage.db import releases
from tests.api.conftest import Hub, running_hub
from tests.api.conftest import upload_extract as upload
from tests.api.test_queries import CORRIDORS, POLICY_BANK
from tests.hub.extract_files import valid_rows, write_extract
from tests.hub.postgres import postgres_database

QUERY = {**CORRIDORS, "measures": ["count", {"function": "sum", "field": "amount"}],
         "cost": "1/4"}


@dataclass
class Served:
    hub: Hub
    analyst: httpx.Client

    def stored(self, query_id: str) -> bytes:
        with self.hub.services.engine.connect() as conn:
            body: bytes = conn.execute(sa.select(releases.c.body).where(
                releases.c.entry_id == query_id)).scalar_one()
        return body

    def raw(self, method: str, path: str, accept: str, **kwargs: Any
            ) -> tuple[httpx.Response, bytes]:
        """The answer and its body as it came over the wire (not decoded)."""
        with self.analyst.stream(method, path, headers={"Accept-Encoding": accept},
                                 **kwargs) as resp:
            return resp, b"".join(resp.iter_raw())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Served]:
    base = tmp_path_factory.mktemp(f"encoding-{request.param}")
    (base / "policies").mkdir()
    (base / "policies" / "bank_alerts.yaml").write_text(POLICY_BANK)
    with (postgres_database() if request.param == "postgresql" else nullcontext("")) as url, \
            running_hub(base / "hub", policies_dir=base / "policies",
                        **({"database_url": url} if url else {})) as hub:
        contract = hub.services.registry.get("bank_alerts", 1)
        for i in range(2):
            path = write_extract(base / f"b{i}.parquet", contract,
                                 valid_rows(contract, 40, seed=i * 11))
            with hub.authed(hub.member(f"Bank {i}", (Role.PARTNER,))) as http:
                upload(http, path, contract)
        analyst = hub.member("Police", (Role.ANALYST,), MemberKind.LAW_ENFORCEMENT)
        with hub.authed(analyst) as http:
            yield Served(hub, http)


def _closed(stored: bytes, wire: bytes) -> dict[str, Any]:
    """The fields that close ``stored`` on the wire: one last raw block after its bytes."""
    assert wire.startswith(stored)
    header, tail = wire[len(stored):len(stored) + 3], wire[len(stored) + 3:]
    assert int.from_bytes(header, "little") == len(tail) << 3 | 1  # last, raw, its size
    assert tail.startswith(b",") and tail.endswith(b"}")
    fields: dict[str, Any] = json.loads(b"{" + tail[1:])
    return fields


def test_new_and_repeated_answers_are_the_stored_bytes_closed_by_their_fields(
        served: Served) -> None:
    first, first_wire = served.raw("POST", "/v1/queries", "zstd", json=QUERY)
    again, again_wire = served.raw("POST", "/v1/queries", "gzip, deflate, br, zstd", json=QUERY)
    for resp in (first, again):
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-encoding"] == "zstd"
        assert resp.headers["vary"] == "Accept-Encoding"
        assert resp.headers["content-type"] == "application/json"
    query_id = json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(first_wire))[
        "query_id"]
    stored = served.stored(query_id)
    assert _closed(stored, first_wire)["reused"] is False
    fields = _closed(stored, again_wire)
    assert fields["reused"] is True and fields["charged"]["amount"] == "0"
    assert set(fields) == {"reused", "charged", "budget"}
    # one zstd frame: what any decoder (here httpx's, as the analyst client uses) reads whole
    decoded = served.analyst.post("/v1/queries", json=QUERY).json()
    assert decoded["query_id"] == query_id and decoded["reused"] is True
    assert decoded["rows"] and decoded["charged"] == fields["charged"]


@pytest.mark.parametrize("accept", ["", "identity", "gzip, deflate", "zstd;q=0", "*"])
def test_a_client_without_zstd_gets_the_same_json_decompressed(served: Served,
                                                               accept: str) -> None:
    _, zstd_wire = served.raw("POST", "/v1/queries", "zstd", json=QUERY)
    plain, plain_wire = served.raw("POST", "/v1/queries", accept, json=QUERY)
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    assert plain.headers["vary"] == "Accept-Encoding"
    assert plain_wire == zstandard.ZstdDecompressor().decompressobj().decompress(zstd_wire)
    assert int(plain.headers["content-length"]) == len(plain_wire)


def test_a_release_read_again_by_its_id_is_its_stored_bytes_too(served: Served) -> None:
    query_id = served.analyst.post("/v1/queries", json=QUERY).json()["query_id"]
    resp, wire = served.raw("GET", f"/v1/queries/{query_id}", "zstd")
    assert resp.status_code == 200 and resp.headers["content-encoding"] == "zstd"
    assert _closed(served.stored(query_id), wire)["reused"] is True
    plain, plain_wire = served.raw("GET", f"/v1/queries/{query_id}", "identity")
    assert "content-encoding" not in plain.headers
    assert json.loads(plain_wire) == served.analyst.get(f"/v1/queries/{query_id}").json()
    csv = served.analyst.get(f"/v1/queries/{query_id}/export", params={"format": "csv"})
    assert csv.status_code == 200 and csv.text.startswith('"origin_country"')

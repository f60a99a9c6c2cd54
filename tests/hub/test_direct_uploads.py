"""Direct uploads: parts PUT straight to a real S3 server (moto) by presigned URLs, then the
hub's commit: assembly, streaming to its own disk, the same checks, cleanup, and faults."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Literal

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from hub.actors import Actor
from hub.contracts.model import Contract, ContractRegistry
from hub.errors import Conflict, ExtractInvalid, InvalidInput, Unavailable
from hub.ingest.service import IngestService, UploadRequest, UploadView, staging_key
from hub.settings import Settings
from hub.storage.db import uploads, utcnow
from hub.storage.objects import open_store
from hub.storage.s3 import S3Store
from tests.hub.conftest import ORG_A
from tests.hub.extract_files import metadata_for, schema_for, sha256_of, valid_rows, write_extract
from tests.s3server import S3Bucket
from tests.tcpproxy import TcpProxy

MiB = 1024 * 1024


@pytest.fixture
def proxy(s3_bucket: S3Bucket) -> Iterator[TcpProxy]:
    """The hub (and the presigned URLs) reach the S3 server through a proxy a test can cut
    without losing the server's state."""
    p = TcpProxy(("127.0.0.1", s3_bucket.server.port))
    p.start()
    yield p
    p.stop()


@pytest.fixture
def settings(tmp_path: Path, s3_bucket: S3Bucket, proxy: TcpProxy) -> Settings:
    return s3_bucket.settings(tmp_path / "data", s3_endpoint=f"http://127.0.0.1:{proxy.port}",
                              chunk_bytes=64 * 1024, max_extract_bytes=64 * MiB,
                              upload_ttl_hours=2)


@pytest.fixture
def store(settings: Settings) -> S3Store:
    opened = open_store(settings.storage, settings)
    assert isinstance(opened, S3Store)
    return opened


@pytest.fixture
def alerts(registry: ContractRegistry) -> Contract:
    return registry.get("bank_alerts", 1)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory, registry: ContractRegistry) -> Path:
    """A valid extract of about 15 MB (three 5 MiB parts): uncompressed, unique tokens."""
    contract = registry.get("bank_alerts", 1)
    table = pa.Table.from_pylist(valid_rows(contract, 80_000), schema=schema_for(contract))
    path = tmp_path_factory.mktemp("big") / "big.parquet"
    pq.write_table(table.replace_schema_metadata(metadata_for(contract)), path,
                   compression="none", use_dictionary=False)
    assert 10 * MiB < path.stat().st_size <= 3 * 5 * MiB + MiB
    return path


def _start(service: IngestService, actor: Actor, path: Path, contract: Contract,
           transfer: Literal["auto", "chunks", "direct"] = "auto") -> UploadView:
    started = service.start_upload(actor, UploadRequest(
        dataset=contract.dataset, contract_version=contract.version,
        size=path.stat().st_size, sha256=sha256_of(path), filename=path.name,
        transfer=transfer))
    assert started.upload is not None
    return started.upload


def _put(service: IngestService, actor: Actor, up: UploadView, path: Path,
         numbers: list[int], data: bytes | None = None) -> None:
    content = path.read_bytes() if data is None else data
    for part in service.part_urls(actor, up.id, numbers):
        start = (part.part_number - 1) * (up.part_bytes or 0)
        body = content[start:start + part.size]
        assert httpx.put(part.url, content=body, timeout=30).status_code == 200


def _multipart_left(store: S3Store) -> list[str]:
    return [m.key for m in store.list_multipart("staging/")]


def test_parts_go_straight_to_the_store_and_a_missing_part_is_named_at_commit(
    service: IngestService, partner_a: Actor, alerts: Contract, big_file: Path,
    store: S3Store, settings: Settings,
) -> None:
    up = _start(service, partner_a, big_file, alerts)
    assert (up.transfer, up.part_bytes, up.parts, up.received_parts, up.offset) == (
        "direct", 5 * MiB, 3, [], 0)
    assert not list(settings.staging_dir.glob("*.part"))  # nothing staged on the hub's disk
    _put(service, partner_a, up, big_file, [1, 3])
    size = big_file.stat().st_size
    view = service.get_upload(partner_a, up.id)
    assert view.received_parts == [1, 3] and view.offset == size - 5 * MiB
    with pytest.raises(Conflict, match="1 of 3 parts") as missing:
        service.commit_upload(partner_a, up.id)
    assert missing.value.extra["missing_parts"] == [2]
    # PATCHing a direct upload is refused: its bytes never go through the hub
    with pytest.raises(Conflict, match="direct upload"):
        service.append_chunk(partner_a, up.id, 0, b"x")
    _put(service, partner_a, up, big_file, [2])
    result = service.commit_upload(partner_a, up.id)
    assert not result.duplicate and result.extract.rows == 80_000
    assert result.extract.sha256 == sha256_of(big_file) and result.extract.size == size
    (visible,) = service.visible_extracts("bank_alerts")
    assert store.exists(visible.object_key)
    assert pq.read_table(store.local_path(visible.object_key)).num_rows == 80_000
    # the partner's bytes are gone from the store, and no multipart upload is left
    assert not store.exists(staging_key(ORG_A, up.id)) and _multipart_left(store) == []
    assert service.get_upload(partner_a, up.id).status == "committed"
    assert service.commit_upload(partner_a, up.id).extract == result.extract  # a retry


def test_bad_bytes_are_rejected_and_leave_nothing_in_the_store(
    service: IngestService, partner_a: Actor, alerts: Contract, tmp_path: Path,
    store: S3Store, engine: sa.Engine,
) -> None:
    path = write_extract(tmp_path / "a.parquet", alerts)
    up = _start(service, partner_a, path, alerts)
    assert up.parts == 1
    tampered = bytearray(path.read_bytes())
    tampered[len(tampered) // 2] ^= 0xFF
    _put(service, partner_a, up, path, [1], data=bytes(tampered))
    with pytest.raises(ExtractInvalid, match="do not match the declared sha256"):
        service.commit_upload(partner_a, up.id)
    with engine.connect() as conn:
        status = conn.execute(sa.select(uploads.c.status).where(uploads.c.id == up.id)).scalar()
    assert status == "rejected"
    assert list(store.keys("")) == [] and _multipart_left(store) == []
    assert service.visible_extracts("bank_alerts") == []


def test_part_requests_are_checked(
    service: IngestService, partner_a: Actor, alerts: Contract, tmp_path: Path,
) -> None:
    path = write_extract(tmp_path / "a.parquet", alerts)
    up = _start(service, partner_a, path, alerts)
    with pytest.raises(InvalidInput, match="part 2 does not exist") as err:
        service.part_urls(partner_a, up.id, [1, 2])
    assert err.value.field == "part_numbers"
    with pytest.raises(InvalidInput, match="1 to 1000"):
        service.part_urls(partner_a, up.id, [])
    chunked = _start(service, partner_a, write_extract(tmp_path / "b.parquet", alerts,
                                                       valid_rows(alerts, 3, seed=50)),
                     alerts, transfer="chunks")
    assert chunked.transfer == "chunks" and chunked.parts is None
    with pytest.raises(Conflict, match="PATCH its chunks"):
        service.part_urls(partner_a, chunked.id, [1])


def test_direct_needs_an_s3_store(
    tmp_path: Path, registry: ContractRegistry, migrated_db: Path, partner_a: Actor,
    alerts: Contract,
) -> None:
    from tests.hub.pooled import Pool

    pool = Pool.create(tmp_path / "local", migrated_db, registry)
    try:
        path = write_extract(tmp_path / "a.parquet", alerts)
        with pytest.raises(InvalidInput, match="direct uploads need an S3") as err:
            _start(pool.ingest, partner_a, path, alerts, transfer="direct")
        assert err.value.field == "transfer"
        assert _start(pool.ingest, partner_a, path, alerts).transfer == "chunks"  # auto
    finally:
        pool.close()


def test_an_abandoned_upload_is_aborted_in_the_store_by_the_sweep(
    service: IngestService, partner_a: Actor, alerts: Contract, big_file: Path,
    store: S3Store,
) -> None:
    up = _start(service, partner_a, big_file, alerts)
    _put(service, partner_a, up, big_file, [1])
    assert _multipart_left(store) == [staging_key(ORG_A, up.id)]
    assert service.sweep().expired_uploads == 0 and _multipart_left(store) != []  # still live
    report = service.sweep(utcnow() + timedelta(hours=3))
    assert report.expired_uploads == 1 and report.staging_files_removed == 1
    assert _multipart_left(store) == [] and list(store.keys("staging/")) == []
    with pytest.raises(Conflict, match="expired"):
        service.part_urls(partner_a, up.id, [2])


def test_store_down_mid_upload_is_a_clean_503_and_the_upload_resumes_when_it_is_back(
    service: IngestService, partner_a: Actor, alerts: Contract, big_file: Path,
    proxy: TcpProxy, engine: sa.Engine,
) -> None:
    proxy.stop()
    with pytest.raises(Unavailable) as down:
        _start(service, partner_a, big_file, alerts)
    assert down.value.status == 503
    with engine.connect() as conn:  # no upload row for a start that failed
        assert conn.execute(sa.select(sa.func.count()).select_from(uploads)).scalar() == 0
    proxy.start()
    up = _start(service, partner_a, big_file, alerts)
    _put(service, partner_a, up, big_file, [1, 2])
    proxy.stop()
    with pytest.raises(Unavailable):
        service.commit_upload(partner_a, up.id)
    with pytest.raises(Unavailable):
        service.get_upload(partner_a, up.id)
    proxy.start()  # back: the parts sent before are still there; send the rest, commit
    assert service.get_upload(partner_a, up.id).received_parts == [1, 2]
    _put(service, partner_a, up, big_file, [3])
    extract = service.commit_upload(partner_a, up.id).extract
    assert extract.rows == 80_000
    digest = hashlib.sha256(big_file.read_bytes()).hexdigest()
    assert extract.sha256 == digest


def test_a_commit_killed_after_assembling_the_object_resumes_and_commits(
    service: IngestService, partner_a: Actor, alerts: Contract, big_file: Path,
    store: S3Store, monkeypatch: pytest.MonkeyPatch,
) -> None:
    up = _start(service, partner_a, big_file, alerts)
    _put(service, partner_a, up, big_file, [1, 2, 3])

    def killed(*_args: object, **_kwargs: object) -> None:
        raise KeyboardInterrupt  # the process dies while checking: after the assembly

    monkeypatch.setattr(IngestService, "_verify", killed)
    with pytest.raises(KeyboardInterrupt):
        service.commit_upload(partner_a, up.id)
    monkeypatch.undo()
    key = staging_key(ORG_A, up.id)
    assert store.exists(key) and _multipart_left(store) == []  # assembled; no multipart left
    # the connector asks again: every part is there, and the commit goes on from the object
    again = _start(service, partner_a, big_file, alerts)
    assert again.id == up.id and again.offset == again.size
    assert again.received_parts == [1, 2, 3]
    assert service.commit_upload(partner_a, up.id).extract.rows == 80_000

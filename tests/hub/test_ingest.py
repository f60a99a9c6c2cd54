"""The ingest service against real parts: SQLite file, folder store, Parquet, DuckDB."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from structlog.testing import capture_logs

from hub.actors import Actor
from hub.contracts.model import Contract, ContractRegistry
from hub.errors import (
    Conflict,
    EmptyExtract,
    ExtractInvalid,
    Forbidden,
    InvalidInput,
    NotFound,
    TahubError,
    TooLarge,
    Unavailable,
    UnknownDataset,
)
from hub.ingest.service import CommitResult, IngestService, UploadRequest, object_key
from hub.privacy.noise import to_fixed
from hub.settings import Settings
from hub.storage.db import extracts, make_engine, uploads, utcnow
from hub.storage.objects import LocalFolderStore
from tests.hub.conftest import ORG_A
from tests.hub.extract_files import (
    KEY_ID,
    schema_for,
    sha256_of,
    valid_rows,
    write_extract,
)

RAW_IBAN = "DE89370400440532013000"


def _request(path: Path, contract: Contract, **overrides: Any) -> UploadRequest:
    body: dict[str, Any] = {
        "dataset": contract.dataset, "contract_version": contract.version,
        "size": path.stat().st_size, "sha256": sha256_of(path), "filename": path.name,
    }
    body.update(overrides)
    return UploadRequest(**body)


def _send(service: IngestService, actor: Actor, upload_id: str, data: bytes,
          start: int = 0, chunk: int = 1000) -> None:
    for offset in range(start, len(data), chunk):
        service.append_chunk(actor, upload_id, offset, data[offset:offset + chunk])


def _upload(service: IngestService, actor: Actor, path: Path, contract: Contract) -> CommitResult:
    started = service.start_upload(actor, _request(path, contract))
    assert started.upload is not None
    _send(service, actor, started.upload.id, path.read_bytes())
    return service.commit_upload(actor, started.upload.id)


def _count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def _upload_status(engine: sa.Engine, upload_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(uploads.c.status).where(uploads.c.id == upload_id)
        ).scalar_one()


def _nothing_stored(engine: sa.Engine, store: LocalFolderStore, settings: Settings) -> None:
    assert _count(engine, extracts) == 0
    assert list(store.keys()) == []
    assert list(settings.staging_dir.glob("*")) == []


@pytest.fixture
def alerts(registry: ContractRegistry) -> Contract:
    return registry.get("bank_alerts", 1)


@pytest.fixture
def alerts_file(tmp_path: Path, alerts: Contract) -> Path:
    return write_extract(tmp_path / "bank_alerts.parquet", alerts, valid_rows(alerts, 300))


# -- the happy path ----------------------------------------------------------------------
def test_upload_in_chunks_then_commit_makes_one_visible_extract(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, settings: Settings, engine: sa.Engine,
) -> None:
    started = service.start_upload(partner_a, _request(alerts_file, alerts))
    assert not started.duplicate and started.extract is None and started.upload is not None
    upload = started.upload
    assert upload.id.startswith("upl_") and len(upload.id) == 28
    assert (upload.offset, upload.status, upload.chunk_bytes) == (0, "receiving", 64 * 1024)
    assert upload.expires_at > utcnow() + timedelta(hours=1)
    assert service.visible_extracts("bank_alerts") == []  # nothing visible before commit

    _send(service, partner_a, upload.id, alerts_file.read_bytes(), chunk=997)
    assert service.get_upload(partner_a, upload.id).offset == alerts_file.stat().st_size

    result = service.commit_upload(partner_a, upload.id)
    ext = result.extract
    assert not result.duplicate
    assert ext.id.startswith("ext_") and ext.partner == ORG_A
    assert (ext.dataset, ext.contract_version, ext.rows, ext.status) == (
        "bank_alerts", 1, 300, "visible")
    assert (ext.size, ext.sha256, ext.key_id) == (
        alerts_file.stat().st_size, sha256_of(alerts_file), KEY_ID)
    assert ext.report["rows"] == 300 and ext.report["columns"][0] == "subject"
    assert ext.withdrawn_at is None
    assert ext.model_dump(mode="json")["created_at"].endswith("Z")

    key = object_key(ORG_A, "bank_alerts", ext.id)
    assert list(store.keys()) == [key]
    stored = pq.read_table(store.local_path(key))
    # the checked rows, plus the bounding columns numbered at commit and the amount's
    # fixed-point integers (hub.ingest.units): clamped to [0, 50000], whole euros, ties away from 0
    assert stored.column_names[-5:] == ["__unit", "__seq", "__partner", "__prio", "__fx_amount"]
    original = pq.read_table(alerts_file)
    bounding = ["__unit", "__seq", "__partner", "__prio", "__fx_amount"]
    assert stored.drop_columns(bounding).to_pylist() == original.to_pylist()
    assert stored.schema.field("__fx_amount").type == pa.int32()
    assert stored.column("__fx_amount").to_pylist() == [
        None if a is None else to_fixed(min(max(a, 0.0), 50000.0), 0)
        for a in original.column("amount").to_pylist()]
    assert json.loads(stored.schema.metadata[b"tahub.fixed"]) == {
        "amount": {"column": "__fx_amount", "clamp": [0.0, 50000.0], "decimals": 0}}
    assert [c.key for c in [alerts]] == [("bank_alerts", 1)]
    assert [(v.id, v.org, v.rows, v.object_key) for v in service.visible_extracts("bank_alerts")] \
        == [(ext.id, ORG_A, 300, key)]
    assert list(settings.staging_dir.glob("*")) == []  # staging file and work folder gone
    assert _upload_status(engine, upload.id) == "committed"
    assert service.get_upload(partner_a, upload.id).status == "committed"
    assert service.list_extracts(partner_a) == [ext]
    assert service.get_extract(partner_a, ext.id) == ext
    # a retried commit (the answer was lost) returns the same extract
    assert service.commit_upload(partner_a, upload.id).extract == ext


@pytest.mark.parametrize("key", [("bank_alerts", 1), ("case_records", 1), ("case_records", 2),
                                 ("corridor_flows", 1)])
def test_every_shipped_contract_version_can_be_uploaded(
    service: IngestService, partner_a: Actor, registry: ContractRegistry, tmp_path: Path,
    key: tuple[str, int],
) -> None:
    contract = registry.get(*key)
    path = write_extract(tmp_path / "x.parquet", contract, valid_rows(contract, 50))
    ext = _upload(service, partner_a, path, contract).extract
    assert (ext.dataset, ext.contract_version, ext.rows) == (*key, 50)
    assert [v.id for v in service.visible_extracts(key[0])] == [ext.id]


# -- start -------------------------------------------------------------------------------
def test_start_refuses_bad_declarations_with_the_field(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    engine: sa.Engine,
) -> None:
    cases: list[tuple[dict[str, Any], type[TahubError], str | None]] = [
        ({"dataset": "passports"}, UnknownDataset, "dataset"),
        ({"contract_version": 7}, UnknownDataset, "contract_version"),
        ({"size": 0}, EmptyExtract, "size"),
        ({"size": -1}, InvalidInput, "size"),
        ({"size": 2 * 1024 * 1024 + 1}, TooLarge, "size"),
        ({"sha256": "abc"}, InvalidInput, "sha256"),
        ({"sha256": "g" * 64}, InvalidInput, "sha256"),
    ]
    for overrides, error, field in cases:
        with pytest.raises(error) as err:
            service.start_upload(partner_a, _request(alerts_file, alerts, **overrides))
        assert type(err.value) is error and err.value.field == field, overrides
    assert _count(engine, uploads) == 0


def test_start_needs_the_partner_role(
    service: IngestService, analyst_a: Actor, alerts: Contract, alerts_file: Path
) -> None:
    with pytest.raises(Forbidden):
        service.start_upload(analyst_a, _request(alerts_file, alerts))
    with pytest.raises(Forbidden):
        service.list_extracts(analyst_a)


def test_upper_case_sha256_and_a_path_in_filename_are_normalised(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    engine: sa.Engine,
) -> None:
    req = _request(alerts_file, alerts, sha256=sha256_of(alerts_file).upper(),
                   filename="C:\\Users\\ana\\exports\\alerts.parquet")
    started = service.start_upload(partner_a, req)
    assert started.upload is not None and started.upload.sha256 == sha256_of(alerts_file)
    with engine.connect() as conn:
        assert conn.execute(sa.select(uploads.c.filename)).scalar_one() == "alerts.parquet"


def test_the_same_content_twice_is_a_duplicate_and_nothing_new_is_stored(
    service: IngestService, partner_a: Actor, partner_b: Actor, alerts: Contract,
    alerts_file: Path, store: LocalFolderStore, engine: sa.Engine,
) -> None:
    first = _upload(service, partner_a, alerts_file, alerts).extract
    uploads_before, keys_before = _count(engine, uploads), list(store.keys())
    again = service.start_upload(partner_a, _request(alerts_file, alerts))
    assert again.duplicate and again.upload is None and again.extract == first
    assert (_count(engine, uploads), list(store.keys())) == (uploads_before, keys_before)
    # another organisation's identical file is its own extract
    other = service.start_upload(partner_b, _request(alerts_file, alerts))
    assert not other.duplicate and other.upload is not None


def test_an_unfinished_upload_of_the_same_content_is_resumed(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    engine: sa.Engine,
) -> None:
    data = alerts_file.read_bytes()
    first = service.start_upload(partner_a, _request(alerts_file, alerts))
    assert first.upload is not None
    service.append_chunk(partner_a, first.upload.id, 0, data[:1000])
    service.append_chunk(partner_a, first.upload.id, 1000, data[1000:2500])

    # the client restarts: same content, so the hub hands back the same upload
    again = service.start_upload(partner_a, _request(alerts_file, alerts))
    assert again.upload is not None and again.resumed and not again.duplicate
    assert (again.upload.id, again.upload.offset) == (first.upload.id, 2500)
    assert _count(engine, uploads) == 1
    _send(service, partner_a, first.upload.id, data, start=2500)
    assert service.commit_upload(partner_a, first.upload.id).extract.rows == 300


# -- append ------------------------------------------------------------------------------
def test_a_wrong_offset_is_a_conflict_naming_the_current_offset(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path
) -> None:
    data = alerts_file.read_bytes()
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    service.append_chunk(partner_a, upload.id, 0, data[:100])
    for wrong in (0, 50, 101, -1):
        with pytest.raises(Conflict) as err:
            service.append_chunk(partner_a, upload.id, wrong, data[wrong:wrong + 100])
        assert err.value.extra == {"offset": 100}
        assert err.value.problem()["offset"] == 100
    assert service.get_upload(partner_a, upload.id).offset == 100


def test_chunks_too_big_or_past_the_declared_size_are_refused(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path
) -> None:
    size = alerts_file.stat().st_size
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    with pytest.raises(TooLarge, match="at most 65536 bytes"):
        service.append_chunk(partner_a, upload.id, 0, b"x" * (64 * 1024 + 1))
    service.append_chunk(partner_a, upload.id, 0, alerts_file.read_bytes()[:-10])
    with pytest.raises(TooLarge, match="past the declared size"):
        service.append_chunk(partner_a, upload.id, size - 10, b"y" * 11)
    assert service.get_upload(partner_a, upload.id).offset == size - 10


def test_two_concurrent_appends_at_the_same_offset_store_the_bytes_once(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    settings: Settings,
) -> None:
    data = alerts_file.read_bytes()
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def append() -> None:
        barrier.wait()
        try:
            service.append_chunk(partner_a, upload.id, 0, data[:5000])
            outcomes.append("ok")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=append) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    assert (settings.staging_dir / f"{upload.id}.part").read_bytes() == data[:5000]


def test_commit_before_every_byte_arrived_is_a_conflict_with_the_offset(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    service.append_chunk(partner_a, upload.id, 0, alerts_file.read_bytes()[:700])
    with pytest.raises(Conflict) as err:
        service.commit_upload(partner_a, upload.id)
    assert err.value.extra["offset"] == 700
    assert service.get_upload(partner_a, upload.id).status == "receiving"  # can go on


# -- commit failures: each leaves nothing behind -----------------------------------------
def _bad_file(kind: str, tmp_path: Path, contract: Contract) -> Path:
    path = tmp_path / f"{kind}.parquet"
    rows = valid_rows(contract, 30)
    if kind == "corrupt":
        path.write_bytes(b"PAR1" + b"\x00garbage" * 500)
        return path
    if kind == "truncated":
        write_extract(path, contract, rows)
        path.write_bytes(path.read_bytes()[:-40])
        return path
    if kind == "empty":
        return write_extract(path, contract, [])
    if kind == "wrong_dataset":
        return write_extract(path, contract, rows, metadata={"tahub.dataset": "corridor_flows"})
    table = pa.Table.from_pylist(rows, schema=schema_for(contract))
    if kind == "missing_column":
        return write_extract(path, contract, table=table.drop_columns(["period"]))
    if kind == "identifier_column":
        emails = pa.array([f"person{i}@example.org" for i in range(30)])
        return write_extract(path, contract, table=table.append_column("customer_email", emails))
    if kind == "wrong_type":
        amounts = pa.array([str(r["amount"]) for r in rows])
        return write_extract(path, contract, table=table.set_column(6, "amount", amounts))
    overrides = {
        "raw_identifier": {"subject": RAW_IBAN},
        "outside_domain": {"indicator": "looked_nervous"},
        "nan": {"amount": float("nan")},
        "inf": {"amount": float("-inf")},
        "negative": {"amount": -3.5},
    }[kind]
    rows[12].update(overrides)
    return write_extract(path, contract, rows)


@pytest.mark.parametrize(
    ("kind", "error", "needle"),
    [
        ("corrupt", ExtractInvalid, "not a readable Parquet file"),
        ("truncated", ExtractInvalid, "not a readable Parquet file"),
        ("empty", EmptyExtract, "no rows"),
        ("wrong_dataset", ExtractInvalid, "written for dataset 'corridor_flows'"),
        ("missing_column", ExtractInvalid, "missing column"),
        ("identifier_column", ExtractInvalid, "never accepts identifiers or free text"),
        ("wrong_type", ExtractInvalid, "wrong type string"),
        ("raw_identifier", ExtractInvalid, "not a pseudonymised token"),
        ("outside_domain", ExtractInvalid, "not in the contract's domain"),
        ("nan", ExtractInvalid, "NaN and infinity are not allowed"),
        ("inf", ExtractInvalid, "NaN and infinity are not allowed"),
        ("negative", ExtractInvalid, "negative values are not allowed"),
    ],
)
def test_a_refused_extract_rejects_the_upload_and_leaves_nothing_behind(
    service: IngestService, partner_a: Actor, alerts: Contract, tmp_path: Path,
    store: LocalFolderStore, settings: Settings, engine: sa.Engine,
    kind: str, error: type[TahubError], needle: str,
) -> None:
    path = _bad_file(kind, tmp_path, alerts)
    upload = service.start_upload(partner_a, _request(path, alerts)).upload
    assert upload is not None
    _send(service, partner_a, upload.id, path.read_bytes())
    with capture_logs() as logs, pytest.raises(error) as err:
        service.commit_upload(partner_a, upload.id)
    assert type(err.value) is error
    assert needle in str(err.value)
    assert RAW_IBAN not in str(err.value) and RAW_IBAN not in repr(err.value.problem())
    assert RAW_IBAN not in repr(logs)
    assert str(settings.data_dir) not in str(err.value)
    _nothing_stored(engine, store, settings)
    assert _upload_status(engine, upload.id) == "rejected"
    with pytest.raises(Conflict, match="rejected"):
        service.append_chunk(partner_a, upload.id, 0, b"more")
    with pytest.raises(Conflict, match="rejected"):
        service.commit_upload(partner_a, upload.id)


def test_a_sha256_mismatch_discards_the_upload(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, settings: Settings, engine: sa.Engine,
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts, sha256="0" * 64)).upload
    assert upload is not None
    _send(service, partner_a, upload.id, alerts_file.read_bytes())
    with pytest.raises(ExtractInvalid, match="do not match the declared sha256") as err:
        service.commit_upload(partner_a, upload.id)
    assert err.value.field == "sha256"
    _nothing_stored(engine, store, settings)
    assert service.get_upload(partner_a, upload.id).status == "rejected"


# -- abort -------------------------------------------------------------------------------
def test_abort_discards_the_bytes_and_is_idempotent(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, settings: Settings, engine: sa.Engine,
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    service.append_chunk(partner_a, upload.id, 0, b"x" * 10)
    service.abort_upload(partner_a, upload.id)
    service.abort_upload(partner_a, upload.id)
    _nothing_stored(engine, store, settings)
    assert service.get_upload(partner_a, upload.id).status == "aborted"
    with pytest.raises(Conflict):
        service.append_chunk(partner_a, upload.id, 0, b"x")
    committed = _upload(service, partner_a, alerts_file, alerts)
    with engine.connect() as conn:
        done = conn.execute(sa.select(uploads.c.id).where(uploads.c.status == "committed"))
        done_id = done.scalar_one()
    with pytest.raises(Conflict, match="withdraw"):
        service.abort_upload(partner_a, done_id)
    assert service.get_extract(partner_a, committed.extract.id).status == "visible"


# -- ownership ---------------------------------------------------------------------------
def test_another_organisation_sees_nothing_of_ones_uploads_and_extracts(
    service: IngestService, partner_a: Actor, partner_b: Actor, alerts: Contract,
    alerts_file: Path, tmp_path: Path,
) -> None:
    ext = _upload(service, partner_a, alerts_file, alerts).extract
    other = write_extract(tmp_path / "o.parquet", alerts, valid_rows(alerts, 5, seed=99))
    pending = service.start_upload(partner_a, _request(other, alerts)).upload
    assert pending is not None

    def not_found(call: Any, *args: Any) -> str:
        with pytest.raises(NotFound) as err:
            call(partner_b, *args)
        assert type(err.value) is NotFound
        return err.value.detail

    # same answer as for an id that does not exist at all
    assert not_found(service.get_extract, ext.id) == \
        not_found(service.get_extract, "ext_missing").replace("ext_missing", ext.id)
    not_found(service.withdraw_extract, ext.id)
    assert not_found(service.get_upload, pending.id) == \
        not_found(service.get_upload, "upl_missing").replace("upl_missing", pending.id)
    not_found(service.append_chunk, pending.id, 0, b"x")
    not_found(service.commit_upload, pending.id)
    not_found(service.abort_upload, pending.id)
    assert service.list_extracts(partner_b) == []
    assert service.list_extracts(partner_b, include_withdrawn=True) == []
    # nothing changed for the owner
    assert service.get_extract(partner_a, ext.id).status == "visible"
    assert service.get_upload(partner_a, pending.id).offset == 0


def test_visible_extracts_span_every_organisation(
    service: IngestService, partner_a: Actor, partner_b: Actor, alerts: Contract,
    alerts_file: Path,
) -> None:
    a = _upload(service, partner_a, alerts_file, alerts).extract
    b = _upload(service, partner_b, alerts_file, alerts).extract
    assert {(v.id, v.org) for v in service.visible_extracts("bank_alerts")} == {
        (a.id, a.partner), (b.id, b.partner)}
    assert service.visible_extracts("corridor_flows") == []
    assert [e.id for e in service.list_extracts(partner_a, dataset="bank_alerts")] == [a.id]
    assert service.list_extracts(partner_a, dataset="corridor_flows") == []


# -- withdraw ----------------------------------------------------------------------------
def test_withdraw_deletes_the_object_and_removes_it_from_every_later_query(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore,
) -> None:
    ext = _upload(service, partner_a, alerts_file, alerts).extract
    gone = service.withdraw_extract(partner_a, ext.id)
    assert gone.status == "withdrawn" and gone.withdrawn_at is not None
    assert list(store.keys()) == []
    assert service.visible_extracts("bank_alerts") == []
    assert service.list_extracts(partner_a) == []
    assert service.list_extracts(partner_a, include_withdrawn=True) == [gone]
    assert service.withdraw_extract(partner_a, ext.id) == gone  # withdrawing again
    # the same content can be shared again later, as a new extract
    again = _upload(service, partner_a, alerts_file, alerts)
    assert not again.duplicate and again.extract.id != ext.id


# -- crashes, races and sweep ------------------------------------------------------------
def test_sweep_removes_orphan_objects_and_stray_staging_files(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, settings: Settings,
) -> None:
    ext = _upload(service, partner_a, alerts_file, alerts).extract
    kept = object_key(ORG_A, "bank_alerts", ext.id)
    # a crash between the object put and the metadata transaction leaves an object that
    # no visible extract references
    orphan = object_key(ORG_A, "bank_alerts", "ext_crashedcrashedcrashed")
    store.put_file(orphan, alerts_file)
    stray = settings.staging_dir / "upl_unknown.part"
    stray.write_bytes(b"half an upload")
    # work folders of a commit that crashed a while ago go too; a fresh one may be in use
    old_work, new_work = settings.staging_dir / "check-old", settings.staging_dir / "check-new"
    old_work.mkdir()
    new_work.mkdir()
    two_days_ago = time.time() - 2 * 86400
    os.utime(old_work, (two_days_ago, two_days_ago))
    report = service.sweep()
    assert not old_work.exists() and new_work.exists()
    assert (report.expired_uploads, report.staging_files_removed,
            report.orphan_objects_removed) == (0, 1, 1)
    assert list(store.keys()) == [kept]
    assert not stray.exists()
    assert service.sweep().orphan_objects_removed == 0


def test_sweep_expires_stale_uploads_and_their_bytes(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    settings: Settings, engine: sa.Engine,
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    service.append_chunk(partner_a, upload.id, 0, b"x" * 100)
    assert service.sweep().expired_uploads == 0  # still within its time
    later = utcnow() + timedelta(hours=settings.upload_ttl_hours, minutes=1)
    report = service.sweep(now=later)
    assert (report.expired_uploads, report.staging_files_removed) == (1, 1)
    assert list(settings.staging_dir.glob("*.part")) == []
    assert _upload_status(engine, upload.id) == "expired"
    with pytest.raises(Conflict, match="expired"):
        service.append_chunk(partner_a, upload.id, 100, b"y")
    # a new start for the same content begins afresh
    fresh = service.start_upload(partner_a, _request(alerts_file, alerts))
    assert fresh.upload is not None and fresh.upload.id != upload.id and not fresh.resumed


def test_an_upload_past_its_expiry_cannot_be_committed_even_before_sweep(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    engine: sa.Engine,
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    _send(service, partner_a, upload.id, alerts_file.read_bytes())
    with engine.begin() as conn:
        conn.execute(sa.update(uploads).values(expires_at=utcnow() - timedelta(seconds=1)))
    assert service.get_upload(partner_a, upload.id).status == "expired"
    with pytest.raises(Conflict, match="expired"):
        service.commit_upload(partner_a, upload.id)
    assert _count(engine, extracts) == 0


def test_a_crash_after_the_object_put_is_recovered_by_retrying_the_commit(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, engine: sa.Engine, settings: Settings,
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    _send(service, partner_a, upload.id, alerts_file.read_bytes())
    # the state a crash leaves between the object put and the metadata transaction:
    # the extract id reserved on the upload, its object stored, no extract row
    reserved = "ext_reservedreservedreserv"
    with engine.begin() as conn:
        conn.execute(sa.update(uploads).values(extract_id=reserved))
    key = object_key(ORG_A, "bank_alerts", reserved)
    store.put_file(key, alerts_file)
    assert service.visible_extracts("bank_alerts") == []  # nothing visible
    assert service.sweep().orphan_objects_removed == 0  # spared while the upload lives
    ext = service.commit_upload(partner_a, upload.id).extract
    assert ext.id == reserved and list(store.keys()) == [key]
    # once the upload is gone, an unreferenced reserved object is swept
    service.withdraw_extract(partner_a, ext.id)
    store.put_file(key, alerts_file)
    assert service.sweep(now=utcnow() + timedelta(hours=settings.upload_ttl_hours + 1)) \
        .orphan_objects_removed == 1


def test_a_concurrent_commit_of_the_same_content_answers_the_one_extract(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, settings: Settings, engine: sa.Engine,
) -> None:
    first = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert first is not None
    # a second upload of the same content that raced past start (both saw nothing yet)
    second_id = "upl_racingracingracingraci"
    with engine.begin() as conn:
        row = conn.execute(sa.select(uploads).where(uploads.c.id == first.id)).one()._asdict()
        conn.execute(sa.insert(uploads).values({**row, "id": second_id}))
    (settings.staging_dir / f"{second_id}.part").touch()
    data = alerts_file.read_bytes()
    for upload_id in (first.id, second_id):
        _send(service, partner_a, upload_id, data, chunk=60_000)

    results: list[CommitResult] = []
    barrier = threading.Barrier(2)

    def commit(upload_id: str) -> None:
        barrier.wait()
        results.append(service.commit_upload(partner_a, upload_id))

    threads = [threading.Thread(target=commit, args=(u,)) for u in (first.id, second_id)]
    with capture_logs() as logs:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(r.duplicate for r in results) == [False, True]
    # the loser reached the unique index (both passed every check), not a shortcut
    assert [e["event"] for e in logs if e["event"].startswith("upload.")].count(
        "upload.duplicate_commit") == 1
    assert len({r.extract.id for r in results}) == 1
    assert _count(engine, extracts) == 1
    assert len(list(store.keys())) == 1
    assert {_upload_status(engine, u) for u in (first.id, second_id)} == {"committed"}
    assert list(settings.staging_dir.glob("*")) == []


def test_a_storage_failure_at_commit_keeps_the_upload_for_a_retry(
    service: IngestService, partner_a: Actor, alerts: Contract, alerts_file: Path,
    store: LocalFolderStore, engine: sa.Engine,
) -> None:
    upload = service.start_upload(partner_a, _request(alerts_file, alerts)).upload
    assert upload is not None
    _send(service, partner_a, upload.id, alerts_file.read_bytes())
    store.root.parent.mkdir(parents=True, exist_ok=True)
    store.root.write_bytes(b"a file where the objects folder should be")
    with pytest.raises(Unavailable, match="storage is unavailable"):
        service.commit_upload(partner_a, upload.id)
    assert _count(engine, extracts) == 0
    assert service.get_upload(partner_a, upload.id).status == "receiving"  # not rejected
    store.root.unlink()  # the disk is back
    ext = service.commit_upload(partner_a, upload.id).extract
    assert ext.rows == 300 and list(store.keys()) == [object_key(ORG_A, "bank_alerts", ext.id)]


def test_metadata_store_failures_are_translated_to_unavailable(
    tmp_path: Path, registry: ContractRegistry, partner_a: Actor, alerts: Contract,
    alerts_file: Path,
) -> None:
    folder_not_db = tmp_path / "db-is-a-folder"
    folder_not_db.mkdir()
    settings = Settings(data_dir=tmp_path / "data")
    engine = make_engine(f"sqlite:///{folder_not_db}")
    broken = IngestService(engine=engine, store=LocalFolderStore(tmp_path / "objects"),
                           registry=registry, settings=settings)
    try:
        for call in (
            lambda: broken.start_upload(partner_a, _request(alerts_file, alerts)),
            lambda: broken.list_extracts(partner_a),
            lambda: broken.get_upload(partner_a, "upl_x"),
            lambda: broken.visible_extracts("bank_alerts"),
            lambda: broken.sweep(),
        ):
            with pytest.raises(Unavailable, match="metadata store is unavailable") as err:
                call()
            assert err.value.status == 503
    finally:
        engine.dispose()

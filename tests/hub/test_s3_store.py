"""S3Store against a real S3 server process (moto_server) through the real minio SDK.

The behaviour every store shares runs in test_storage.py (``any_store`` includes S3); these
are the S3-only parts: checksums, server-side encryption, the local cache of extracts,
presigned multipart uploads and what happens when the store is down.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pydantic
import pytest

from hub.errors import ConfigError, InvalidInput, NotFound, TahubError, Unavailable
from hub.settings import Settings
from hub.storage.extractcache import ExtractCache
from hub.storage.objects import (
    LocalFolderStore,
    MemoryStore,
    MultipartStore,
    ObjectStore,
    S3Store,
    open_store,
)
from hub.storage.s3 import RETRY_AFTER_SECONDS, s3a_options
from tests.s3server import ACCESS_KEY, SECRET_KEY, S3Bucket

KEY = "extracts/org_1/bank_alerts/ext_1.parquet"
MiB = 1024 * 1024
FAST = 5.0  # seconds within which a call must give up when the store is down


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _s3(bucket: S3Bucket, tmp_path: Path, **settings: Any) -> S3Store:
    store = open_store(bucket.url, bucket.settings(tmp_path / "data", **settings))
    assert isinstance(store, S3Store)
    return store


@pytest.fixture
def store(s3_bucket: S3Bucket, tmp_path: Path) -> S3Store:
    return _s3(s3_bucket, tmp_path)


def _cached(store: S3Store) -> list[str]:
    root = store.cache.root
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in
                                             p.relative_to(root).parts))


# -- configuration -------------------------------------------------------------------------
def test_open_store_builds_an_s3_store_from_the_settings(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    settings = s3_bucket.settings(tmp_path / "data")
    store = open_store(settings.storage, settings)
    assert isinstance(store, S3Store) and isinstance(store, ObjectStore)
    assert isinstance(store, MultipartStore)
    assert not isinstance(LocalFolderStore(tmp_path), MultipartStore)
    assert not isinstance(MemoryStore(), MultipartStore)
    assert store.url == f"s3://{s3_bucket.name}/hub"
    assert store.cache.root == tmp_path / "data" / "cache"
    assert store.cache.max_bytes == settings.cache_bytes
    store.ping()
    assert SECRET_KEY not in repr(store)


def test_a_missing_bucket_is_refused_by_name(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    missing = S3Bucket(s3_bucket.server, "no-such-bucket-here")
    with pytest.raises(ConfigError, match="'no-such-bucket-here' does not exist") as err:
        open_store(missing.url, missing.settings(tmp_path))
    assert err.value.field == "TAHUB_STORAGE"


@pytest.mark.parametrize(
    ("url", "overrides", "field"),
    [
        ("s3://B_ad/x", {}, "TAHUB_STORAGE"),
        ("s3:///prefix", {}, "TAHUB_STORAGE"),
        ("s3://bucket/../up", {}, "TAHUB_STORAGE"),
        ("s3://bucket/x?y=1", {}, "TAHUB_STORAGE"),
        ("s3://bucket", {"s3_access_key": ""}, "TAHUB_S3_ACCESS_KEY"),
        ("s3://bucket", {"s3_secret_key": ""}, "TAHUB_S3_ACCESS_KEY"),
        ("s3://bucket", {"s3_endpoint": "127.0.0.1:9000"}, "TAHUB_S3_ENDPOINT"),
        ("s3://bucket", {"s3_endpoint": "http://h:9000/path"}, "TAHUB_S3_ENDPOINT"),
        ("s3://bucket", {"s3_public_endpoint": "ftp://h"}, "TAHUB_S3_PUBLIC_ENDPOINT"),
    ],
)
def test_bad_s3_settings_are_config_errors_naming_the_setting(
    tmp_path: Path, url: str, overrides: dict[str, str], field: str
) -> None:
    values = {"s3_endpoint": "http://127.0.0.1:9", "s3_access_key": ACCESS_KEY,
              "s3_secret_key": SECRET_KEY} | overrides
    settings = Settings(data_dir=tmp_path, storage=url, **values)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as err:
        open_store(url, settings)
    assert err.value.field == field


def test_an_s3_url_without_settings_names_the_setting() -> None:
    with pytest.raises(ConfigError, match="TAHUB_S3_"):
        open_store("s3://bucket/prefix")


def test_a_spark_cluster_reads_the_bucket_at_the_hubs_endpoint_with_the_chosen_keys(
    tmp_path: Path,
) -> None:
    """TAHUB_ENGINE=spark over s3://: the S3A settings the hub gives the cluster's session
    (hub.engines.spark): the hub's endpoint and region, its keys unless the cluster has its
    own; AWS by host name and TLS, MinIO and the like by path."""
    spark = {"data_dir": tmp_path, "engine": "spark", "spark_remote": "sc://h:15002",
             "spark_shared_dir": tmp_path, "storage": "s3://tahub/extracts",
             "s3_access_key": "AKIA-HUB", "s3_secret_key": "hub-secret", "s3_region": "eu-west-3"}
    minio = s3a_options(Settings(**spark, s3_endpoint="http://minio:9000"))
    assert minio == {
        "fs.s3a.endpoint": "http://minio:9000", "fs.s3a.endpoint.region": "eu-west-3",
        "fs.s3a.connection.ssl.enabled": "false", "fs.s3a.path.style.access": "true",
        "fs.s3a.access.key": "AKIA-HUB", "fs.s3a.secret.key": "hub-secret",
        "fs.s3a.aws.credentials.provider":
            "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}
    aws = s3a_options(Settings(**spark, spark_s3_credentials="cluster"))
    assert aws == {
        "fs.s3a.endpoint": "https://s3.amazonaws.com", "fs.s3a.endpoint.region": "eu-west-3",
        "fs.s3a.connection.ssl.enabled": "true", "fs.s3a.path.style.access": "false"}
    with pytest.raises(pydantic.ValidationError, match="spark_s3_credentials"):
        Settings(**spark, spark_s3_credentials="both")


@pytest.mark.parametrize("sse", ["aes", "kms:", "KMS:x", "s3 "])
def test_settings_refuse_unknown_encryption(tmp_path: Path, sse: str) -> None:
    with pytest.raises(pydantic.ValidationError, match="s3_sse"):
        Settings(data_dir=tmp_path, s3_sse=sse)


def test_prefixes_keep_two_stores_in_one_bucket_apart(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    one = _s3(s3_bucket, tmp_path)
    other_bucket = S3Bucket(s3_bucket.server, s3_bucket.name, prefix="other/deeper")
    other = _s3(other_bucket, tmp_path / "o")
    one.put_file(KEY, _file(tmp_path, "a", b"one"))
    other.put_file(KEY, _file(tmp_path, "b", b"other"))
    assert list(one.keys()) == [KEY] and list(other.keys()) == [KEY]
    names = {o.object_name for o in s3_bucket.server.client().list_objects(
        s3_bucket.name, recursive=True)}
    assert names == {f"hub/{KEY}", f"other/deeper/{KEY}"}
    assert one.local_path(KEY).read_bytes() == b"one"
    assert other.local_path(KEY).read_bytes() == b"other"


# -- checksums and encryption --------------------------------------------------------------
@pytest.mark.parametrize(
    ("sse", "headers"),
    [
        ("none", {}),
        ("s3", {"x-amz-server-side-encryption": "AES256"}),
        ("kms:hub-key-1", {"x-amz-server-side-encryption": "aws:kms",
                           "x-amz-server-side-encryption-aws-kms-key-id": "hub-key-1"}),
    ],
)
def test_every_write_records_the_sha256_and_the_encryption(
    s3_bucket: S3Bucket, tmp_path: Path, sse: str, headers: dict[str, str]
) -> None:
    store = _s3(s3_bucket, tmp_path, s3_sse=sse)
    data = os.urandom(3000)
    store.put_file(KEY, _file(tmp_path, "x", data))
    upload_id = store.start_multipart("uploads/u1.parquet")
    store.abort_multipart("uploads/u1.parquet", upload_id)
    stat = s3_bucket.server.client().stat_object(s3_bucket.name, f"hub/{KEY}")
    meta = {k.lower(): v for k, v in (stat.metadata or {}).items()}
    assert meta["x-amz-meta-sha256"] == hashlib.sha256(data).hexdigest()
    for name, value in headers.items():
        assert value in meta[name]
    if not headers:
        assert "x-amz-server-side-encryption" not in meta


def test_a_file_larger_than_one_part_keeps_its_sha256_and_encryption(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    store = _s3(s3_bucket, tmp_path, s3_sse="s3")
    data = os.urandom(17 * MiB)  # put_file sends 16 MiB parts
    store.put_file(KEY, _file(tmp_path, "big", data))
    stat = s3_bucket.server.client().stat_object(s3_bucket.name, f"hub/{KEY}")
    assert stat.etag is not None and stat.etag.endswith("-2")  # two parts
    assert stat.metadata is not None
    assert stat.metadata["x-amz-server-side-encryption"] == "AES256"
    assert store.local_path(KEY).read_bytes() == data  # checked against the sha256


def test_multipart_objects_are_encrypted_too(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    store = _s3(s3_bucket, tmp_path, s3_sse="s3")
    data = os.urandom(1000)
    upload_id = store.start_multipart(KEY)
    url = store.presign_part(KEY, upload_id, 1, timedelta(minutes=5))
    etag = httpx.put(url, content=data).raise_for_status().headers["etag"].strip('"')
    store.complete_multipart(KEY, upload_id, [(1, etag)])
    stat = s3_bucket.server.client().stat_object(s3_bucket.name, f"hub/{KEY}")
    assert stat.metadata is not None
    assert stat.metadata["x-amz-server-side-encryption"] == "AES256"


def _put_raw(bucket: S3Bucket, key: str, data: bytes, sha256: str | None) -> None:
    """Write an object behind the hub's back (a corrupted or foreign object)."""
    bucket.server.client().put_object(
        bucket.name, f"{bucket.prefix}/{key}", io.BytesIO(data), len(data),
        metadata={"sha256": sha256} if sha256 else None)


def test_a_sha256_mismatch_is_detected_and_nothing_is_cached(
    s3_bucket: S3Bucket, store: S3Store, tmp_path: Path
) -> None:
    _put_raw(s3_bucket, KEY, b"tampered", hashlib.sha256(b"original").hexdigest())
    with pytest.raises(Unavailable, match="does not match its recorded sha256") as err:
        store.local_path(KEY)
    assert err.value.extra["rule"] == "checksum"
    dest = tmp_path / "out" / "copy.parquet"
    with pytest.raises(Unavailable, match="sha256"):
        store.download(KEY, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert _cached(store) == []
    assert list((store.cache.root / ".tmp").iterdir()) == []


def test_an_object_without_a_recorded_sha256_is_never_served_to_queries(
    s3_bucket: S3Bucket, store: S3Store, tmp_path: Path
) -> None:
    _put_raw(s3_bucket, KEY, b"foreign", None)
    with pytest.raises(Unavailable, match="sha256"):
        store.local_path(KEY)
    dest = tmp_path / "copy"
    store.download(KEY, dest)  # downloads take it: the caller checks the bytes itself
    assert dest.read_bytes() == b"foreign"


def test_missing_objects_and_uploads_are_not_found(store: S3Store, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        store.local_path(KEY)
    with pytest.raises(NotFound):
        store.download(KEY, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    with pytest.raises(NotFound):
        store.list_parts(KEY, "no-such-upload")
    store.abort_multipart(KEY, "no-such-upload")  # idempotent


# -- the local cache -----------------------------------------------------------------------
def test_a_cached_extract_is_served_without_the_store(
    s3_bucket: S3Bucket, store: S3Store, tmp_path: Path
) -> None:
    other = "extracts/org_1/bank_alerts/ext_2.parquet"
    store.put_file(KEY, _file(tmp_path, "a", b"cached"))
    store.put_file(other, _file(tmp_path, "b", b"never read"))
    first = store.local_path(KEY)
    with s3_bucket.server.down():
        assert store.local_path(KEY) == first
        assert first.read_bytes() == b"cached"
        started = time.monotonic()
        with pytest.raises(Unavailable) as err:
            store.local_path(other)
        assert time.monotonic() - started < FAST
        assert err.value.extra["retry_after"] == RETRY_AFTER_SECONDS
    assert _cached(store) == [f"{s3_bucket.name}/hub/{KEY}"]


@pytest.mark.parametrize("columns", [3, 2000])  # a footer of a few hundred bytes, of >64 KiB
def test_a_files_schema_is_read_from_its_footer_without_a_local_copy(
    store: S3Store, tmp_path: Path, columns: int,
) -> None:
    """What a query on Spark needs of an extract committed on DuckDB (hub.query.engine):
    its columns and tahub.* metadata, from ranged reads of the file's end."""
    table = pa.table({f"c{i}": list(range(5000)) for i in range(columns)})
    path = tmp_path / "wide.parquet"
    pq.write_table(table.replace_schema_metadata({"tahub.dataset": "bank_alerts"}), path)
    store.put_file(KEY, path)
    assert pq.read_metadata(path).serialized_size > 64 * 1024 or columns == 3
    assert store.schema(KEY) == pq.read_schema(path)
    assert store.schema(KEY).metadata == {b"tahub.dataset": b"bank_alerts"}
    assert _cached(store) == []  # nothing downloaded
    with pytest.raises(NotFound):
        store.schema("extracts/org_1/bank_alerts/missing.parquet")


def test_put_and_delete_drop_the_local_copy(store: S3Store, tmp_path: Path) -> None:
    store.put_file(KEY, _file(tmp_path, "a", b"v1"))
    assert store.local_path(KEY).read_bytes() == b"v1"
    store.put_file(KEY, _file(tmp_path, "b", b"v2"))
    assert _cached(store) == []
    assert store.local_path(KEY).read_bytes() == b"v2"
    store.delete(KEY)
    assert _cached(store) == []


def test_the_cache_evicts_the_least_recently_used_copies(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    store = _s3(s3_bucket, tmp_path, cache_bytes=2500)
    store.cache.in_use_seconds = 0  # nothing counts as in use by a running query
    keys = [f"extracts/org_1/bank_alerts/ext_{c}.parquet" for c in "abc"]
    for i, key in enumerate(keys):
        store.put_file(key, _file(tmp_path, key[-10:], bytes([i]) * 1000))
    names = [f"{s3_bucket.name}/hub/{key}" for key in keys]
    for key in (keys[0], keys[1], keys[0]):  # b is now the least recently used
        store.local_path(key)
        time.sleep(0.02)  # file times tick in jiffies
    assert _cached(store) == names[:2]
    store.local_path(keys[2])  # 3000 bytes > 2500: b goes
    assert _cached(store) == [names[0], names[2]]
    assert store.cache.size() == 2000
    assert store.local_path(keys[1]).read_bytes() == bytes([1]) * 1000  # fetched again
    assert len(_cached(store)) == 2


def test_copies_in_use_are_not_evicted(s3_bucket: S3Bucket, tmp_path: Path) -> None:
    store = _s3(s3_bucket, tmp_path, cache_bytes=1500)  # in use: used in the last 15 min
    keys = [f"extracts/org_1/bank_alerts/ext_{c}.parquet" for c in "ab"]
    for key in keys:
        store.put_file(key, _file(tmp_path, key[-10:], b"x" * 1000))
    paths = [store.local_path(key) for key in keys]  # one query reads both
    assert all(p.read_bytes() == b"x" * 1000 for p in paths)
    assert store.cache.size() == 2000  # over the bound while in use
    store.cache.in_use_seconds = 0  # the query is over
    assert store.cache.evict() == 1 and store.cache.size() == 1000


def test_concurrent_readers_share_one_download(store: S3Store, tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    store.put_file(KEY, _file(tmp_path, "a", data))
    results: list[bytes] = []

    def read() -> None:
        results.append(store.local_path(KEY).read_bytes())

    threads = [threading.Thread(target=read) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [data] * 6
    assert len(_cached(store)) == 1
    assert list((store.cache.root / ".tmp").iterdir()) == []


def _fetch_in_process(root: str, counter: str, out: str, start: Any) -> None:
    """A worker process: fetch one name once every worker is ready; the download counts
    itself and takes a while, so that the others arrive while it runs."""

    def download(tmp: Path) -> None:
        with open(counter, "a") as fh:
            fh.write("download\n")
        time.sleep(0.5)
        tmp.write_bytes(b"shared copy")

    cache = ExtractCache(Path(root), 10_000)
    start.wait(timeout=60)
    Path(out).write_bytes(cache.fetch("b/x.parquet", download).read_bytes())


def test_processes_sharing_a_cache_folder_download_once(tmp_path: Path) -> None:
    counter = tmp_path / "downloads.txt"
    counter.touch()
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(3)
    workers = [
        ctx.Process(target=_fetch_in_process,
                    args=(str(tmp_path / "cache"), str(counter), str(tmp_path / f"out{i}"),
                          start))
        for i in range(3)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert [(tmp_path / f"out{i}").read_bytes() for i in range(3)] == [b"shared copy"] * 3
    assert counter.read_text().splitlines() == ["download"]


def test_prune_cache_removes_copies_of_objects_no_longer_visible(
    store: S3Store, tmp_path: Path
) -> None:
    keys = [f"extracts/org_1/bank_alerts/ext_{c}.parquet" for c in "ab"]
    for key in keys:
        store.put_file(key, _file(tmp_path, key[-10:], b"x"))
        store.local_path(key)
    assert store.prune_cache([keys[0]]) == 1
    assert _cached(store) == [f"{store.bucket}/hub/{keys[0]}"]


# -- presigned multipart uploads -----------------------------------------------------------
def test_a_multipart_upload_through_presigned_urls(
    s3_bucket: S3Bucket, tmp_path: Path
) -> None:
    public = s3_bucket.server.endpoint.replace("127.0.0.1", "localhost")
    store = _s3(s3_bucket, tmp_path, s3_public_endpoint=public)
    data = os.urandom(5 * MiB + 12345)
    source = _file(tmp_path, "big.parquet", data)
    key = "uploads/org_1/upl_1.parquet"
    upload_id = store.start_multipart(key, sha256=hashlib.sha256(data).hexdigest())
    assert [(u.key, u.upload_id) for u in store.list_multipart("uploads/")] == [
        (key, upload_id)]
    sent = []
    with source.open("rb") as fh, httpx.Client() as client:
        for number in (1, 2):
            url = store.presign_part(key, upload_id, number, timedelta(minutes=10))
            assert url.startswith(f"{public}/{s3_bucket.name}/hub/{key}?")
            chunk = fh.read(5 * MiB)
            response = client.put(url, content=chunk).raise_for_status()
            sent.append((number, response.headers["etag"].strip('"'), len(chunk)))
    assert [tuple(p) for p in store.list_parts(key, upload_id)] == sent
    store.complete_multipart(key, upload_id, store.list_parts(key, upload_id))
    assert store.list_multipart() == []
    assert store.exists(key)
    dest = tmp_path / "copy.parquet"
    store.download(key, dest)  # checked against the sha256 recorded at the start
    assert dest.read_bytes() == data
    assert store.local_path(key).read_bytes() == data


def test_completing_with_wrong_parts_is_invalid_input(store: S3Store) -> None:
    upload_id = store.start_multipart(KEY)
    url = store.presign_part(KEY, upload_id, 1, timedelta(minutes=1), public=False)
    httpx.put(url, content=b"part one").raise_for_status()
    with pytest.raises(InvalidInput) as err:
        store.complete_multipart(KEY, upload_id, [(1, "0" * 32)])
    assert err.value.field == "parts"
    assert not store.exists(KEY)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.presign_part(KEY, "u", 0, timedelta(minutes=1)), "part_number"),
        (lambda s: s.presign_part(KEY, "u", 10_001, timedelta(minutes=1)), "part_number"),
        (lambda s: s.presign_part(KEY, "u", 1, timedelta(days=8)), "expires"),
        (lambda s: s.start_multipart(KEY, sha256="not-hex"), "sha256"),
        (lambda s: s.start_multipart("../escape"), "key"),
        (lambda s: s.list_multipart("/abs"), "key"),
    ],
)
def test_multipart_arguments_are_checked(store: S3Store, call: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        call(store)
    assert err.value.field == field


def test_abort_and_list_abandoned_uploads(store: S3Store) -> None:
    first = store.start_multipart("uploads/org_1/upl_1.parquet")
    second = store.start_multipart("uploads/org_2/upl_2.parquet")
    other = store.start_multipart(KEY)
    listed = store.list_multipart("uploads/")
    assert [(u.key, u.upload_id) for u in listed] == [
        ("uploads/org_1/upl_1.parquet", first), ("uploads/org_2/upl_2.parquet", second)]
    assert all(u.initiated is not None for u in listed)
    assert {u.upload_id for u in store.list_multipart()} == {first, second, other}
    store.abort_multipart("uploads/org_1/upl_1.parquet", first)
    store.abort_multipart("uploads/org_1/upl_1.parquet", first)  # again: nothing to do
    assert [u.upload_id for u in store.list_multipart("uploads/")] == [second]
    with pytest.raises(NotFound):
        store.list_parts("uploads/org_1/upl_1.parquet", first)


# -- faults --------------------------------------------------------------------------------
def _every_call(store: S3Store, tmp_path: Path) -> dict[str, Any]:
    source = _file(tmp_path, "src", b"payload")
    return {
        "ping": lambda: store.ping(),
        "put_file": lambda: store.put_file(KEY, source),
        "local_path": lambda: store.local_path(KEY),
        "exists": lambda: store.exists(KEY),
        "delete": lambda: store.delete(KEY),
        "keys": lambda: list(store.keys("extracts/")),
        "start_multipart": lambda: store.start_multipart(KEY),
        "list_parts": lambda: store.list_parts(KEY, "u"),
        "complete_multipart": lambda: store.complete_multipart(KEY, "u", [(1, "e")]),
        "abort_multipart": lambda: store.abort_multipart(KEY, "u"),
        "list_multipart": lambda: store.list_multipart(),
        "download": lambda: store.download(KEY, tmp_path / "dl"),
    }


def test_store_down_is_unavailable_within_seconds_then_works_again(
    s3_bucket: S3Bucket, store: S3Store, tmp_path: Path
) -> None:
    with s3_bucket.server.down():
        for name, call in _every_call(store, tmp_path).items():
            started = time.monotonic()
            with pytest.raises(Unavailable, match="unreachable") as err:
                call()
            assert time.monotonic() - started < FAST, name
            assert err.value.extra["retry_after"] == RETRY_AFTER_SECONDS, name
            assert err.value.problem()["status"] == 503
    # back, but empty (moto keeps state in memory): the bucket is missing, then recreated
    with pytest.raises(Unavailable, match="does not exist"):
        store.ping()
    with pytest.raises(Unavailable, match="does not exist"):
        store.put_file(KEY, _file(tmp_path, "a", b"x"))
    s3_bucket.recreate()
    store.ping()
    store.put_file(KEY, _file(tmp_path, "b", b"back"))
    assert store.local_path(KEY).read_bytes() == b"back"


class _Busy(BaseHTTPRequestHandler):
    """An S3 endpoint that answers every request with 503 SlowDown."""

    def _answer(self) -> None:
        body = (b"<?xml version='1.0'?><Error><Code>SlowDown</Code>"
                b"<Message>busy</Message></Error>")
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def busy_endpoint() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_server_errors_are_unavailable_never_raw(busy_endpoint: str, tmp_path: Path) -> None:
    store = S3Store(bucket="busy", prefix="hub", endpoint=busy_endpoint,
                    access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                    cache_dir=tmp_path / "cache", cache_bytes=MiB)
    for name, call in _every_call(store, tmp_path).items():
        started = time.monotonic()
        try:
            call()
        except Unavailable as exc:
            assert exc.extra["retry_after"] == RETRY_AFTER_SECONDS, name
        except TahubError as exc:  # pragma: no cover - shown in the failure message
            pytest.fail(f"{name}: {type(exc).__name__} {exc}")
        else:
            pytest.fail(f"{name} did not fail")
        assert time.monotonic() - started < FAST, name

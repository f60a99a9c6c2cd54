"""Object storage: atomic puts, safe keys, both backends behind one protocol, URL parsing."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hub.errors import ConfigError, InvalidInput, NotFound
from hub.settings import Settings
from hub.storage.objects import (
    COMMON_METADATA,
    LocalFolderStore,
    MemoryStore,
    ObjectStore,
    S3Store,
    open_store,
    parquet_parts,
    parquet_schema,
)
from tests.s3server import S3Bucket

KEY = "extracts/org_1/bank_alerts/ext_1.parquet"


def _opened(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The store ``request.param`` names, empty."""
    if request.param == "folder":
        return LocalFolderStore(tmp_path / "objects")
    if request.param == "s3":  # a real S3 server process (tests/s3server.py)
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        return open_store(bucket.url, bucket.settings(tmp_path / "data"))
    return MemoryStore()


@pytest.fixture(params=["folder", "memory", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    return _opened(request, tmp_path)


def _file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_put_read_list_delete_round_trip(any_store: ObjectStore, tmp_path: Path) -> None:
    assert isinstance(any_store, ObjectStore)
    assert not any_store.exists(KEY)
    any_store.put_file(KEY, _file(tmp_path, "a", b"first"))
    any_store.put_file("extracts/org_2/x/ext_2.parquet", _file(tmp_path, "b", b"second"))
    any_store.put_file("other/thing", _file(tmp_path, "c", b"third"))
    assert any_store.exists(KEY)
    assert any_store.local_path(KEY).read_bytes() == b"first"
    assert list(any_store.keys("extracts/")) == [KEY, "extracts/org_2/x/ext_2.parquet"]
    assert list(any_store.keys()) == [KEY, "extracts/org_2/x/ext_2.parquet", "other/thing"]
    assert list(any_store.keys("extracts/org_2/")) == ["extracts/org_2/x/ext_2.parquet"]

    any_store.put_file(KEY, _file(tmp_path, "d", b"replaced"))  # overwrite
    assert any_store.local_path(KEY).read_bytes() == b"replaced"

    any_store.delete(KEY)
    any_store.delete(KEY)  # idempotent
    assert not any_store.exists(KEY)
    with pytest.raises(NotFound):
        any_store.local_path(KEY)
    assert KEY not in list(any_store.keys())


def test_local_path_is_readable_by_pyarrow(any_store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "t.parquet"
    pq.write_table(pa.table({"x": [1, 2, 3]}), source)
    any_store.put_file(KEY, source)
    assert pq.read_table(any_store.local_path(KEY)).column("x").to_pylist() == [1, 2, 3]


@pytest.mark.parametrize(
    "key", ["", "/etc/passwd", "../outside", "extracts/../../x", "a//b", "a/./b", "a/", ".tmp-x",
            "a/.hidden", "back\\slash", "spa ce"],
)
def test_unsafe_keys_are_refused(any_store: ObjectStore, tmp_path: Path, key: str) -> None:
    with pytest.raises(InvalidInput, match="invalid object key") as err:
        any_store.put_file(key, _file(tmp_path, "a", b"x"))
    assert err.value.field == "key"
    with pytest.raises(InvalidInput):
        any_store.exists(key)
    with pytest.raises(InvalidInput):
        any_store.delete(key)
    assert list(any_store.keys()) == []
    assert not (tmp_path.parent / "outside").exists()


def test_folder_put_is_atomic_when_the_rename_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalFolderStore(tmp_path / "objects")
    store.put_file(KEY, _file(tmp_path, "old", b"old content"))

    def crash(*_args: object) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        store.put_file(KEY, _file(tmp_path, "new", b"new content"))
    # the old object is intact and no temporary file is left next to it
    assert store.local_path(KEY).read_bytes() == b"old content"
    assert sorted(p.name for p in store.local_path(KEY).parent.iterdir()) == ["ext_1.parquet"]


def test_folder_put_of_a_missing_source_leaves_nothing(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "objects")
    with pytest.raises(FileNotFoundError):
        store.put_file(KEY, tmp_path / "missing.parquet")
    assert list(store.keys()) == []
    assert [p for p in (tmp_path / "objects").rglob("*") if p.is_file()] == []


def test_folder_keys_skip_temporary_files_and_delete_prunes_empty_folders(tmp_path: Path) -> None:
    root = tmp_path / "objects"
    store = LocalFolderStore(root)
    store.put_file(KEY, _file(tmp_path, "a", b"x"))
    (root / "extracts" / ".tmp-abandoned").write_bytes(b"partial")
    assert list(store.keys()) == [KEY]
    store.delete(KEY)
    assert not (root / "extracts" / "org_1").exists()  # emptied folders removed
    assert root.is_dir()


@pytest.fixture(params=["folder", "s3"])
def folder_store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The stores a Spark commit can publish to."""
    return _opened(request, tmp_path)


def _written(tmp_path: Path, schema: pa.Schema) -> Path:
    """A folder as Spark writes it: two parts and _SUCCESS (no _common_metadata yet)."""
    folder = tmp_path / "written"
    folder.mkdir()
    for i in range(2):
        pq.write_table(pa.table({"n": [i, i + 10]}, schema=schema),
                       folder / f"part-{i}.parquet")
    (folder / "_SUCCESS").write_bytes(b"")
    return folder


def test_a_folder_object_is_one_key_read_through_its_parts_and_common_metadata(
    folder_store: ObjectStore, tmp_path: Path,
) -> None:
    """What a Spark commit stores (hub.ingest.clustered): a folder of Parquet parts and its
    _common_metadata, listed, found, read and deleted as one object; its schema read from
    _common_metadata alone; the cluster reads it where it is (file:// or s3a://)."""
    store = folder_store
    other = "extracts/org_1/bank_alerts/ext_2.parquet"
    store.put_file(other, _file(tmp_path, "b", b"y"))
    schema = pa.schema([("n", pa.int64())], metadata={"tahub.dataset": "bank_alerts"})
    folder = _written(tmp_path, schema)
    with pytest.raises(ValueError, match="_common_metadata"):
        store.put_folder(KEY, folder)
    assert not store.exists(KEY)
    pq.write_metadata(schema, folder / COMMON_METADATA)
    store.put_folder(KEY, folder)
    assert store.exists(KEY)
    assert list(store.keys("extracts/")) == [KEY, other]
    assert store.schema(KEY).metadata == {b"tahub.dataset": b"bank_alerts"}
    path = store.local_path(KEY)  # the folder itself, or from S3 one file of its parts
    assert parquet_schema(path).metadata == {b"tahub.dataset": b"bank_alerts"}
    assert pq.ParquetDataset(parquet_parts(path)).read()["n"].to_pylist() == [0, 10, 1, 11]
    location = store.cluster_location(KEY)
    if isinstance(store, S3Store):
        assert location == f"s3a://{store.bucket}/{store.prefix}/{KEY}"
    else:
        assert not folder.exists()  # moved in by one rename
        assert location == path.resolve().as_uri()
    store.delete(KEY)
    assert not store.exists(KEY) and list(store.keys()) == [other]
    with pytest.raises(NotFound):
        store.local_path(KEY)


def test_a_memory_store_holds_no_folder_a_cluster_could_read(tmp_path: Path) -> None:
    folder = _written(tmp_path, pa.schema([("n", pa.int64())]))
    with pytest.raises(ConfigError, match="memory://"):
        MemoryStore().put_folder(KEY, folder)
    with pytest.raises(ConfigError, match="memory://"):
        MemoryStore().cluster_location(KEY)


def test_a_folder_left_incomplete_in_s3_is_one_orphan_key_and_no_object(
    s3_bucket: S3Bucket, tmp_path: Path,
) -> None:
    """Parts whose _common_metadata never arrived (the hub died while uploading them) are
    not an object, and are listed as one key, which the sweep removes whole."""
    store = open_store(s3_bucket.url, s3_bucket.settings(tmp_path / "data"))
    folder = _written(tmp_path, pa.schema([("n", pa.int64())]))
    for part in sorted(folder.iterdir()):
        store.put_file(f"{KEY}/{part.name}", part)
    assert not store.exists(KEY)
    assert list(store.keys("extracts/")) == [KEY]
    with pytest.raises(NotFound):
        store.local_path(KEY)
    store.delete(KEY)
    assert list(store.keys()) == []
    assert not list(s3_bucket.server.client().list_objects(s3_bucket.name, recursive=True))


def test_open_store_reads_file_and_memory_urls(tmp_path: Path) -> None:
    folder = tmp_path / "with space" / "objects"
    store = open_store(folder.as_uri())  # percent-encoded, as Settings writes it
    assert isinstance(store, LocalFolderStore)
    assert store.root == folder
    assert store.url == folder.resolve().as_uri()
    assert isinstance(open_store("memory://"), MemoryStore)


def test_the_default_storage_setting_opens_a_folder_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "my data")
    store = open_store(settings.storage)
    assert isinstance(store, LocalFolderStore)
    assert store.root == (tmp_path / "my data" / "objects").resolve()


@pytest.mark.parametrize(
    "url", ["s3://bucket/prefix", "objects", "/abs/path", "file://server/share", "file:rel",
            "memory://elsewhere", "file:///x?y=1", ""],
)
def test_open_store_refuses_other_urls_naming_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="TAHUB_STORAGE"):
        open_store(url)

"""Object storage for committed extracts, behind one small protocol.

The hub keeps each committed extract as one immutable object under
``extracts/<org id>/<dataset>/<extract id>.parquet``. The metadata store (``hub.storage.db``) says
which objects are visible; the store only holds bytes. Three backends:

* :class:`LocalFolderStore` (``file:///abs/path``), the embedded default: every write goes
  to a temporary file in the destination folder, is fsynced, then renamed over the key, so
  a reader never sees a partial object, even after a crash;
* :class:`MemoryStore` (``memory://``), for unit tests;
* :class:`S3Store` (``s3://bucket[/prefix]``), S3 or MinIO (:mod:`hub.storage.s3`): sha256
  metadata on every object, server-side encryption, a local cache of extracts for queries,
  folder objects a Spark cluster reads through S3A, and the multipart primitives of
  :class:`MultipartStore` (parts sent by the connector straight to the bucket through
  presigned URLs).

Key rules are in :mod:`hub.storage.objectkeys`. ``ping()`` is the readiness check; a store that
cannot be reached raises :class:`~hub.errors.Unavailable`, never a driver exception.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import pyarrow as pa

from hub.errors import ConfigError, NotFound, Unavailable
from hub.storage.folders import COMMON_METADATA, check_folder, parquet_parts, parquet_schema
from hub.storage.objectkeys import TMP_PREFIX, check_key, check_prefix
from hub.storage.s3 import MultipartUpload, S3Store, UploadPart, open_s3

if TYPE_CHECKING:
    from hub.settings import Settings

__all__ = [
    "COMMON_METADATA",
    "LocalFolderStore",
    "MemoryStore",
    "MultipartStore",
    "MultipartUpload",
    "ObjectStore",
    "S3Store",
    "UploadPart",
    "check_key",
    "open_store",
    "parquet_parts",
    "parquet_schema",
]

@runtime_checkable
class ObjectStore(Protocol):
    """Where committed extracts live. Keys are relative, '/'-separated paths."""

    url: str

    def put_file(self, key: str, source: Path) -> None:
        """Store a copy of ``source`` under ``key``; atomic (never a partial object)."""
        ...

    def local_path(self, key: str) -> Path:
        """A local file DuckDB or pyarrow can read (``NotFound`` when there is none)."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key does nothing."""
        ...

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix``, sorted."""
        ...

    def ping(self) -> None:
        """Check the store can be written now (readiness); ``Unavailable`` if not."""
        ...

    def put_folder(self, key: str, source: Path) -> None:
        """Store ``source``, a folder object (:mod:`hub.storage.folders`), under ``key``;
        it becomes visible whole or not at all."""
        ...

    def schema(self, key: str) -> pa.Schema:
        """The object's schema and ``tahub.*`` metadata, without reading its rows where
        the store can (``NotFound`` when there is no object)."""
        ...

    def cluster_location(self, key: str) -> str:
        """The URI under which a Spark cluster reads the object (a file or a folder of
        parts): ``file://`` for a folder the cluster shares, ``s3a://`` for S3."""
        ...


@runtime_checkable
class MultipartStore(Protocol):
    """A store that takes large objects in parts sent straight to it by presigned URLs.

    The hub starts an upload, hands out one presigned URL per part, lists what arrived,
    then completes (the object appears at once, whole) or aborts it.
    """

    def start_multipart(self, key: str, sha256: str | None = None) -> str:
        """Start an upload to ``key``; its upload id. ``sha256`` is recorded as metadata."""
        ...

    def presign_part(
        self, key: str, upload_id: str, part_number: int, expires: timedelta,
        public: bool = True,
    ) -> str:
        """A URL that takes one ``PUT`` of part ``part_number`` until ``expires`` passes."""
        ...

    def list_parts(self, key: str, upload_id: str) -> list[UploadPart]: ...

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadPart | tuple[int, str]]
    ) -> None:
        """Assemble ``parts`` (part number, etag) in order into the object ``key``."""
        ...

    def abort_multipart(self, key: str, upload_id: str) -> None:
        """Drop an upload and its parts; aborting an unknown upload does nothing."""
        ...

    def list_multipart(self, prefix: str = "") -> list[MultipartUpload]: ...

    def download(self, key: str, dest: Path) -> None:
        """Stream ``key`` into the file ``dest`` (replaced whole, never partial)."""
        ...


class LocalFolderStore:
    """Objects as files under ``root``; writes are temp file + fsync + ``os.replace``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = root.resolve().as_uri()

    def __repr__(self) -> str:
        return f"LocalFolderStore({str(self.root)!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def put_file(self, key: str, source: Path) -> None:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as src:
                shutil.copyfileobj(src, out, 1024 * 1024)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(dest.parent)

    def ping(self) -> None:
        """Write and remove a probe file under the root (created if missing)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=TMP_PREFIX + "ping-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise Unavailable(
                f"the object store folder cannot be written ({type(exc).__name__})"
            ) from None

    def put_folder(self, key: str, source: Path) -> None:
        """Move ``source``, a folder of Parquet parts with its ``_common_metadata`` (an
        extract Spark wrote: :mod:`hub.ingest.clustered`), to ``key`` in one rename; it
        must be on this store's file system."""
        check_folder(source)
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, dest)
        _fsync_dir(dest.parent)

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not self.exists(key):
            raise NotFound(f"object {key!r} does not exist")
        return path

    def schema(self, key: str) -> pa.Schema:
        return parquet_schema(self.local_path(key))

    def cluster_location(self, key: str) -> str:
        return self._path(key).resolve().as_uri()

    def exists(self, key: str) -> bool:
        path = self._path(key)
        return path.is_file() or (path / COMMON_METADATA).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        # Drop folders left empty, up to (not including) the root.
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent

    def keys(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        if not self.root.is_dir():
            return iter(())
        found = []
        for dirpath, dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for name in list(dirs):  # a folder object is one key (put_folder)
                if (Path(dirpath) / name / COMMON_METADATA).is_file():
                    dirs.remove(name)
                    files.append(name)
            for name in files:
                if name.startswith(TMP_PREFIX):
                    continue
                key = (rel / name).as_posix()
                if key.startswith(prefix):
                    found.append(key)
        return iter(sorted(found))


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); harmless where folders cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class MemoryStore:
    """Objects as bytes in a dict; ``local_path`` copies one out to a private temp folder."""

    url = "memory://"

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}
        self._spill: Path | None = None

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._objects)} objects)"

    def put_file(self, key: str, source: Path) -> None:
        self._objects[check_key(key)] = source.read_bytes()

    def local_path(self, key: str) -> Path:
        data = self._objects.get(check_key(key))
        if data is None:
            raise NotFound(f"object {key!r} does not exist")
        if self._spill is None:
            self._spill = Path(tempfile.mkdtemp(prefix="tahub-memstore-"))
            weakref.finalize(self, shutil.rmtree, self._spill, ignore_errors=True)
        path = self._spill.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def exists(self, key: str) -> bool:
        return check_key(key) in self._objects

    def put_folder(self, key: str, source: Path) -> None:
        raise ConfigError("memory:// storage holds files only, not an extract written by "
                          "Spark", field="TAHUB_STORAGE")

    def schema(self, key: str) -> pa.Schema:
        return parquet_schema(self.local_path(key))

    def cluster_location(self, key: str) -> str:
        raise ConfigError("a Spark cluster cannot read memory:// storage",
                          field="TAHUB_STORAGE")

    def ping(self) -> None:
        """Always reachable."""

    def delete(self, key: str) -> None:
        self._objects.pop(check_key(key), None)

    def keys(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        return iter(sorted(k for k in self._objects if k.startswith(prefix)))


def open_store(url: str, settings: Settings | None = None) -> ObjectStore:
    """The store a ``TAHUB_STORAGE`` URL names: ``s3://bucket[/prefix]`` (configured by
    ``settings``; the bucket must exist), ``file:///abs/path`` or ``memory://``."""
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return open_s3(url, parts, settings)
    if parts.scheme == "memory" and not parts.netloc.strip("/") and not parts.path.strip("/"):
        return MemoryStore()
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        if parts.query or parts.fragment:
            raise ConfigError(
                f"TAHUB_STORAGE {url!r}: a file:// URL takes no query or fragment",
                field="TAHUB_STORAGE",
            )
        return LocalFolderStore(Path(unquote(parts.path)))
    raise ConfigError(
        f"TAHUB_STORAGE {url!r} is not supported: use s3://<bucket>[/<prefix>], "
        "file:///absolute/path (or leave it empty for <data_dir>/objects)",
        field="TAHUB_STORAGE",
    )

"""Object storage for committed extracts, behind one small protocol.

The hub keeps each committed extract as one immutable object under
``extracts/<org id>/<dataset>/<extract id>.parquet``. The metadata store (``hub.db``) says
which objects are visible; the store only holds bytes. Two backends:

* :class:`LocalFolderStore` (``file:///abs/path``), the embedded default: every write goes
  to a temporary file in the destination folder, is fsynced, then renamed over the key, so
  a reader never sees a partial object, even after a crash;
* :class:`MemoryStore` (``memory://``), for unit tests.

An S3/MinIO backend comes later behind the same :class:`ObjectStore` protocol.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from hub.errors import ConfigError, InvalidInput, NotFound

__all__ = ["LocalFolderStore", "MemoryStore", "ObjectStore", "check_key", "open_store"]

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")
_TMP_PREFIX = ".tmp-"


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


def check_key(key: str) -> str:
    """Refuse keys that could escape the store: absolute, empty segments, '.' or '..'."""
    segments = key.split("/")
    if not key or len(key) > 512 or not all(_SEGMENT_RE.match(s) for s in segments):
        raise InvalidInput(
            f"invalid object key {key!r}: use relative '/'-separated names of letters, "
            "digits, '_', '-', '.' and '=' (no '..', no leading '/' or '.')",
            field="key",
        )
    return key


def _check_prefix(prefix: str) -> str:
    if prefix:
        check_key(prefix.rstrip("/"))
    return prefix


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
        fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=dest.parent)
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

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"object {key!r} does not exist")
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        path = self._path(key)
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
        _check_prefix(prefix)
        if not self.root.is_dir():
            return iter(())
        found = []
        for dirpath, _dirs, files in os.walk(self.root):
            rel = Path(dirpath).relative_to(self.root)
            for name in files:
                if name.startswith(_TMP_PREFIX):
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

    def delete(self, key: str) -> None:
        self._objects.pop(check_key(key), None)

    def keys(self, prefix: str = "") -> Iterator[str]:
        _check_prefix(prefix)
        return iter(sorted(k for k in self._objects if k.startswith(prefix)))


def open_store(url: str) -> ObjectStore:
    """The store a ``TAHUB_STORAGE`` URL names: ``file:///abs/path`` or ``memory://``."""
    parts = urlsplit(url)
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
        f"TAHUB_STORAGE {url!r} is not supported: use file:///absolute/path "
        "(or leave it empty for <data_dir>/objects)",
        field="TAHUB_STORAGE",
    )

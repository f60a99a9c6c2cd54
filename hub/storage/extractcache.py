"""Local copies of committed extracts, so that queries over object storage read local files.

A committed extract is immutable: once downloaded (and its sha256 checked by the caller),
the copy stays valid until the object is deleted, and later queries read it without
touching the object store. The cache is one folder, ``<root>/<name>`` per entry, bounded
by ``max_bytes`` with least-recently-used eviction. Several hub processes may share it:

* a download goes to a unique temporary file under ``<root>/.tmp`` and is renamed into
  place only once complete and checked, so nobody ever sees a partial entry;
* at most one download of a name at a time: an exclusive ``flock`` on one of
  :data:`_STRIPES` lock files chosen by the name's digest (a second reader waits, then
  finds the file);
* the folder lock ``<root>/.lock`` is shared by lookups and inserts and exclusive for
  eviction, so an entry is never removed between being found and being marked as used;
* "in use" means used within the last ``in_use_seconds``: the engine hands the paths to
  DuckDB right after the lookup, and on POSIX a file that is already open survives its
  removal. Eviction never removes an entry in use, so the bound is soft: a query that
  needs more than ``max_bytes`` at once still runs, and the excess goes once it is done.

Use is recorded in the file's modification time (``os.utime``), which every file system
keeps, unlike access times.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Callable, Collection, Iterator
from pathlib import Path

from hub.storage.locks import file_lock

__all__ = ["ExtractCache"]

#: How many lock files the per-name download locks are spread over.
_STRIPES = 256
#: A download whose temporary file is older than this was abandoned by a dead process.
_STALE_TMP_SECONDS = 24 * 3600
#: Default grace period during which a used entry counts as in use (longer than a query).
IN_USE_SECONDS = 900.0


class ExtractCache:
    """A size-bounded folder of immutable files, named by '/'-separated relative names.

    Names must already be safe relative paths (the store checks keys with
    :func:`hub.storage.objects.check_key`); names starting with '.' are reserved for bookkeeping.
    """

    def __init__(
        self, root: Path, max_bytes: int, *, in_use_seconds: float = IN_USE_SECONDS
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.in_use_seconds = in_use_seconds

    def __repr__(self) -> str:
        return f"ExtractCache({str(self.root)!r}, max_bytes={self.max_bytes})"

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*name.split("/"))

    def get(self, name: str) -> Path | None:
        """The cached file for ``name`` (now marked as used), or ``None``."""
        path = self._path(name)
        with self._folder_lock(exclusive=False):
            try:
                os.utime(path)
            except FileNotFoundError:
                return None
        return path

    def fetch(self, name: str, download: Callable[[Path], None]) -> Path:
        """The cached file for ``name``; on a miss, ``download(tmp)`` fills a temporary
        file (raising if the bytes are wrong), which then becomes the entry."""
        found = self.get(name)
        if found is not None:
            return found
        with self._name_lock(name):
            found = self.get(name)  # another process fetched it while we waited
            if found is not None:
                return found
            tmp_dir = self.root / ".tmp"
            tmp_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix="fetch-", dir=tmp_dir)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                download(tmp)
                path = self._path(name)
                with self._folder_lock(exclusive=False):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    os.replace(tmp, path)
                    os.utime(path)
            finally:
                tmp.unlink(missing_ok=True)
        self.evict()
        return path

    def discard(self, name: str) -> None:
        """Forget ``name`` (its object was replaced or deleted)."""
        path = self._path(name)
        with self._folder_lock(exclusive=True):
            path.unlink(missing_ok=True)
            self._prune(path.parent)

    def retain(self, names: Collection[str], under: str = "") -> int:
        """Remove every entry below ``under`` whose name is not in ``names``; how many.

        For housekeeping: copies of withdrawn extracts should not outlive their object
        on a host whose process did not delete it.
        """
        keep = set(names)
        removed = 0
        with self._folder_lock(exclusive=True):
            for name, path, _stat in self._entries():
                if name.startswith(under) and name not in keep:
                    path.unlink(missing_ok=True)
                    self._prune(path.parent)
                    removed += 1
        return removed

    def size(self) -> int:
        """Bytes held by the entries now."""
        return sum(st.st_size for _name, _path, st in self._entries())

    def evict(self) -> int:
        """Remove least recently used entries not in use until the cache fits; how many."""
        removed = 0
        with self._folder_lock(exclusive=True):
            now = time.time()
            entries = sorted(self._entries(), key=lambda e: e[2].st_mtime_ns)
            total = sum(st.st_size for _name, _path, st in entries)
            for _name, path, st in entries:
                if total <= self.max_bytes or now - st.st_mtime < self.in_use_seconds:
                    break  # sorted by last use: every later entry is newer
                path.unlink(missing_ok=True)
                self._prune(path.parent)
                total -= st.st_size
                removed += 1
            self._remove_stale_downloads(now)
        return removed

    # -- helpers -----------------------------------------------------------------------
    def _entries(self) -> Iterator[tuple[str, Path, os.stat_result]]:
        if not self.root.is_dir():
            return
        for dirpath, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for file in files:
                if file.startswith("."):
                    continue
                path = Path(dirpath, file)
                with contextlib.suppress(FileNotFoundError):
                    yield path.relative_to(self.root).as_posix(), path, path.stat()

    def _prune(self, folder: Path) -> None:
        """Drop folders left empty, up to (not including) the root."""
        while folder != self.root and self.root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break
            folder = folder.parent

    def _remove_stale_downloads(self, now: float) -> None:
        tmp_dir = self.root / ".tmp"
        if not tmp_dir.is_dir():
            return
        for path in tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > _STALE_TMP_SECONDS:
                    path.unlink()

    @contextlib.contextmanager
    def _folder_lock(self, *, exclusive: bool) -> Iterator[None]:
        with file_lock(self.root / ".lock", exclusive=exclusive):
            yield

    @contextlib.contextmanager
    def _name_lock(self, name: str) -> Iterator[None]:
        stripe = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % _STRIPES
        with file_lock(self.root / ".locks" / f"{stripe:03d}", exclusive=True):
            yield

"""Staging: the bytes of unfinished uploads, one file per upload, on the hub's own disk.

``<staging_dir>/<upload id>.part`` grows by appends; its size *is* the upload's offset, so
that nothing else needs to be kept in step with it. Each append is written, flushed and
fsynced before it is acknowledged, so a crash loses at most the chunk in flight and the
client resumes from the size it reads back. One writer at a time: every append, commit
and abort takes an exclusive ``flock`` on the file, across threads and processes.
Commits work in a ``check-*`` folder next to the files (DuckDB spill, the canonical
copy), removed afterwards; a crash leaves it for :meth:`Staging.remove_stale_workspaces`.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import IO

from hub.errors import Conflict

__all__ = ["StagedFile", "Staging"]

_SUFFIX = ".part"


class StagedFile:
    """An upload's staging file, held under an exclusive lock."""

    def __init__(self, path: Path, handle: IO[bytes]) -> None:
        self.path = path
        self._handle = handle

    @property
    def offset(self) -> int:
        return os.fstat(self._handle.fileno()).st_size

    def append(self, data: bytes) -> None:
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def sha256(self) -> str:
        with self.path.open("rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()


class Staging:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def path(self, upload_id: str) -> Path:
        return self.folder / f"{upload_id}{_SUFFIX}"

    def create(self, upload_id: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path(upload_id).touch()

    def offset(self, upload_id: str) -> int | None:
        """How many bytes are staged (None when there is no staging file)."""
        try:
            return self.path(upload_id).stat().st_size
        except FileNotFoundError:
            return None

    @contextmanager
    def locked(self, upload_id: str) -> Iterator[StagedFile]:
        """The staging file opened for appending; ``Conflict`` while another holds it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(upload_id)
        with path.open("ab") as handle:  # closing releases the lock
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise Conflict(
                    "another request is writing to or committing this upload; retry shortly",
                    offset=os.fstat(handle.fileno()).st_size,
                ) from exc
            yield StagedFile(path, handle)

    @contextmanager
    def workspace(self) -> Iterator[Path]:
        """A private folder for one commit's work files, removed afterwards."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="check-", dir=self.folder) as work:
            yield Path(work)

    def remove(self, upload_id: str) -> None:
        self.path(upload_id).unlink(missing_ok=True)

    def upload_ids(self) -> list[str]:
        """The uploads that have a staging file, sorted."""
        if not self.folder.is_dir():
            return []
        return sorted(p.name.removesuffix(_SUFFIX) for p in self.folder.glob(f"*{_SUFFIX}"))

    def remove_stale_workspaces(self, max_age: timedelta) -> int:
        """Remove work folders a crashed commit left behind; return how many."""
        if not self.folder.is_dir():
            return 0
        cutoff = time.time() - max_age.total_seconds()
        removed = 0
        for work in self.folder.glob("check-*"):
            if work.is_dir() and work.stat().st_mtime < cutoff:
                shutil.rmtree(work, ignore_errors=True)
                removed += 1
        return removed

"""The ingest service: resumable uploads, re-validation of every row, atomic commit, withdrawal.

One upload goes ``receiving -> committed | rejected | aborted | expired``::

    start_upload   declare dataset, version, size, sha256 -> a staging file (hub.ingest.staging)
                   (or: the same content is already visible -> that extract, nothing stored;
                    an unfinished upload of the same content -> that upload, to resume)
    append_chunk   bytes at the current offset; the staging file's size is the offset
    commit_upload  offset == size -> sha256 -> hub.ingest.extracts.check_extract, which also
                   numbers the rows for contribution bounding (hub.ingest.units, index committed
                   first) and writes the canonical copy -> object put -> ONE transaction:
                   extract row (visible) + upload committed

**Direct uploads** (``transfer = "direct"``, the default when the object store is S3):
the bytes never pass through the hub. ``start_upload`` opens a multipart upload at
``staging/<org>/<upload id>.parquet`` in the object store; the partner asks for presigned
URLs of the parts (:meth:`IngestService.part_urls`) and PUTs them straight to the store;
``commit_upload`` lists the parts (a missing or short part is a 409 naming it), completes
the multipart upload, streams the object to a work file (never into memory), then runs the
same checks and publication as a chunked upload, and deletes the staging object. An upload
abandoned before commit is aborted by :meth:`IngestService.sweep`.

The stored object is the hub's canonical copy of the checked rows, never the partner's
bytes (see ``hub.ingest.extracts``); the extract keeps the uploaded file's size and sha256, which
make uploads idempotent. Nothing is visible until the transaction commits, and a crash at
any point leaves nothing visible: before the object put, the staging file is swept later;
after the put but before the transaction, the object is an orphan (no visible extract
references it) that :meth:`IngestService.sweep` removes once its upload is finished or
expired. The unique index on visible (org, dataset, sha256) turns a concurrent commit of
the same content into ``CommitResult(duplicate=True)``.

Every upload and extract method needs the partner role and checks ownership on the object:
another organisation's upload or extract is :class:`~hub.errors.NotFound`, exactly as a
missing one. SQLAlchemy and OS errors are translated to :class:`~hub.errors.Unavailable`
at this boundary. Logs carry ids and counts, never values.

Audit (``hub.governance.audit``): the start, commit, rejection and abort of an upload and the
withdrawal of an extract are each written in the same transaction as the status change
they record (the entry and the change commit together, or neither does).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal, ParamSpec, TypeVar

import duckdb
import sqlalchemy as sa
import structlog
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hub.actors import Actor, Role
from hub.contracts.model import ContractRegistry
from hub.engines import cluster_runner
from hub.errors import (
    Conflict,
    EmptyExtract,
    ExtractInvalid,
    InvalidInput,
    NotFound,
    RowError,
    TooLarge,
    Unavailable,
)
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.ingest.clustered import ClusterCommit
from hub.ingest.extracts import ExtractLimits, ExtractReport, check_extract
from hub.ingest.linkage import LinkIndex, LinkSource, identifier_columns, linkable_datasets
from hub.ingest.staging import Staging
from hub.ingest.units import open_unit_index
from hub.metrics import Metrics
from hub.settings import Settings
from hub.storage.db import MEMBER_LIMITS, extracts, organisations, uploads, utcnow
from hub.storage.objects import MultipartStore, ObjectStore
from hub.storage.s3 import S3Store
from hub.storage.sandbox import DuckLimits

__all__ = [
    "CommitResult",
    "CommittedExtract",
    "ExtractView",
    "IngestService",
    "StartResult",
    "SweepReport",
    "UploadRequest",
    "UploadView",
    "object_key",
]

_log = structlog.get_logger("hub.ingest.service")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_RECEIVING, _COMMITTED, _REJECTED, _ABORTED, _EXPIRED = (
    "receiving", "committed", "rejected", "aborted", "expired",
)
_VISIBLE, _WITHDRAWN = "visible", "withdrawn"
_SPILL_MAX_AGE = timedelta(days=1)  # leftover DuckDB spill folders after a crash
_CHUNKS, _DIRECT = "chunks", "direct"
_MiB = 1024 * 1024
_MIN_PART_BYTES = 5 * _MiB  # S3's least size of every part but the last
_MAX_PARTS = 10_000  # S3's most parts of one multipart upload
_MAX_URLS = 1000  # presigned part URLs per request
_PART_URL_TTL = timedelta(hours=1)

P = ParamSpec("P")
R = TypeVar("R")


class UploadRequest(BaseModel):
    """Body of ``POST /v1/uploads``; the service checks the values (typed errors)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str
    contract_version: int
    size: int
    sha256: str
    filename: str | None = None
    #: chunks: PATCH the bytes to the hub; direct: PUT parts to presigned object-store
    #: URLs; auto: direct when the hub's object store is S3, else chunks.
    transfer: Literal["auto", "chunks", "direct"] = "auto"


class UploadView(BaseModel):
    id: str
    dataset: str
    contract_version: int
    size: int
    sha256: str
    offset: int  # bytes received (direct: the parts received, whatever their order)
    status: str
    chunk_bytes: int
    expires_at: datetime
    transfer: str = _CHUNKS
    part_bytes: int | None = None  # direct: every part but the last has this size
    parts: int | None = None  # direct: how many parts
    received_parts: list[int] | None = None  # direct: part numbers the store holds


class PartURL(BaseModel):
    part_number: int
    size: int
    url: str
    expires_at: datetime


class ExtractView(BaseModel):
    id: str
    partner: str
    dataset: str
    contract_version: int
    rows: int
    size: int
    sha256: str
    key_id: str
    status: str
    created_at: datetime
    withdrawn_at: datetime | None
    report: dict[str, Any]


class StartResult(BaseModel):
    upload: UploadView | None
    extract: ExtractView | None
    duplicate: bool
    resumed: bool = False  # an unfinished upload of the same content was returned


class CommitResult(BaseModel):
    extract: ExtractView
    duplicate: bool


@dataclass(frozen=True)
class CommittedExtract:
    """A visible extract as later queries read it."""

    id: str
    org: str
    dataset: str
    contract_version: int
    rows: int
    object_key: str


@dataclass(frozen=True)
class SweepReport:
    expired_uploads: int
    staging_files_removed: int
    orphan_objects_removed: int


def object_key(org: str, dataset: str, extract_id: str) -> str:
    return f"extracts/{org}/{dataset}/{extract_id}.parquet"


def staging_key(org: str, upload_id: str) -> str:
    """Where a direct upload's bytes land in the object store before commit."""
    return f"staging/{org}/{upload_id}.parquet"


def _part_bytes(size: int, chunk_bytes: int) -> int:
    """Part size of a direct upload: at least S3's 5 MiB, at most 10,000 parts, whole MiB."""
    wanted = max(chunk_bytes, _MIN_PART_BYTES, math.ceil(size / _MAX_PARTS))
    return math.ceil(wanted / _MiB) * _MiB


def _part_sizes(size: int, part_bytes: int) -> list[int]:
    count = max(1, math.ceil(size / part_bytes))
    return [part_bytes] * (count - 1) + [size - part_bytes * (count - 1)]


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def _boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """Translate metadata-store and file-system failures into ``Unavailable``."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except SQLAlchemyError as exc:
            _log.error("ingest.metadata_store_failed", op=fn.__name__, error=type(exc).__name__)
            raise Unavailable("the metadata store is unavailable; retry later") from exc
        except OSError as exc:
            _log.error("ingest.storage_failed", op=fn.__name__, error=type(exc).__name__)
            raise Unavailable("the hub's storage is unavailable; retry later") from exc

    return wrapper


class IngestService:
    """Uploads and extracts over the metadata store (``hub.storage.db``) and an object store."""

    def __init__(
        self,
        *,
        engine: sa.Engine,
        store: ObjectStore,
        registry: ContractRegistry,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> None:
        self._engine = engine
        self._metrics = metrics
        self._store = store
        self._registry = registry
        self._settings = settings
        self._staging = Staging(settings.staging_dir)
        self.units = open_unit_index(engine, settings.data_dir / "index" / "units")
        self.links = LinkIndex(settings.work_dir / "index" / "links",
                               max_tokens=settings.link_max_tokens,
                               stop_list=settings.link_stop_tokens(),
                               limits=DuckLimits.of(settings))
        self._linkable = linkable_datasets(
            [registry.get(d) for d in registry.datasets()])
        self.audit = AuditLog(engine)
        # TAHUB_ENGINE=spark: extracts checked, numbered and copied on the cluster
        # (hub.ingest.clustered), in work folders it shares
        runner = cluster_runner(settings)
        self._cluster = None if runner is None else ClusterCommit(
            runner, settings.work_dir, embedded=self.units)
        self._cluster_work = Staging(settings.work_dir / "commits")

    def close(self) -> None:
        """Close the cluster's session, if any."""
        if self._cluster is not None:
            self._cluster.runner.close()

    @contextmanager
    def _workspace(self) -> Iterator[Path]:
        """A commit's work folder: the hub's own, or one the cluster shares."""
        staging = self._staging if self._cluster is None else self._cluster_work
        with staging.workspace() as work:
            yield work

    # -- uploads -----------------------------------------------------------------------
    @_boundary
    def start_upload(self, actor: Actor, req: UploadRequest) -> StartResult:
        actor.require(Role.PARTNER)
        contract = self._registry.get(req.dataset, req.contract_version)
        sha = self._check_request(req)
        transfer = self._transfer(req)
        now = utcnow()
        with self._engine.begin() as conn:
            dup = conn.execute(
                sa.select(extracts).where(
                    extracts.c.org_id == actor.org,
                    extracts.c.dataset == contract.dataset,
                    extracts.c.sha256 == sha,
                    extracts.c.status == _VISIBLE,
                )
            ).first()
            if dup is not None:
                _log.info("upload.duplicate", org=actor.org, extract_id=dup.id)
                return StartResult(upload=None, extract=_extract_view(dup), duplicate=True)
            unfinished = conn.execute(
                sa.select(uploads).where(
                    uploads.c.org_id == actor.org,
                    uploads.c.sha256 == sha,
                    uploads.c.dataset == contract.dataset,
                    uploads.c.contract_version == contract.version,
                    uploads.c.size == req.size,
                    uploads.c.status == _RECEIVING,
                    uploads.c.expires_at > now,
                ).order_by(uploads.c.created_at.desc())
            ).first()
            if unfinished is not None:
                _log.info("upload.resumed", org=actor.org, upload_id=unfinished.id)
                view = self._upload_view(unfinished, now)
                return StartResult(upload=view, extract=None, duplicate=False, resumed=True)
            upload_id = _new_id("upl_")
            multipart_id, part_bytes = None, None
            if transfer == _DIRECT:  # an orphan if the insert fails: sweep aborts it
                part_bytes = self.part_bytes_for(req.size)
                multipart_id = self._multipart().start_multipart(
                    staging_key(actor.org, upload_id))
            conn.execute(sa.insert(uploads).values(
                id=upload_id, org_id=actor.org, dataset=contract.dataset,
                contract_version=contract.version, size=req.size, sha256=sha,
                filename=_clean_filename(req.filename), status=_RECEIVING, created_at=now,
                updated_at=now, expires_at=now + self._ttl, extract_id=None,
                transfer=transfer, multipart_id=multipart_id, part_bytes=part_bytes,
            ))
            row = conn.execute(sa.select(uploads).where(uploads.c.id == upload_id)).one()
            self.audit.append(_event(Action.UPLOAD_STARTED, actor, upload_id, contract.dataset,
                                     contract_version=contract.version, size=req.size,
                                     transfer=transfer), conn=conn)
        if transfer == _CHUNKS:
            self._staging.create(upload_id)
        _log.info("upload.started", org=actor.org, upload_id=upload_id,
                  dataset=contract.dataset, size=req.size, transfer=transfer)
        if self._metrics is not None:
            self._metrics.upload_started(contract.dataset)
        return StartResult(upload=self._upload_view(row, now, fresh=True), extract=None,
                           duplicate=False)

    def _check_request(self, req: UploadRequest) -> str:
        if req.size < 0:
            raise InvalidInput("size must be the extract's size in bytes", field="size")
        if req.size == 0:
            raise EmptyExtract("the extract is empty (size 0); there is nothing to share",
                               field="size")
        limit = self._settings.max_extract_bytes
        if req.size > limit:
            raise TooLarge(f"the extract is {req.size} bytes; the hub accepts at most {limit}",
                           field="size")
        sha = req.sha256.strip().lower()
        if not _SHA256_RE.match(sha):
            raise InvalidInput("sha256 must be 64 hex digits (the SHA-256 of the whole file)",
                               field="sha256")
        if req.filename is not None and len(req.filename) > 1024:
            raise InvalidInput("filename is too long", field="filename")
        return sha

    def _transfer(self, req: UploadRequest) -> str:
        direct = isinstance(self._store, MultipartStore)
        if req.transfer == "auto":
            return _DIRECT if direct else _CHUNKS
        if req.transfer == _DIRECT and not direct:
            raise InvalidInput(
                "direct uploads need an S3 object store; this hub keeps extracts on its own "
                "disk: use transfer 'chunks' (or 'auto')",
                field="transfer",
            )
        return req.transfer

    def part_bytes_for(self, size: int) -> int:
        """The part size of a direct upload of ``size`` bytes."""
        return _part_bytes(size, self._settings.chunk_bytes)

    def _multipart(self) -> MultipartStore:
        if not isinstance(self._store, MultipartStore):  # only for uploads made on S3
            raise Unavailable("this upload was started for an S3 object store the hub no "
                              "longer uses; start a new upload")
        return self._store

    @property
    def _ttl(self) -> timedelta:
        return timedelta(hours=self._settings.upload_ttl_hours)

    @_boundary
    def get_upload(self, actor: Actor, upload_id: str) -> UploadView:
        actor.require(Role.PARTNER)
        return self._upload_view(self._own_upload(actor, upload_id), utcnow())

    @_boundary
    def append_chunk(self, actor: Actor, upload_id: str, offset: int, data: bytes) -> UploadView:
        actor.require(Role.PARTNER)
        now = utcnow()
        up = self._own_upload(actor, upload_id)
        self._require_receiving(up, now)
        if up.transfer == _DIRECT:
            raise Conflict("this is a direct upload: PUT its parts to the URLs of "
                           f"POST /v1/uploads/{up.id}/parts, then commit")
        limit = self._settings.chunk_bytes
        if len(data) > limit:
            raise TooLarge(f"a chunk holds at most {limit} bytes; got {len(data)}", field="body")
        with self._staging.locked(up.id) as staged:
            current = staged.offset
            if offset != current:
                raise Conflict(
                    f"the upload holds {current} bytes; send the chunk at offset {current}",
                    offset=current,
                )
            if current + len(data) > up.size:
                raise TooLarge(
                    f"the chunk goes past the declared size of {up.size} bytes", field="body"
                )
            staged.append(data)
        with self._engine.begin() as conn:  # sliding expiry: resumable TTL after last chunk
            conn.execute(
                sa.update(uploads)
                .where(uploads.c.id == up.id, uploads.c.status == _RECEIVING)
                .values(updated_at=now, expires_at=max(up.expires_at, now + self._ttl))
            )
        _log.debug("upload.chunk", upload_id=up.id, offset=current, bytes=len(data))
        return self._upload_view(self._own_upload(actor, upload_id), now)

    @_boundary
    def part_urls(self, actor: Actor, upload_id: str, numbers: list[int]) -> list[PartURL]:
        """Presigned URLs to PUT the given parts of a direct upload straight to the store."""
        actor.require(Role.PARTNER)
        now = utcnow()
        up = self._own_upload(actor, upload_id)
        self._require_receiving(up, now)
        if up.transfer != _DIRECT:
            raise Conflict("this upload goes through the hub: PATCH its chunks instead")
        sizes = _part_sizes(up.size, up.part_bytes)
        if not numbers or len(numbers) > _MAX_URLS:
            raise InvalidInput(f"ask for 1 to {_MAX_URLS} part numbers at a time",
                               field="part_numbers")
        bad = [n for n in numbers if not 1 <= n <= len(sizes)]
        if bad:
            raise InvalidInput(f"part {bad[0]} does not exist: this upload has parts 1 to "
                               f"{len(sizes)}", field="part_numbers")
        ttl = min(_PART_URL_TTL, up.expires_at - now)
        store, key = self._multipart(), staging_key(up.org_id, up.id)
        return [PartURL(part_number=n, size=sizes[n - 1], expires_at=now + ttl,
                        url=store.presign_part(key, up.multipart_id, n, ttl))
                for n in sorted(set(numbers))]

    @_boundary
    def commit_upload(self, actor: Actor, upload_id: str) -> CommitResult:
        actor.require(Role.PARTNER)
        now = utcnow()
        up = self._own_upload(actor, upload_id)
        if up.status == _COMMITTED and up.extract_id is not None:  # a retried commit
            return CommitResult(extract=self._extract(actor, up.extract_id), duplicate=False)
        self._require_receiving(up, now)
        if up.transfer == _DIRECT:
            return self._commit_direct(actor, up, now)
        with self._staging.locked(up.id) as staged, self._workspace() as work:
            current = staged.offset
            if current != up.size:
                raise Conflict(
                    f"the upload holds {current} of {up.size} bytes; send the rest first",
                    offset=current,
                )
            canonical = work / "extract.parquet"
            report = self._verify(actor, up, staged.path, canonical)
            return self._publish(actor, up, canonical, report, now)

    def _commit_direct(self, actor: Actor, up: Any, now: datetime) -> CommitResult:
        """Parts complete -> one object -> streamed to a work file -> the same checks."""
        store, key = self._multipart(), staging_key(up.org_id, up.id)
        if not self._store.exists(key):  # not assembled yet (a retried commit may find it done)
            sizes = _part_sizes(up.size, up.part_bytes)
            held = {int(n): (etag, int(size)) for n, etag, size in
                    store.list_parts(key, up.multipart_id)}
            missing = [n for n, size in enumerate(sizes, 1) if held.get(n, ("", -1))[1] != size]
            if missing:
                raise Conflict(
                    f"{len(missing)} of {len(sizes)} parts have not arrived whole (first: part "
                    f"{missing[0]}); PUT them again, then commit",
                    missing_parts=missing[:_MAX_URLS],
                    offset=sum(s for n, s in enumerate(sizes, 1) if n not in missing),
                )
            store.complete_multipart(key, up.multipart_id,
                                     [(n, held[n][0]) for n in range(1, len(sizes) + 1)])
        with self._workspace() as work:
            raw = work / "upload.parquet"
            try:
                store.download(key, raw)
            except NotFound:  # a concurrent commit published it and removed the bytes
                again = self._own_upload(actor, up.id)
                if again.status == _COMMITTED and again.extract_id is not None:
                    return CommitResult(extract=self._extract(actor, again.extract_id),
                                        duplicate=False)
                raise Conflict("the upload's bytes are gone from the object store; "
                               "start a new upload") from None
            canonical = work / "extract.parquet"
            report = self._verify(actor, up, raw, canonical)
            result = self._publish(actor, up, canonical, report, now)
        self._store.delete(key)
        return result

    def extract_limits(self, org: str) -> ExtractLimits:
        """What one extract of ``org`` may hold: its own limits where an administrator set
        them (``tahub admin member limits``), else the hub's settings."""
        o = organisations.c
        with self._engine.connect() as conn:
            own = conn.execute(sa.select(*(o[n] for n in MEMBER_LIMITS))
                               .where(o.id == org)).first() or (None,) * len(MEMBER_LIMITS)
        return ExtractLimits(*(getattr(self._settings, n) if v is None else v
                               for n, v in zip(MEMBER_LIMITS, own, strict=True)))

    def _verify(self, actor: Actor, up: Any, raw: Path, canonical: Path) -> ExtractReport:
        """Checksum and contract; any failure rejects the upload and discards its bytes."""
        try:
            contract = self._registry.get(up.dataset, up.contract_version)
            if _sha256(raw) != up.sha256:
                raise ExtractInvalid(
                    "the uploaded bytes do not match the declared sha256; "
                    "the upload is discarded, start again",
                    field="sha256",
                    errors=[RowError(field="sha256", reason="checksum mismatch")],
                )
            duck = DuckLimits.of(self._settings)
            if self._settings.duckdb_temp_dir is None:  # the work folder: swept after a crash
                duck = replace(duck, spill_root=canonical.parent)
            if self._cluster is not None and raw.parent != canonical.parent:
                shutil.copyfile(raw, canonical.parent / "upload.parquet")  # where it reads
                raw = canonical.parent / "upload.parquet"
            return check_extract(raw, contract, canonical=canonical, duck=duck,
                                 limits=self.extract_limits(actor.org), units=self.units,
                                 partner=actor.org, cluster=self._cluster)
        except (InvalidInput, NotFound) as exc:
            self._finish(up, _REJECTED, _event(
                Action.UPLOAD_REJECTED, actor, up.id, up.dataset,
                contract_version=up.contract_version, size=up.size, code=exc.code,
                total_errors=exc.total_errors))
            _log.info("upload.rejected", org=actor.org, upload_id=up.id, code=exc.code,
                      total_errors=exc.total_errors)
            if self._metrics is not None:
                self._metrics.upload_rejected(up.dataset)
            raise

    def _publish(
        self, actor: Actor, up: Any, canonical: Path, report: ExtractReport, now: datetime
    ) -> CommitResult:
        """Object put, then one transaction: extract row visible + upload committed."""
        # Reserve the extract id first, so that sweep spares the object until the
        # transaction below commits (or this upload expires).
        extract_id = up.extract_id or _new_id("ext_")
        key = object_key(actor.org, up.dataset, extract_id)
        self._set_receiving(up.id, extract_id=extract_id, updated_at=now)
        if canonical.is_dir():  # written by the cluster
            self._store.put_folder(key, canonical)
        else:
            self._store.put_file(key, canonical)
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.insert(extracts).values(
                    id=extract_id, org_id=actor.org, dataset=up.dataset,
                    contract_version=up.contract_version, rows=report.rows, size=up.size,
                    sha256=up.sha256, key_id=report.key_id, object_key=key, status=_VISIBLE,
                    created_at=utcnow(), withdrawn_at=None, report=report.as_dict(),
                ))
                done = conn.execute(
                    sa.update(uploads)
                    .where(uploads.c.id == up.id, uploads.c.status == _RECEIVING)
                    .values(status=_COMMITTED, extract_id=extract_id, updated_at=utcnow())
                )
                if done.rowcount != 1:
                    raise Conflict("the upload was aborted or expired while committing")
                self.audit.append(_event(
                    Action.UPLOAD_COMMITTED, actor, up.id, up.dataset, extract_id=extract_id,
                    contract_version=up.contract_version, rows=report.rows, size=up.size,
                    duplicate=False), conn=conn)
        except IntegrityError:
            self._store.delete(key)
            return self._commit_duplicate(actor, up)
        except Conflict:
            self._store.delete(key)
            raise
        self._staging.remove(up.id)
        _log.info("upload.committed", org=actor.org, upload_id=up.id, extract_id=extract_id,
                  rows=report.rows)
        if self._metrics is not None:
            self._metrics.upload_committed(up.dataset, up.size)
        self._link(up.dataset)
        return CommitResult(extract=self._extract(actor, extract_id), duplicate=False)

    def _commit_duplicate(self, actor: Actor, up: Any) -> CommitResult:
        """The same content became visible meanwhile (a concurrent commit): answer it."""
        with self._engine.begin() as conn:
            existing = conn.execute(
                sa.select(extracts).where(
                    extracts.c.org_id == actor.org,
                    extracts.c.dataset == up.dataset,
                    extracts.c.sha256 == up.sha256,
                    extracts.c.status == _VISIBLE,
                )
            ).first()
            if existing is None:  # withdrawn in between: the client may simply retry
                raise Conflict("the same content was committed and withdrawn meanwhile; retry",
                               offset=up.size)
            done = conn.execute(
                sa.update(uploads)
                .where(uploads.c.id == up.id, uploads.c.status == _RECEIVING)
                .values(status=_COMMITTED, extract_id=existing.id, updated_at=utcnow())
            )
            if done.rowcount == 1:
                self.audit.append(_event(
                    Action.UPLOAD_COMMITTED, actor, up.id, up.dataset, extract_id=existing.id,
                    contract_version=up.contract_version, rows=existing.rows, size=up.size,
                    duplicate=True), conn=conn)
        self._staging.remove(up.id)
        _log.info("upload.duplicate_commit", org=actor.org, upload_id=up.id,
                  extract_id=existing.id)
        return CommitResult(extract=_extract_view(existing), duplicate=True)

    @_boundary
    def abort_upload(self, actor: Actor, upload_id: str) -> None:
        actor.require(Role.PARTNER)
        up = self._own_upload(actor, upload_id)
        if up.status == _COMMITTED:
            raise Conflict("the upload is committed; withdraw its extract instead")
        if up.status != _RECEIVING:
            return  # already finished: aborting again changes nothing
        event = _event(Action.UPLOAD_ABORTED, actor, up.id, up.dataset,
                       contract_version=up.contract_version, size=up.size)
        if up.transfer == _DIRECT:
            self._finish(up, _ABORTED, event)
        else:
            with self._staging.locked(up.id):
                self._finish(up, _ABORTED, event)
        _log.info("upload.aborted", org=actor.org, upload_id=up.id)

    # -- extracts ----------------------------------------------------------------------
    @_boundary
    def list_extracts(
        self, actor: Actor, *, dataset: str | None = None, include_withdrawn: bool = False
    ) -> list[ExtractView]:
        actor.require(Role.PARTNER)
        query = sa.select(extracts).where(extracts.c.org_id == actor.org)
        if dataset is not None:
            query = query.where(extracts.c.dataset == dataset)
        if not include_withdrawn:
            query = query.where(extracts.c.status == _VISIBLE)
        with self._engine.connect() as conn:
            rows = conn.execute(query.order_by(extracts.c.created_at, extracts.c.id)).all()
        return [_extract_view(r) for r in rows]

    @_boundary
    def get_extract(self, actor: Actor, extract_id: str) -> ExtractView:
        actor.require(Role.PARTNER)
        return self._extract(actor, extract_id)

    @_boundary
    def withdraw_extract(self, actor: Actor, extract_id: str) -> ExtractView:
        actor.require(Role.PARTNER)
        row = self._extract_row(actor, extract_id)
        if row.status == _VISIBLE:
            with self._engine.begin() as conn:
                done = conn.execute(
                    sa.update(extracts)
                    .where(extracts.c.id == row.id, extracts.c.status == _VISIBLE)
                    .values(status=_WITHDRAWN, withdrawn_at=utcnow())
                )
                if done.rowcount == 1:
                    self.audit.append(AuditEvent(
                        Action.EXTRACT_WITHDRAWN, actor=actor.client_id, org=actor.org,
                        object_type="extract", object_id=row.id, dataset=row.dataset,
                        details={"contract_version": row.contract_version, "rows": row.rows},
                    ), conn=conn)
            _log.info("extract.withdrawn", org=actor.org, extract_id=row.id)
        # After the row: a crash in between leaves an orphan object for sweep to remove.
        self._store.delete(row.object_key)
        self._link(row.dataset)
        return self._extract(actor, extract_id)

    @_boundary
    def visible_extracts(self, dataset: str) -> list[CommittedExtract]:
        """Every organisation's visible extracts of ``dataset`` (what later queries read)."""
        query = (
            sa.select(extracts)
            .where(extracts.c.dataset == dataset, extracts.c.status == _VISIBLE)
            .order_by(extracts.c.created_at, extracts.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            CommittedExtract(id=r.id, org=r.org_id, dataset=r.dataset,
                             contract_version=r.contract_version, rows=r.rows,
                             object_key=r.object_key)
            for r in rows
        ]

    # -- persons across partners and datasets (hub.ingest.linkage) ---------------------
    @_boundary
    def link_sources(self) -> list[LinkSource]:
        """Every visible extract of every dataset whose units can link (:meth:`linkable`),
        with its identifier columns."""
        out = []
        for dataset in sorted(self.linkable()):
            identifiers = identifier_columns(self._registry.get(dataset))
            for extract in self.visible_extracts(dataset):
                try:
                    path = self._store.local_path(extract.object_key)
                except NotFound as exc:  # withdrawn meanwhile
                    raise Unavailable("the data changed while persons were resolved; "
                                      "retry") from exc
                out.append(LinkSource(dataset, extract.id, path, identifiers))
        return out

    def linkable(self) -> frozenset[str]:
        """The datasets whose units can join other units (fixed by the contracts, so worked
        out once, not on every query: :func:`linkable_datasets`)."""
        return self._linkable

    def persons(self, dataset: str) -> Path | None:
        """``dataset``'s map of linked units to persons at the current state (resolved now
        unless a commit or an earlier query already did), None when nothing links."""
        if dataset not in self.linkable():
            return None
        try:
            return self.links.persons(self.link_sources(), dataset)
        except (duckdb.Error, OSError) as exc:
            _log.error("links.resolve_failed", error=type(exc).__name__)
            raise Unavailable("persons could not be resolved; retry later") from exc

    def _link(self, dataset: str) -> None:
        """Resolve persons for the new state right away, so that the next query finds them
        (best effort: a query resolves them itself if this fails)."""
        if dataset not in self.linkable():
            return
        try:
            self.links.resolve(self.link_sources())
        except (duckdb.Error, OSError, Unavailable) as exc:
            _log.warning("links.resolve_deferred", error=type(exc).__name__)

    # -- housekeeping ------------------------------------------------------------------
    @_boundary
    def sweep(self, now: datetime | None = None) -> SweepReport:
        """Expire stale uploads and remove staging files and objects nothing refers to.

        Listings come before the database reads, so that a file or object created while
        the sweep runs is never mistaken for an orphan.
        """
        now = now or utcnow()
        staged = self._staging.upload_ids()
        keys = list(self._store.keys("extracts/"))
        multipart = self._store if isinstance(self._store, MultipartStore) else None
        direct_keys = list(self._store.keys("staging/")) if multipart else []
        pending = list(multipart.list_multipart("staging/")) if multipart else []
        with self._engine.begin() as conn:
            expired = conn.execute(
                sa.select(uploads.c.id).where(
                    uploads.c.status == _RECEIVING, uploads.c.expires_at <= now
                )
            ).scalars().all()
            if expired:
                conn.execute(
                    sa.update(uploads)
                    .where(uploads.c.id.in_(expired), uploads.c.status == _RECEIVING)
                    .values(status=_EXPIRED, updated_at=now)
                )
        with self._engine.connect() as conn:
            receiving = set(conn.execute(
                sa.select(uploads.c.id, uploads.c.extract_id)
                .where(uploads.c.status == _RECEIVING)
            ).all())
            referenced = set(conn.execute(
                sa.select(extracts.c.object_key).where(extracts.c.status == _VISIBLE)
            ).scalars())
        live = {upload_id for upload_id, _ in receiving}
        reserved = {extract_id for _, extract_id in receiving if extract_id}
        removed = 0
        for upload_id in staged:
            if upload_id not in live:
                self._staging.remove(upload_id)
                removed += 1
        orphans = 0
        for key in keys:
            if key not in referenced and PurePosixPath(key).stem not in reserved:
                self._store.delete(key)
                orphans += 1
        # direct uploads: multipart uploads and assembled objects of finished uploads
        for key, multipart_id, _initiated in pending:
            if PurePosixPath(key).stem not in live and multipart is not None:
                multipart.abort_multipart(key, multipart_id)
                removed += 1
        for key in direct_keys:
            if PurePosixPath(key).stem not in live:
                self._store.delete(key)
                removed += 1
        self._staging.remove_stale_workspaces(_SPILL_MAX_AGE)
        if self._cluster is not None:
            self._cluster_work.remove_stale_workspaces(_SPILL_MAX_AGE)
        if isinstance(self._store, S3Store):  # local copies of extracts withdrawn anywhere
            self._store.prune_cache(referenced)
        report = SweepReport(len(expired), removed, orphans)
        _log.info("ingest.swept", expired_uploads=report.expired_uploads,
                  staging_files_removed=removed, orphan_objects_removed=orphans)
        return report

    # -- helpers -----------------------------------------------------------------------
    def _own_upload(self, actor: Actor, upload_id: str) -> Any:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(uploads).where(uploads.c.id == upload_id, uploads.c.org_id == actor.org)
            ).first()
        if row is None:
            raise NotFound(f"no upload {upload_id!r}")
        return row

    def _extract(self, actor: Actor, extract_id: str) -> ExtractView:
        return _extract_view(self._extract_row(actor, extract_id))

    def _extract_row(self, actor: Actor, extract_id: str) -> Any:
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(extracts).where(
                    extracts.c.id == extract_id, extracts.c.org_id == actor.org
                )
            ).first()
        if row is None:
            raise NotFound(f"no extract {extract_id!r}")
        return row

    def _require_receiving(self, up: Any, now: datetime) -> None:
        if up.status == _RECEIVING and up.expires_at <= now:
            raise Conflict("the upload expired before it was finished; start a new one")
        if up.status != _RECEIVING:
            raise Conflict(f"the upload is {up.status}; start a new one")

    def _set_receiving(self, upload_id: str, **values: Any) -> None:
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(uploads)
                .where(uploads.c.id == upload_id, uploads.c.status == _RECEIVING)
                .values(**values)
            )
        if done.rowcount != 1:
            raise Conflict("the upload was aborted or expired meanwhile")

    def _finish(self, up: Any, status: str, event: AuditEvent | None = None) -> None:
        with self._engine.begin() as conn:
            done = conn.execute(
                sa.update(uploads)
                .where(uploads.c.id == up.id, uploads.c.status == _RECEIVING)
                .values(status=status, updated_at=utcnow())
            )
            if event is not None and done.rowcount == 1:
                self.audit.append(event, conn=conn)
        if up.transfer == _DIRECT:  # what remains of it in the store; sweep retries on failure
            key = staging_key(up.org_id, up.id)
            self._multipart().abort_multipart(key, up.multipart_id)
            self._store.delete(key)
        else:
            self._staging.remove(up.id)

    def _upload_view(self, row: Any, now: datetime, *, fresh: bool = False) -> UploadView:
        status = row.status
        if status == _RECEIVING and row.expires_at <= now:
            status = _EXPIRED
        direct: dict[str, Any] = {}
        if row.transfer == _DIRECT:
            sizes = _part_sizes(row.size, row.part_bytes)
            received = list(range(1, len(sizes) + 1)) if status == _COMMITTED else []
            if status == _RECEIVING and not fresh:
                received = self._received_parts(row, sizes)
            offset = sum(sizes[n - 1] for n in received)
            direct = {"part_bytes": row.part_bytes, "parts": len(sizes),
                      "received_parts": received}
        else:
            staged = self._staging.offset(row.id)
            offset = staged if staged is not None else (
                row.size if row.status == _COMMITTED else 0)
        return UploadView(
            id=row.id, dataset=row.dataset, contract_version=row.contract_version,
            size=row.size, sha256=row.sha256, offset=offset, status=status,
            chunk_bytes=self._settings.chunk_bytes, expires_at=row.expires_at,
            transfer=row.transfer, **direct,
        )


    def _received_parts(self, row: Any, sizes: list[int]) -> list[int]:
        """The parts of a direct upload that arrived whole; all of them once a commit has
        assembled the object (its multipart upload is then gone: a commit that did not
        finish, e.g. a hub killed while checking, leaves the upload receiving)."""
        key = staging_key(row.org_id, row.id)
        try:
            parts = self._multipart().list_parts(key, row.multipart_id)
        except NotFound:
            if not self._store.exists(key):
                raise
            return list(range(1, len(sizes) + 1))
        return sorted(int(n) for n, _etag, size in parts
                      if 1 <= int(n) <= len(sizes) and int(size) == sizes[int(n) - 1])


def _event(action: Action, actor: Actor, upload_id: str, dataset: str,
           **details: Any) -> AuditEvent:
    """The audit event of an upload (ids, sizes, counts: never a value)."""
    return AuditEvent(action, actor=actor.client_id, org=actor.org, object_type="upload",
                      object_id=upload_id, dataset=dataset, details=details)


def _extract_view(row: Any) -> ExtractView:
    return ExtractView(
        id=row.id, partner=row.org_id, dataset=row.dataset,
        contract_version=row.contract_version, rows=row.rows, size=row.size,
        sha256=row.sha256, key_id=row.key_id, status=row.status, created_at=row.created_at,
        withdrawn_at=row.withdrawn_at, report=dict(row.report),
    )


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _clean_filename(name: str | None) -> str | None:
    """Keep only the base name (never a partner's folder layout), at most 255 characters."""
    if name is None:
        return None
    base = PurePosixPath(name.replace("\\", "/")).name
    return base[-255:] or None

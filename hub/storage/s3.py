"""Object storage on S3 or MinIO, through the official ``minio`` SDK.

:class:`S3Store` implements :class:`hub.storage.objects.ObjectStore` and
:class:`hub.storage.objects.MultipartStore` for ``TAHUB_STORAGE=s3://<bucket>[/<prefix>]``:

* every object the hub writes carries its content sha256 as user metadata
  (``x-amz-meta-sha256``) and the server-side encryption of ``TAHUB_S3_SSE``; a put is
  checked by reading the object's size and metadata back, a download by hashing it;
* queries read local copies (``local_path``) from an
  :class:`~hub.storage.extractcache.ExtractCache`: one download per extract and host, not
  one per query;
* an extract committed on Spark is a folder object (:mod:`hub.storage.folders`): its parts
  under ``<key>/``, then ``<key>/_common_metadata``; listed, found and deleted as one key,
  its schema read from ``_common_metadata`` alone, served to DuckDB as one local file of
  its parts, and read by the cluster itself through S3A (``cluster_location``,
  :func:`s3a_options`);
* large uploads go straight from the connector to the bucket: the hub starts a multipart
  upload, presigns one ``PUT`` URL per part (with ``TAHUB_S3_PUBLIC_ENDPOINT``), lists the
  parts that arrived and completes or aborts the upload;
* every failure of the store (connection refused, timeout, 5xx, missing bucket) becomes
  :class:`~hub.errors.Unavailable` with ``retry_after``; refused credentials a
  :class:`~hub.errors.ConfigError`; no minio or urllib3 exception leaves this module.
  Retries are few and timeouts short, so a request fails within seconds when the store
  is down instead of hanging.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import SplitResult, urlsplit

import certifi
import pyarrow as pa
import pyarrow.parquet as pq
import structlog
import urllib3
from minio import Minio
from minio.datatypes import Part
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.helpers import DictType, check_bucket_name
from minio.sse import Sse, SseKMS, SseS3

from hub.errors import ConfigError, InvalidInput, NotFound, TahubError, Unavailable
from hub.storage.extractcache import IN_USE_SECONDS, ExtractCache
from hub.storage.folders import COMMON_METADATA, FOLDER_ENTRY, check_folder, parquet_parts
from hub.storage.objectkeys import TMP_PREFIX, check_key, check_prefix, is_key

if TYPE_CHECKING:
    from hub.settings import Settings

__all__ = ["RETRY_AFTER_SECONDS", "MultipartUpload", "S3Store", "UploadPart", "open_s3",
           "s3a_options"]

_log = structlog.get_logger("hub.storage.s3")

#: Seconds a client is told to wait when the object store is unreachable.
RETRY_AFTER_SECONDS = 5
#: Parts of the hub's own uploads (``put_file``); S3 allows at most 10,000 per object.
_PART_BYTES = 16 * 1024 * 1024
_CHUNK_BYTES = 1024 * 1024  # read size when streaming a download to a file
_FOOTER_GUESS = 64 * 1024  # the tail read for a file's schema (a longer footer: one more read)
_MAX_PARTS = 10_000
_SHA256_HEADER = "x-amz-meta-sha256"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Short retries: with the store down the hub must answer 503 within seconds, not hang.
# urllib3 retries connection errors and (for idempotent requests) 5xx answers.
_RETRIES = urllib3.Retry(
    total=2, connect=2, read=1, status=2, backoff_factor=0.2,
    status_forcelist=(500, 502, 503, 504),
)
_TIMEOUT = urllib3.Timeout(connect=2.0, read=30.0)
_PING_TIMEOUT = urllib3.Timeout(connect=2.0, read=3.0)
_AUTH_CODES = frozenset({
    "AccessDenied", "AllAccessDisabled", "ExpiredToken", "InvalidAccessKeyId",
    "InvalidToken", "SignatureDoesNotMatch",
})
_BAD_PARTS_CODES = frozenset({"EntityTooSmall", "InvalidPart", "InvalidPartOrder"})
_BUSY_CODES = frozenset({"InternalError", "RequestTimeout", "ServiceUnavailable", "SlowDown"})


class UploadPart(NamedTuple):
    """One uploaded part of a multipart upload, as the object store lists it."""

    part_number: int
    etag: str
    size: int


class MultipartUpload(NamedTuple):
    """A multipart upload that was started and neither completed nor aborted."""

    key: str
    upload_id: str
    initiated: datetime | None


def _unreachable() -> Unavailable:
    return Unavailable("the object store is unreachable; retry later",
                       retry_after=RETRY_AFTER_SECONDS)


class S3Store:
    """Objects in an S3 bucket (AWS, MinIO...) under an optional key prefix.

    Keys are the same as in the other stores; the object name is ``<prefix>/<key>``.
    ``local_path`` serves queries from a local cache (see :mod:`hub.storage.extractcache`):
    the first call downloads the object, checks its sha256 against the metadata written
    by ``put_file``, and keeps the copy; later calls do not touch the store. Objects are
    immutable in the hub (each commit has a new extract id), so a copy never goes stale;
    ``put_file`` and ``delete`` drop this host's copy all the same.
    """

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str = "",
        endpoint: str = "",
        public_endpoint: str = "",
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        sse: str = "none",
        cache_dir: Path,
        cache_bytes: int,
        in_use_seconds: float = IN_USE_SECONDS,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._names = f"{self.prefix}/" if self.prefix else ""
        self._sse = _parse_sse(sse)
        host, secure = _parse_endpoint(endpoint, "TAHUB_S3_ENDPOINT")
        public_host, public_secure = (
            _parse_endpoint(public_endpoint, "TAHUB_S3_PUBLIC_ENDPOINT")
            if public_endpoint else (host, secure)
        )
        self.endpoint = f"{'https' if secure else 'http'}://{host}"

        def client(host: str, secure: bool, timeout: urllib3.Timeout, retries: urllib3.Retry
                   ) -> Minio:
            http = urllib3.PoolManager(
                timeout=timeout, retries=retries, maxsize=16, cert_reqs="CERT_REQUIRED",
                ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
            )
            return Minio(host, access_key=access_key, secret_key=secret_key, secure=secure,
                         region=region, http_client=http)

        self._client = client(host, secure, _TIMEOUT, _RETRIES)
        self._ping_client = client(host, secure, _PING_TIMEOUT, urllib3.Retry(0, read=False))
        # Presigning is local (the region is given): this client never sends a request.
        self._public = client(public_host, public_secure, _TIMEOUT, _RETRIES)
        self.cache = ExtractCache(cache_dir, cache_bytes, in_use_seconds=in_use_seconds)

    @classmethod
    def from_settings(cls, bucket: str, prefix: str, settings: Settings) -> S3Store:
        return cls(
            bucket=bucket, prefix=prefix, endpoint=settings.s3_endpoint,
            public_endpoint=settings.s3_public_endpoint, access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(), region=settings.s3_region,
            sse=settings.s3_sse, cache_dir=settings.extract_cache_dir,
            cache_bytes=settings.cache_bytes,
        )

    def __repr__(self) -> str:
        return f"S3Store({self.url!r}, endpoint={self.endpoint!r})"

    # -- ObjectStore ---------------------------------------------------------------------
    def put_file(self, key: str, source: Path) -> None:
        name = self._name(key)
        size = source.stat().st_size
        if size > _PART_BYTES * _MAX_PARTS:
            raise InvalidInput(f"{source.name} is too large for one object", field="size")
        digest = _sha256(source)
        with self._errors(key):
            self._client.fput_object(
                self.bucket, name, str(source), metadata={"sha256": digest}, sse=self._sse,
                part_size=_PART_BYTES,
            )
            stat = self._client.stat_object(self.bucket, name)
        if stat.size != size or _recorded_sha256((stat.metadata or {}).items()) != digest:
            _log.error("storage.put_mismatch", key=key)
            raise Unavailable(f"the object store did not keep {key!r} as written; retry",
                              retry_after=RETRY_AFTER_SECONDS)
        self.cache.discard(self._cache_name(key))

    def put_folder(self, key: str, source: Path) -> None:
        """Upload a folder object (:mod:`hub.storage.folders`): its parts under
        ``<key>/``, each as :meth:`put_file` does, then its ``_common_metadata``, which makes
        it whole (:meth:`exists`); a folder left without it by a failure is removed here, or
        else swept as an orphan (:meth:`keys` lists it under ``key``)."""
        check_folder(source)
        try:
            for part in parquet_parts(source):
                self.put_file(f"{key}/{part.name}", part)
            self.put_file(f"{key}/{COMMON_METADATA}", source / COMMON_METADATA)
        except BaseException:
            with contextlib.suppress(TahubError):
                self.delete(key)
            raise

    def local_path(self, key: str) -> Path:
        check_key(key)
        try:
            return self.cache.fetch(self._cache_name(key), partial(self._fill, key))
        except OSError as exc:
            _log.error("storage.cache_failed", key=key, error=type(exc).__name__)
            raise Unavailable("the hub could not keep a local copy of an extract; retry "
                              "later", retry_after=RETRY_AFTER_SECONDS) from exc

    def exists(self, key: str) -> bool:
        return self._stat(key) or self._is_folder(key)

    def delete(self, key: str) -> None:
        name = self._name(key)
        self.cache.discard(self._cache_name(key))  # first: no copy outlives a withdrawal
        with self._errors(key):
            self._client.remove_object(self.bucket, name)
            inside = [DeleteObject(o.object_name) for o in self._client.list_objects(
                self.bucket, prefix=name + "/", recursive=True) if o.object_name]
            failed = list(self._client.remove_objects(self.bucket, inside)) if inside else []
        if failed:
            _log.error("storage.delete_failed", key=key, objects=len(failed))
            raise Unavailable(f"the object store kept {len(failed)} objects of {key!r}; "
                              "retry later", retry_after=RETRY_AFTER_SECONDS)

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Every key under ``prefix``; a folder object's entries are listed as its key,
        once (whole or not: an incomplete folder is an orphan to sweep)."""
        check_prefix(prefix)
        with self._errors():
            names = [o.object_name for o in self._client.list_objects(
                self.bucket, prefix=self._names + prefix, recursive=True)]
        found = set()
        for name in names:
            if not name or not name.startswith(self._names):
                continue
            key = name[len(self._names):]
            folder, _, entry = key.rpartition("/")
            found.add(folder if folder and FOLDER_ENTRY.match(entry) else key)
        return iter(sorted(k for k in found if is_key(k) and k.startswith(prefix)))

    def schema(self, key: str) -> pa.Schema:
        """The schema and metadata without the rows: a folder object's ``_common_metadata``
        (a few KB), else the file's footer (its last bytes, by ranged reads)."""
        if self._is_folder(key):
            return self._common(key)
        with self._errors(key):
            size = self._client.stat_object(self.bucket, self._name(key)).size or 0
        tail = self._bytes(key, max(size - _FOOTER_GUESS, 0))
        # Parquet ends with the footer, its length (4 bytes, little-endian) and "PAR1"
        footer = int.from_bytes(tail[-8:-4], "little") + 8
        if footer > len(tail) and footer <= size:
            tail = self._bytes(key, size - footer)
        # the footer after the leading magic: what a reader of the schema needs of the file
        return pq.read_schema(pa.BufferReader(b"PAR1" + tail[-footer:]))

    def cluster_location(self, key: str) -> str:
        """``s3a://<bucket>/<prefix>/<key>``: Hadoop's S3A connector, configured by
        :func:`s3a_options`."""
        return f"s3a://{self.bucket}/{self._name(key)}"

    def ping(self) -> None:
        """One ``HEAD`` of the bucket, with a short timeout and no retry."""
        if not self._bucket_exists(self._ping_client):
            raise Unavailable(f"the bucket {self.bucket!r} does not exist; retry later",
                              retry_after=RETRY_AFTER_SECONDS)

    # -- MultipartStore ------------------------------------------------------------------
    def start_multipart(self, key: str, sha256: str | None = None) -> str:
        name = self._name(key)
        headers: DictType = {"Content-Type": "application/octet-stream"}
        if sha256 is not None:
            if not _SHA256_RE.match(sha256):
                raise InvalidInput("sha256 must be 64 lower-case hex digits", field="sha256")
            headers[_SHA256_HEADER] = sha256
        if self._sse is not None:
            headers.update(self._sse.headers())
        with self._errors(key):
            return self._client._create_multipart_upload(self.bucket, name, headers)

    def presign_part(
        self, key: str, upload_id: str, part_number: int, expires: timedelta,
        public: bool = True,
    ) -> str:
        name = self._name(key)
        if not 1 <= part_number <= _MAX_PARTS:
            raise InvalidInput(f"part numbers go from 1 to {_MAX_PARTS}", field="part_number")
        if not timedelta(seconds=1) <= expires <= timedelta(days=7):
            raise InvalidInput("a presigned URL lasts from 1 second to 7 days",
                               field="expires")
        client = self._public if public else self._client
        with self._errors(key, upload_id):
            return client.get_presigned_url(
                "PUT", self.bucket, name, expires=expires,
                extra_query_params={"partNumber": str(part_number), "uploadId": upload_id},
            )

    def list_parts(self, key: str, upload_id: str) -> list[UploadPart]:
        name = self._name(key)
        parts: list[UploadPart] = []
        marker: str | None = None
        with self._errors(key, upload_id):
            while True:
                page = self._client._list_parts(self.bucket, name, upload_id,
                                                part_number_marker=marker)
                parts += [UploadPart(p.part_number, p.etag, p.size or 0) for p in page.parts]
                if not page.is_truncated or not page.next_part_number_marker:
                    return parts
                marker = page.next_part_number_marker

    def complete_multipart(
        self, key: str, upload_id: str, parts: Sequence[UploadPart | tuple[int, str]]
    ) -> None:
        name = self._name(key)
        with self._errors(key, upload_id):
            self._client._complete_multipart_upload(
                self.bucket, name, upload_id, [Part(p[0], p[1].strip('"')) for p in parts])
            # S3 may answer 200 with an error in the body: check the object is there.
            self._client.stat_object(self.bucket, name)
        self.cache.discard(self._cache_name(key))

    def abort_multipart(self, key: str, upload_id: str) -> None:
        name = self._name(key)
        with contextlib.suppress(NotFound), self._errors(key, upload_id):
            self._client._abort_multipart_upload(self.bucket, name, upload_id)

    def list_multipart(self, prefix: str = "") -> list[MultipartUpload]:
        check_prefix(prefix)
        found: list[MultipartUpload] = []
        key_marker: str | None = None
        id_marker: str | None = None
        with self._errors():
            while True:
                page = self._client._list_multipart_uploads(
                    self.bucket, prefix=self._names + prefix, key_marker=key_marker,
                    upload_id_marker=id_marker)
                found += [
                    MultipartUpload(u.object_name[len(self._names):], u.upload_id,
                                    u.initiated_time)
                    for u in page.uploads
                    if u.upload_id and u.object_name.startswith(self._names)
                ]
                if not page.is_truncated or not page.uploads:
                    return found
                key_marker, id_marker = page.uploads[-1].object_name, page.uploads[-1].upload_id

    def download(self, key: str, dest: Path) -> None:
        """Stream the object to ``dest``, checking its sha256 when one is recorded."""
        name = self._name(key)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=dest.parent)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                self._fetch(key, name, tmp, required=False)
                os.replace(tmp, dest)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            _log.error("storage.download_failed", key=key, error=type(exc).__name__)
            raise Unavailable("the hub could not write a downloaded object; retry later",
                              retry_after=RETRY_AFTER_SECONDS) from exc

    # -- housekeeping --------------------------------------------------------------------
    def prune_cache(self, keep: Collection[str]) -> int:
        """Remove this host's local copies of every key not in ``keep`` (e.g. the visible
        extracts); how many. Copies of withdrawn extracts go even where another hub
        process did the withdrawal."""
        return self.cache.retain({self._cache_name(k) for k in keep},
                                 under=f"{self.bucket}/{self._names}")

    # -- helpers -------------------------------------------------------------------------
    def _name(self, key: str) -> str:
        return self._names + check_key(key)

    def _cache_name(self, key: str) -> str:
        return f"{self.bucket}/{self._names}{key}"

    def _bytes(self, key: str, offset: int = 0) -> bytes:
        """The object's bytes from ``offset`` to its end, in memory (small reads only)."""
        with self._errors(key):
            response = self._client.get_object(self.bucket, self._name(key), offset=offset)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def _common(self, key: str) -> pa.Schema:
        """The schema and metadata of the folder object ``key`` (its ``_common_metadata``)."""
        return pq.read_schema(pa.BufferReader(self._bytes(f"{key}/{COMMON_METADATA}")))

    def _stat(self, key: str) -> bool:
        """Whether the object ``key`` (a file, not a folder) exists."""
        try:
            with self._errors(key):
                self._client.stat_object(self.bucket, self._name(key))
        except NotFound:
            return False
        return True

    def _is_folder(self, key: str) -> bool:
        """Whether ``key`` is a whole folder object (its ``_common_metadata`` is there)."""
        return self._stat(f"{check_key(key)}/{COMMON_METADATA}")

    def _fill(self, key: str, dest: Path) -> None:
        """A cache miss: the object, or a folder object as one file of its parts."""
        if self._is_folder(key):
            self._fetch_folder(key, dest)
        else:
            self._fetch(key, self._name(key), dest, required=True)

    def _fetch_folder(self, key: str, dest: Path) -> None:
        """A folder object as one local Parquet file: each part downloaded and checked as
        :meth:`_fetch` does, then its row groups written in the parts' order, under the
        folder's schema and metadata (what DuckDB and the persons map read)."""
        with self._errors(key):
            names = sorted(o.object_name for o in self._client.list_objects(
                self.bucket, prefix=self._name(key) + "/", recursive=True)
                if o.object_name and o.object_name.endswith(".parquet"))
        with tempfile.TemporaryDirectory(prefix=TMP_PREFIX, dir=dest.parent) as tmp:
            parts = []
            for i, name in enumerate(names):
                parts.append(Path(tmp) / f"{i:06d}.parquet")
                self._fetch(name[len(self._names):], name, parts[-1], required=True)
            common = self._common(key)
            first = pq.read_schema(parts[0]) if parts else common
            with pq.ParquetWriter(dest, first.with_metadata(common.metadata),
                                  compression="zstd", write_page_checksum=True) as out:
                for part in parts:  # a row group at a time: memory bounded by one group
                    with pq.ParquetFile(part) as rows:
                        for group in range(rows.num_row_groups):
                            out.write_table(rows.read_row_group(group)
                                            .replace_schema_metadata(common.metadata))

    def _bucket_exists(self, client: Minio | None = None) -> bool:
        with self._errors():
            return (client or self._client).bucket_exists(self.bucket)

    def _fetch(self, key: str, name: str, dest: Path, *, required: bool) -> None:
        """Stream the object into ``dest`` in one pass, hashing it on the way, and check
        the recorded sha256 (``required``: an object without one is refused)."""
        digest = hashlib.sha256()
        with self._errors(key):
            response = self._client.get_object(self.bucket, name)
            try:
                expected = _recorded_sha256(response.headers.items())
                with dest.open("wb") as out:
                    for chunk in response.stream(_CHUNK_BYTES):
                        digest.update(chunk)
                        out.write(chunk)
            finally:
                response.close()
                response.release_conn()
        if expected is None and not required:
            return
        if expected != digest.hexdigest():
            _log.error("storage.checksum_mismatch", key=key, recorded=expected is not None)
            raise Unavailable(f"object {key!r} does not match its recorded sha256; retry "
                              "later", rule="checksum", retry_after=RETRY_AFTER_SECONDS)

    @contextlib.contextmanager
    def _errors(self, key: str | None = None, upload_id: str | None = None) -> Iterator[None]:
        """Translate every minio and urllib3 exception into the tahub error tree."""
        try:
            yield
        except S3Error as exc:
            raise self._refusal(exc, key, upload_id) from exc
        except (MinioException, urllib3.exceptions.HTTPError) as exc:
            _log.warning("storage.unreachable", endpoint=self.endpoint,
                         error=type(exc).__name__)
            raise _unreachable() from exc

    def _refusal(self, exc: S3Error, key: str | None, upload_id: str | None) -> TahubError:
        code = exc.code or ""
        if code in ("NoSuchKey", "NotFound"):
            return NotFound(f"object {key!r} does not exist")
        if code == "NoSuchUpload":
            return NotFound(f"multipart upload {upload_id!r} of {key!r} does not exist")
        if code in _BAD_PARTS_CODES:
            return InvalidInput(f"the uploaded parts cannot be assembled ({code})",
                                field="parts")
        if code in _AUTH_CODES:
            _log.error("storage.refused", endpoint=self.endpoint, code=code)
            return ConfigError(
                f"the object store refused the hub's credentials ({code}); check "
                "TAHUB_S3_ACCESS_KEY, TAHUB_S3_SECRET_KEY and the bucket policy",
                field="TAHUB_S3_ACCESS_KEY",
            )
        _log.warning("storage.refused", endpoint=self.endpoint, code=code,
                     status=exc.response.status)
        if code == "NoSuchBucket":
            return Unavailable(f"the bucket {self.bucket!r} does not exist; retry later",
                               retry_after=RETRY_AFTER_SECONDS)
        if exc.response.status >= 500 or code in _BUSY_CODES:
            return _unreachable()
        return Unavailable(f"the object store refused the request ({code}); retry later",
                           retry_after=RETRY_AFTER_SECONDS)


def _recorded_sha256(headers: Iterable[tuple[str, Any]]) -> str | None:
    for name, value in headers:
        if name.lower() == _SHA256_HEADER:
            return str(value)
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _parse_sse(value: str) -> Sse | None:
    if value == "none":
        return None
    if value == "s3":
        return SseS3()
    if value.startswith("kms:") and value[4:].strip():
        return SseKMS(value[4:], {})
    raise ConfigError(f"TAHUB_S3_SSE {value!r}: use none, s3 or kms:<key id>",
                      field="TAHUB_S3_SSE")


def _parse_endpoint(url: str, field: str) -> tuple[str, bool]:
    """``host[:port]`` and whether to use TLS; empty means AWS S3."""
    if not url:
        return "s3.amazonaws.com", True
    parts = urlsplit(url)
    if (parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.path.strip("/") or parts.query or parts.fragment):
        raise ConfigError(f"{field} {url!r}: use http(s)://host[:port], nothing more",
                          field=field)
    return parts.netloc, parts.scheme == "https"


def open_s3(url: str, parts: SplitResult, settings: Settings | None) -> S3Store:
    """The :class:`S3Store` of a ``TAHUB_STORAGE`` ``s3://`` URL; the bucket must exist."""
    if settings is None:
        raise ConfigError(f"TAHUB_STORAGE {url!r}: s3:// storage needs the TAHUB_S3_* "
                          "settings", field="TAHUB_STORAGE")
    bucket, prefix = parts.netloc, parts.path.strip("/")
    try:
        check_bucket_name(bucket, strict=True)
    except ValueError:
        raise ConfigError(f"TAHUB_STORAGE {url!r}: {bucket!r} is not a valid bucket name",
                          field="TAHUB_STORAGE") from None
    if parts.query or parts.fragment or (prefix and not is_key(prefix)):
        raise ConfigError(f"TAHUB_STORAGE {url!r}: use s3://<bucket>[/<prefix>] with a "
                          "prefix of letters, digits, '_', '-', '.' and '=' separated by "
                          "'/'", field="TAHUB_STORAGE")
    if not settings.s3_access_key or not settings.s3_secret_key.get_secret_value():
        raise ConfigError("s3:// storage needs TAHUB_S3_ACCESS_KEY and TAHUB_S3_SECRET_KEY",
                          field="TAHUB_S3_ACCESS_KEY")
    store = S3Store.from_settings(bucket, prefix, settings)
    if not store._bucket_exists():
        raise ConfigError(f"the bucket {bucket!r} does not exist at {store.endpoint}: "
                          "create it first (the hub never creates buckets)",
                          field="TAHUB_STORAGE")
    return store


def s3a_options(settings: Settings) -> dict[str, str]:
    """The Hadoop S3A settings under which a Spark cluster reads ``TAHUB_STORAGE``'s bucket
    as the hub does: its endpoint and region, and with ``TAHUB_SPARK_S3_CREDENTIALS=hub``
    the hub's own keys (docs/production.md, "Apache Spark")."""
    host, secure = _parse_endpoint(settings.s3_endpoint, "TAHUB_S3_ENDPOINT")
    options = {
        "fs.s3a.endpoint": f"{'https' if secure else 'http'}://{host}",
        "fs.s3a.endpoint.region": settings.s3_region,
        "fs.s3a.connection.ssl.enabled": str(secure).lower(),
        # MinIO and most S3-compatible stores serve buckets by path, not by host name
        "fs.s3a.path.style.access": str(not host.endswith("amazonaws.com")).lower(),
    }
    if settings.spark_s3_credentials == "hub":
        options |= {"fs.s3a.access.key": settings.s3_access_key,
                    "fs.s3a.secret.key": settings.s3_secret_key.get_secret_value(),
                    "fs.s3a.aws.credentials.provider":
                        "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"}
    return options

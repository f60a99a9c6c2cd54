"""Client of the hub's ingest API (``docs/ingest-api.md``): resumable, idempotent uploads.

Authentication, retries and error translation are the shared session's
(:mod:`connectors.common.session`): OAuth2 client credentials through authlib's httpx integration,
the token fetched on first use and again when it expires (or when the hub answers 401). The
HTTP transport is pluggable (``transport=``), so tests drive the client against
``httpx.MockTransport``.

An upload is::

    POST /v1/uploads            -> duplicate? stop: the hub already has this content
    PATCH /v1/uploads/{id}      x N, chunks of the hub's chunk_bytes at Upload-Offset
    POST /v1/uploads/{id}/commit

When the hub keeps extracts in an S3 object store it answers ``"transfer": "direct"``: the
bytes then go straight to the store, never through the hub::

    POST /v1/uploads/{id}/parts  presigned URLs for the parts the store does not hold yet
    PUT <presigned URL>          x N (no hub credentials are sent to the store)
    POST /v1/uploads/{id}/commit (a 409 lists parts that did not arrive whole: sent again)

Connection failures and 5xx answers are retried with bounded exponential backoff; after a
failure the client continues from the offset the hub reports (a 409 carries it), so a
chunk is never sent twice and a broken upload resumes where it stopped, even in a new
process (starting the same content again returns the unfinished upload).

Errors are always ``hub.errors``: ``Unavailable`` when the hub cannot be reached after
the retries, ``AuthError`` when it refuses the credentials, ``HubRequestError`` (with the
problem document) for any other 4xx. ``httpx`` and authlib exceptions never escape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from connectors.common.session import HubSession, RetryPolicy, Transient
from connectors.partner.extract import file_sha256
from hub.errors import Conflict, HubRequestError, Unavailable

__all__ = [
    "BytesProgress",
    "ExtractInfo",
    "HubClient",
    "RetryPolicy",
    "UploadOutcome",
    "UploadState",
]

#: Parts of a direct upload in flight at once (as the minio SDK's own uploads).
PARALLEL_PARTS = 3
#: Called with (bytes the hub holds, total bytes) as an upload progresses.
BytesProgress = Callable[[int, int], None]


class UploadState(BaseModel):
    """Where a resumable upload stands on the hub."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    dataset: str
    contract_version: int
    size: int
    sha256: str
    offset: int
    status: str
    chunk_bytes: int
    expires_at: datetime
    transfer: str = "chunks"
    part_bytes: int | None = None
    parts: int | None = None
    received_parts: list[int] | None = None


class ExtractInfo(BaseModel):
    """A committed extract, as the hub describes it."""

    model_config = ConfigDict(extra="ignore", frozen=True)

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
    withdrawn_at: datetime | None = None
    report: dict[str, Any] = {}


@dataclass(frozen=True)
class UploadOutcome:
    extract: ExtractInfo
    duplicate: bool  # the hub already had this content: nothing new was stored
    resumed_from: int = 0  # bytes the hub already held when this call started
    sent: int = 0  # bytes the hub received during this call


class HubClient(HubSession):
    """One partner client of one hub. Use as a context manager, or call :meth:`close`.

    The session (token, retries, error translation) is
    :class:`connectors.common.session.HubSession`.
    """

    _store_http: httpx.Client | None = None  # direct uploads: to presigned URLs, no token

    # -- simple routes ------------------------------------------------------------------
    def contracts(self) -> list[dict[str, Any]]:
        return list(self._request("GET", "/v1/contracts").json())

    def contract(self, dataset: str, version: int) -> dict[str, Any]:
        return dict(self._request("GET", f"/v1/contracts/{dataset}/{int(version)}").json())

    def list_extracts(
        self, *, dataset: str | None = None, include_withdrawn: bool = False
    ) -> list[ExtractInfo]:
        params: dict[str, str] = {}
        if dataset:
            params["dataset"] = dataset
        if include_withdrawn:
            params["include_withdrawn"] = "true"
        data = self._request("GET", "/v1/extracts", params=params).json()
        return [self._model(ExtractInfo, item) for item in data]

    def get_extract(self, extract_id: str) -> ExtractInfo:
        return self._model(ExtractInfo, self._request("GET", f"/v1/extracts/{extract_id}").json())

    def withdraw(self, extract_id: str) -> ExtractInfo:
        return self._model(
            ExtractInfo, self._request("DELETE", f"/v1/extracts/{extract_id}").json()
        )

    def get_upload(self, upload_id: str) -> UploadState:
        return self._model(UploadState, self._request("GET", f"/v1/uploads/{upload_id}").json())

    def abort_upload(self, upload_id: str) -> None:
        self._request("DELETE", f"/v1/uploads/{upload_id}")

    def start_upload(
        self, *, dataset: str, contract_version: int, size: int, sha256: str, filename: str | None
    ) -> UploadState | ExtractInfo:
        """An upload to send bytes to, or the extract the hub already has (a duplicate)."""
        body = {
            "dataset": dataset,
            "contract_version": contract_version,
            "size": size,
            "sha256": sha256,
            "filename": filename,
        }
        data = self._request("POST", "/v1/uploads", json=body).json()
        if isinstance(data, dict) and data.get("duplicate"):
            return self._model(ExtractInfo, data.get("extract"))
        return self._model(UploadState, data)

    # -- the resumable upload -----------------------------------------------------------
    def upload(
        self,
        path: Path,
        *,
        dataset: str,
        contract_version: int,
        sha256: str | None = None,
        on_progress: BytesProgress | None = None,
    ) -> UploadOutcome:
        """Send the extract at ``path`` and commit it; safe to call again after any failure."""
        size = path.stat().st_size
        digest = sha256 or file_sha256(path)
        report = on_progress or (lambda _done, _total: None)
        for _round in range(2):  # a second round only if the upload vanished before commit
            started = self.start_upload(
                dataset=dataset,
                contract_version=contract_version,
                size=size,
                sha256=digest,
                filename=path.name,
            )
            if isinstance(started, ExtractInfo):
                report(size, size)
                return UploadOutcome(started, duplicate=True)
            resumed_from = started.offset
            report(resumed_from, size)
            try:
                if started.transfer == "direct":
                    self._send_parts(path, started, report)
                else:
                    self._send(path, started, report)
                extract, duplicate = self._commit(path, started, report)
            except HubRequestError as exc:
                if exc.http_status == 404 and exc.problem_code == "not_found":
                    continue  # expired or committed meanwhile: start again (maybe duplicate)
                raise
            return UploadOutcome(
                extract, duplicate, resumed_from=resumed_from, sent=size - resumed_from
            )
        raise Conflict(f"the upload of {path.name} kept disappearing on the hub; try again")

    def _send(self, path: Path, upload: UploadState, report: BytesProgress) -> None:
        """PATCH from the hub's offset to the end, following the hub's offset on 409."""
        offset, conflicts = upload.offset, 0
        with path.open("rb") as handle:
            while offset < upload.size:
                handle.seek(offset)
                chunk = handle.read(min(upload.chunk_bytes, upload.size - offset))
                try:
                    state = self._model(
                        UploadState,
                        self._request(
                            "PATCH",
                            f"/v1/uploads/{upload.id}",
                            content=chunk,
                            headers={
                                "Upload-Offset": str(offset),
                                "Content-Type": "application/octet-stream",
                            },
                        ).json(),
                    )
                except HubRequestError as exc:
                    offset = self._resume_offset(exc, conflicts)
                    conflicts += 1
                    report(offset, upload.size)
                    continue
                offset = state.offset
                report(offset, upload.size)

    # -- direct uploads: parts PUT straight to the object store ----------------------------
    def _send_parts(
        self, path: Path, upload: UploadState, report: BytesProgress,
        only: Iterable[int] | None = None,
    ) -> None:
        """PUT every part the store does not hold whole yet (or exactly ``only``)."""
        part_bytes, parts = upload.part_bytes or 0, upload.parts or 0
        held = set(upload.received_parts or []) if only is None else set()
        todo = sorted(set(only) if only is not None else set(range(1, parts + 1)) - held)
        done = upload.size - sum(self._part_size(upload, n) for n in todo)
        if self._store_http is None:
            self._store_http = httpx.Client(timeout=self._timeout)

        def put(part: dict[str, Any]) -> int:
            with path.open("rb") as handle:
                handle.seek((part["part_number"] - 1) * part_bytes)
                data = handle.read(part["size"])
            self._put_part(part["url"], data, part["part_number"])
            return len(data)

        with ThreadPoolExecutor(PARALLEL_PARTS, thread_name_prefix="tahub-part") as pool:
            for start in range(0, len(todo), 100):
                batch = todo[start:start + 100]
                urls = self._request("POST", f"/v1/uploads/{upload.id}/parts",
                                     json={"part_numbers": batch}).json()["parts"]
                for sent in pool.map(put, urls):  # in order; the first failure raises
                    done += sent
                    report(done, upload.size)

    @staticmethod
    def _part_size(upload: UploadState, number: int) -> int:
        part_bytes = upload.part_bytes or 0
        return min(part_bytes, upload.size - (number - 1) * part_bytes)

    def _put_part(self, url: str, data: bytes, number: int) -> None:
        """One part to its presigned URL: a plain HTTP client, never the hub's token."""
        http = self._store_http
        assert http is not None  # noqa: S101 - made by _send_parts before its threads start

        def attempt() -> None:
            try:
                response = http.put(url, content=data)
            except httpx.TransportError as exc:
                raise Transient(f"object store: {exc.__class__.__name__}") from None
            if response.status_code >= 500:
                raise Transient(f"object store: HTTP {response.status_code}")
            if response.status_code >= 400:
                raise Unavailable(
                    f"the object store refused part {number} (HTTP {response.status_code}); "
                    "run the upload again: it resumes with fresh URLs"
                )

        self._retried(f"PUT part {number}", attempt)

    def close(self) -> None:
        if self._store_http is not None:
            self._store_http.close()
        super().close()

    def _resume_offset(self, exc: HubRequestError, conflicts: int) -> int:
        offset = exc.problem_body.get("offset")
        if exc.http_status != 409 or not isinstance(offset, int):
            raise exc
        if conflicts >= self.retry.max_conflicts:
            raise Conflict(
                f"the hub kept moving the upload offset ({conflicts} corrections); try again",
                offset=offset,
            ) from None
        return offset

    def _commit(
        self, path: Path, upload: UploadState, report: BytesProgress
    ) -> tuple[ExtractInfo, bool]:
        conflicts = 0
        while True:
            try:
                response = self._request("POST", f"/v1/uploads/{upload.id}/commit")
            except HubRequestError as exc:
                missing = exc.problem_body.get("missing_parts")
                if exc.http_status == 409 and isinstance(missing, list) and missing:
                    if conflicts >= self.retry.max_conflicts:
                        raise
                    conflicts += 1
                    self._send_parts(path, upload, report, only=missing)
                    continue
                offset = self._resume_offset(exc, conflicts)  # not everything arrived
                conflicts += 1
                self._send(path, upload.model_copy(update={"offset": offset}), report)
                continue
            data = response.json()
            if isinstance(data, dict) and "extract" in data:
                return self._model(ExtractInfo, data["extract"]), bool(data.get("duplicate"))
            return self._model(ExtractInfo, data), False

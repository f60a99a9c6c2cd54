"""Client of the hub's ingest API (``docs/ingest-api.md``): resumable, idempotent uploads.

Authentication is OAuth2 client credentials through authlib's httpx integration: the
token is fetched on first use and fetched again when it expires (or when the hub answers
401, e.g. after it rotated its signing key). The HTTP transport is pluggable
(``transport=``), so tests drive the client against ``httpx.MockTransport``.

An upload is::

    POST /v1/uploads            -> duplicate? stop: the hub already has this content
    PATCH /v1/uploads/{id}      x N, chunks of the hub's chunk_bytes at Upload-Offset
    POST /v1/uploads/{id}/commit

Connection failures and 5xx answers are retried with bounded exponential backoff; after a
failure the client continues from the offset the hub reports (a 409 carries it), so a
chunk is never sent twice and a broken upload resumes where it stopped, even in a new
process (starting the same content again returns the unfinished upload).

Errors are always ``hub.errors``: ``Unavailable`` when the hub cannot be reached after
the retries, ``AuthError`` when it refuses the credentials, ``HubRequestError`` (with the
problem document) for any other 4xx. ``httpx`` and authlib exceptions never escape.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from connectors.extract import file_sha256
from hub.errors import AuthError, ConfigError, Conflict, HubRequestError, Unavailable

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import OAuth2Client

__all__ = [
    "BytesProgress",
    "ExtractInfo",
    "HubClient",
    "RetryPolicy",
    "UploadOutcome",
    "UploadState",
]

ENV_URL = "TAHUB_HUB_URL"
ENV_CLIENT_ID = "TAHUB_CLIENT_ID"
ENV_CLIENT_SECRET = "TAHUB_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path

_T = TypeVar("_T")

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


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for connection failures and 5xx answers."""

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 10.0
    max_conflicts: int = 20  # offset corrections tolerated in one upload before giving up


class _Transient(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _oauth_client_class() -> type[OAuth2Client]:
    # authlib 1.9 prefers the httpx2 package and warns when it falls back to httpx, which
    # is the client tahub pins; the warning concerns authlib's roadmap, not this code.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The httpx module is deprecated")
        from authlib.integrations.httpx_client import OAuth2Client

    return OAuth2Client


def _oauth_error_class() -> type[Exception]:
    from authlib.integrations.base_client import OAuthError

    return OAuthError


class HubClient:
    """One partner client of one hub. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        token_leeway: int = 30,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"hub URL {url!r} must start with http:// or https://", field="hub")
        if not client_id or not client_secret:
            raise ConfigError("a client id and a client secret are needed", field="client_id")
        self.url = url.rstrip("/")
        self.client_id = client_id
        self.retry = retry or RetryPolicy()
        self._oauth_error = _oauth_error_class()
        self._http = _oauth_client_class()(
            client_id=client_id,
            client_secret=client_secret,
            token_endpoint=self.url + TOKEN_PATH,
            grant_type="client_credentials",
            leeway=token_leeway,
            base_url=self.url,
            transport=transport,
            timeout=timeout,
        )

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> HubClient:
        """Arguments first, then ``TAHUB_HUB_URL``, ``TAHUB_CLIENT_ID``, ``TAHUB_CLIENT_SECRET``."""
        env = os.environ if environ is None else environ
        values = {
            ENV_URL: url or env.get(ENV_URL, ""),
            ENV_CLIENT_ID: client_id or env.get(ENV_CLIENT_ID, ""),
            ENV_CLIENT_SECRET: client_secret or env.get(ENV_CLIENT_SECRET, ""),
        }
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise ConfigError(
                f"hub credentials missing: set {', '.join(missing)} "
                "(or pass --hub, --client-id, --client-secret)",
                field="hub",
            )
        return cls(values[ENV_URL], values[ENV_CLIENT_ID], values[ENV_CLIENT_SECRET], **options)

    def __repr__(self) -> str:
        return f"HubClient(url={self.url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> HubClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the HTTP layer: retries, token, error translation ------------------------------
    def _retrying(self) -> Retrying:
        return Retrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=wait_exponential(multiplier=self.retry.initial_wait, max=self.retry.max_wait),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """Turn httpx/authlib failures of one attempt into retries or ``hub.errors``."""
        try:
            yield
        except httpx.HTTPStatusError as exc:  # from the token endpoint, via authlib
            status = exc.response.status_code
            if status >= 500:
                raise _Transient(f"HTTP {status} from the token endpoint") from None
            raise AuthError(
                f"the hub refused the credentials of client {self.client_id} (HTTP {status})"
            ) from None
        except httpx.TransportError as exc:
            raise _Transient(exc.__class__.__name__) from None
        except self._oauth_error as exc:
            error = getattr(exc, "error", "oauth_error")
            raise AuthError(
                f"the hub refused the credentials of client {self.client_id} ({error})"
            ) from None
        except ValueError as exc:  # a token endpoint that answers something else
            raise AuthError(f"{what}: the hub's token endpoint answered no token") from exc

    def _fetch_token(self) -> None:
        with self._translated("token"):
            self._http.fetch_token(self.url + TOKEN_PATH, grant_type="client_credentials")

    def _attempt(self, method: str, path: str, auth: bool, **kwargs: Any) -> httpx.Response:
        with self._translated(f"{method} {path}"):
            if not auth:
                response = self._http.request(method, path, withhold_token=True, **kwargs)
            else:
                if not self._http.token:
                    self._fetch_token()
                response = self._http.request(method, path, **kwargs)
                if response.status_code == 401:  # e.g. the hub rotated its signing key
                    self._http.token = None
                    self._fetch_token()
                    response = self._http.request(method, path, **kwargs)
        if response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise self._refusal(method, path, response)
        return response

    def _retried(self, what: str, call: Callable[[], _T]) -> _T:
        """``call`` with bounded backoff on transient failures; ``Unavailable`` after."""
        try:
            for attempt in self._retrying():
                with attempt:
                    return call()
        except (_Transient, RetryError) as exc:
            reason = exc.reason if isinstance(exc, _Transient) else "retries exhausted"
            raise Unavailable(
                f"the hub at {self.url} did not answer {what} after "
                f"{self.retry.attempts} attempts ({reason}); try again later"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises

    def _request(
        self, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> httpx.Response:
        return self._retried(
            f"{method} {path}", lambda: self._attempt(method, path, auth, **kwargs)
        )

    def _refusal(self, method: str, path: str, response: httpx.Response) -> HubRequestError:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"status": response.status_code, "detail": response.reason_phrase}
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        code = body.get("code", "")
        return HubRequestError(
            f"the hub refused {method} {path} ({response.status_code}"
            + (f" {code}" if code else "")
            + f"): {detail}",
            http_status=response.status_code,
            problem=body,
        )

    @staticmethod
    def _model(model: type[Any], data: Any) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Unavailable(
                f"the hub answered with an unexpected {model.__name__} "
                f"({exc.error_count()} problem(s)); is it a tahub hub of this version?"
            ) from None

    # -- simple routes ------------------------------------------------------------------
    def authenticate(self) -> None:
        """Fetch an access token now (fails fast on wrong credentials)."""
        self._retried("the token request", self._fetch_token)

    def health(self) -> dict[str, Any]:
        return dict(self._request("GET", "/health", auth=False).json())

    def me(self) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/me").json())

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
                offset = self._resume_offset(exc, conflicts)  # not everything arrived
                conflicts += 1
                self._send(path, upload.model_copy(update={"offset": offset}), report)
                continue
            data = response.json()
            if isinstance(data, dict) and "extract" in data:
                return self._model(ExtractInfo, data["extract"]), bool(data.get("duplicate"))
            return self._model(ExtractInfo, data), False

"""The HTTP session every client of the hub shares: OAuth2 client credentials, bounded
retries and the translation of every lower-layer failure into ``hub.errors``.

:class:`HubSession` is the base of :class:`connectors.partner.client.HubClient` (the partner's
uploads) and :class:`connectors.analyst.client.AnalystClient` (an analyst's DP queries). The token
comes from authlib's httpx integration: fetched on first use, again when it expires or
when the hub answers 401 (e.g. after it rotated its signing key). The HTTP transport is
pluggable (``transport=``), so tests can drive a client against ``httpx.MockTransport``.

Retries
    A request that *may be repeated* (a read, or an upload step the hub deduplicates) is
    retried with bounded exponential backoff on connection failures and 5xx answers. A
    request that *spends* something (a DP query debits a privacy budget before it runs) is
    sent with ``resend=False``: retried only when it provably never reached the hub (the
    connection could not be opened); any later failure is reported, never repeated, so a
    client can never spend a budget twice behind its user's back.

Errors are always ``hub.errors``: ``Unavailable`` when the hub cannot be reached (after the
retries), ``AuthError`` when it refuses the credentials, ``HubRequestError`` for any other
answer of 400 or more, carrying what the hub said as it said it (its HTTP status, problem
``code`` and ``type``, ``rule``, ``field``, ``detail``, ``retry_after``, the whole document),
and ``HubUnavailable`` (both) for a 5xx answer after the retries. ``httpx`` and authlib
exceptions never escape.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import (
    RetryError,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from connectors.common.login import CLI_CLIENT, DEFAULT_PROFILE, ENV_PROFILE, SessionStore
from hub.errors import AuthError, ConfigError, HubRequestError, HubUnavailable, Unavailable

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import OAuth2Client

__all__ = ["HubSession", "RetryPolicy", "Transient"]

ENV_URL = "TAHUB_HUB_URL"
ENV_CLIENT_ID = "TAHUB_CLIENT_ID"
ENV_CLIENT_SECRET = "TAHUB_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff for connection failures and 5xx answers: by default 8
    attempts over about 35 s (0.5, 1, 2, 4, 8, 10, 10 s apart), as long as a production hub
    (migrations, several workers) may take to come back after a restart."""

    attempts: int = 8
    initial_wait: float = 0.5
    max_wait: float = 10.0
    max_conflicts: int = 20  # offset corrections tolerated in one upload before giving up


class Transient(Exception):
    """A failure worth retrying (connection, 5xx); raised inside :meth:`HubSession._retried`.
    ``answer``: the hub's own 5xx answer, raised as it is when the retries run out."""

    def __init__(self, reason: str, answer: HubRequestError | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.answer = answer


#: Failures that prove the request never reached the hub (safe to send again).
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)


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


def _named(profile: str) -> str:
    """`` --profile P`` for a command to suggest, unless P is the default."""
    return "" if profile == DEFAULT_PROFILE else f" --profile {profile}"


#: Problem fields worth putting in a refusal's message, in this order.
_FACTS = ("rule", "field", "requested", "remaining", "retry_after")


class HubSession:
    """One authenticated client of one hub. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        url: str,
        client_id: str = "",
        client_secret: str = "",
        *,
        sessions: SessionStore | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        token_leeway: int = 30,
    ) -> None:
        """A client id and secret (a member system), or ``sessions``: the person signed in
        at ``url`` with ``tahub login`` (a profile of connectors.common.login)."""
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"hub URL {url!r} must start with http:// or https://", field="hub")
        self.url = url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self._timeout = timeout
        self._oauth_error = _oauth_error_class()
        self._sessions = sessions
        options: dict[str, Any] = dict(token_endpoint=self.url + TOKEN_PATH,
                                       leeway=token_leeway, base_url=self.url,
                                       transport=transport, timeout=timeout)
        if sessions is not None:
            signed_in = sessions.get(self.url)
            if signed_in is None:
                elsewhere = sessions.hub()
                raise ConfigError(
                    f"not signed in at {self.url}: run `tahub login --hub {self.url}`"
                    + _named(sessions.profile) + ", or give a client id and secret"
                    + (f" (profile {sessions.profile} is for {elsewhere})"
                       if elsewhere and elsewhere != self.url else ""),
                    field="client_id")
            self.client_id = str(signed_in.get("email") or signed_in.get("person"))
            self._http = _oauth_client_class()(
                client_id=CLI_CLIENT, token_endpoint_auth_method="none",  # noqa: S106
                token=signed_in, update_token=self._keep_token, **options)
            return
        if not client_id or not client_secret:
            raise ConfigError("a client id and a client secret are needed", field="client_id")
        self.client_id = client_id
        self._http = _oauth_client_class()(
            client_id=client_id, client_secret=client_secret, grant_type="client_credentials",
            **options)

    def _keep_token(self, token: dict[str, Any], refresh_token: str | None = None,
                    access_token: str | None = None) -> None:
        """authlib refreshed a person's token: keep the new pair (the old refresh token no
        longer works)."""
        kept = None if self._sessions is None else self._sessions.get(self.url)
        if self._sessions is not None and kept is not None:  # not moved to another hub since
            self._sessions.put(self.url, {**kept, **dict(token)})

    @classmethod
    def from_env(
        cls,
        url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        *,
        profile: str | None = None,
        environ: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Self:
        """The hub: ``url``, else ``TAHUB_HUB_URL``, else the hub the ``tahub login``
        profile remembers (``profile``, else ``TAHUB_PROFILE``, else ``default``). The
        client: ``client_id`` and ``client_secret`` (else ``TAHUB_CLIENT_ID`` and
        ``TAHUB_CLIENT_SECRET``), else the person the profile signed in at that hub."""
        env = os.environ if environ is None else environ
        sessions = SessionStore(profile=profile or env.get(ENV_PROFILE) or None)
        values = {
            ENV_URL: url or env.get(ENV_URL, "") or sessions.hub() or "",
            ENV_CLIENT_ID: client_id or env.get(ENV_CLIENT_ID, ""),
            ENV_CLIENT_SECRET: client_secret or env.get(ENV_CLIENT_SECRET, ""),
        }
        missing = [name for name, value in values.items() if not value]
        person = not values[ENV_CLIENT_ID] and not values[ENV_CLIENT_SECRET]
        if values[ENV_URL] and person and sessions.get(values[ENV_URL]) is not None:
            return cls(values[ENV_URL], sessions=sessions, **options)  # signed in there
        if missing:
            hub = values[ENV_URL]
            raise ConfigError(
                f"hub credentials missing: set {', '.join(missing)} "
                "(or pass --hub, --client-id, --client-secret); or sign in as a person with "
                f"`tahub login --hub {hub or 'URL'}{_named(sessions.profile)}`"
                + ("" if hub else ", which remembers the hub for later commands"),
                field="hub",
            )
        return cls(values[ENV_URL], values[ENV_CLIENT_ID], values[ENV_CLIENT_SECRET], **options)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.url!r}, client_id={self.client_id!r})"

    def __enter__(self) -> Self:
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
            retry=retry_if_exception_type(Transient),
            reraise=True,
        )

    @contextmanager
    def _translated(self, what: str, *, resend: bool = True) -> Iterator[None]:
        """Turn httpx/authlib failures of one attempt into retries or ``hub.errors``."""
        try:
            yield
        except httpx.HTTPStatusError as exc:  # from the token endpoint, via authlib
            status = exc.response.status_code
            if status >= 500:
                raise Transient(f"HTTP {status} from the token endpoint",
                                self._answered("POST", TOKEN_PATH, exc.response)) from None
            if status == 429:  # over the token rate limit: not a verdict on the credentials
                raise self._answered("POST", TOKEN_PATH, exc.response) from None
            raise self._credentials_refused(f"HTTP {status}") from None
        except httpx.TransportError as exc:
            if resend or isinstance(exc, _NOT_SENT):
                raise Transient(exc.__class__.__name__) from None
            raise Unavailable(
                f"the connection to {self.url} broke after {what} was sent "
                f"({exc.__class__.__name__}); the hub may have carried it out, so it is not "
                "sent again: check before repeating it"
            ) from None
        except self._oauth_error as exc:
            raise self._credentials_refused(getattr(exc, "error", "oauth_error")) from None
        except ValueError as exc:  # a token endpoint that answers something else
            raise AuthError(f"{what}: the hub's token endpoint answered no token") from exc

    def _fetch_token(self) -> None:
        if self._sessions is None:
            with self._translated("token"):
                self._http.fetch_token(self.url + TOKEN_PATH, grant_type="client_credentials")
            return
        refresh = (self._http.token or {}).get("refresh_token")
        with self._translated("token"):
            self._http.refresh_token(self.url + TOKEN_PATH, refresh_token=refresh)

    def _credentials_refused(self, reason: str) -> AuthError:
        """The hub refused the client's credentials, or a person's refresh token: then the
        kept session is useless and forgotten."""
        if self._sessions is None:
            return AuthError(f"the hub refused the credentials of client {self.client_id} "
                             f"({reason})")
        self._sessions.put(self.url, None)
        return AuthError(f"your sign-in at {self.url} has ended ({reason}); run `tahub login "
                         f"--hub {self.url}{_named(self._sessions.profile)}` again")

    def _attempt(
        self, method: str, path: str, auth: bool, resend: bool, **kwargs: Any
    ) -> httpx.Response:
        what = f"{method} {path}"
        if auth and not self._http.token:
            self._fetch_token()
        with self._translated(what, resend=resend):
            response = self._http.request(method, path, withhold_token=not auth, **kwargs)
        if auth and response.status_code == 401:  # e.g. the hub rotated its signing key
            self._http.token = None
            self._fetch_token()
            with self._translated(what, resend=resend):
                response = self._http.request(method, path, **kwargs)
        if response.status_code >= 500:
            if not resend:
                raise self._answered(
                    method, path, response,
                    after="; it may have carried it out, so it is not sent again: check "
                    "before repeating it")
            raise Transient(f"HTTP {response.status_code}",
                            self._answered(method, path, response))
        if response.status_code >= 400:
            raise self._answered(method, path, response)
        return response

    def _retried(self, what: str, call: Callable[[], _T]) -> _T:
        """``call`` with bounded backoff on transient failures; ``Unavailable`` after."""
        try:
            for attempt in self._retrying():
                with attempt:
                    return call()
        except (Transient, RetryError) as exc:
            if isinstance(exc, Transient) and exc.answer is not None:
                last = exc.answer  # the hub answered, each time: what it said the last time
                raise HubUnavailable(
                    f"{last.detail} (after {self.retry.attempts} attempts; try again later)",
                    http_status=last.http_status, problem=last.problem_body) from None
            reason = exc.reason if isinstance(exc, Transient) else "retries exhausted"
            raise Unavailable(
                f"the hub at {self.url} did not answer {what} after "
                f"{self.retry.attempts} attempts ({reason}); try again later"
            ) from None
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises

    def _request(
        self, method: str, path: str, *, auth: bool = True, resend: bool = True, **kwargs: Any
    ) -> httpx.Response:
        """One request; ``resend=False`` for a request that spends (module docstring)."""
        return self._retried(
            f"{method} {path}", lambda: self._attempt(method, path, auth, resend, **kwargs)
        )

    def _answered(self, method: str, path: str, response: httpx.Response, *,
                  after: str = "") -> HubRequestError:
        """The hub's answer of 400 or more as an error that keeps what the hub said: its
        status, code, type, rule, field and detail (a 5xx: :class:`HubUnavailable`)."""
        status = response.status_code
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not a problem document: a proxy's page, say
            kind = response.headers.get("content-type", "no content type").split(";")[0]
            body = {"status": status,
                    "detail": f"{response.reason_phrase} (an answer in {kind}, not a problem "
                              "document: from the hub, or from a proxy in front of it)"}
        detail = str(body.get("detail") or body.get("title") or response.reason_phrase)
        code = body.get("code", "")
        facts = [f"{k}: {body[k]}" for k in _FACTS if body.get(k) not in (None, "")]
        verb = "failed while answering" if status >= 500 else "refused"
        message = (f"the hub {verb} {method} {path} ({status}" + (f" {code}" if code else "")
                   + f"): {detail}" + (f" [{'; '.join(facts)}]" if facts else "") + after)
        cls = HubUnavailable if status >= 500 else HubRequestError
        return cls(message, http_status=status, problem=body)

    @staticmethod
    def _model(model: type[_M], data: Any) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Unavailable(
                f"the hub answered with an unexpected {model.__name__} "
                f"({exc.error_count()} problem(s)); is it a tahub hub of this version?"
            ) from None

    # -- routes every client has --------------------------------------------------------
    def authenticate(self) -> None:
        """Fetch an access token now (fails fast on wrong credentials)."""
        self._retried("the token request", self._fetch_token)

    def health(self) -> dict[str, Any]:
        return dict(self._request("GET", "/health", auth=False).json())

    def me(self) -> dict[str, Any]:
        return dict(self._request("GET", "/v1/me").json())

"""The OAuth2 token endpoint: authlib's generic ``AuthorizationServer`` on Starlette.

Only the client-credentials grant, with the client authenticated by HTTP Basic
(``client_secret_basic``) or form fields (``client_secret_post``). authlib does the
protocol (grant selection, client authentication, RFC 6749 error bodies); the access token
itself is a JWT minted by :meth:`hub.identity.IdentityService.issue_token` (joserfc).
Tokens are stateless, so ``save_token`` only logs the issuance (client id, never the token).
Every issuance and every refusal (a failed sign-in) is in the audit log (``hub.audit``): the
issuance before the token is handed out, a refusal right after it is answered.

Transport security: authlib refuses an OAuth2 request whose URL is plain ``http://``
unless the host is a loopback address (``InsecureTransportError``). The hub builds that URL
from ``TAHUB_PUBLIC_URL`` -- the address members really use -- not from the socket the
request arrived on, because in production the hub sits behind a TLS-terminating proxy and
sees plain HTTP itself. So: ``https://...`` public URLs work, loopback ``http://`` works for
local use and tests, and any other ``http://`` public URL makes the token endpoint answer
400 ``insecure_transport`` (logged at start-up as well). ``AUTHLIB_INSECURE_TRANSPORT`` is
never set by tahub.

Requests are limited per client address (``TAHUB_TOKEN_RATE_LIMIT_PER_MINUTE``, hub.ratelimit):
over the limit the answer is a 429 problem document with ``Retry-After``, not an RFC 6749
error, and it is not audited, so a flood of failed sign-ins cannot flood the audit log.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import structlog
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    InvalidClientError,
    InvalidRequestError,
    OAuth2Error,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.identity import TOKEN_AUTH_METHODS, IdentityService, OAuthClient
from hub.ratelimit import RateLimits

__all__ = ["TOKEN_PATH", "TokenServer", "router"]

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a secret
_MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True)
class _RawTokenRequest:
    """The parts of an HTTP request the token endpoint needs, read before authlib runs."""

    method: str
    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    form: list[tuple[str, str]]


class _FormPayload(OAuth2Payload):
    def __init__(self, form: list[tuple[str, str]]) -> None:
        self._data = dict(form)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for key, value in form:
            self._datalist[key].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _TokenRequest(OAuth2Request):
    def __init__(self, uri: str, raw: _RawTokenRequest) -> None:
        super().__init__(raw.method, uri, headers=raw.headers)
        self.payload = _FormPayload(raw.form)

    @property
    def form(self) -> dict[str, str]:
        data: dict[str, str] = self.payload.data
        return data

    @property
    def args(self) -> dict[str, str]:
        return {}


class _ClientCredentials(ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = list(TOKEN_AUTH_METHODS)  # noqa: RUF012 - authlib API


class TokenServer(AuthorizationServer):
    """authlib's authorization server, wired to :class:`IdentityService`."""

    def __init__(self, identity: IdentityService, token_url: str) -> None:
        super().__init__(scopes_supported=None)
        self._identity = identity
        self._token_url = token_url
        self.register_grant(_ClientCredentials)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=self._access_token,
                expires_generator=identity.token_ttl,
            ),
        )

    def _access_token(
        self, client: OAuthClient, grant_type: str, user: Any = None, scope: Any = None
    ) -> str:
        return self._identity.issue_token(client)

    def query_client(self, client_id: str) -> OAuthClient | None:
        return self._identity.query_client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        # Stateless JWTs: nothing to store; revocation works on the client.
        log.info("token response", client_id=request.client.get_client_id())

    def create_oauth2_request(self, request: _RawTokenRequest) -> OAuth2Request:
        return _TokenRequest(self._token_url, request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("the hub has no JSON OAuth2 endpoints")

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> Response:
        return JSONResponse(body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        if name == "after_authenticate_client" and kwargs.get("client") is not None:
            log.info("client authenticated", client_id=kwargs["client"].get_client_id())

    def token_response(self, raw: _RawTokenRequest) -> Response:
        """Answer one token request (sync: argon2 and the database run in a thread)."""
        try:
            response: Response = self.create_token_response(raw)
        except UnicodeDecodeError:
            response = self.handle_error_response(
                None, InvalidClientError(status_code=401, description="unreadable credentials")
            )
        except OAuth2Error as error:  # raised before authlib's own handling, e.g. transport
            log.warning("token request refused", error=error.error)
            response = self.handle_error_response(None, error)
        if response.status_code >= 400:
            self.audit_refusal(raw.headers, raw.form, response)
        return response

    def audit_refusal(self, headers: Mapping[str, str], form: list[tuple[str, str]],
                      response: Response) -> None:
        """Write the refusal to the audit log: the claimed client id and the error code."""
        try:
            error = str(json.loads(bytes(response.body)).get("error", "error"))
        except (ValueError, AttributeError):
            error = "error"
        self._identity.token_refused(_claimed_client(headers, form), error)


def _claimed_client(headers: Mapping[str, str], form: list[tuple[str, str]]) -> str | None:
    """The client id a token request claims (HTTP Basic user, or the form's client_id)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            return base64.b64decode(value, validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return next((v for k, v in form if k == "client_id"), None)


router = APIRouter(tags=["oauth"])


async def _form(request: Request) -> list[tuple[str, str]]:
    """The form-encoded body (RFC 6749 token requests), refused past a small size."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise InvalidRequestError(
            description="token requests are application/x-www-form-urlencoded"
        )
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > _MAX_FORM_BYTES:
            raise InvalidRequestError(description="the token request is too large")
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=32)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequestError(description="the token request is not a valid form") from None
    names = [name for name, _ in form]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:  # RFC 6749 section 3.2: parameters must not be repeated
        raise InvalidRequestError(description=f"repeated parameter(s): {', '.join(repeated)}")
    return form


@router.post(TOKEN_PATH, summary="Issue an access token (OAuth2 client credentials)")
async def token(request: Request) -> Response:
    server: TokenServer = request.app.state.token_server
    # Per client address, before anything is read or audited: a flood of sign-in attempts
    # is answered 429 (problem+json, Retry-After) and never reaches the audit log.
    limits: RateLimits = request.app.state.rate_limits
    limits.token_request(request.client.host if request.client else "unknown")
    try:
        form = await _form(request)
    except OAuth2Error as error:
        response: Response = server.handle_error_response(None, error)
        await run_in_threadpool(server.audit_refusal, request.headers, [], response)
        return response
    raw = _RawTokenRequest(method=request.method, headers=request.headers, form=form)
    return await run_in_threadpool(server.token_response, raw)

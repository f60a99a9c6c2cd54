"""The hub's OAuth 2 / OpenID Connect provider: authlib's generic ``AuthorizationServer``.

Three grants at ``POST /oauth/token``:

* ``client_credentials`` for member systems (a connector, a script): the client is
  authenticated by HTTP Basic (``client_secret_basic``) or form fields
  (``client_secret_post``);
* ``authorization_code`` for people, through the hub's own public clients (``tahub-cli``,
  ``tahub-web``, :mod:`hub.identity.signin`): PKCE is required (S256 only), the code works once, and
  with the ``openid`` scope the answer carries an ID token (EdDSA, the hub's key);
* ``refresh_token``: rotated at every use (a reused one revokes its family).

The sign-in page that hands out codes is ``hub.api.routes.signin``. authlib does the protocol
(grant selection, client authentication, RFC 6749 error bodies); access tokens are JWTs
minted by :class:`hub.identity.service.IdentityService` (joserfc).
Every issuance and every refusal (a failed sign-in) is in the audit log
(``hub.governance.audit``): the issuance before the token is handed out, a refusal right
after it is answered.

Transport security: authlib refuses an OAuth2 request whose URL is plain ``http://``
unless the host is a loopback address (``InsecureTransportError``). The hub builds that URL
from ``TAHUB_PUBLIC_URL`` -- the address members really use -- not from the socket the
request arrived on, because in production the hub sits behind a TLS-terminating proxy and
sees plain HTTP itself. So: ``https://...`` public URLs work, loopback ``http://`` works for
local use and tests, and any other ``http://`` public URL makes the token endpoint answer
400 ``insecure_transport`` (logged at start-up as well). ``AUTHLIB_INSECURE_TRANSPORT`` is
never set by tahub.

Requests are limited per client address (``TAHUB_TOKEN_RATE_LIMIT_PER_MINUTE``, hub.api.ratelimit):
over the limit the answer is a 429 problem document with ``Retry-After``, not an RFC 6749
error, and it is not audited, so a flood of failed sign-ins cannot flood the audit log.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
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
from authlib.oauth2.rfc6749.grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    RefreshTokenGrant,
)
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.api.openapi import problems
from hub.api.ratelimit import RateLimits
from hub.api.schemas.identity import OAuthError, TokenForm, TokenResponse
from hub.identity.people import Person
from hub.identity.service import TOKEN_AUTH_METHODS, IdentityService, OAuthClient
from hub.identity.signin import (
    CLI_CLIENT,
    WEB_CLIENT,
    AuthCode,
    PublicClient,
    RefreshRecord,
    SignIns,
)
from hub.storage.db import utcnow

__all__ = ["AUTHORIZE_PATH", "TOKEN_PATH", "TokenServer", "router"]

log = structlog.get_logger(__name__)

TOKEN_PATH = "/oauth/token"  # noqa: S105 - a URL path, not a secret
AUTHORIZE_PATH = "/oauth/authorize"
_MAX_FORM_BYTES = 16 * 1024
#: A parameter name an error description may repeat (RFC 6749 allows no quotes, no
#: backslashes and nothing beyond ASCII there; authlib enforces it).
_SHOWN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")


@dataclass(frozen=True)
class _RawTokenRequest:
    """The parts of an HTTP request the token endpoint needs, read before authlib runs."""

    method: str
    headers: Mapping[str, str]  # case-insensitive (Starlette's Headers)
    form: list[tuple[str, str]]  # the token request's form, or the authorization request
    authorize: bool = False  # an authorization request (the sign-in page), not a token one


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


class _AuthorizationCode(AuthorizationCodeGrant):
    """A person's code, for the hub's public clients (no client secret: PKCE instead)."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib API
    server: TokenServer

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.server.signins.save_code(code, AuthCode(
            client_id=request.client.get_client_id(), person_id=request.user.id,
            redirect_uri=data["redirect_uri"], scope=request.scope or "",
            nonce=data.get("nonce"), code_challenge=data["code_challenge"],
            code_challenge_method=data["code_challenge_method"], auth_time=utcnow()))

    def query_authorization_code(self, code: str, client: Any) -> AuthCode | None:
        return self.server.signins.take_code(code, client.get_client_id())

    def delete_authorization_code(self, authorization_code: AuthCode) -> None:
        pass  # take_code deleted it already: a code works once, even if the exchange fails

    def authenticate_user(self, authorization_code: AuthCode) -> Person | None:
        return self.server.person(authorization_code.person_id)


class _RefreshToken(RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 - authlib API
    INCLUDE_NEW_REFRESH_TOKEN = True  # rotation: every use hands out a new one
    server: TokenServer

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        return self.server.signins.use_refresh(refresh_token)

    def authenticate_user(self, refresh_token: RefreshRecord) -> Person | None:
        return self.server.person(refresh_token.person_id)

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        pass  # use_refresh marked it used: presented again, it revokes its family


class _PKCE(CodeChallenge):
    """PKCE on every authorization request, S256 only (RFC 7636, RFC 9700 2.1.1)."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 - authlib API

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("PKCE is required: send code_challenge and "
                                      "code_challenge_method=S256")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256")
        super().validate_code_challenge(grant, redirect_uri)

    def get_authorization_code_challenge(self, authorization_code: AuthCode) -> str:
        return authorization_code.code_challenge

    def get_authorization_code_challenge_method(self, authorization_code: AuthCode) -> str:
        return authorization_code.code_challenge_method


class _OpenID(OpenIDCode):
    """ID tokens signed by the hub's own key (hub.identity.service), with the person's claims."""

    def __init__(self, identity: IdentityService) -> None:
        super().__init__(require_nonce=False)
        self._identity = identity

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # replays are the client's to detect: it checks the nonce it sent

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        code: AuthCode = request.authorization_code
        return self._identity.id_token(
            request.user, request.client.get_client_id(), nonce=code.nonce,
            auth_time=code.get_auth_time(), access_token=token.get("access_token"))


class TokenServer(AuthorizationServer):
    """authlib's authorization server, wired to :class:`IdentityService`."""

    def __init__(self, identity: IdentityService, signins: SignIns, public_url: str) -> None:
        super().__init__(scopes_supported=None)
        self._identity = identity
        self.signins = signins
        self._public_url = public_url
        self.register_grant(_ClientCredentials)
        self.register_grant(_AuthorizationCode, [_PKCE(required=True), _OpenID(identity)])
        self.register_grant(_RefreshToken)
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=self._access_token,
                refresh_token_generator=lambda **_: secrets.token_urlsafe(32),
                expires_generator=identity.token_ttl,
            ),
        )

    def _access_token(
        self, client: Any, grant_type: str, user: Any = None, scope: Any = None
    ) -> str:
        if isinstance(user, Person):
            return self._identity.issue_person_token(user, client.get_client_id(), scope or "")
        return self._identity.issue_token(client)

    def person(self, person_id: str) -> Person | None:
        """The person a code or refresh token stands for, unless disabled meanwhile."""
        found = self._identity.people.find(person_id)
        return None if found is None or found.disabled else found

    def query_client(self, client_id: str) -> OAuthClient | PublicClient | None:
        if client_id in (CLI_CLIENT, WEB_CLIENT):
            return PublicClient(client_id, self._public_url)
        return self._identity.query_client(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Access tokens are stateless JWTs; a person's refresh token is stored (hashed),
        in the family of the one it replaces."""
        if "refresh_token" in token and isinstance(request.user, Person):
            previous = request.refresh_token
            self.signins.save_refresh(
                token["refresh_token"], person_id=request.user.id,
                client_id=request.client.get_client_id(), scope=token.get("scope", ""),
                family=previous.family if isinstance(previous, RefreshRecord) else None)
        log.info("token response", client_id=request.client.get_client_id())

    def create_oauth2_request(self, request: _RawTokenRequest) -> OAuth2Request:
        path = AUTHORIZE_PATH if request.authorize else TOKEN_PATH
        return _TokenRequest(self._public_url + path, request)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("the hub has no JSON OAuth2 endpoints")

    def handle_response(
        self, status: int, body: Any, headers: list[tuple[str, str]]
    ) -> Response:
        if 300 <= status < 400:  # a redirect of the authorization endpoint: no body
            return Response(status_code=status, headers=dict(headers))
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
        shown = [name for name in repeated if _SHOWN_NAME.fullmatch(name)]
        raise InvalidRequestError(description="repeated parameter(s)" + (
            f": {', '.join(shown)}" if shown else ""))
    return form


#: The token endpoint's answers: RFC 6749 JSON (a token or an error), except the hub's own
#: refusals before authlib runs (a body over the size limit, the rate limit, the store down).
_TOKEN_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthError, "description": "invalid_request, invalid_grant, "
          "unsupported_grant_type, invalid_scope... (RFC 6749)"},
    401: {"model": OAuthError, "description": "invalid_client: unknown client or wrong secret"},
    **problems(413, 429, 503),
}
#: The body is read by :func:`_form` (authlib needs the raw pairs), so it is declared here.
_TOKEN_BODY = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": TokenForm.model_json_schema()}}}}


@router.post(TOKEN_PATH, summary="Issue an access token (OAuth2 client credentials)",
             response_model=TokenResponse, responses=_TOKEN_RESPONSES,
             openapi_extra=_TOKEN_BODY)
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

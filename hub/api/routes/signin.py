"""People sign in: the authorization endpoint's page, the external provider's round trip,
and userinfo (docs/people.md).

``GET /oauth/authorize`` checks the authorization request first (client, redirect URI,
``response_type=code``, PKCE with S256, scope): a request whose client or redirect URI is
wrong gets an error page and is never redirected; any other mistake is redirected back to
the client with an RFC 6749 ``error``. A good request gets the sign-in page: e-mail and
password (the hub's own accounts), and, with ``TAHUB_OIDC_ISSUER``, a link to sign in at the
organisation's provider instead.

``POST /oauth/authorize`` checks the password (argon2; limited per client address like the
token endpoint, 429 over it), audits the outcome (``auth.signed_in`` or
``auth.sign_in_failed``: the person if known, never the password) and redirects to the
client with a one-time code.

``GET /oauth/federated`` starts the external sign-in (the hub's own state, nonce and PKCE
verifier are kept server side), ``GET /oauth/federated/callback`` finishes it: the
provider's code is redeemed, its ID token verified (hub.identity.oidc), the person looked up or
linked by verified e-mail (hub.identity.people), and the original authorization request resumed.
"""

from __future__ import annotations

import base64
import hashlib
import html
import secrets
from collections.abc import Mapping
from typing import Annotated, Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749 import OAuth2Error
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hub.actors import Actor
from hub.api.deps import AppSettings, CurrentActor, Identity
from hub.api.oauth import AUTHORIZE_PATH, TokenServer, _form, _RawTokenRequest
from hub.api.openapi import AUTHENTICATED, problems
from hub.api.ratelimit import RateLimits
from hub.api.schemas.identity import UserInfo
from hub.errors import AuthError, InvalidInput, NotFound
from hub.governance.audit import Action, AuditEvent
from hub.identity.people import Person
from hub.identity.service import IdentityService

__all__ = ["router"]

router = APIRouter(tags=["oauth"])

FEDERATED_PATH = "/oauth/federated"
CALLBACK_PATH = "/oauth/federated/callback"
_SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
}
_STYLE = """
body{font-family:system-ui,sans-serif;max-width:26rem;margin:4rem auto;padding:0 1rem;
color:#1a1a1a}h1{font-size:1.4rem}label{display:block;margin-top:1rem;font-weight:600}
input{width:100%;padding:.55rem;font-size:1rem;box-sizing:border-box;margin-top:.25rem;
border:1px solid #555;border-radius:4px}button,.provider{display:block;width:100%;
margin-top:1.25rem;padding:.65rem;font-size:1rem;border-radius:4px;text-align:center}
button{background:#0b5394;color:#fff;border:0}.provider{border:1px solid #0b5394;
color:#0b5394;text-decoration:none}:focus{outline:3px solid #e69f00;outline-offset:2px}
.error{background:#fde8e8;border-left:4px solid #b00020;padding:.6rem;margin-top:1rem}
.small{font-size:.9rem;color:#444}
"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    text = (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)} - tahub</title><style>{_STYLE}</style></head>"
            f"<body><main>{body}</main></body></html>")
    return HTMLResponse(text, status_code=status, headers=_SECURITY_HEADERS)


def _error_page(description: str, status: int = 400) -> HTMLResponse:
    return _page("Sign-in refused", f"<h1>This sign-in link cannot be used</h1>"
                 f"<p class=\"error\" role=\"alert\">{html.escape(description)}</p>"
                 "<p class=\"small\">Start the sign-in again from the application.</p>",
                 status)


def _sign_in_page(params: list[tuple[str, str]], *, provider: str | None,
                  error: str | None = None, email: str = "", status: int = 200
                  ) -> HTMLResponse:
    hidden = "".join(f"<input type=\"hidden\" name=\"{html.escape(k)}\" "
                     f"value=\"{html.escape(v)}\">" for k, v in params)
    alert = (f"<p class=\"error\" role=\"alert\" id=\"error\">{html.escape(error)}</p>"
             if error else "")
    described = " aria-describedby=\"error\"" if error else ""
    external = ""
    if provider is not None:
        href = html.escape(f"{FEDERATED_PATH}?{urlencode(params)}")
        external = (f"<a class=\"provider\" href=\"{href}\">Sign in with "
                    f"{html.escape(provider)}</a><p class=\"small\">or with a hub account:</p>")
    body = (f"<h1>Sign in to tahub</h1>{alert}{external}"
            f"<form method=\"post\" action=\"{AUTHORIZE_PATH}\">{hidden}"
            f"<label for=\"email\">E-mail address</label><input id=\"email\" name=\"email\" "
            f"type=\"email\" autocomplete=\"username\" required value=\"{html.escape(email)}\""
            f"{described} autofocus>"
            f"<label for=\"password\">Password</label><input id=\"password\" "
            f"name=\"password\" type=\"password\" autocomplete=\"current-password\" "
            f"required{described}>"
            f"<button type=\"submit\">Sign in</button></form>")
    return _page("Sign in", body, status)


# -- what the document says of these pages (hub.api.openapi) ---------------------------------
def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


_REDIRECT = {"description": "To the client's redirect URI, with a one-time code or an RFC 6749 "
             "error (or, from /oauth/federated, to the organisation's identity provider).",
             "headers": {"Location": {"required": True, "schema": {"type": "string"}}}}
_TEXT = {"type": "string"}
#: The authorization request (RFC 6749 4.1.1 with PKCE, OpenID Connect); checked by authlib.
_AUTHORIZATION_PARAMS = ("response_type", "client_id", "redirect_uri", "scope", "state",
                         "nonce", "code_challenge", "code_challenge_method")
_AUTHORIZE_QUERY = {"parameters": [{"name": name, "in": "query", "required": False,
                                    "schema": _TEXT} for name in _AUTHORIZATION_PARAMS]}
_SIGN_IN_FORM = {"requestBody": {"required": True, "content": {
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "required": ["email", "password"],
        "properties": {name: _TEXT for name in ("email", "password", *_AUTHORIZATION_PARAMS)},
    }}}}}
_REFUSED_PAGE = _html("The authorization request cannot be used (unknown client or redirect "
                      "URI, an unreadable form): an error page, never a redirect.")


async def _server(request: Request) -> TokenServer:
    server: TokenServer = request.app.state.token_server
    return server


Server = Annotated[TokenServer, Depends(_server)]


def _raw(request: Request, params: list[tuple[str, str]]) -> _RawTokenRequest:
    return _RawTokenRequest(method="GET", headers=request.headers, form=params, authorize=True)


def _checked(server: TokenServer, raw: _RawTokenRequest) -> Response | Any:
    """The validated authorization grant, or the response that refuses the request."""
    try:
        return server.get_consent_grant(raw)
    except OAuth2Error as error:
        if getattr(error, "redirect_uri", None):  # the client and its redirect URI are good
            return server.handle_error_response(server.create_oauth2_request(raw), error)
        return _error_page(error.description or error.error)
    except ValueError:  # authlib will not echo a parameter beyond ASCII into its error
        return _error_page("the authorization request has a malformed parameter")


def _provider_name(request: Request) -> str | None:
    external = request.app.state.services.identity.external
    return None if external is None else str(external.name)


@router.get(AUTHORIZE_PATH, summary="Sign in (the authorization endpoint's page)",
            response_class=HTMLResponse, openapi_extra=_AUTHORIZE_QUERY,
            responses={200: _html("The sign-in page."), 302: _REDIRECT, 400: _REFUSED_PAGE,
                       **problems(503)})
def authorize_page(request: Request, server: Server) -> Response:
    params = list(request.query_params.multi_items())
    checked = _checked(server, _raw(request, params))
    if isinstance(checked, Response):
        return checked
    return _sign_in_page(params, provider=_provider_name(request))


@router.post(AUTHORIZE_PATH, summary="Sign in with an e-mail address and a password",
             response_class=RedirectResponse, status_code=302, openapi_extra=_SIGN_IN_FORM,
             responses={302: _REDIRECT, 400: _REFUSED_PAGE,
                        401: _html("Wrong e-mail address or password: the page again."),
                        **problems(413, 429, 503)})
async def authorize_submit(request: Request, server: Server) -> Response:
    limits: RateLimits = request.app.state.rate_limits
    limits.token_request(request.client.host if request.client else "unknown")
    try:
        form = await _form(request)
    except OAuth2Error as error:
        return _error_page(error.description or error.error)
    email = next((v for k, v in form if k == "email"), "")
    password = next((v for k, v in form if k == "password"), "")
    params = [(k, v) for k, v in form if k not in ("email", "password")]
    return await run_in_threadpool(_sign_in, request, server, params, email, password)


def _sign_in(request: Request, server: Server, params: list[tuple[str, str]], email: str,
             password: str) -> Response:
    raw = _raw(request, params)
    checked = _checked(server, raw)
    if isinstance(checked, Response):
        return checked
    identity = request.app.state.services.identity
    try:
        person = identity.people.check_password(email, password)
    except AuthError as exc:
        _audit_failure(identity, email)
        return _sign_in_page(params, provider=_provider_name(request), error=exc.detail,
                             email=email, status=401)
    return _grant(server, raw, checked, identity, person, "password")


def _grant(server: TokenServer, raw: _RawTokenRequest, grant: Any, identity: IdentityService,
           person: Person, method: str) -> Response:
    identity.audit.append(AuditEvent(
        Action.SIGNED_IN, actor=person.id, org=person.org_id, object_type="person",
        object_id=person.id, details={"method": method,
                                      "client_id": dict(raw.form).get("client_id")}))
    identity.people.signed_in(person.id)
    response: Response = server.create_authorization_response(raw, grant_user=person,
                                                              grant=grant)
    return response


def _audit_failure(identity: IdentityService, email: str) -> None:
    """``auth.sign_in_failed``: the person if the address is one (never the address itself
    otherwise, nor the password)."""
    try:
        person: Person | None = identity.people.by_email(email)
    except (NotFound, InvalidInput):  # unknown or not an address: recorded as unknown
        person = None
    identity.audit.append(AuditEvent(
        Action.SIGN_IN_FAILED, actor=person.id if person else None,
        org=person.org_id if person else None,
        object_type="person" if person else None, object_id=person.id if person else None,
        details={"method": "password", "person_known": person is not None}))


# -- the external provider ------------------------------------------------------------------
def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode("ascii")


@router.get(FEDERATED_PATH, summary="Sign in at the organisation's identity provider",
            response_class=RedirectResponse, status_code=302, openapi_extra=_AUTHORIZE_QUERY,
            responses={302: _REDIRECT, 400: _REFUSED_PAGE,
                       404: _html("This hub has no external identity provider."),
                       **problems(503)})
def federated(request: Request, server: Server, settings: AppSettings) -> Response:
    external = request.app.state.services.identity.external
    if external is None:
        return _error_page("this hub has no external identity provider", 404)
    params = list(request.query_params.multi_items())
    checked = _checked(server, _raw(request, params))
    if isinstance(checked, Response):
        return checked
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    verifier, challenge = _pkce_pair()
    server.signins.save_state(state, code_verifier=verifier, nonce=nonce,
                              request=dict(params))
    return RedirectResponse(external.authorization_url(
        redirect_uri=settings.public_url + CALLBACK_PATH, state=state, nonce=nonce,
        code_challenge=challenge), status_code=302, headers={"Cache-Control": "no-store"})


@router.get(CALLBACK_PATH, summary="Back from the organisation's identity provider",
            response_class=RedirectResponse, status_code=302,
            openapi_extra={"parameters": [{"name": name, "in": "query", "required": False,
                                           "schema": _TEXT} for name in (
                "state", "code", "error", "error_description")]},
            responses={302: _REDIRECT, 400: _html("An unknown or expired sign-in."),
                       401: _html("The identity provider did not sign the person in."),
                       **problems(503)})
def federated_callback(request: Request, server: Server, settings: AppSettings) -> Response:
    identity = request.app.state.services.identity
    external = identity.external
    query: Mapping[str, str] = request.query_params
    taken = server.signins.take_state(query.get("state", "")) if external else None
    if external is None or taken is None:
        return _error_page("this sign-in is unknown or has expired", 400)
    verifier, nonce, original = taken
    raw = _raw(request, list(original.items()))
    checked = _checked(server, raw)
    if isinstance(checked, Response):
        return checked
    if "error" in query or "code" not in query:
        reason = query.get("error_description") or query.get("error") or "no code"
        return _error_page(f"the identity provider did not sign you in ({reason})", 401)
    try:
        claims = external.exchange(code=query["code"], code_verifier=verifier,
                                   redirect_uri=settings.public_url + CALLBACK_PATH,
                                   nonce=nonce)
        person = identity.people.external(external.issuer, claims["sub"],
                                          claims.get("email"),
                                          claims.get("email_verified") is True)
    except AuthError as exc:
        identity.audit.append(AuditEvent(Action.SIGN_IN_FAILED, details={
            "method": "external", "reason": exc.detail[:200]}))
        return _error_page(exc.detail, 401)
    return _grant(server, raw, checked, identity, person, "external")


# -- userinfo ---------------------------------------------------------------------------------
@router.get("/oauth/userinfo", summary="Who the bearer is (OpenID Connect userinfo)",
            response_model=UserInfo, responses=problems(*AUTHENTICATED))
def userinfo(actor: CurrentActor, identity: Identity) -> JSONResponse:
    info: dict[str, Any] = _claims(actor)
    person = identity.people.find(actor.client_id)
    if person is not None:
        info.update(email=person.email, email_verified=True, name=person.name)
    return JSONResponse(info)


def _claims(actor: Actor) -> dict[str, Any]:
    return {"sub": actor.client_id, "org": actor.org, "org_name": actor.org_name,
            "roles": sorted(r.value for r in actor.roles)}

"""People signing in at the hub's own OpenID provider: its clients, codes and refresh tokens.

The hub is an OAuth 2 / OpenID Connect provider for its own front ends (authorization code
with PKCE, RFC 7636, S256 only): two *public* clients are built in, no secret:

* ``tahub-cli`` - the command line (``tahub login``): a native app that receives the code on
  a loopback redirect, ``http://127.0.0.1:<any port>/callback`` (RFC 8252 section 7.3);
* ``tahub-web`` - the hub's web interface: ``<TAHUB_PUBLIC_URL>/ui/callback``.

This module stores what the flow needs, each secret only as its sha256:

* authorization codes: five minutes, used once (deleted when redeemed), bound to the client,
  the redirect URI and the PKCE challenge;
* refresh tokens (``TAHUB_REFRESH_TOKEN_DAYS``): rotated at every use; a rotated token
  presented again means it was copied, so its whole *family* is revoked and the event
  audited (``auth.refresh_reused``, RFC 9700 section 4.14);
* sign-ins through an external provider in progress (``hub.identity.oidc``): the hub's own PKCE
  verifier and nonce, and the authorization request to resume (ten minutes).

The HTTP side (authlib's grants, the sign-in page) is ``hub.api.oauth`` and
``hub.api.routes.signin``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
import structlog
from authlib.oauth2.rfc6749 import AuthorizationCodeMixin, ClientMixin
from sqlalchemy import Connection, Engine

from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.storage.db import oauth_codes, refresh_tokens, signin_states, utcnow, writing

__all__ = [
    "CLI_CLIENT",
    "SCOPES",
    "WEB_CLIENT",
    "AuthCode",
    "PublicClient",
    "RefreshRecord",
    "SignIns",
]

log = structlog.get_logger(__name__)

CLI_CLIENT = "tahub-cli"
WEB_CLIENT = "tahub-web"
SCOPES = ("openid", "profile", "email", "offline_access")
CODE_TTL = timedelta(minutes=5)
STATE_TTL = timedelta(minutes=10)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _loopback(host: str | None) -> bool:
    if host == "localhost":
        return True
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PublicClient(ClientMixin):
    """One of the hub's own public clients, as authlib needs it."""

    def __init__(self, client_id: str, public_url: str) -> None:
        self.client_id = client_id
        self._web_callback = public_url + "/ui/callback"

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # a redirect_uri is always required

    def get_allowed_scope(self, scope: str | None) -> str:
        asked = (scope or "").split()
        return " ".join(s for s in asked if s in SCOPES)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        if self.client_id == WEB_CLIENT:
            return redirect_uri == self._web_callback
        parts = urlsplit(redirect_uri)  # tahub-cli: loopback, any port, /callback
        return (parts.scheme == "http" and _loopback(parts.hostname)
                and parts.path == "/callback" and not parts.query and not parts.fragment)

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass(frozen=True, slots=True)
class AuthCode(AuthorizationCodeMixin):
    client_id: str
    person_id: str
    redirect_uri: str
    scope: str
    nonce: str | None
    code_challenge: str
    code_challenge_method: str
    auth_time: datetime

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(self.auth_time.timestamp())

    def get_acr(self) -> str | None:
        return None

    def get_amr(self) -> list[str] | None:
        return None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    token_hash: str
    family: str
    person_id: str
    client_id: str
    scope: str

    def check_client(self, client: Any) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope


class SignIns:
    """Codes, refresh tokens and external sign-ins in progress, in the metadata store."""

    def __init__(self, engine: Engine, audit: AuditLog, refresh_days: int) -> None:
        self.engine = engine
        self.audit = audit
        self.refresh_ttl = timedelta(days=refresh_days)

    def _writing(self) -> AbstractContextManager[Connection]:
        return writing(self.engine)

    # -- authorization codes ---------------------------------------------------------------
    def save_code(self, code: str, c: AuthCode) -> None:
        with self._writing() as conn:
            conn.execute(oauth_codes.insert().values(
                code_hash=digest(code), client_id=c.client_id, person_id=c.person_id,
                redirect_uri=c.redirect_uri, scope=c.scope, nonce=c.nonce,
                code_challenge=c.code_challenge, code_challenge_method=c.code_challenge_method,
                auth_time=c.auth_time, expires_at=utcnow() + CODE_TTL))

    def take_code(self, code: str, client_id: str) -> AuthCode | None:
        """The code's record, deleted at once (a code works once), or None."""
        with self._writing() as conn:
            row = conn.execute(sa.select(oauth_codes).where(
                oauth_codes.c.code_hash == digest(code))).first()
            if row is None:
                return None
            conn.execute(oauth_codes.delete().where(oauth_codes.c.code_hash == row.code_hash))
        if row.client_id != client_id or row.expires_at <= utcnow():
            return None
        return AuthCode(row.client_id, row.person_id, row.redirect_uri, row.scope, row.nonce,
                        row.code_challenge, row.code_challenge_method, row.auth_time)

    # -- refresh tokens --------------------------------------------------------------------
    def save_refresh(self, token: str, *, person_id: str, client_id: str, scope: str,
                     family: str | None) -> None:
        now = utcnow()
        with self._writing() as conn:
            conn.execute(refresh_tokens.insert().values(
                token_hash=digest(token), family=family or secrets.token_hex(16),
                person_id=person_id, client_id=client_id, scope=scope, created_at=now,
                expires_at=now + self.refresh_ttl, used_at=None, revoked_at=None))

    def use_refresh(self, token: str) -> RefreshRecord | None:
        """A valid refresh token's record, marked used (it rotates); None otherwise. A token
        used before revokes its family: whoever holds the newer one must sign in again."""
        now = utcnow()
        rt = refresh_tokens
        with self._writing() as conn:
            row = conn.execute(sa.select(rt).where(rt.c.token_hash == digest(token))).first()
            if row is None or row.revoked_at is not None or row.expires_at <= now:
                return None
            if row.used_at is not None:
                conn.execute(rt.update().where(rt.c.family == row.family, rt.c.revoked_at.is_(
                    None)).values(revoked_at=now))
                self.audit.append(AuditEvent(
                    Action.REFRESH_REUSED, actor=row.person_id, object_type="person",
                    object_id=row.person_id, details={"client_id": row.client_id}), conn=conn)
                log.warning("a rotated refresh token was used again: its family is revoked",
                            person=row.person_id)
                return None
            conn.execute(rt.update().where(rt.c.token_hash == row.token_hash)
                         .values(used_at=now))
        return RefreshRecord(row.token_hash, row.family, row.person_id, row.client_id,
                             row.scope)

    # -- external sign-ins in progress -----------------------------------------------------
    def save_state(self, state: str, *, code_verifier: str, nonce: str,
                   request: dict[str, str]) -> None:
        with self._writing() as conn:
            conn.execute(signin_states.insert().values(
                state_hash=digest(state), code_verifier=code_verifier, nonce=nonce,
                request=request, expires_at=utcnow() + STATE_TTL))

    def take_state(self, state: str) -> tuple[str, str, dict[str, str]] | None:
        """(code_verifier, nonce, the authorization request), once; None if unknown."""
        with self._writing() as conn:
            row = conn.execute(sa.select(signin_states).where(
                signin_states.c.state_hash == digest(state))).first()
            if row is None:
                return None
            conn.execute(signin_states.delete().where(
                signin_states.c.state_hash == row.state_hash))
        if row.expires_at <= utcnow():
            return None
        return row.code_verifier, row.nonce, dict(row.request)

    def sweep(self) -> int:
        """Delete expired codes, states and refresh tokens; how many rows went."""
        now = utcnow()
        with self._writing() as conn:
            gone = conn.execute(oauth_codes.delete().where(oauth_codes.c.expires_at <= now))
            total = gone.rowcount
            total += conn.execute(signin_states.delete().where(
                signin_states.c.expires_at <= now)).rowcount
            total += conn.execute(refresh_tokens.delete().where(
                refresh_tokens.c.expires_at <= now - timedelta(days=1))).rowcount
        return int(total)

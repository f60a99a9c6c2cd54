"""Machine identity: member organisations, their OAuth2 clients, and signed access tokens.

Every partner system reaches the hub as an OAuth2 *client* of a member *organisation*, with
the client-credentials grant (``POST /oauth/token``, see ``docs/ingest-api.md``):

* ``register_member`` creates an organisation and its first client; ``add_client`` gives an
  organisation another one (one per system, so that each can be revoked alone). The client
  secret is returned once; only its argon2 hash is stored.
* Access tokens are JWTs signed with the hub's Ed25519 key (``alg: EdDSA``, ``kid`` = the
  key's RFC 7638 thumbprint), made and checked with joserfc. The private key lives as a JWK
  in ``<data_dir>/keys`` (mode 0600), or, with several hub processes or replicas, in the
  PEM file ``TAHUB_SIGNING_KEY_FILE`` they all share; ``jwks()`` publishes only the public
  parts.
* ``verify_token`` turns a bearer token into an :class:`~hub.actors.Actor`, refusing every
  other algorithm, unknown keys, another issuer or audience, an expired or not-yet-valid
  token (30 s leeway for clock skew) and revoked clients, each with a clear
  :class:`~hub.errors.AuthError`.

The HTTP side of the token endpoint (authlib's ``AuthorizationServer``) is in
``hub.api.oauth``; this module only offers the client model authlib needs
(:class:`OAuthClient`) and the token minting it calls.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
import structlog
from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError
from authlib.oauth2.rfc6749 import ClientMixin
from joserfc import jws, jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from hub.actors import Actor, MemberKind, Role, parse_roles
from hub.errors import AuthError, Conflict, InvalidInput, NotFound, Unavailable
from hub.governance.audit import Action, AuditEvent, AuditLog
from hub.identity.directory import Directory
from hub.identity.oidc import LEEWAY_SECONDS, ExternalProvider, peek_issuer
from hub.identity.people import People, Person
from hub.identity.signingkeys import ALGORITHM, TokenRegistry, open_signing_keys
from hub.settings import Settings
from hub.storage.db import MEMBER_LIMITS, clients, organisations, read_connection, utcnow

__all__ = [
    "ALGORITHM",
    "AUDIENCE",
    "GRANT_TYPE",
    "LEEWAY_SECONDS",
    "TOKEN_AUTH_METHODS",
    "Credentials",
    "IdentityService",
    "OAuthClient",
]

log = structlog.get_logger(__name__)

AUDIENCE = "tahub"
GRANT_TYPE = "client_credentials"
TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_MAX_NAME = 200
VERIFIED_TOKENS = 4096  # tokens whose signature is remembered (IdentityService._signed_claims)
_CLIENT_ID = re.compile(r"tahub_[0-9a-f]{16}")



@dataclass(frozen=True, slots=True)
class Credentials:
    """What a new client receives once: its id and secret (never stored in clear)."""

    org_id: str
    org_name: str
    client_id: str
    client_secret: str
    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _ClientRecord:
    client_id: str
    org_id: str
    org_name: str
    roles: tuple[str, ...]
    secret_hash: str
    revoked: bool


class OAuthClient(ClientMixin):
    """One registered client, as authlib's token endpoint needs it.

    Confidential clients only: the client-credentials grant, authenticated at the token
    endpoint with HTTP Basic or form fields; no redirects, no scopes (roles carry authority).
    """

    def __init__(self, record: _ClientRecord, hasher: PasswordHasher) -> None:
        self.record = record
        self._hasher = hasher

    @property
    def client_id(self) -> str:
        return self.record.client_id

    def get_client_id(self) -> str:
        return self.record.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        try:
            return bool(self._hasher.verify(self.record.secret_hash, client_secret))
        except (Argon2Error, InvalidHashError):
            return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in TOKEN_AUTH_METHODS

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == GRANT_TYPE



@contextmanager
def _store_errors() -> Iterator[None]:
    """Translate database driver errors at the boundary (never let one escape raw)."""
    try:
        yield
    except SQLAlchemyError as exc:
        log.error("metadata store error", error_type=type(exc).__name__)
        raise Unavailable("the metadata store is not available; retry later") from None


# Read with every request that carries a client's token (revocation takes effect at once), so
# built once: building a statement costs more than SQLite takes to answer it.
_CLIENT = (
    sa.select(clients.c.client_id, clients.c.org_id, organisations.c.name, clients.c.roles,
              clients.c.secret_hash, clients.c.revoked_at)
    .join(organisations, organisations.c.id == clients.c.org_id)
    .where(clients.c.client_id == sa.bindparam("client_id"))
)


class IdentityService:
    """Members, clients and tokens. Thread-safe: each call uses its own connection."""

    def __init__(self, *, engine: sa.Engine, settings: Settings,
                 external: ExternalProvider | None = None) -> None:
        self._engine = engine
        self._issuer = settings.public_url
        self._ttl = settings.token_ttl_seconds
        self._hasher = PasswordHasher()
        self._keys = open_signing_keys(settings)
        self._jws = TokenRegistry(algorithms=[ALGORITHM])
        self._signed = functools.lru_cache(maxsize=VERIFIED_TOKENS)(self._signed_claims)
        self.audit = AuditLog(engine)
        self.people = People(engine, self.audit)
        self.directory = Directory(engine)
        self.external = external

    # -- members and clients ------------------------------------------------------------
    def register_member(
        self, name: str, kind: MemberKind | str, roles: Iterable[Role | str],
        *, actor: str | None = None,
    ) -> Credentials:
        """Create an organisation and its first client; the secret is returned only here.

        ``actor`` (who registers it, e.g. ``cli:<user>``) goes into the audit entry, which
        is written in the same transaction."""
        name = " ".join(name.split())
        if not name or len(name) > _MAX_NAME:
            raise InvalidInput(
                f"a member name needs 1 to {_MAX_NAME} characters", field="name"
            )
        try:
            kind = MemberKind(kind)
        except ValueError:
            known = ", ".join(k.value for k in MemberKind)
            raise InvalidInput(
                f"unknown member kind {kind!r}; known kinds: {known}", field="kind"
            ) from None
        role_values = parse_roles(roles, "client")
        org_id = f"org_{secrets.token_hex(8)}"
        with _store_errors():
            try:
                with self._engine.begin() as conn:
                    taken = conn.execute(
                        sa.select(organisations.c.id).where(organisations.c.name == name)
                    ).first()
                    if taken is not None:
                        raise Conflict(
                            f"a member named {name!r} already exists", field="name"
                        )
                    conn.execute(
                        organisations.insert().values(
                            id=org_id, name=name, kind=kind.value, created_at=utcnow()
                        )
                    )
                    creds = self._insert_client(conn, org_id, name, role_values)
                    self.audit.append(AuditEvent(
                        Action.MEMBER_REGISTERED, actor=actor, org=org_id,
                        object_type="organisation", object_id=org_id,
                        details={"name": name, "kind": kind.value,
                                 "client_id": creds.client_id, "roles": list(role_values)},
                    ), conn=conn)
            except IntegrityError:
                raise Conflict(f"a member named {name!r} already exists", field="name") from None
        log.info("member registered", org=org_id, kind=kind.value, client_id=creds.client_id)
        return creds

    def add_client(self, org_id: str, roles: Iterable[Role | str],
                   *, actor: str | None = None) -> Credentials:
        """Another client for an existing organisation (e.g. a second partner system)."""
        role_values = parse_roles(roles, "client")
        with _store_errors(), self._engine.begin() as conn:
            org = conn.execute(
                sa.select(organisations.c.name).where(organisations.c.id == org_id)
            ).first()
            if org is None:
                raise NotFound(f"no member organisation {org_id!r}", field="org_id")
            creds = self._insert_client(conn, org_id, org.name, role_values)
            self.audit.append(AuditEvent(
                Action.CLIENT_ADDED, actor=actor, org=org_id, object_type="client",
                object_id=creds.client_id, details={"roles": list(role_values)},
            ), conn=conn)
        log.info("client added", org=org_id, client_id=creds.client_id)
        return creds

    def _insert_client(
        self, conn: sa.Connection, org_id: str, org_name: str, roles: tuple[str, ...]
    ) -> Credentials:
        client_id = f"tahub_{secrets.token_hex(8)}"
        secret = secrets.token_urlsafe(32)
        conn.execute(
            clients.insert().values(
                client_id=client_id,
                org_id=org_id,
                secret_hash=self._hasher.hash(secret),
                roles=list(roles),
                created_at=utcnow(),
                revoked_at=None,
            )
        )
        return Credentials(org_id, org_name, client_id, secret, roles)

    def revoke_client(self, client_id: str, *, actor: str | None = None) -> None:
        """Revoke a client: its tokens stop working at once. Revoking twice is harmless."""
        with _store_errors(), self._engine.begin() as conn:
            row = conn.execute(
                sa.select(clients.c.revoked_at, clients.c.org_id)
                .where(clients.c.client_id == client_id)
            ).first()
            if row is None:
                raise NotFound(f"no client {client_id!r}", field="client_id")
            if row.revoked_at is None:
                conn.execute(
                    clients.update()
                    .where(clients.c.client_id == client_id)
                    .values(revoked_at=utcnow())
                )
                self.audit.append(AuditEvent(
                    Action.CLIENT_REVOKED, actor=actor, org=row.org_id, object_type="client",
                    object_id=client_id,
                ), conn=conn)
        log.info("client revoked", client_id=client_id)

    def set_extract_limits(self, org_id: str, limits: dict[str, int | None], *,
                           actor: str | None = None) -> dict[str, int | None]:
        """Set (a number) or clear (None) a member's own extract limits, among
        ``max_extract_rows``, ``max_decoded_bytes`` and ``max_decoded_ratio``; returns all
        three as they now stand (None: the hub's setting applies)."""
        unknown = set(limits) - set(MEMBER_LIMITS)
        if unknown:
            raise ValueError(f"not an extract limit: {sorted(unknown)}")
        for name, value in limits.items():
            if value is not None and value < 1:
                raise InvalidInput(f"{name} must be at least 1", field=name)
        o = organisations.c
        with _store_errors(), self._engine.begin() as conn:
            if conn.execute(sa.select(o.id).where(o.id == org_id)).first() is None:
                raise NotFound(f"no member organisation {org_id!r}", field="org_id")
            if limits:
                conn.execute(organisations.update().where(o.id == org_id).values(**limits))
            row = conn.execute(sa.select(*(o[n] for n in MEMBER_LIMITS))
                               .where(o.id == org_id)).one()
            now = dict(zip(MEMBER_LIMITS, row, strict=True))
            if limits:
                self.audit.append(AuditEvent(
                    Action.MEMBER_LIMITS_SET, actor=actor, org=org_id,
                    object_type="organisation", object_id=org_id, details=now,
                ), conn=conn)
        return now

    def members(self) -> list[dict[str, Any]]:
        """Every organisation with its clients (ids, roles, dates; never secrets)."""
        with _store_errors(), self._engine.connect() as conn:
            orgs = conn.execute(
                sa.select(organisations).order_by(organisations.c.created_at, organisations.c.id)
            ).all()
            rows = conn.execute(
                sa.select(
                    clients.c.client_id,
                    clients.c.org_id,
                    clients.c.roles,
                    clients.c.created_at,
                    clients.c.revoked_at,
                ).order_by(clients.c.created_at, clients.c.client_id)
            ).all()
        by_org: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_org.setdefault(r.org_id, []).append(
                {
                    "client_id": r.client_id,
                    "roles": list(r.roles),
                    "created_at": r.created_at,
                    "revoked_at": r.revoked_at,
                }
            )
        return [
            {
                "id": o.id,
                "name": o.name,
                "kind": o.kind,
                "created_at": o.created_at,
                "clients": by_org.get(o.id, []),
            }
            for o in orgs
        ]

    def org_clients(self, org_id: str) -> list[dict[str, Any]]:
        """The clients of one organisation (ids, roles, dates; never secrets)."""
        with _store_errors(), self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(clients.c.client_id, clients.c.roles, clients.c.created_at,
                          clients.c.revoked_at)
                .where(clients.c.org_id == org_id)
                .order_by(clients.c.created_at, clients.c.client_id)).all()
        return [{"client_id": r.client_id, "roles": list(r.roles),
                 "created_at": r.created_at.isoformat(),
                 "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None}
                for r in rows]

    # -- OAuth2 --------------------------------------------------------------------------
    def _client(self, client_id: str) -> _ClientRecord | None:
        with read_connection(self._engine) as conn:  # every request with a client's token
            row = conn.execute(_CLIENT, {"client_id": client_id}).first()
        if row is None:
            return None
        return _ClientRecord(
            client_id=row.client_id,
            org_id=row.org_id,
            org_name=row.name,
            roles=tuple(row.roles),
            secret_hash=row.secret_hash,
            revoked=row.revoked_at is not None,
        )

    def query_client(self, client_id: str) -> OAuthClient | None:
        """The active client ``client_id`` for authlib, or None (unknown or revoked)."""
        record = self._client(client_id) if isinstance(client_id, str) else None
        if record is None or record.revoked:
            return None
        return OAuthClient(record, self._hasher)

    @property
    def token_ttl(self) -> int:
        return self._ttl

    @property
    def issuer(self) -> str:
        return self._issuer

    def issue_token(self, client: OAuthClient) -> str:
        """A signed access token for an authenticated client."""
        record = client.record
        now = int(time.time())
        claims = {
            "iss": self._issuer,
            "sub": record.client_id,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl,
            "jti": secrets.token_urlsafe(16),
            "org": record.org_id,
            "roles": list(record.roles),
        }
        token, kid = self._sign(claims)
        # Before the token leaves: if the entry cannot be written, no token is handed out.
        self.audit.append(AuditEvent(
            Action.TOKEN_ISSUED, actor=record.client_id, org=record.org_id,
            object_type="client", object_id=record.client_id,
            details={"jti": claims["jti"], "expires_in": self._ttl, "roles": list(record.roles),
                     "kid": kid},
        ))
        log.info("token issued", client_id=record.client_id, jti=claims["jti"])
        return token

    def _sign(self, claims: dict[str, Any]) -> tuple[str, str]:
        kid = self._keys.signing.thumbprint()
        token: str = jwt.encode({"alg": ALGORITHM, "kid": kid}, claims, self._keys.signing,
                                registry=self._jws)
        return token, kid

    def issue_person_token(self, person: Person, client_id: str, scope: str) -> str:
        """A signed access token for a person signed in through ``client_id`` (the same
        format as a client's: ``sub`` is the person's id, ``azp`` the client)."""
        now = int(time.time())
        claims = {"iss": self._issuer, "sub": person.id, "aud": AUDIENCE, "iat": now,
                  "nbf": now, "exp": now + self._ttl, "jti": secrets.token_urlsafe(16),
                  "org": person.org_id, "roles": list(person.roles), "azp": client_id,
                  "scope": scope}
        token, kid = self._sign(claims)
        self.audit.append(AuditEvent(
            Action.TOKEN_ISSUED, actor=person.id, org=person.org_id, object_type="person",
            object_id=person.id, details={"jti": claims["jti"], "expires_in": self._ttl,
                                          "roles": list(person.roles), "kid": kid,
                                          "client_id": client_id}))
        return token

    def id_token(self, person: Person, client_id: str, *, nonce: str | None,
                 auth_time: int, access_token: str | None) -> str:
        """An OpenID Connect ID token for ``client_id`` (EdDSA, the hub's key)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self._issuer, "sub": person.id, "aud": client_id, "iat": now,
            "exp": now + self._ttl, "auth_time": auth_time, "email": person.email,
            "email_verified": True, "name": person.name, "org": person.org_id,
            "org_name": person.org_name, "roles": list(person.roles)}
        if nonce:
            claims["nonce"] = nonce
        if access_token:  # OIDC core 3.1.3.6: left half of the SHA-512 of the token
            half = hashlib.sha512(access_token.encode("ascii")).digest()[:32]
            claims["at_hash"] = base64.urlsafe_b64encode(half).rstrip(b"=").decode("ascii")
        return self._sign(claims)[0]

    def token_refused(self, client_id: str | None, error: str) -> None:
        """Audit a refusal at the token endpoint (a failed sign-in), after it is answered.

        Only a well-formed client id is recorded (a secret pasted in its place never is);
        the organisation is the client's, when it exists. Nothing else about the request.
        """
        known = client_id if client_id and _CLIENT_ID.fullmatch(client_id) else None
        record = self._client(known) if known else None
        self.audit.append(AuditEvent(
            Action.TOKEN_REFUSED, actor=known, org=record.org_id if record else None,
            object_type="client" if known else None, object_id=known,
            details={"error": error[:64], "client_known": record is not None},
        ))

    def verify_token(self, token: str) -> Actor:
        """The actor a bearer token stands for; any doubt raises :class:`AuthError`.

        A refusal is audited (``auth.bearer_refused``: the reason, never the token)."""
        try:
            return self._verify_token(token)
        except AuthError as exc:
            self.audit.append(AuditEvent(Action.BEARER_REFUSED,
                                         details={"reason": exc.detail[:200]}))
            raise

    def _verify_token(self, token: str) -> Actor:
        if self.external is not None:
            issuer = peek_issuer(token)
            if issuer is not None and issuer.rstrip("/") == self.external.issuer:
                claims = self.external.verify(token)
                return self.people.external(
                    self.external.issuer, claims["sub"], claims.get("email"),
                    claims.get("email_verified") is True).actor()
        kid, claims = self._signed(token)
        if kid not in self._keys.by_kid:  # remembered, but its key was retired since
            raise AuthError("token signed by an unknown key")
        self._check_claims(claims)
        if claims["sub"].startswith("usr_"):
            person = self.people.find(claims["sub"])
            if person is None:
                raise AuthError("token names an unknown person")
            if person.disabled:
                raise AuthError("this person has been disabled")
            if claims.get("org") != person.org_id:
                raise AuthError("token organisation does not match its person")
            return person.actor()
        record = self._client(claims["sub"])
        if record is None:
            raise AuthError("token names an unknown client")
        if record.revoked:
            raise AuthError(f"client {record.client_id} has been revoked")
        if claims.get("org") != record.org_id:
            raise AuthError("token organisation does not match its client")
        return Actor(
            client_id=record.client_id,
            org=record.org_id,
            org_name=record.org_name,
            roles=frozenset(Role(r) for r in record.roles if r in set(Role)),
        )

    def _signed_claims(self, token: str) -> tuple[str, dict[str, Any]]:
        """(key id, claims) of a token whose signature verifies, else :class:`AuthError`.

        Remembered per token (``self._signed``, an LRU of ``VERIFIED_TOKENS``): the same
        bytes verify the same way every time, and a client sends its token with every
        request. Only the signature is remembered; every use checks the claims (expiry
        first), the key's presence and the client or person afresh. Refusals are not
        remembered (an exception leaves nothing in the cache)."""
        try:
            compact = jws.extract_compact(token.encode("ascii"))
            header = compact.headers()
        except (JoseError, ValueError, TypeError):
            raise AuthError("malformed token: not a signed JWT") from None
        alg = header.get("alg")
        if alg != ALGORITHM:
            raise AuthError(f"token algorithm {alg!r} is not accepted (only {ALGORITHM})")
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys.by_kid:
            raise AuthError("token signed by an unknown key")
        try:
            return kid, jwt.decode(token, self._keys.by_kid[kid], registry=self._jws).claims
        except BadSignatureError:
            raise AuthError("token signature does not verify") from None
        except (JoseError, ValueError, TypeError):
            raise AuthError("malformed token: unreadable claims") from None

    def _check_claims(self, claims: dict[str, Any]) -> None:
        required: Any = {"essential": True}
        rules = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": self._issuer},
            aud={"essential": True, "value": AUDIENCE},
            sub=required,
            exp=required,
            nbf=required,
            iat=required,
            jti=required,
            org=required,
        )
        try:
            rules.validate(claims)
        except ExpiredTokenError:
            raise AuthError("token expired") from None
        except MissingClaimError as exc:
            raise AuthError(f"token lacks required claim(s): {exc.claim}") from None
        except InvalidClaimError as exc:
            reason = {
                "aud": "token is meant for another audience",
                "iss": "token was issued by another issuer",
                "nbf": "token is not valid yet",
                "iat": "token was issued in the future",
            }.get(exc.claim, f"token claim {exc.claim!r} is invalid")
            raise AuthError(reason) from None
        except JoseError:
            raise AuthError("malformed token: invalid claims") from None
        if not isinstance(claims.get("sub"), str):
            raise AuthError("malformed token: invalid subject")

    def jwks(self) -> dict[str, Any]:
        """The public signing keys (JWK Set), as served at ``/.well-known/jwks.json``."""
        return self._keys.public_jwks()

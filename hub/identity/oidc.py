"""An external OpenID Connect provider (Keycloak, Entra ID, Okta...): discovery, JWKS with
key rotation, strict token validation, and the code exchange of a federated sign-in.

Configured by ``TAHUB_OIDC_ISSUER`` (and ``TAHUB_OIDC_CLIENT_ID``, ``..._CLIENT_SECRET``,
``..._AUDIENCE``, ``..._ALGORITHMS``; ``TAHUB_OIDC_JWKS_URI`` overrides the discovered one).
The provider's metadata is read from ``<issuer>/.well-known/openid-configuration`` and must
name the same issuer.

Validation of every token from the provider (:meth:`ExternalProvider.verify`):

* the header's ``alg`` must be one of ``TAHUB_OIDC_ALGORITHMS`` (asymmetric only: ``none``
  and every HS* algorithm are refused by the settings, so a public key can never be used as
  an HMAC secret), and the joserfc registry used to check the signature knows only those;
* ``kid`` must name a key of the provider's JWKS. An unknown ``kid`` makes the hub fetch the
  JWKS again -- this is how a rotated key is picked up without downtime -- at most once per
  ``TAHUB_OIDC_JWKS_REFRESH_SECONDS``, so that forged ``kid`` values cannot make the hub
  hammer the provider; still unknown, the token is refused;
* ``iss`` must be the issuer, ``aud`` must contain the expected audience, ``exp``, ``nbf``
  and ``iat`` are checked with 30 s of leeway for clock skew; an ID token's ``nonce`` must be
  the one the hub sent.

Every failure is an :class:`~hub.errors.AuthError` naming the reason (never the token).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import structlog
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry, extract_compact

from hub.errors import AuthError, ConfigError, Unavailable
from hub.settings import Settings

__all__ = ["LEEWAY_SECONDS", "ExternalProvider", "peek_issuer"]

log = structlog.get_logger(__name__)

LEEWAY_SECONDS = 30  # clock skew tolerated on exp, nbf and iat (the hub's tokens too)
_TIMEOUT = 10.0


def peek_issuer(token: str) -> str | None:
    """The ``iss`` claim of a JWT, *unverified*: only to choose which issuer checks it."""
    try:
        payload = extract_compact(token.encode("ascii")).payload
        claims = json.loads(payload)
    except (JoseError, ValueError, TypeError, UnicodeError):
        return None
    iss = claims.get("iss") if isinstance(claims, dict) else None
    return iss if isinstance(iss, str) else None


class ExternalProvider:
    """One external OpenID provider. Thread-safe; metadata and keys are fetched lazily."""

    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None
                 ) -> None:
        if not settings.oidc_issuer:
            raise ConfigError("no external provider: TAHUB_OIDC_ISSUER is empty",
                              field="TAHUB_OIDC_ISSUER")
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        self._secret = settings.oidc_client_secret.get_secret_value()
        self.audience = settings.oidc_audience or settings.oidc_client_id
        self.algorithms = list(settings.oidc_algorithms)
        self.name = settings.oidc_name
        self._jwks_uri = settings.oidc_jwks_uri or None
        self._refresh_every = settings.oidc_jwks_refresh_seconds
        self._registry = JWSRegistry(algorithms=self.algorithms)
        self._http = httpx.Client(timeout=_TIMEOUT, transport=transport)
        self._lock = threading.RLock()  # _key -> _fetch_keys -> metadata() nest
        self._metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    def close(self) -> None:
        self._http.close()

    # -- metadata and keys ----------------------------------------------------------------
    def _get(self, url: str, what: str) -> Any:
        try:
            response = self._http.get(url)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("external provider unreachable", what=what, error=type(exc).__name__)
            raise Unavailable(f"the identity provider's {what} cannot be read "
                              f"({type(exc).__name__}); retry later") from None

    def metadata(self) -> dict[str, Any]:
        with self._lock:
            if self._metadata is None:
                found = self._get(self.issuer + "/.well-known/openid-configuration",
                                  "discovery document")
                if not isinstance(found, dict) or found.get("issuer", "").rstrip(
                        "/") != self.issuer:
                    raise Unavailable("the identity provider's discovery document names "
                                      "another issuer than TAHUB_OIDC_ISSUER")
                self._metadata = found
            return self._metadata

    def _fetch_keys(self) -> KeySet:
        uri = self._jwks_uri or self.metadata().get("jwks_uri")
        if not isinstance(uri, str):
            raise Unavailable("the identity provider publishes no jwks_uri")
        data = self._get(uri, "signing keys (JWKS)")
        try:
            keys = KeySet.import_key_set(data)
        except (JoseError, ValueError, TypeError, KeyError):
            raise Unavailable("the identity provider's JWKS cannot be read") from None
        self._fetched_at = time.monotonic()
        log.info("external provider keys fetched", kids=[k.kid for k in keys.keys])
        return keys

    def _key(self, kid: str) -> Any:
        with self._lock:
            keys = self._keys
        if keys is None or not _has(keys, kid):
            with self._lock:
                stale = time.monotonic() - self._fetched_at >= self._refresh_every
                if self._keys is None or (not _has(self._keys, kid) and stale):
                    self._keys = self._fetch_keys()
                keys = self._keys
        if not _has(keys, kid):
            raise AuthError("token signed by an unknown key of the identity provider")
        return keys.get_by_kid(kid)

    # -- validation -------------------------------------------------------------------------
    def verify(self, token: str, *, audience: str | None = None,
               nonce: str | None = None) -> dict[str, Any]:
        """The claims of a token of this provider; any doubt raises :class:`AuthError`."""
        try:
            header = extract_compact(token.encode("ascii")).headers()
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise AuthError("malformed token: not a signed JWT") from None
        alg = header.get("alg")
        if alg not in self.algorithms:
            raise AuthError(f"token algorithm {alg!r} is not accepted from the identity "
                            f"provider (only {', '.join(self.algorithms)})")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AuthError("token names no key (kid)")
        key = self._key(kid)
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=[alg],
                                                registry=self._registry).claims
        except BadSignatureError:
            raise AuthError("token signature does not verify") from None
        except (JoseError, ValueError, TypeError):
            raise AuthError("malformed token: unreadable claims") from None
        essential: Any = {"essential": True}
        rules = jwt.JWTClaimsRegistry(
            leeway=LEEWAY_SECONDS, iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": audience or self.audience},
            sub=essential, exp=essential, iat=essential,
        )
        try:
            rules.validate(claims)
        except ExpiredTokenError:
            raise AuthError("token expired") from None
        except MissingClaimError as exc:
            raise AuthError(f"token lacks required claim(s): {exc.claim}") from None
        except InvalidClaimError as exc:
            reason = {"aud": "token is meant for another audience",
                      "iss": "token was issued by another issuer",
                      "nbf": "token is not valid yet",
                      "iat": "token was issued in the future"}.get(
                exc.claim, f"token claim {exc.claim!r} is invalid")
            raise AuthError(reason) from None
        except JoseError:
            raise AuthError("malformed token: invalid claims") from None
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise AuthError("malformed token: invalid subject")
        if nonce is not None and claims.get("nonce") != nonce:
            raise AuthError("the ID token's nonce is not the one the hub sent")
        return claims

    # -- the federated sign-in ----------------------------------------------------------------
    def authorization_url(self, *, redirect_uri: str, state: str, nonce: str,
                          code_challenge: str) -> str:
        endpoint = self.metadata().get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise Unavailable("the identity provider publishes no authorization_endpoint")
        query = urlencode({"response_type": "code", "client_id": self.client_id,
                           "redirect_uri": redirect_uri, "scope": "openid email profile",
                           "state": state, "nonce": nonce, "code_challenge": code_challenge,
                           "code_challenge_method": "S256"})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def exchange(self, *, code: str, code_verifier: str, redirect_uri: str, nonce: str
                 ) -> dict[str, Any]:
        """Redeem ``code`` at the provider's token endpoint; the verified ID token's claims."""
        endpoint = self.metadata().get("token_endpoint")
        if not isinstance(endpoint, str):
            raise Unavailable("the identity provider publishes no token_endpoint")
        try:
            response = self._http.post(endpoint, data={
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": redirect_uri, "code_verifier": code_verifier,
            }, auth=(self.client_id, self._secret))
        except httpx.HTTPError as exc:
            raise Unavailable(f"the identity provider cannot be reached "
                              f"({type(exc).__name__}); retry later") from None
        if response.status_code != 200:
            try:
                error = str(response.json().get("error", response.status_code))
            except ValueError:
                error = str(response.status_code)
            raise AuthError(f"the identity provider refused the sign-in ({error})")
        id_token = response.json().get("id_token")
        if not isinstance(id_token, str):
            raise AuthError("the identity provider returned no ID token")
        return self.verify(id_token, audience=self.client_id, nonce=nonce)


def _has(keys: KeySet, kid: str) -> bool:
    return any(k.kid == kid for k in keys.keys)

"""A stand-in external OpenID Connect provider for the tests: authlib's authorization server
(authorization code with PKCE and OpenID Connect), RSA keys that rotate, in one process.

Run as its own process on loopback (``python -m tests.oidcprovider --port P --client-id C
--client-secret S --audience A --user EMAIL:SUBJECT:VERIFIED ...``), as an organisation's
Keycloak would run beside the hub. ``/authorize`` signs in the user named by ``login_hint``
at once (no page: the test is the browser and picks who signs in). Test-only endpoints:

* ``POST /admin/rotate`` - a new RSA key signs from now on; ``?drop_old=true`` also removes
  the previous keys from the JWKS (a completed rotation);
* ``POST /admin/mint`` - an access token for the hub's API with the claims given (merged
  over valid defaults), signed by the current key, for the validation tests;
* ``GET /admin/stats`` - how often the JWKS was fetched.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    AuthorizationServer,
    ClientMixin,
    OAuth2Payload,
    OAuth2Request,
)
from authlib.oauth2.rfc6749.grants import AuthorizationCodeGrant
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import OpenIDCode
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

__all__ = ["Provider", "main"]


class _Payload(OAuth2Payload):
    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        self._data = dict(pairs)
        self._datalist: dict[str, list[str]] = {}
        for k, v in pairs:
            self._datalist.setdefault(k, []).append(v)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> dict[str, list[str]]:  # type: ignore[override]
        return self._datalist


class _Request(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: Mapping[str, str],
                 pairs: list[tuple[str, str]]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = _Payload(pairs)

    @property
    def form(self) -> dict[str, str]:
        return self.payload.data  # type: ignore[no-any-return]

    @property
    def args(self) -> dict[str, str]:
        return self.payload.data  # type: ignore[no-any-return]


class _Client(ClientMixin):
    def __init__(self, client_id: str, secret: str) -> None:
        self.client_id, self.secret = client_id, secret

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        return scope or ""

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri.endswith("/oauth/federated/callback")

    def check_client_secret(self, client_secret: str) -> bool:
        return secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "client_secret_basic"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class _Code(AuthorizationCodeMixin):
    user: dict[str, Any]
    redirect_uri: str
    scope: str
    nonce: str | None
    challenge: str
    method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return int(time.time())


@dataclass
class Provider:
    issuer: str
    client: _Client
    audience: str
    users: dict[str, dict[str, Any]]
    keys: list[RSAKey] = field(default_factory=list)
    codes: dict[str, _Code] = field(default_factory=dict)
    jwks_fetches: int = 0

    def rotate(self, drop_old: bool = False) -> str:
        key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8),
                                                    "use": "sig", "alg": "RS256"})
        self.keys = ([] if drop_old else self.keys) + [key]
        return str(key.kid)

    @property
    def signing(self) -> RSAKey:
        return self.keys[-1]

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": "RS256", "kid": self.signing.kid}
        return str(jwt.encode(header, claims, self.signing, algorithms=["RS256"]))

    def access_token(self, user: dict[str, Any], **extra: Any) -> str:
        now = int(time.time())
        return self.sign({"iss": self.issuer, "sub": user["sub"], "aud": self.audience,
                          "iat": now, "nbf": now, "exp": now + 300, "email": user["email"],
                          "email_verified": user["verified"], **extra})


class _Grant(AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic"]  # noqa: RUF012 - authlib API
    provider: Provider

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        data = request.payload.data
        self.provider.codes[code] = _Code(request.user, data["redirect_uri"],
                                          request.scope or "", data.get("nonce"),
                                          data.get("code_challenge", ""),
                                          data.get("code_challenge_method", "S256"))

    def query_authorization_code(self, code: str, client: Any) -> _Code | None:
        return self.provider.codes.get(code)

    def delete_authorization_code(self, authorization_code: _Code) -> None:
        self.provider.codes = {k: v for k, v in self.provider.codes.items()
                               if v is not authorization_code}

    def authenticate_user(self, authorization_code: _Code) -> dict[str, Any]:
        return authorization_code.user


class _PKCE(CodeChallenge):
    def get_authorization_code_challenge(self, authorization_code: _Code) -> str:
        return authorization_code.challenge

    def get_authorization_code_challenge_method(self, authorization_code: _Code) -> str:
        return authorization_code.method


class _OpenID(OpenIDCode):
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False

    def encode_id_token(self, token: dict[str, Any], request: OAuth2Request) -> str:
        user, now = request.user, int(time.time())
        return self.provider.sign({
            "iss": self.provider.issuer, "sub": user["sub"], "aud": self.provider.client.client_id,
            "iat": now, "exp": now + 300, "nonce": request.authorization_code.nonce,
            "email": user["email"], "email_verified": user["verified"]})


class _Server(AuthorizationServer):
    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider
        _Grant.provider = provider
        self.register_grant(_Grant, [_PKCE(required=True), _OpenID(provider)])
        self.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda client, grant_type, user, scope:
            provider.access_token(user)))

    def query_client(self, client_id: str) -> _Client | None:
        return self.provider.client if client_id == self.provider.client.client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass

    def create_oauth2_request(self, request: _Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]
                        ) -> Response:
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=dict(headers))
        return Response(body, status_code=status, headers=dict(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass


def create_app(provider: Provider) -> FastAPI:
    app = FastAPI()
    server = _Server(provider)

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict[str, Any]:
        base = provider.issuer
        return {"issuer": base, "authorization_endpoint": base + "/authorize",
                "token_endpoint": base + "/token", "jwks_uri": base + "/jwks",
                "response_types_supported": ["code"],
                "id_token_signing_alg_values_supported": ["RS256"]}

    @app.get("/jwks")
    def jwks() -> dict[str, Any]:
        provider.jwks_fetches += 1
        return KeySet(provider.keys).as_dict(private=False)  # type: ignore[arg-type]

    @app.get("/authorize")
    def authorize(request: Request) -> Response:
        pairs = list(request.query_params.multi_items())
        user = provider.users.get(dict(pairs).get("login_hint", ""))
        req = _Request("GET", provider.issuer + "/authorize", request.headers, pairs)
        grant = server.get_consent_grant(req)
        response: Response = server.create_authorization_response(req, grant_user=user,
                                                                  grant=grant)
        return response

    @app.post("/token")
    async def token(request: Request) -> Response:
        pairs = parse_qsl((await request.body()).decode())
        req = _Request("POST", provider.issuer + "/token", request.headers, pairs)
        response: Response = server.create_token_response(req)
        return response

    @app.post("/admin/rotate")
    def rotate(drop_old: bool = False) -> dict[str, str]:
        return {"kid": provider.rotate(drop_old)}

    @app.post("/admin/mint")
    async def mint(request: Request) -> dict[str, str]:
        body = await request.json()
        user = provider.users[body.get("user", next(iter(provider.users)))]
        return {"token": provider.access_token(user, **body.get("claims", {}))}

    @app.get("/admin/stats")
    def stats() -> dict[str, Any]:
        return {"jwks_fetches": provider.jwks_fetches,
                "kids": [k.kid for k in provider.keys]}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--audience", required=True)
    parser.add_argument("--user", action="append", default=[],
                        help="EMAIL:SUBJECT:VERIFIED (true/false)")
    args = parser.parse_args()
    users = {}
    for spec in args.user:
        email, sub, verified = spec.split(":")
        users[email] = {"email": email, "sub": sub, "verified": verified == "true"}
    provider = Provider(f"http://127.0.0.1:{args.port}", _Client(args.client_id,
                                                                  args.client_secret),
                        args.audience, users)
    provider.rotate()
    uvicorn.run(create_app(provider), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

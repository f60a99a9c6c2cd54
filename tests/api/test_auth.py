"""OAuth2 client credentials and JWT checks, against the real hub over HTTP.

Forged tokens are signed with the hub's real key (read from its data folder) or with
other keys, and each must be refused with 401 ``unauthenticated`` and a clear reason.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OKPKey

from hub.actors import Role
from hub.api.oauth import TokenServer, _RawTokenRequest
from hub.identity.service import Credentials
from tests.api.conftest import Hub, basic

PROBLEM = "application/problem+json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hub_key(hub: Hub) -> OKPKey:
    (path,) = hub.settings.keys_dir.glob("*.jwk")
    return OKPKey.import_key(json.loads(path.read_text()))


def _claims(hub: Hub, creds: Credentials, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": hub.settings.public_url, "sub": creds.client_id, "aud": "tahub",
        "iat": now, "nbf": now, "exp": now + 300, "jti": "test", "org": creds.org_id,
        "roles": list(creds.roles),
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _sign(claims: dict[str, Any], key: OKPKey, kid: str) -> str:
    # joserfc names this algorithm EdDSA too; its deprecation warning is about the name.
    with pytest.warns(UserWarning, match="EdDSA"):
        return jwt.encode({"alg": "EdDSA", "kid": kid}, claims, key, algorithms=["EdDSA"])


def _me(hub: Hub, token: str) -> Any:
    with hub.client() as http:
        return http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def _refused(hub: Hub, token: str, reason: str) -> None:
    resp = _me(hub, token)
    assert resp.status_code == 401, resp.text
    assert resp.headers["content-type"] == PROBLEM
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert resp.json()["code"] == "unauthenticated"
    assert reason in resp.json()["detail"]


@pytest.fixture(scope="module")
def partner(hub: Hub) -> Credentials:
    return hub.member("Token Bank", roles=(Role.PARTNER, Role.ANALYST))


def test_client_secret_basic_gives_a_working_jwt(hub: Hub, partner: Credentials) -> None:
    with hub.client() as http:
        resp = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": basic(partner.client_id, partner.client_secret)},
        )
    assert resp.status_code == 200
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    assert body["token_type"] == "Bearer"  # noqa: S105 - the token type, not a secret
    assert body["expires_in"] == hub.settings.token_ttl_seconds
    header = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[0] + "=="))
    assert header["alg"] == "EdDSA" and header["kid"] == _hub_key(hub).thumbprint()
    claims = json.loads(base64.urlsafe_b64decode(body["access_token"].split(".")[1] + "=="))
    assert claims["iss"] == hub.settings.public_url and claims["aud"] == "tahub"
    assert (claims["sub"], claims["org"]) == (partner.client_id, partner.org_id)
    assert sorted(claims["roles"]) == ["analyst", "partner"]
    assert claims["exp"] - claims["iat"] == hub.settings.token_ttl_seconds
    assert claims["nbf"] == claims["iat"] and claims["jti"]
    me = _me(hub, body["access_token"])
    assert me.json() == {
        "client_id": partner.client_id,
        "org": partner.org_id,
        "org_name": "Token Bank",
        "roles": ["analyst", "partner"],
    }


def test_client_secret_post_works_too(hub: Hub, partner: Credentials) -> None:
    with hub.client() as http:
        resp = http.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": partner.client_id,
                "client_secret": partner.client_secret,
            },
        )
    assert resp.status_code == 200
    assert _me(hub, resp.json()["access_token"]).status_code == 200


@pytest.mark.parametrize("how", ["basic", "post"])
def test_a_wrong_secret_or_unknown_client_is_invalid_client(
    hub: Hub, partner: Credentials, how: str
) -> None:
    with hub.client() as http:
        for client_id, secret in [
            (partner.client_id, partner.client_secret + "x"),
            ("tahub_0000000000000000", partner.client_secret),
        ]:
            if how == "basic":
                resp = http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials"},
                    headers={"Authorization": basic(client_id, secret)},
                )
            else:
                resp = http.post(
                    "/oauth/token",
                    data={"grant_type": "client_credentials", "client_id": client_id,
                          "client_secret": secret},
                )
            assert resp.status_code in (400, 401)
            assert resp.json()["error"] == "invalid_client"
            assert "access_token" not in resp.json()


def test_other_grants_are_unsupported(hub: Hub, partner: Credentials) -> None:
    with hub.client() as http:
        resp = http.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "x", "password": "y"},
            headers={"Authorization": basic(partner.client_id, partner.client_secret)},
        )
    assert (resp.status_code, resp.json()["error"]) == (400, "unsupported_grant_type")


def test_a_revoked_client_gets_no_token_and_its_tokens_stop_working(hub: Hub) -> None:
    creds = hub.member("Revoked Bank")
    token = hub.token(creds)
    assert _me(hub, token).status_code == 200
    hub.services.identity.revoke_client(creds.client_id)
    _refused(hub, token, "revoked")
    with hub.client() as http:
        resp = http.post(
            "/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(creds.client_id, creds.client_secret),
        )
    assert (resp.status_code, resp.json()["error"]) == (401, "invalid_client")


def test_expired_tokens_are_refused_beyond_the_leeway(hub: Hub, partner: Credentials) -> None:
    key, now = _hub_key(hub), int(time.time())
    old = _claims(hub, partner, iat=now - 1000, nbf=now - 1000, exp=now - 120)
    _refused(hub, _sign(old, key, key.thumbprint()), "expired")
    skewed = _claims(hub, partner, iat=now - 1000, nbf=now - 1000, exp=now - 5)
    assert _me(hub, _sign(skewed, key, key.thumbprint())).status_code == 200


def test_not_yet_valid_tokens_are_refused(hub: Hub, partner: Credentials) -> None:
    key, now = _hub_key(hub), int(time.time())
    future = _claims(hub, partner, nbf=now + 300, exp=now + 900)
    _refused(hub, _sign(future, key, key.thumbprint()), "not valid yet")


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"aud": "another-service"}, "another audience"),
        ({"iss": "https://evil.example"}, "another issuer"),
        ({"exp": None}, "lacks required claim"),
        ({"org": "org_someone_else"}, "organisation does not match"),
        ({"sub": "tahub_ffffffffffffffff"}, "unknown client"),
    ],
)
def test_tokens_with_wrong_claims_are_refused(
    hub: Hub, partner: Credentials, changes: dict[str, Any], reason: str
) -> None:
    key = _hub_key(hub)
    _refused(hub, _sign(_claims(hub, partner, **changes), key, key.thumbprint()), reason)


def test_alg_none_is_refused(hub: Hub, partner: Credentials) -> None:
    header = {"alg": "none", "typ": "JWT", "kid": _hub_key(hub).thumbprint()}
    payload = _claims(hub, partner)
    token = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."
    _refused(hub, token, "'none' is not accepted")


def test_hs256_signed_with_the_public_key_is_refused(hub: Hub, partner: Credentials) -> None:
    with hub.client() as http:
        public = http.get("/.well-known/jwks.json").json()["keys"][0]
    header = {"alg": "HS256", "typ": "JWT", "kid": public["kid"]}
    signing_input = (
        f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(_claims(hub, partner)).encode())}"
    )
    for secret in (json.dumps(public).encode(), base64.urlsafe_b64decode(public["x"] + "=")):
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        _refused(hub, f"{signing_input}.{_b64(sig)}", "'HS256' is not accepted")


def test_a_token_signed_by_another_key_is_refused(hub: Hub, partner: Credentials) -> None:
    stranger = OKPKey.generate_key("Ed25519")
    claims = _claims(hub, partner)
    _refused(hub, _sign(claims, stranger, stranger.thumbprint()), "unknown key")
    # The hub's kid on a stranger's signature: the signature itself fails.
    _refused(hub, _sign(claims, stranger, _hub_key(hub).thumbprint()), "signature does not verify")


def test_a_tampered_token_is_refused(hub: Hub, partner: Credentials) -> None:
    head, payload, sig = hub.token(partner).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["roles"] = ["admin", "partner"]
    _refused(hub, f"{head}.{_b64(json.dumps(claims).encode())}.{sig}", "signature")


@pytest.mark.parametrize("token", ["abc", "a.b.c", "eyJhbGciOi.e30.", "é.é.é", "x" * 5000])
def test_malformed_tokens_are_refused(hub: Hub, token: str) -> None:
    with hub.client() as http:
        resp = http.get("/v1/me", headers={"Authorization": f"Bearer {token}".encode()})
    assert resp.status_code == 401
    assert resp.json()["code"] == "unauthenticated"
    assert token not in resp.text


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_missing_or_non_bearer_credentials_are_401(hub: Hub, header: str | None) -> None:
    with hub.client() as http:
        resp = http.get("/v1/me", headers={"Authorization": header} if header else {})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"].startswith("Bearer")
    assert "Bearer" in resp.json()["detail"]


def test_discovery_documents(hub: Hub) -> None:
    with hub.client() as http:
        config = http.get("/.well-known/openid-configuration").json()
        jwks = http.get("/.well-known/jwks.json").json()
    base = hub.settings.public_url
    assert config["issuer"] == base
    assert config["token_endpoint"] == base + "/oauth/token"
    assert config["jwks_uri"] == base + "/.well-known/jwks.json"
    assert config["grant_types_supported"] == ["client_credentials", "authorization_code",
                                               "refresh_token"]
    assert config["authorization_endpoint"] == base + "/oauth/authorize"
    assert config["code_challenge_methods_supported"] == ["S256"]
    (key,) = jwks["keys"]
    assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"}  # never "d"
    assert (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")


def test_plain_http_public_url_on_a_real_host_is_refused_by_authlib(hub: Hub) -> None:
    creds = hub.member("Transport Bank")
    raw = _RawTokenRequest(
        method="POST",
        headers={"Authorization": basic(creds.client_id, creds.client_secret)},
        form=[("grant_type", "client_credentials")],
    )
    identity, signins = hub.services.identity, hub.services.signins
    insecure = TokenServer(identity, signins, "http://hub.example.org").token_response(raw)
    assert insecure.status_code == 400
    assert json.loads(bytes(insecure.body))["error"] == "insecure_transport"
    secure = TokenServer(identity, signins, "https://hub.example.org").token_response(raw)
    assert secure.status_code == 200


def test_the_signing_key_is_private_to_the_hub(hub: Hub) -> None:
    (path,) = hub.settings.keys_dir.glob("*.jwk")
    assert path.stat().st_mode & 0o777 == 0o600
    assert Path(hub.settings.keys_dir).stat().st_mode & 0o077 == 0


def test_token_requests_must_be_small_forms(hub: Hub, partner: Credentials) -> None:
    auth = (partner.client_id, partner.client_secret)
    with hub.client() as http:
        as_json = http.post("/oauth/token", json={"grant_type": "client_credentials"}, auth=auth)
        huge = http.post(
            "/oauth/token", data={"grant_type": "client_credentials", "pad": "x" * 20_000},
            auth=auth,
        )
        repeated = http.post(
            "/oauth/token",
            content=b"grant_type=client_credentials&grant_type=password",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            auth=auth,
        )
    for resp in (as_json, huge, repeated):
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
        assert "access_token" not in resp.json()

"""An external OpenID provider (tests/oidcprovider.py, authlib, its own process on loopback)
stands in for an organisation's Keycloak: people sign in there through the hub, its access
tokens work as bearer tokens, its keys rotate without downtime, and every malformed, foreign
or forged token is refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from joserfc.jws import JWSRegistry

from hub.actors import MemberKind, Role
from hub.governance.audit import AuditLog
from tests.api.conftest import Hub, running_hub
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
CLIENT_ID, CLIENT_SECRET, AUDIENCE = "tahub-hub", "idp-secret-for-tests", "tahub-api"
REDIRECT = "http://127.0.0.1:53682/callback"


@dataclass
class World:
    hub: Hub
    idp: str
    person_id: str


@pytest.fixture(scope="module")
def idp() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.oidcprovider", "--port", str(port), "--client-id",
         CLIENT_ID, "--client-secret", CLIENT_SECRET, "--audience", AUDIENCE,
         "--user", "eve@police.example:kc-eve-1:true",
         "--user", "unverified@police.example:kc-unv-2:false",
         "--user", "stranger@police.example:kc-str-3:true"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(url + "/admin/stats", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the test IdP did not start") from None
            time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def world(idp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_hub(tmp_path_factory.mktemp("extidp"), oidc_issuer=idp,
                     oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
                     oidc_audience=AUDIENCE, oidc_jwks_refresh_seconds=0,
                     oidc_name="Police Keycloak") as hub:
        org = hub.member("Police Unit", (Role.PARTNER,), MemberKind.LAW_ENFORCEMENT).org_id
        people = hub.services.identity.people
        eve = people.add(org, "eve@police.example", "Eve", (Role.GOVERNANCE,))
        people.add(org, "unverified@police.example", "Una", (Role.ANALYST,))
        yield World(hub, idp, eve.person.id)


def _mint(world: World, user: str = "eve@police.example", **claims: object) -> str:
    token: str = httpx.post(world.idp + "/admin/mint", json={"user": user, "claims": claims},
                            timeout=10).json()["token"]
    return token


def _me(world: World, token: str) -> httpx.Response:
    with world.hub.client() as http:
        return http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def _federated_sign_in(world: World, login: str) -> httpx.Response:
    """Through the hub's sign-in page to the provider and back; the hub's last answer."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {"response_type": "code", "client_id": "tahub-cli", "redirect_uri": REDIRECT,
              "scope": "openid", "state": "st-1", "code_challenge_method": "S256",
              "code_challenge": challenge.rstrip(b"=").decode()}
    with world.hub.client() as http:
        page = http.get("/oauth/authorize", params=params)
        assert "Sign in with Police Keycloak" in page.text
        link = re.search(r'class="provider" href="([^"]+)"', page.text)
        assert link is not None
        to_idp = http.get(link.group(1).replace("&amp;", "&"))
        assert to_idp.status_code == 302
        # the person picks who signs in at the provider (login_hint) and the provider
        # sends the browser back to the hub
        back = httpx.get(to_idp.headers["location"] + "&" + urlencode({"login_hint": login}),
                         timeout=10)
        assert back.status_code == 302, back.text
        callback = urlsplit(back.headers["location"])
        assert callback.path == "/oauth/federated/callback"
        answer = http.get(f"{callback.path}?{callback.query}")
        if answer.status_code != 302:
            return answer
        code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
        return http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": "tahub-cli",
            "redirect_uri": REDIRECT, "code_verifier": verifier})


def test_a_person_signs_in_at_the_external_provider_and_is_linked(world: World) -> None:
    tokens = _federated_sign_in(world, "eve@police.example")
    assert tokens.status_code == 200, tokens.text
    me = _me(world, tokens.json()["access_token"]).json()
    assert me["client_id"] == world.person_id and me["roles"] == ["governance"]
    person = world.hub.services.identity.people.get(world.person_id)
    assert person.issuer == world.idp  # linked by verified e-mail, once
    actions = [e.action for e in AuditLog(world.hub.services.engine).scan()
               if e.object_id == world.person_id]
    assert "person.linked" in actions and "auth.signed_in" in actions


def test_the_provider_refuses_what_the_hub_must_refuse(world: World) -> None:
    # an unverified e-mail address links nobody; an address the hub does not know neither
    for login, reason in (("unverified@police.example", "no verified e-mail"),
                          ("stranger@police.example", "no person with the e-mail")):
        answer = _federated_sign_in(world, login)
        assert answer.status_code == 401 and reason in answer.text, answer.text
    with world.hub.client() as http:
        unknown = http.get("/oauth/federated/callback", params={"state": "made-up",
                                                                "code": "x"})
        assert unknown.status_code == 400


def test_provider_access_tokens_are_bearer_tokens_and_keys_rotate(world: World) -> None:
    _federated_sign_in(world, "eve@police.example")  # linked
    assert _me(world, _mint(world)).status_code == 200
    old = _mint(world)
    rotated = httpx.post(world.idp + "/admin/rotate", timeout=30).json()["kid"]
    fresh = _mint(world)
    assert _me(world, fresh).status_code == 200  # the new key: fetched on first sight
    assert _me(world, old).status_code == 200  # the old key is still published
    httpx.post(world.idp + "/admin/rotate", params={"drop_old": "true"}, timeout=30)
    newest = _mint(world)
    assert _me(world, newest).status_code == 200
    gone = _me(world, fresh)  # signed by a key the provider no longer publishes
    assert gone.status_code == 401 and "unknown key" in gone.json()["detail"], rotated


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _forged(world: World, header: dict[str, object], key: object,
            algorithms: list[str]) -> str:
    now = int(time.time())
    claims = {"iss": world.idp, "sub": "kc-eve-1", "aud": AUDIENCE, "iat": now,
              "exp": now + 300, "email": "eve@police.example", "email_verified": True}
    registry = JWSRegistry(algorithms=algorithms)
    return str(jwt.encode(header, claims, key, algorithms=algorithms, registry=registry))


@pytest.mark.parametrize(("case", "reason"), [
    ("expired", "token expired"),
    ("audience", "another audience"),
    ("not_yet", "not valid yet"),
    ("unknown_key", "unknown key"),
    ("hs256_with_public_key", "not accepted"),
    ("alg_none", "not accepted"),
    ("tampered", "does not verify"),
])
def test_forged_and_foreign_provider_tokens_are_refused(world: World, case: str,
                                                         reason: str) -> None:
    _federated_sign_in(world, "eve@police.example")
    now = int(time.time())
    if case == "expired":
        token = _mint(world, exp=now - 120, iat=now - 600, nbf=now - 600)
    elif case == "audience":
        token = _mint(world, aud="another-api")
    elif case == "not_yet":
        token = _mint(world, nbf=now + 600)
    elif case == "unknown_key":
        token = _forged(world, {"alg": "RS256", "kid": "not-a-known-kid"},
                        RSAKey.generate_key(2048), ["RS256"])
    elif case == "hs256_with_public_key":
        # the classic confusion: the provider's public key, used as an HMAC secret
        public = httpx.get(world.idp + "/jwks", timeout=10).json()["keys"][-1]
        pem = RSAKey.import_key(public).as_pem(private=False)
        valid = _mint(world)
        head = _b64(json.dumps({"alg": "HS256", "kid": public["kid"]}).encode())
        signing_input = f"{head}.{valid.split('.')[1]}"
        mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
        token = f"{signing_input}.{_b64(mac)}"
    elif case == "alg_none":
        valid = _mint(world)
        head = _b64(b'{"alg":"none","kid":"x"}')
        token = f"{head}.{valid.split('.')[1]}."
    else:
        header, payload, signature = _mint(world).split(".")
        claims = base64.urlsafe_b64decode(payload + "==").replace(b'"kc-eve-1"', b'"kc-eve-2"')
        token = ".".join([header, _b64(claims), signature])
    refused = _me(world, token)
    assert refused.status_code == 401, (case, refused.text)
    assert reason in refused.json()["detail"], (case, refused.json())


def test_unknown_kids_do_not_make_the_hub_hammer_the_provider(
    idp: str, tmp_path: Path
) -> None:
    with running_hub(tmp_path / "slow", oidc_issuer=idp, oidc_client_id=CLIENT_ID,
                     oidc_client_secret=CLIENT_SECRET, oidc_audience=AUDIENCE,
                     oidc_jwks_refresh_seconds=3600) as hub:
        world = World(hub, idp, "")
        before = httpx.get(idp + "/admin/stats", timeout=10).json()["jwks_fetches"]
        for _ in range(5):
            token = _forged(world, {"alg": "RS256", "kid": secrets.token_hex(4)},
                            RSAKey.generate_key(2048), ["RS256"])
            assert _me(world, token).status_code == 401
        after = httpx.get(idp + "/admin/stats", timeout=10).json()["jwks_fetches"]
        assert after - before == 1  # the first look, then nothing for an hour

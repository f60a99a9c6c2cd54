"""People sign in at the hub's own OpenID provider, over real HTTP: authorization code with
PKCE through the sign-in page, ID tokens checked against the JWKS, refresh-token rotation
with reuse detection, role checks with a person's token, and every refusal."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from hub.actors import MemberKind, Role
from hub.governance.audit import AuditLog
from hub.identity.people import NewPerson
from hub.identity.signingkeys import TokenRegistry
from tests.api.conftest import Hub

REDIRECT = "http://127.0.0.1:53682/callback"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password


@dataclass
class Flow:
    verifier: str
    params: dict[str, str]


def _flow(client_id: str = "tahub-cli", redirect_uri: str = REDIRECT, **extra: str) -> Flow:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    params = {"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
              "scope": "openid email profile offline_access", "state": secrets.token_hex(8),
              "nonce": secrets.token_hex(8), "code_challenge_method": "S256",
              "code_challenge": challenge.rstrip(b"=").decode(), **extra}
    return Flow(verifier, params)


def _person(hub: Hub, email: str, *roles: Role) -> NewPerson:
    creds = hub.member(f"Org of {email}", (Role.PARTNER,), MemberKind.NGO)
    return hub.services.identity.people.add(creds.org_id, email, "Ana Analyst",
                                            roles or (Role.ANALYST,), password=PASSWORD)


def _sign_in(http: httpx.Client, flow: Flow, email: str, password: str = PASSWORD
             ) -> httpx.Response:
    page = http.get("/oauth/authorize", params=flow.params)
    assert page.status_code == 200, page.text
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert hidden == flow.params  # the page carries the request on, untouched
    return http.post("/oauth/authorize", data={**hidden, "email": email, "password": password})


def _code(response: httpx.Response, flow: Flow) -> str:
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == flow.params["redirect_uri"]
    query = parse_qs(location.query)
    assert query["state"] == [flow.params["state"]]
    return query["code"][0]


def _redeem(http: httpx.Client, flow: Flow, code: str, verifier: str | None = None
            ) -> httpx.Response:
    return http.post("/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": "tahub-cli",
        "redirect_uri": flow.params["redirect_uri"],
        "code_verifier": verifier or flow.verifier})


def _tokens(hub: Hub, email: str) -> tuple[dict[str, Any], Flow]:
    flow = _flow()
    with hub.client() as http:
        resp = _redeem(http, flow, _code(_sign_in(http, flow, email), flow))
    assert resp.status_code == 200, resp.text
    return resp.json(), flow


def test_a_person_signs_in_with_pkce_and_acts_with_their_roles(hub: Hub) -> None:
    new = _person(hub, "ana@ngo.example")
    tokens, flow = _tokens(hub, "ANA@ngo.example")  # e-mail addresses are case-blind
    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]  # noqa: S105
    # the ID token: the hub's key, for this client, with the nonce sent
    with hub.client() as http:
        keys = KeySet.import_key_set(http.get("/.well-known/jwks.json").json())
    id_token = jwt.decode(tokens["id_token"], keys, registry=TokenRegistry())
    claims = id_token.claims
    assert claims["aud"] == "tahub-cli" and claims["iss"] == hub.settings.public_url
    assert claims["sub"] == new.person.id and claims["nonce"] == flow.params["nonce"]
    assert claims["email"] == "ana@ngo.example" and claims["roles"] == ["analyst"]
    assert "at_hash" in claims

    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    with hub.client() as http:
        me = http.get("/v1/me", headers=bearer).json()
        assert me["client_id"] == new.person.id and me["roles"] == ["analyst"]
        assert me["org"] == new.person.org_id
        info = http.get("/oauth/userinfo", headers=bearer).json()
        assert info["email"] == "ana@ngo.example" and info["sub"] == new.person.id
        assert http.get("/v1/queries", headers=bearer).status_code == 200  # analyst
        refused = http.get("/v1/audit", headers=bearer)
        assert refused.status_code == 403 and refused.json()["rule"] == "role:governance"
        assert http.get("/v1/extracts", headers=bearer).json()["rule"] == "role:partner"
        # an ID token is no access token: its audience is the client, not the API
        wrong = http.get("/v1/me", headers={"Authorization": f"Bearer {tokens['id_token']}"})
        assert wrong.status_code == 401
    signed_in = [e for e in AuditLog(hub.services.engine).scan()
                 if e.action == "auth.signed_in" and e.actor == new.person.id]
    assert signed_in and signed_in[-1].details["method"] == "password"


def test_refresh_tokens_rotate_and_a_reused_one_revokes_its_family(hub: Hub) -> None:
    _person(hub, "rotate@ngo.example")
    tokens, _ = _tokens(hub, "rotate@ngo.example")
    first = tokens["refresh_token"]
    with hub.client() as http:
        def refresh(token: str) -> httpx.Response:
            return http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                   "refresh_token": token,
                                                   "client_id": "tahub-cli"})

        second = refresh(first)
        assert second.status_code == 200, second.text
        renewed = second.json()
        assert renewed["refresh_token"] != first and renewed["access_token"]
        me = http.get("/v1/me", headers={"Authorization": f"Bearer {renewed['access_token']}"})
        assert me.status_code == 200
        stolen = refresh(first)  # the old one again: someone copied it
        assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
        assert refresh(renewed["refresh_token"]).status_code == 400  # the family is revoked
        other_client = http.post("/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": renewed["refresh_token"],
            "client_id": "tahub-web"})
        assert other_client.status_code == 400
    assert any(e.action == "auth.refresh_reused" for e in AuditLog(hub.services.engine).scan())


def test_codes_work_once_and_only_with_their_verifier(hub: Hub) -> None:
    _person(hub, "codes@ngo.example")
    with hub.client() as http:
        flow = _flow()
        code = _code(_sign_in(http, flow, "codes@ngo.example"), flow)
        wrong = _redeem(http, flow, code, verifier=secrets.token_urlsafe(48))
        assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
        assert _redeem(http, flow, code).status_code == 400  # spent by the failed attempt

        flow = _flow()
        code = _code(_sign_in(http, flow, "codes@ngo.example"), flow)
        assert _redeem(http, flow, code).status_code == 200
        again = _redeem(http, flow, code)
        assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
        no_verifier = http.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": "tahub-cli",
            "redirect_uri": REDIRECT})
        assert no_verifier.status_code == 400


def test_bad_authorization_requests_are_refused_without_a_sign_in_page(hub: Hub) -> None:
    with hub.client() as http:
        # a client or redirect URI the hub does not know: an error page, never a redirect
        for params in (_flow(client_id="nobody").params,
                       _flow(redirect_uri="https://evil.example/callback").params,
                       _flow(redirect_uri="http://127.0.0.1:5/elsewhere").params,
                       _flow(client_id="tahub-web").params):
            page = http.get("/oauth/authorize", params=params)
            assert page.status_code == 400 and "location" not in page.headers
            assert "cannot be used" in page.text and page.headers["x-frame-options"] == "DENY"
        # a known client and redirect URI: the error goes back to the client
        no_pkce = {k: v for k, v in _flow().params.items() if not k.startswith("code_")}
        plain = {**_flow().params, "code_challenge_method": "plain"}
        token = {**_flow().params, "response_type": "token"}
        for params in (no_pkce, plain, token):
            resp = http.get("/oauth/authorize", params=params)
            assert resp.status_code == 302, resp.text
            query = parse_qs(urlsplit(resp.headers["location"]).query)
            assert query["error"][0] in ("invalid_request", "unsupported_response_type")
            assert query["state"] == [params["state"]]
        web = _flow(client_id="tahub-web", redirect_uri=hub.settings.public_url + "/ui/callback")
        assert http.get("/oauth/authorize", params=web.params).status_code == 200


def test_wrong_passwords_and_disabled_people_cannot_sign_in(hub: Hub) -> None:
    new = _person(hub, "disabled@ngo.example")
    tokens, _ = _tokens(hub, "disabled@ngo.example")
    failures_before = sum(1 for e in AuditLog(hub.services.engine).scan()
                          if e.action == "auth.sign_in_failed")
    with hub.client() as http:
        for email, password in (("disabled@ngo.example", "wrong password!"),
                                ("nobody@ngo.example", PASSWORD)):
            page = _sign_in(http, _flow(), email, password)
            assert page.status_code == 401 and "wrong e-mail address or password" in page.text
            assert 'role="alert"' in page.text
        hub.services.identity.people.disable(new.person.id)
        assert _sign_in(http, _flow(), "disabled@ngo.example").status_code == 401
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        gone = http.get("/v1/me", headers=bearer)
        assert gone.status_code == 401 and "disabled" in gone.json()["detail"]
        refresh = http.post("/oauth/token", data={"grant_type": "refresh_token",
                                                  "refresh_token": tokens["refresh_token"],
                                                  "client_id": "tahub-cli"})
        assert refresh.status_code == 400
    failures = [e for e in AuditLog(hub.services.engine).scan()
                if e.action == "auth.sign_in_failed"][failures_before:]
    assert [e.details["person_known"] for e in failures] == [True, False, True]
    assert all(PASSWORD not in str(e.details) for e in failures)


def test_people_are_managed_from_the_admin_cli(hub: Hub) -> None:
    from typer.testing import CliRunner

    from hub.cli.main import app

    org = hub.member("CLI People Org", (Role.PARTNER,), MemberKind.BANK).org_id
    env = {"TAHUB_DATA_DIR": str(hub.settings.data_dir), "TAHUB_LOG_LEVEL": "WARNING"}
    runner = CliRunner()
    added = runner.invoke(app, ["admin", "person", "add", "gov@bank.example", "--org", org,
                                "--role", "governance", "--name", "Gina Gov", "--json"],
                          env=env)
    assert added.exit_code == 0, added.output
    import json

    created = json.loads(added.stdout)
    assert created["roles"] == ["governance"] and len(created["password"]) >= 12
    short = runner.invoke(app, ["admin", "person", "password", "gov@bank.example",
                                "--password-stdin"], input="short\n", env=env)
    assert short.exit_code == 1 and "at least 12 characters" in short.stderr
    ok = runner.invoke(app, ["admin", "person", "password", "gov@bank.example",
                             "--password-stdin"], input=PASSWORD + "\n", env=env)
    assert ok.exit_code == 0, ok.output
    tokens, _ = _tokens(hub, "gov@bank.example")
    with hub.client() as http:
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert http.get("/v1/governance/proposals", headers=bearer).status_code == 200
        roles = runner.invoke(app, ["admin", "person", "roles", "gov@bank.example", "--role",
                                    "analyst"], env=env)
        assert roles.exit_code == 0
        # roles are read at every request: the token now stands for an analyst
        assert http.get("/v1/governance/proposals", headers=bearer).status_code == 403
    listed = runner.invoke(app, ["admin", "person", "list", "--org", org], env=env)
    assert "gov@bank.example" in listed.stdout and "analyst" in listed.stdout
    dup = runner.invoke(app, ["admin", "person", "add", "GOV@bank.example", "--org", org,
                              "--role", "analyst"], env=env)
    assert dup.exit_code == 1 and "exists already" in dup.stderr
    disabled = runner.invoke(app, ["admin", "person", "disable", "gov@bank.example"], env=env)
    assert disabled.exit_code == 0
    entries = [e for e in AuditLog(hub.services.engine).scan()
               if e.object_id == created["id"]]
    assert [e.action for e in entries] == ["person.added", "person.password_set",
                                           "auth.signed_in", "auth.token_issued",
                                           "person.roles_set", "person.disabled"]
    assert all(e.actor is not None and e.actor.startswith("cli:")
               for e in entries if e.action.startswith("person."))


@pytest.mark.parametrize("field", ["email", "password"])
def test_the_sign_in_form_needs_both_fields(hub: Hub, field: str) -> None:
    _person(hub, f"fields-{field}@ngo.example")
    flow = _flow()
    with hub.client() as http:
        data = {**flow.params, "email": f"fields-{field}@ngo.example", "password": PASSWORD}
        data[field] = ""
        resp = http.post("/oauth/authorize", data=data)
    assert resp.status_code == 401 and "location" not in resp.headers


def test_tahub_login_keeps_a_session_that_clients_use_and_refresh(
    hub: Hub, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from connectors import AnalystClient
    from connectors.common.login import SessionStore, login

    new = _person(hub, "cli@ngo.example")
    store = SessionStore(tmp_path / "sessions.json")
    shown: list[str] = []
    ready = threading.Event()
    result: dict[str, Any] = {}

    def show(url: str) -> None:
        shown.append(url)
        ready.set()

    thread = threading.Thread(target=lambda: result.update(login(
        hub.url, store=store, open_browser=False, timeout=30, show=show)))
    thread.start()
    assert ready.wait(10)
    with httpx.Client() as browser:  # the person's browser
        page = browser.get(shown[0])
        hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
        signed = browser.post(hub.url + "/oauth/authorize",
                              data={**hidden, "email": "cli@ngo.example",
                                    "password": PASSWORD})
        assert signed.status_code == 302
        landed = browser.get(signed.headers["location"])  # the CLI's loopback listener
        assert landed.status_code == 200 and "Signed in" in landed.text
    thread.join(10)
    assert result["sub"] == new.person.id and result["email"] == "cli@ngo.example"
    assert (tmp_path / "sessions.json").stat().st_mode & 0o777 == 0o600
    kept = store.get(hub.url)
    assert kept is not None and kept["person"] == new.person.id

    with AnalystClient(hub.url, sessions=store) as client:
        assert client.me()["client_id"] == new.person.id
        assert {b.dataset for b in client.budgets()} == {"bank_alerts", "case_records",
                                                          "corridor_flows", "incidents"}
    # the access token expires: the client refreshes it and keeps the rotated pair
    store.put(hub.url, {**kept, "expires_at": 0})
    with AnalystClient(hub.url, sessions=store) as client:
        assert client.me()["client_id"] == new.person.id
    renewed = store.get(hub.url)
    assert renewed is not None and renewed["refresh_token"] != kept["refresh_token"]
    # from_env: a URL and no client credentials means the person signed in there
    monkeypatch.setenv("TAHUB_SESSIONS_FILE", str(tmp_path / "sessions.json"))
    with AnalystClient.from_env(hub.url, environ={}) as client:
        assert client.me()["client_id"] == new.person.id
    # a disabled person's refresh fails: the session is forgotten, with a clear message
    hub.services.identity.people.disable(new.person.id)
    store.put(hub.url, {**(store.get(hub.url) or {}), "expires_at": 0})
    from hub.errors import AuthError

    with AnalystClient(hub.url, sessions=store) as client, pytest.raises(AuthError) as ended:
        client.me()
    assert "tahub login" in str(ended.value) and store.get(hub.url) is None


def test_the_sweep_removes_expired_codes_states_and_refresh_tokens(hub: Hub) -> None:
    from datetime import timedelta

    from hub.identity.signin import AuthCode, digest
    from hub.storage.db import oauth_codes, refresh_tokens, signin_states, utcnow

    new = _person(hub, "sweep@ngo.example")
    signins, past = hub.services.signins, utcnow() - timedelta(days=400)
    signins.save_code("old-code", AuthCode("tahub-cli", new.person.id, REDIRECT, "openid",
                                           None, "x" * 43, "S256", utcnow()))
    signins.save_state("old-state", code_verifier="v", nonce="n", request={})
    signins.save_refresh("old-refresh", person_id=new.person.id, client_id="tahub-cli",
                         scope="openid", family=None)
    signins.save_refresh("live-refresh", person_id=new.person.id, client_id="tahub-cli",
                         scope="openid", family=None)
    with hub.services.engine.begin() as conn:
        for table, key, value in ((oauth_codes, "code_hash", "old-code"),
                                  (signin_states, "state_hash", "old-state"),
                                  (refresh_tokens, "token_hash", "old-refresh")):
            conn.execute(table.update().where(getattr(table.c, key) == digest(value))
                         .values(expires_at=past))
    report = hub.services.sweep()
    assert report["sign_in_rows_removed"] >= 3
    assert signins.take_code("old-code", "tahub-cli") is None
    assert signins.use_refresh("old-refresh") is None
    assert signins.use_refresh("live-refresh") is not None  # the live one stays

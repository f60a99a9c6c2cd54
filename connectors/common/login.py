"""A person signs in from the command line: ``tahub login``, the OAuth 2 flow for native apps.

RFC 8252: the command first checks that the address is a tahub hub
(:mod:`connectors.common.discovery`: else it says what answered there and why that is no
hub), listens on a loopback port, opens (or prints) the hub's sign-in page with an
authorization request of the public client ``tahub-cli`` (PKCE S256, a state and a nonce),
receives the code on ``http://127.0.0.1:<port>/callback``, redeems it and checks the ID token
(the hub's key from its JWKS, this client, this nonce).

The hub's address and the tokens are kept together in a **profile** of the sessions file
(``TAHUB_SESSIONS_FILE``, default ``~/.config/tahub/sessions.json``, mode 0600 in a 0700
folder; tokens never printed): ``--profile NAME`` or ``TAHUB_PROFILE``, else ``default``.
Every client of this package (:class:`~connectors.common.session.HubSession`) then takes the
hub from the profile when no ``--hub`` or ``TAHUB_HUB_URL`` is given, and acts as the person
when no client id and secret are, refreshing the access token as needed (each refresh token
works once). Two profiles, two people (an analyst and an officer, say), even at one hub.

::

    tahub login [--hub URL] [--profile P] [--no-browser]   sign in; hub and session kept in P
    tahub logout [--profile P]                             forget the session (not the hub)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import threading
import time
import webbrowser
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import typer

from connectors.common.cli import Hub, Profile, console, user_errors
from connectors.common.discovery import identify
from hub.errors import AuthError, ConfigError, Unavailable

__all__ = ["CLI_CLIENT", "DEFAULT_PROFILE", "SessionStore", "login", "login_command",
           "logout_command"]

CLI_CLIENT = "tahub-cli"
ENV_SESSIONS = "TAHUB_SESSIONS_FILE"
ENV_PROFILE = "TAHUB_PROFILE"
DEFAULT_PROFILE = "default"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_PAGE = (b"<!doctype html><html lang=en><meta charset=utf-8><title>tahub</title>"
         b"<body style='font-family:system-ui;margin:4rem'><h1>%s</h1><p>%s</p></body></html>")


class SessionStore:
    """Sign-in profiles in a JSON file only its owner can read (module docstring).

    A profile is a hub's address and, once a person signed in there, their tokens::

        {"profiles": {"default": {"hub": "https://hub.example.org", "session": {...}}}}

    ``profile``: the argument, else ``TAHUB_PROFILE``, else ``default``.
    """

    def __init__(self, path: Path | None = None, *, profile: str | None = None) -> None:
        default = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        self.path = path or Path(os.environ.get(ENV_SESSIONS) or default / "tahub" /
                                 "sessions.json")
        self.profile = profile or os.environ.get(ENV_PROFILE) or DEFAULT_PROFILE
        if not _PROFILE_NAME.match(self.profile):
            raise ConfigError(f"profile {self.profile!r}: a name of letters, digits, '.', '_' "
                              "and '-' (at most 64), such as default or officer",
                              field="profile")
        self._lock = threading.Lock()

    def _profiles(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"the sessions file {self.path} cannot be read "
                              f"({type(exc).__name__}); delete it and sign in again",
                              field=ENV_SESSIONS) from None
        # a file of an earlier version (sessions by hub, no profiles) reads as empty
        found = data.get("profiles") if isinstance(data, dict) else None
        return found if isinstance(found, dict) else {}

    def _entry(self) -> dict[str, Any]:
        found = self._profiles().get(self.profile)
        return found if isinstance(found, dict) else {}

    def hub(self) -> str | None:
        """The hub this profile signed in at last (kept after ``tahub logout``)."""
        hub = self._entry().get("hub")
        return hub if isinstance(hub, str) and hub else None

    def get(self, hub: str) -> dict[str, Any] | None:
        """This profile's session, if it is one at ``hub``."""
        entry = self._entry()
        session = entry.get("session")
        if entry.get("hub") != hub.rstrip("/") or not isinstance(session, dict):
            return None
        return session

    def put(self, hub: str, session: dict[str, Any] | None) -> None:
        """Keep ``session`` as this profile's, at ``hub``; with None, forget the profile's
        session if it is one at ``hub`` (the hub stays remembered). Written atomically,
        0600."""
        hub = hub.rstrip("/")
        with self._lock:
            profiles = self._profiles()
            entry = profiles.get(self.profile)
            if session is not None:
                profiles[self.profile] = {"hub": hub, "session": session}
            elif isinstance(entry, dict) and entry.get("hub") == hub:
                profiles[self.profile] = {"hub": hub}
            else:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"profiles": profiles}, fh)
            os.replace(tmp, self.path)


@dataclass
class _Callback:
    query: dict[str, str] | None = None


def _listener(result: _Callback, done: threading.Event) -> HTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path != "/callback":
                self.send_error(404)
                return
            result.query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            ok = "code" in result.query
            body = _PAGE % ((b"Signed in", b"You can close this tab and go back to the "
                                          b"terminal.") if ok else
                            (b"Not signed in", b"The hub refused; see the terminal."))
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            done.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return HTTPServer(("127.0.0.1", 0), Handler)


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def login(hub: str, *, store: SessionStore | None = None, open_browser: bool = True,
          timeout: float = 300, show: Callable[[str], None] = print,
          transport: httpx.BaseTransport | None = None) -> dict[str, Any]:
    """Sign a person in at ``hub`` and keep the hub and the session in the store's profile;
    returns the ID token's claims. An address that is no tahub hub is refused first, saying
    what answered there (:func:`~connectors.common.discovery.identify`)."""
    hub = identify(hub, transport=transport).url
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    result, done = _Callback(), threading.Event()
    server = _listener(result, done)
    redirect = f"http://127.0.0.1:{server.server_address[1]}/callback"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = hub + "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": CLI_CLIENT, "redirect_uri": redirect,
        "scope": "openid email profile offline_access", "state": state, "nonce": nonce,
        "code_challenge": challenge, "code_challenge_method": "S256"})
    try:
        show(url)
        if open_browser:
            webbrowser.open(url)
        if not done.wait(timeout):
            raise AuthError(f"no sign-in within {timeout:.0f} s; run `tahub login` again")
    finally:
        server.shutdown()
        server.server_close()
    query = result.query or {}
    if query.get("state") != state:
        raise AuthError("the sign-in answer does not belong to this login (state); try again")
    if "code" not in query:
        raise AuthError(f"the hub did not sign you in ({query.get('error', 'no code')}: "
                        f"{query.get('error_description', '')})")
    with httpx.Client(base_url=hub, timeout=30, transport=transport) as http:
        try:
            answer = http.post("/oauth/token", data={
                "grant_type": "authorization_code", "code": query["code"],
                "redirect_uri": redirect, "client_id": CLI_CLIENT, "code_verifier": verifier})
            keys = http.get("/.well-known/jwks.json").json()
        except (httpx.HTTPError, ValueError) as exc:
            raise Unavailable(f"the hub at {hub} cannot be reached ({type(exc).__name__})"
                              ) from None
    if answer.status_code != 200:
        raise AuthError(f"the hub refused the code ({answer.json().get('error')})")
    tokens = answer.json()
    claims = _id_claims(tokens.get("id_token"), keys, hub, nonce)
    (store or SessionStore()).put(hub, {
        "access_token": tokens["access_token"], "refresh_token": tokens["refresh_token"],
        "token_type": "Bearer", "expires_at": int(time.time()) + int(tokens["expires_in"]),
        "person": claims["sub"], "email": claims.get("email"), "org": claims.get("org")})
    return claims


def _id_claims(id_token: Any, keys: Any, hub: str, nonce: str) -> dict[str, Any]:
    from joserfc import jwt  # loaded only when a person signs in (hub.identity.signingkeys too)
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    from hub.identity.signingkeys import TokenRegistry

    if not isinstance(id_token, str):
        raise AuthError("the hub returned no ID token")
    try:
        claims: dict[str, Any] = jwt.decode(id_token, KeySet.import_key_set(keys),
                                            registry=TokenRegistry()).claims
    except (JoseError, ValueError, TypeError):
        raise AuthError("the hub's ID token does not verify against its keys") from None
    if claims.get("iss") != hub or claims.get("aud") != CLI_CLIENT:
        raise AuthError("the ID token was issued by another hub or for another client")
    if claims.get("nonce") != nonce:
        raise AuthError("the ID token does not answer this login (nonce)")
    if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time() - 30:
        raise AuthError("the ID token has expired")
    return claims


@user_errors
def login_command(
    hub: Hub = None,
    profile: Profile = None,
    no_browser: Annotated[bool, typer.Option(
        "--no-browser", help="Only print the sign-in address (open it on this machine).")]
    = False,
) -> None:
    """Sign in as a person (the hub's sign-in page); later commands act as you, at this hub."""
    store = SessionStore(profile=profile)
    hub = hub or store.hub()
    if not hub:
        raise ConfigError("which hub? run `tahub login --hub URL` once: the hub is remembered "
                          f"(profile {store.profile}), later commands need no --hub",
                          field="hub")
    out = console()
    claims = login(hub, store=store, open_browser=not no_browser,
                   show=lambda url: out.print(f"Sign in at:\n{url}", soft_wrap=True))
    named = "" if store.profile == DEFAULT_PROFILE else f" --profile {store.profile}"
    out.print(f"Signed in to {store.hub()} as {claims.get('name')} <{claims.get('email')}> of "
              f"{claims.get('org_name')}, roles {', '.join(claims.get('roles', []))}.\n"
              f"`tahub query ...{named}`, `tahub policy ...{named}` and `tahub-connect "
              f"...{named}` now use this hub and act as you (profile {store.profile}, kept in "
              f"{store.path}).", soft_wrap=True)


@user_errors
def logout_command(hub: Hub = None, profile: Profile = None) -> None:
    """Forget the session of a profile (its hub stays remembered for `tahub login`)."""
    store = SessionStore(profile=profile)
    hub = hub or store.hub()
    if hub is None or store.get(hub) is None:
        console().print(f"Profile {store.profile} is not signed in"
                        + (f" at {hub}." if hub else "."))
        return
    store.put(hub, None)
    console().print(f"Signed out of {hub.rstrip('/')} (profile {store.profile}).")

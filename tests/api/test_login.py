"""``tahub login`` remembers the hub with the sign-in, per profile, and says why an address is
not a tahub hub.

The sign-in runs the real ``tahub`` command as a process against a real hub on loopback,
with this test as the person's browser; later commands (``tahub query``, ``tahub policy``)
then need no ``--hub``. Wrong addresses are real servers on loopback too: nothing listening,
Python's own http.server (an HTML 404, JSON that is no hub's, redirects in a loop, a redirect
to the hub), plain HTTP asked for TLS, and a TLS server whose certificate no one trusts.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from connectors.partner.cli import app as connect_app
from hub.actors import MemberKind, Role
from hub.cli.main import app
from tests.api.conftest import Hub

BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery staple"  # noqa: S105 - a test password


def _person(hub: Hub, email: str, role: Role) -> None:
    creds = hub.member(f"Org of {email}", (Role.PARTNER,), MemberKind.NGO)
    hub.services.identity.people.add(creds.org_id, email, email.split("@")[0].title(), [role],
                                     password=PASSWORD)


def _env(sessions: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAHUB_")}
    return {**env, "TAHUB_SESSIONS_FILE": str(sessions), "TAHUB_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1", **more}


def _login(env: dict[str, str], email: str, *args: str) -> str:
    """``tahub login --no-browser ARGS`` as a process; this test signs in at the address it
    prints, as the person's browser would; returns what the command printed."""
    proc = subprocess.Popen([str(BIN / "tahub"), "login", "--no-browser", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        printed = []
        for line in proc.stdout:  # "Sign in at:", then the address on one line
            printed.append(line)
            if "/oauth/authorize?" in line:
                break
        else:
            pytest.fail("no sign-in address: " + "".join(printed) + proc.stderr.read())
        with httpx.Client(timeout=30) as browser:
            page = browser.get(line.strip())
            hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"',
                                     page.text))
            signed = browser.post(page.url.join("/oauth/authorize"),
                                  data={**hidden, "email": email, "password": PASSWORD})
            assert signed.status_code == 302, signed.text
            assert "Signed in" in browser.get(signed.headers["location"]).text
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill() if proc.poll() is None else None
    assert proc.returncode == 0, err
    return "".join(printed) + out


def _cli(env: dict[str, str], *args: str, command: Any = app) -> tuple[int, str, str]:
    """``tahub ARGS`` (or another command), with no hub or client in its environment."""
    result = CliRunner().invoke(command, list(args), env={
        **env, "TAHUB_HUB_URL": None, "TAHUB_CLIENT_ID": None, "TAHUB_CLIENT_SECRET": None,
        "TAHUB_PROFILE": env.get("TAHUB_PROFILE")})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout, " ".join(result.stderr.split())


def test_login_remembers_the_hub_per_profile_for_later_commands(hub: Hub,
                                                                 tmp_path: Path) -> None:
    _person(hub, "ana@remember.example", Role.ANALYST)
    _person(hub, "olga@remember.example", Role.GOVERNANCE)
    _person(hub, "eve@remember.example", Role.PARTNER)
    sessions = tmp_path / "config" / "sessions.json"
    env = _env(sessions)

    code, _, err = _cli(env, "query", "budget")  # no hub known yet: say how to give one
    assert code == 1 and "tahub login --hub URL" in err and "remembers the hub" in err

    printed = _login(env, "ana@remember.example", "--hub", hub.url + "/")
    assert f"Signed in to {hub.url} as Ana <ana@remember.example>" in " ".join(printed.split())
    assert sessions.stat().st_mode & 0o777 == 0o600
    assert sessions.parent.stat().st_mode & 0o777 == 0o700
    _login(env, "olga@remember.example", "--hub", hub.url, "--profile", "officer")
    kept = json.loads(sessions.read_text())["profiles"]
    assert {name: p["hub"] for name, p in kept.items()} == {"default": hub.url,
                                                            "officer": hub.url}
    assert kept["default"]["session"]["email"] == "ana@remember.example"

    # no --hub, no TAHUB_HUB_URL, no client: the profile's hub, as the person
    code, out, err = _cli(env, "query", "budget", "--json")
    assert code == 0, err
    assert {b["dataset"] for b in json.loads(out)} == {"bank_alerts", "case_records",
                                                       "corridor_flows", "incidents"}
    code, _, err = _cli(env, "policy", "active")  # Ana is no officer: the hub says so
    assert code == 1 and "(403 forbidden)" in err and "rule: role:governance" in err
    code, out, err = _cli(env, "policy", "active", "--json", "--profile", "officer")
    assert code == 0, err
    assert "bank_alerts" in {p["dataset"] for p in json.loads(out)}
    code, out, err = _cli({**env, "TAHUB_PROFILE": "officer"}, "policy", "active", "--json")
    assert code == 0, err
    _login(env, "eve@remember.example", "--hub", hub.url, "--profile", "engineer")
    code, out, err = _cli(env, "list", "--json", "--profile", "engineer", command=connect_app)
    assert code == 0 and json.loads(out) == [], err  # tahub-connect, as the partner engineer

    # --hub and TAHUB_HUB_URL come before the profile's hub (where no one signed in)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        other = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, _, err = _cli(env, "query", "budget", "--hub", other)
    assert code == 1 and f"`tahub login --hub {other}`" in err

    # logout forgets the session, not the hub: a plain `tahub login` signs in there again
    code, out, _ = _cli(env, "logout")
    assert code == 0 and f"Signed out of {hub.url} (profile default)" in out
    code, _, err = _cli(env, "query", "budget")
    assert code == 1 and f"`tahub login --hub {hub.url}`" in err
    _login(env, "ana@remember.example")
    code, _, err = _cli(env, "query", "budget")
    assert code == 0, err
    code, _, err = _cli(env, "query", "budget", "--profile", "no such")
    assert code == 1 and "profile 'no such'" in err


# -- addresses that are no tahub hub ----------------------------------------------------------
@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler],
             tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _NotFound(SimpleHTTPRequestHandler):
    """Python's own file server over an empty folder: an HTML 404 for /health."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory=str(Path(__file__).parent / "no-such-folder"),
                         **kwargs)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _OtherJson(_Quiet):
    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "uptime": 12}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Loop(_Quiet):
    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "/elsewhere" if self.path == "/health" else "/health")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _to(target: str) -> type[BaseHTTPRequestHandler]:
    class Moved(_Quiet):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", target + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Moved


def _self_signed(folder: Path) -> ssl.SSLContext:
    """A TLS server context with a certificate for 127.0.0.1 that no one trusts."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-a-hub.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def _refused(tmp_path: Path, url: str) -> str:
    """``tahub login --hub URL``: exit 1 before any browser, nothing kept; the message."""
    sessions = tmp_path / "sessions.json"
    code, _, err = _cli(_env(sessions), "login", "--hub", url, "--no-browser")
    assert code == 1, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert not sessions.exists()
    return err


def test_nothing_listening(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    err = _refused(tmp_path, url)
    assert f"nothing answers at {url} (ConnectError: " in err and "refused" in err
    assert "is the hub running, and is this its address?" in err


def test_a_web_server_page_is_named_with_its_status_type_and_server(tmp_path: Path) -> None:
    with _serving(_NotFound) as where:
        err = _refused(tmp_path, f"http://{where}")
    assert f"http://{where} is not a tahub hub: GET http://{where}/health answered HTTP 404 " \
           "File not found (text/html, server SimpleHTTP/" in err
    assert "not JSON" in err and '"service": "tahub"' in err


def test_json_that_names_no_hub(tmp_path: Path) -> None:
    with _serving(_OtherJson) as where:
        err = _refused(tmp_path, f"http://{where}")
    assert "answered HTTP 200 OK (application/json, server BaseHTTP/" in err
    assert "JSON that does not name a hub (keys: status, uptime)" in err


def test_tls_to_a_plain_server_and_an_untrusted_certificate(tmp_path: Path) -> None:
    with _serving(_OtherJson) as where:
        err = _refused(tmp_path, f"https://{where}")
    assert f"TLS failed with https://{where} (ConnectError: " in err
    assert "is it a plain http:// address?" in err
    with _serving(_OtherJson, tls=_self_signed(tmp_path)) as where:
        err = _refused(tmp_path, f"https://{where}")
        assert "CERTIFICATE_VERIFY_FAILED" in err and "SSL_CERT_FILE" in err
        err = _refused(tmp_path, f"http://{where}")  # plain HTTP to a TLS server
        assert "did not answer HTTP" in err and "Try https://" in err


def test_redirects_in_a_loop_and_to_the_hub(hub: Hub, tmp_path: Path) -> None:
    with _serving(_Loop) as where:
        err = _refused(tmp_path, f"http://{where}")
    assert (f"its redirects go round in a loop (http://{where}/health -> "
            f"http://{where}/elsewhere -> http://{where}/health)") in err
    with _serving(_to(hub.url)) as where:
        err = _refused(tmp_path, f"http://{where}")
    assert (f"http://{where} redirects (http://{where}/health -> {hub.url}/health); a tahub "
            f"hub answers at {hub.url}: sign in with --hub {hub.url}") in err


def test_the_hub_under_another_name_says_its_own(hub: Hub, tmp_path: Path) -> None:
    other = hub.url.replace("127.0.0.1", "localhost")
    err = _refused(tmp_path, other)
    assert f"{other} is a tahub hub (version " in err
    assert f"it calls itself {hub.url} (its TAHUB_PUBLIC_URL)" in err
    assert f"sign in with --hub {hub.url}" in err

"""Is this address a tahub hub? ``tahub login`` asks before it opens a browser.

A tahub hub answers ``GET /health`` with 200 and JSON that names it (``"service": "tahub"``
and its version, ``hub.api.routes.meta``), and publishes the address it signs its tokens
with (its issuer, ``TAHUB_PUBLIC_URL``) at ``/.well-known/openid-configuration``. Anything
else is reported as what was reached and why that is not a hub::

    nothing listening, no such host     Unavailable: the address and the system's reason
    no answer in time                   Unavailable
    TLS failed (certificate, or https   ConfigError: the TLS library's reason
      to a server speaking plain HTTP)
    a redirect, or a loop of them       ConfigError: the chain; when a hub answers at its
                                        end, the address to sign in with instead
    another web server's page           ConfigError: its status, content type and Server
    JSON that does not name a hub       ConfigError: what it has instead
    a hub with another address          ConfigError: sign in with the hub's own address
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from hub.errors import ConfigError, Unavailable

__all__ = ["HEALTH", "HubInfo", "identify"]

HEALTH = "/health"
METADATA = "/.well-known/openid-configuration"
SERVICE = "tahub"
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class HubInfo:
    """A tahub hub, as it described itself."""

    url: str  # its address (its issuer), without a trailing slash
    version: str


def identify(url: str, *, transport: httpx.BaseTransport | None = None,
             timeout: float = 10.0) -> HubInfo:
    """The hub at ``url``, or an error saying what answered there and why it is no hub."""
    base = url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"hub URL {url!r} must start with http:// or https://", field="hub")
    with httpx.Client(timeout=timeout, transport=transport, follow_redirects=False) as http:
        response, chain = _follow(http, base, base + HEALTH, timeout)
        if len(chain) > 1:
            _redirected(base, chain, response)
        body = _identity(base, base + HEALTH, response)
        issuer = _issuer(http, base, timeout)
    if issuer != base:
        raise ConfigError(
            f"{base} is a tahub hub (version {body.get('version')}), but it calls itself "
            f"{issuer} (its TAHUB_PUBLIC_URL) and signs every sign-in for that address: "
            f"sign in with --hub {issuer}", field="hub")
    return HubInfo(base, str(body.get("version", "")))


def _follow(http: httpx.Client, base: str, url: str,
            timeout: float) -> tuple[httpx.Response, list[str]]:
    """GET ``url``, following up to MAX_REDIRECTS redirects; the answer and the chain."""
    chain = [url]
    while True:
        response = _get(http, base, chain[-1], timeout)
        if not response.is_redirect:
            return response, chain
        target = str(response.url.join(response.headers.get("location", "")))
        if target in chain:
            raise ConfigError(
                f"{base} is not a tahub hub: its redirects go round in a loop "
                f"({' -> '.join([*chain, target])})", field="hub")
        chain.append(target)
        if len(chain) > MAX_REDIRECTS + 1:
            raise ConfigError(
                f"{base} is not a tahub hub: more than {MAX_REDIRECTS} redirects "
                f"({' -> '.join(chain)})", field="hub")


def _get(http: httpx.Client, base: str, url: str, timeout: float) -> httpx.Response:
    try:
        return http.get(url, headers={"Accept": "application/json"})
    except httpx.TimeoutException:
        raise Unavailable(f"no answer from {base} within {timeout:g} s: is the hub running, "
                          "and is this its address?") from None
    except httpx.TransportError as exc:
        reason = _reason(exc)
        if _is_tls(exc):
            hint = ("is it a plain http:// address?" if "WRONG_VERSION_NUMBER" in reason
                    or "wrong version number" in reason else
                    "is its certificate one this machine trusts (SSL_CERT_FILE)?")
            raise ConfigError(f"TLS failed with {base} ({reason}): {hint}",
                              field="hub") from None
        if isinstance(exc, httpx.ConnectError):
            raise Unavailable(f"nothing answers at {base} ({reason}): is the hub running, "
                              "and is this its address?") from None
        hint = (" Does it speak TLS? Try https://." if base.startswith("http://") else "")
        raise ConfigError(f"{base} is not a tahub hub: the server there did not answer HTTP "
                          f"({reason}).{hint}", field="hub") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "SSL" in str(exc) or "CERTIFICATE" in str(exc).upper()


def _reached(response: httpx.Response) -> str:
    """What answered: ``HTTP 404 Not Found (text/html, server nginx/1.25)``."""
    kind = response.headers.get("content-type", "").split(";")[0].strip() or "no content type"
    server = response.headers.get("server")
    return (f"HTTP {response.status_code} {response.reason_phrase} ({kind}, "
            + (f"server {server})" if server else "no Server header)"))


def _identity(base: str, url: str, response: httpx.Response) -> dict[str, Any]:
    """The hub's /health answer, or ConfigError saying why this answer is not a hub's."""
    reached = _reached(response)
    try:
        body = response.json()
    except ValueError:
        body = None
    named = isinstance(body, dict) and body.get("service") == SERVICE
    if named and response.status_code != 200:
        raise Unavailable(f"the tahub hub at {base} answered GET {HEALTH} with {reached}: "
                          "try again later")
    if named:
        assert isinstance(body, dict)  # noqa: S101 - named implies it (for mypy)
        return body
    why = ("a tahub hub answers 200 with JSON that names it "
           f"(\"service\": \"{SERVICE}\", its version)")
    if body is None:
        what = f"GET {url} answered {reached}, not JSON"
    elif not isinstance(body, dict):
        what = f"GET {url} answered {reached} with JSON that is no object"
    else:
        keys = ", ".join(sorted(body)[:8]) or "none"
        what = f"GET {url} answered {reached} with JSON that does not name a hub (keys: {keys})"
    raise ConfigError(f"{base} is not a tahub hub: {what}; {why}. Check the address (the "
                      "hub's TAHUB_PUBLIC_URL).", field="hub")


def _redirected(base: str, chain: list[str], response: httpx.Response) -> None:
    """A redirect is never followed silently: the hub signs in at its own address only."""
    end = chain[-1]
    moved = end[: -len(HEALTH)] if end.endswith(HEALTH) else end
    path = " -> ".join(chain)
    try:
        _identity(moved, end, response)
    except (ConfigError, Unavailable):
        raise ConfigError(f"{base} is not a tahub hub: it redirects ({path}), and what "
                          f"answers at the end is no hub either ({_reached(response)})",
                          field="hub") from None
    raise ConfigError(f"{base} redirects ({path}); a tahub hub answers at {moved}: sign in "
                      f"with --hub {moved}", field="hub")


def _issuer(http: httpx.Client, base: str, timeout: float) -> str:
    response = _get(http, base, base + METADATA, timeout)
    try:
        issuer = response.json().get("issuer") if response.status_code == 200 else None
    except (ValueError, AttributeError):
        issuer = None
    if not isinstance(issuer, str) or not issuer:
        raise ConfigError(f"{base} names itself a tahub hub but GET {METADATA} answered "
                          f"{_reached(response)} without an issuer: is it a hub of this "
                          "version?", field="hub")
    return issuer.rstrip("/")

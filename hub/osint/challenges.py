"""Proof of work: what a crowd report costs its sender, so that a flood costs the flooder.

The public report form needs no account and no third-party service (no CAPTCHA), so each
report carries a small proof of work, as Hashcash does for e-mail::

    GET  /v1/public/reports/challenge  ->  challenge "p1.<bits>.<expires>.<random>.<mac>"
    the sender finds a nonce:  sha256(challenge + nonce) starts with <bits> zero bits
    POST /v1/public/reports {challenge, nonce, ...}  ->  checked here, then spent once

A challenge is *signed*, not stored: ``mac`` is an HMAC-SHA256 of the rest under a secret
derived from the hub's reports keys (:func:`secrets_from_keys`), so every hub process and
replica issues and checks the same challenges. It expires :data:`LIFETIME` after it was
issued and names its own difficulty, so a change of ``TAHUB_REPORTS_PROOF_BITS`` affects
only new challenges. That each is accepted only once is the metadata store's part (the
receipt's unique ``challenge``, :mod:`hub.osint.reports`). Finding a nonce takes ``2^bits``
hashes on average, checking it one.

Domain core: no web framework, no database.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hub.errors import InvalidInput

__all__ = ["LIFETIME", "Challenge", "Challenges", "leading_zero_bits", "secrets_from_keys",
           "solve"]

#: How long a challenge may be answered after it was issued.
LIFETIME = dt.timedelta(minutes=10)
_VERSION = "p1"
_NONCE = re.compile(r"^[0-9A-Za-z]{1,32}$")
_CONTEXT = b"tahub crowd reports: proof-of-work challenges v1"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def secrets_from_keys(keys: Sequence[str]) -> list[bytes]:
    """The challenge-signing secrets of the reports keys (Fernet keys, URL-safe base64):
    one per key, so that a challenge signed before a key rotation is still accepted."""
    return [hmac.new(base64.urlsafe_b64decode(k.encode()), _CONTEXT, hashlib.sha256).digest()
            for k in keys]


def leading_zero_bits(digest: bytes) -> int:
    """How many zero bits ``digest`` starts with."""
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve(challenge: str, bits: int) -> str:
    """A nonce for ``challenge`` (what the report page's worker does, for tests and
    scripts): the first decimal number whose hash has ``bits`` leading zero bits."""
    n = 0
    while leading_zero_bits(hashlib.sha256(f"{challenge}{n}".encode()).digest()) < bits:
        n += 1
    return str(n)


@dataclass(frozen=True, slots=True)
class Challenge:
    """One issued challenge: its text, difficulty and expiry."""

    text: str
    bits: int
    expires_at: dt.datetime


class Challenges:
    """Issues and checks signed challenges (module docstring); ``secrets[0]`` signs."""

    def __init__(self, secrets_: Sequence[bytes], bits: int, *,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 lifetime: dt.timedelta = LIFETIME) -> None:
        if not secrets_:
            raise ValueError("at least one secret is needed")
        self._secrets = list(secrets_)
        self.bits = bits
        self._clock = clock
        self._lifetime = lifetime

    def _mac(self, secret: bytes, body: str) -> str:
        return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())

    def issue(self) -> Challenge:
        expires = self._clock().replace(microsecond=0) + self._lifetime
        body = f"{_VERSION}.{self.bits}.{int(expires.timestamp())}.{_b64(secrets.token_bytes(16))}"
        return Challenge(f"{body}.{self._mac(self._secrets[0], body)}", self.bits, expires)

    def check(self, challenge: str, nonce: str) -> str:
        """The challenge's SHA-256 (hex: what is recorded as spent) when ``nonce`` answers
        it; else :class:`InvalidInput` naming ``challenge`` (malformed, not the hub's,
        expired) or ``nonce`` (malformed, or its hash short of the difficulty)."""
        parts = challenge.split(".")
        if len(parts) != 5 or parts[0] != _VERSION or not parts[1].isdigit() \
                or not parts[2].isdigit():
            raise InvalidInput("the challenge is not one the hub issues; get one from "
                               "GET /v1/public/reports/challenge", field="challenge")
        body, mac = challenge.rsplit(".", 1)
        if not any(hmac.compare_digest(self._mac(s, body), mac) for s in self._secrets):
            raise InvalidInput("the challenge was not issued by this hub (or its reports keys "
                               "changed); get a new one", field="challenge")
        if dt.datetime.fromtimestamp(int(parts[2]), dt.UTC) < self._clock():
            raise InvalidInput(f"the challenge expired (each may be answered for "
                               f"{int(self._lifetime.total_seconds()) // 60} minutes); get a "
                               "new one", field="challenge")
        if not _NONCE.match(nonce):
            raise InvalidInput("the nonce is 1 to 32 letters or digits", field="nonce")
        bits = int(parts[1])
        if leading_zero_bits(hashlib.sha256(f"{challenge}{nonce}".encode()).digest()) < bits:
            raise InvalidInput(f"the proof of work is wrong: sha256(challenge + nonce) must "
                               f"start with {bits} zero bits", field="nonce")
        return hashlib.sha256(challenge.encode()).hexdigest()

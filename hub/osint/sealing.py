"""Sealing crowd reports: their text is stored only encrypted, and opened only for reviewers.

A :class:`Sealer` holds one or more keys (Fernet: AES-128-CBC with HMAC-SHA256, from the
``cryptography`` package): it seals with the first and opens with any, so that an operator
rotates keys by putting a new one first and keeping the old ones until every report sealed
with them is reviewed and purged. A key is 32 random bytes, URL-safe base64
(:func:`new_key`, or ``tahub admin reports-key``). A sealed text that no key opens, or that
was tampered with, is refused (:class:`~hub.errors.Unavailable`), never shown garbled.

A reports key also yields secrets for other purposes (:func:`derived_secret`), so that
every hub process and replica holding the same keys derives the same ones, with nothing
more to configure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from hub.errors import InvalidInput, Unavailable

__all__ = ["Sealer", "derived_secret", "new_key"]


def new_key() -> str:
    """A new random key, as :class:`Sealer` takes it."""
    return Fernet.generate_key().decode()


def derived_secret(key: str, purpose: str) -> bytes:
    """A 32-byte secret for ``purpose`` derived from the reports key ``key``: HMAC-SHA256
    of the purpose under the key's 32 bytes (one-way: it tells nothing of the key, nor of
    the secret of another purpose). The key's own checks are the settings' (a malformed key
    never gets here)."""
    return hmac.new(base64.urlsafe_b64decode(key.strip().encode()), purpose.encode(),
                    hashlib.sha256).digest()


class Sealer:
    """Seals with the first of ``keys``, opens with any of them (module docstring)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise InvalidInput("at least one key is needed to seal reports",
                               field="reports_keys")
        try:
            self._fernet = MultiFernet([Fernet(k.strip().encode()) for k in keys])
        except (ValueError, TypeError) as exc:
            raise InvalidInput("a reports key is 32 bytes in URL-safe base64 (make one with "
                               "`tahub admin reports-key`)", field="reports_keys") from exc

    def seal(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode())

    def open(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode()
        except InvalidToken as exc:
            raise Unavailable("this report cannot be opened with the hub's reports keys "
                              "(TAHUB_REPORTS_KEYS)", rule="reports_keys") from exc

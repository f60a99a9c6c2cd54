"""Normalise identifiers and replace them with keyed tokens, on the partner's machine.

A token is ``f"{key_id}.{HMAC-SHA256(network_key, normalised identifier)}"`` (hex), where
``key_id = HMAC-SHA256(network_key, b"tahub key id")[:8]`` names the key generation. Every
partner's connector holds the same *network key*; the hub never does, so it cannot hash
guesses of low-entropy identifiers (phone numbers) to reverse tokens. Two partners that hold
the same person under different spellings get the same token because each identifier is
normalised first, by its contract's ``identifier_kind``:

* ``phone``: parsed by ``phonenumbers`` (with the mapping's region for numbers written
  without ``+country``), checked against the country's numbering plan, written E.164;
* ``iban``: ``stdnum.iban`` compact form, checksum verified;
* ``email``: stripped and lower-cased;
* ``document``: upper-cased, spaces, dashes and dots removed;
* ``generic``: Unicode NFKC, case-folded, whitespace collapsed.

An identifier that cannot be normalised is rejected with a reason that never repeats it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import os
import re
import secrets
import stat
import string
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import phonenumbers
from stdnum import numdb
from stdnum.exceptions import (
    InvalidComponent,
    InvalidFormat,
    InvalidLength,
    ValidationError,
)
from stdnum.util import NumberValidationModule, get_cc_module

from hub.contracts.model import IdentifierKind
from hub.errors import ConfigError

__all__ = [
    "KEY_BYTES",
    "InvalidIdentifier",
    "NetworkKey",
    "Pseudonymiser",
    "load_network_key",
    "normalise",
]

#: Length of a generated network key, and the shortest one accepted.
KEY_BYTES = 32
_KEY_ID_MESSAGE = b"tahub key id"
_BLOCK = 64  # SHA-256's block size, in bytes
ENV_KEY = "TAHUB_NETWORK_KEY"
ENV_KEY_FILE = "TAHUB_NETWORK_KEY_FILE"
_HEX_RE = re.compile(r"^[0-9a-fA-F]+$")


class InvalidIdentifier(ValueError):
    """An identifier that cannot be normalised; the message never contains it."""


class NetworkKey:
    """The secret shared by every partner's connector. Never printed, never sent."""

    __slots__ = ("_inner", "_outer", "_secret", "key_id")

    def __init__(self, secret: bytes) -> None:
        if len(secret) < KEY_BYTES:
            raise ConfigError(
                f"the network key is {len(secret)} bytes; at least {KEY_BYTES} are needed "
                "(generate one with `tahub-connect key new`)"
            )
        self._secret = bytes(secret)
        # HMAC-SHA256 (RFC 2104) with its two padded-key states computed once: a token then
        # costs two hash copies, not a Python-level hmac object (tested equal to hmac.new).
        block = self._secret
        if len(block) > _BLOCK:
            block = hashlib.sha256(block).digest()
        block = block.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))
        self.key_id = hmac.new(self._secret, _KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:8]

    def __repr__(self) -> str:
        return f"NetworkKey(key_id={self.key_id!r})"

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a NetworkKey is not pickled, so that it is never written by accident")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, NetworkKey):
            return NotImplemented
        return hmac.compare_digest(self._secret, other._secret)

    def __hash__(self) -> int:
        return hash(self.key_id)

    @classmethod
    def generate(cls) -> NetworkKey:
        return cls(secrets.token_bytes(KEY_BYTES))

    @classmethod
    def from_text(cls, text: str) -> NetworkKey:
        """Hex, or URL-safe base64 (padding optional)."""
        value = text.strip()
        if not value:
            raise ConfigError("the network key is empty")
        if _HEX_RE.match(value) and len(value) % 2 == 0 and len(value) >= 2 * KEY_BYTES:
            return cls(bytes.fromhex(value))
        try:
            raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise ConfigError("the network key is neither hex nor URL-safe base64") from None
        return cls(raw)

    @classmethod
    def from_file(cls, path: Path) -> NetworkKey:
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            raise ConfigError(f"network key file {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"network key file {path} cannot be read ({exc.__class__.__name__})"
            ) from None
        if os.name == "posix" and mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"network key file {path} can be read by other users "
                f"(mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}"
            )
        return cls.from_text(text)

    def export(self) -> str:
        """The key as hex, for a key file or a secret manager."""
        return self._secret.hex()

    def write(self, path: Path) -> None:
        """Create ``path`` (never overwrite it) holding the key, readable by its owner only."""
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(
                f"{path} already exists; a network key is never overwritten"
            ) from None
        except OSError as exc:
            raise ConfigError(f"cannot create {path} ({exc.strerror})") from None
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(self.export() + "\n")

    def token(self, normalised: str) -> str:
        """The token of an already normalised identifier."""
        inner = self._inner.copy()
        inner.update(normalised.encode("utf-8"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return f"{self.key_id}.{outer.hexdigest()}"


def load_network_key(
    key_file: Path | None = None, environ: Mapping[str, str] | None = None
) -> NetworkKey:
    """The key from ``key_file``, else ``TAHUB_NETWORK_KEY``, else ``TAHUB_NETWORK_KEY_FILE``."""
    env = os.environ if environ is None else environ
    if key_file is not None:
        return NetworkKey.from_file(key_file)
    if env.get(ENV_KEY):
        return NetworkKey.from_text(env[ENV_KEY])
    if env.get(ENV_KEY_FILE):
        return NetworkKey.from_file(Path(env[ENV_KEY_FILE]))
    raise ConfigError(
        f"no network key: set {ENV_KEY} or {ENV_KEY_FILE}, or pass --key-file "
        "(one partner generates it with `tahub-connect key new` and shares it out of band)"
    )


# -- normalisers ------------------------------------------------------------------------
_SPACES_RE = re.compile(r"\s+")
_DOCUMENT_NOISE_RE = re.compile(r"[\s\-.]+")
_PHONE_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "phone number has an unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "phone number is too short",
    phonenumbers.ValidationResult.INVALID_LENGTH: "phone number has an impossible length",
    phonenumbers.ValidationResult.TOO_LONG: "phone number is too long",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "phone number is too short",
}


def _phone(value: str, region: str | None, add_plus: bool = False) -> str:
    if add_plus and value[:1] in "123456789":  # 447400123456: the +, left out
        try:
            number = phonenumbers.parse("+" + value, None)
        except phonenumbers.NumberParseException:
            pass
        else:
            if phonenumbers.is_valid_number(number):
                return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            international = value.lstrip().startswith(("+", "00"))
            raise InvalidIdentifier(
                "phone number has an unknown country code"
                if international or region is not None
                else "phone number has no +country code and the mapping gives no region"
            ) from None
        raise InvalidIdentifier("not a phone number") from None
    result = phonenumbers.is_possible_number_with_reason(number)
    if result is not phonenumbers.ValidationResult.IS_POSSIBLE:
        raise InvalidIdentifier(_PHONE_REASONS.get(result, "phone number is incomplete"))
    if not phonenumbers.is_valid_number(number):
        raise InvalidIdentifier("phone number does not exist in its country's numbering plan")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


_IBAN_SHAPE_RE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{8,30}$")
_IBAN_NOISE_RE = re.compile(r"[\s\-.]+")  # the separators python-stdnum's compact removes
# A..Z -> 10..35 for the mod-97 check; a table indexed by code point (other characters
# kept), which str.translate reads twice as fast as the dict of str.maketrans
_IBAN_LETTERS = tuple(
    str(ord(c) - 55) if c in string.ascii_uppercase else c for c in map(chr, range(128))
)
_IBAN_CLASS = {"n": "[0-9]", "a": "[A-Z]", "c": "[A-Z0-9]"}


@functools.cache
def _bban_re(country: str) -> re.Pattern[str] | None:
    """The BBAN layout of ``country`` from python-stdnum's IBAN registry (None: unknown)."""
    props = numdb.get("iban").info(country)[0][1]
    if "bban" not in props:
        return None
    parts = re.findall(r"([1-9][0-9]*)!([nac])", props["bban"])
    return re.compile("^" + "".join(f"{_IBAN_CLASS[c]}{{{n}}}" for n, c in parts) + "$")


@functools.cache
def _country_check(country: str) -> NumberValidationModule | None:
    """python-stdnum's extra national check of some countries' IBANs (None: none)."""
    return get_cc_module(country, "iban")


def _iban(value: str) -> str:
    """The compact IBAN; the same verdicts as ``stdnum.iban.validate``, without its per-value
    overhead (registry look-up and character cleaning), which dominated large exports."""
    compact = _IBAN_NOISE_RE.sub("", value).upper()
    if not _IBAN_SHAPE_RE.match(compact):
        raise InvalidIdentifier("not an IBAN")
    layout = _bban_re(compact[:2])
    if layout is None:
        raise InvalidIdentifier("IBAN has an unknown country code")
    if not layout.match(compact[4:]):
        raise InvalidIdentifier("IBAN has the wrong length or format for its country")
    if int((compact[4:] + compact[:4]).translate(_IBAN_LETTERS)) % 97 != 1:
        raise InvalidIdentifier("IBAN check digits are wrong")
    national = _country_check(compact[:2])
    if national is not None:
        try:
            national.validate(compact)
        except ValidationError as exc:
            raise InvalidIdentifier(_iban_reason(exc)) from None
    return compact


def _iban_reason(exc: ValidationError) -> str:
    if isinstance(exc, InvalidComponent):
        return "IBAN has an unknown country code"
    if isinstance(exc, InvalidLength | InvalidFormat):
        return "IBAN has the wrong length or format for its country"
    return "not an IBAN"


def _email(value: str) -> str:
    email = value.strip().lower()
    local, at, domain = email.partition("@")
    if not at or not local or not domain or "@" in domain or _SPACES_RE.search(email):
        raise InvalidIdentifier("not an e-mail address")
    return email


def _document(value: str) -> str:
    doc = _DOCUMENT_NOISE_RE.sub("", unicodedata.normalize("NFKC", value).upper())
    if not doc:
        raise InvalidIdentifier("document number is empty once spaces and dashes are removed")
    return doc


def _generic(value: str) -> str:
    text = _SPACES_RE.sub(" ", unicodedata.normalize("NFKC", value).casefold()).strip()
    if not text:
        raise InvalidIdentifier("identifier is empty")
    return text


def normalise(
    kind: IdentifierKind, value: str, *, default_region: str | None = None, add_plus: bool = False
) -> str:
    """The canonical spelling of ``value``; :class:`InvalidIdentifier` when there is none.

    ``add_plus`` (phones): a number starting with 1-9 is first read as international with
    its + left out (``447400123456``), and only when that is no valid number, as national.
    """
    if kind is IdentifierKind.PHONE:
        return _phone(value, default_region, add_plus)
    if kind is IdentifierKind.IBAN:
        return _iban(value)
    if kind is IdentifierKind.EMAIL:
        return _email(value)
    if kind is IdentifierKind.DOCUMENT:
        return _document(value)
    return _generic(value)


_NORMALISERS: dict[IdentifierKind, Callable[[str], str]] = {
    IdentifierKind.IBAN: _iban,
    IdentifierKind.EMAIL: _email,
    IdentifierKind.DOCUMENT: _document,
    IdentifierKind.GENERIC: _generic,
}


class Pseudonymiser:
    """Tokens for many raw identifiers at once (callers pass each distinct value once)."""

    def __init__(self, key: NetworkKey) -> None:
        self.key = key

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def pseudonymise(
        self,
        kind: IdentifierKind,
        values: Iterable[str],
        *,
        default_region: str | None = None,
        regions: Sequence[str | None] | None = None,
        add_plus: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> tuple[list[str | None], list[str | None]]:
        """(tokens, reasons): a token, or ``None`` and the reason it could not be made.

        ``regions``, when given, holds each value's own region (phones written without
        ``+country``); ``default_region`` stands in where it is ``None``; ``add_plus``: see
        :func:`normalise`.
        """
        tokens: list[str | None] = []
        reasons: list[str | None] = []
        token = self.key.token
        if kind is IdentifierKind.PHONE:
            for i, value in enumerate(values, 1):
                region = default_region
                if regions is not None and regions[i - 1] is not None:
                    region = regions[i - 1]
                try:
                    tokens.append(token(_phone(value, region, add_plus)))
                    reasons.append(None)
                except InvalidIdentifier as exc:
                    tokens.append(None)
                    reasons.append(str(exc))
                if progress is not None and i % 100_000 == 0:
                    progress(i)
            return tokens, reasons
        normaliser = _NORMALISERS[kind]  # one look-up, not one per value
        for i, value in enumerate(values, 1):
            try:
                tokens.append(token(normaliser(value)))
                reasons.append(None)
            except InvalidIdentifier as exc:
                tokens.append(None)
                reasons.append(str(exc))
            if progress is not None and i % 100_000 == 0:
                progress(i)
        return tokens, reasons

"""The hub's token-signing keys: Ed25519, published as a JWK Set, rotated without downtime.

* :class:`SigningKeys` - JWK files in ``<data_dir>/keys`` (mode 0600); the newest signs, all
  verify. A new key is made at the first start.
* :class:`FileSigningKeys` - the PEM file ``TAHUB_SIGNING_KEY_FILE`` that every hub process
  and replica shares: the first block signs, later blocks only verify (during a rotation the
  previous key stays as a later block until the tokens it signed have expired;
  docs/operations.md).
* :class:`TokenRegistry` - a JWS registry that knows exactly one algorithm, ``EdDSA``: no
  ``none``, no HS/RS confusion.

Access tokens and ID tokens are signed with :attr:`SigningKeys.signing`; ``kid`` is the
key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import structlog
from joserfc.errors import JoseError
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jwk import OKPKey
from joserfc.jws import JWSRegistry

from hub.errors import ConfigError
from hub.settings import Settings

__all__ = ["ALGORITHM", "FileSigningKeys", "SigningKeys", "TokenRegistry", "open_signing_keys"]

log = structlog.get_logger(__name__)

ALGORITHM = "EdDSA"
_KEY_SUFFIX = ".jwk"


class _Ed25519Only(EdDSAAlgorithm):
    """joserfc's EdDSA, without its RFC 9864 naming warning.

    RFC 9864 deprecates the polymorphic ``EdDSA`` name in favour of ``Ed25519``. The wire
    format of the hub's tokens says ``EdDSA`` (``docs/ingest-api.md``); the ambiguity the
    RFC worries about cannot arise here because the only keys this registry ever sees are
    the hub's own Ed25519 keys, looked up by ``kid``.
    """

    security_warning = None  # type: ignore[assignment]


class TokenRegistry(JWSRegistry):
    """A JWS registry that knows exactly one algorithm: no ``none``, no HS/RS confusion."""

    algorithms = {ALGORITHM: _Ed25519Only()}  # noqa: RUF012 - joserfc's class-level table
    recommended = [ALGORITHM]  # noqa: RUF012



class SigningKeys:
    """The hub's token-signing keys: JWK files in one folder, the newest one signs."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.by_kid = self._load()
            if not self.by_kid:
                self._create()
                self.by_kid = self._load()
        except OSError as exc:
            raise ConfigError(
                f"cannot use the signing-key folder {folder} ({exc.strerror or exc})",
                field="TAHUB_DATA_DIR",
            ) from None
        self.signing = self.by_kid[self._newest]

    def _load(self) -> dict[str, OKPKey]:
        keys: dict[str, OKPKey] = {}
        self._mtimes: dict[str, tuple[float, str]] = {}
        for path in sorted(self.folder.glob(f"*{_KEY_SUFFIX}")):
            try:
                key = OKPKey.import_key(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, JoseError) as exc:
                raise ConfigError(
                    f"signing key {path} cannot be read ({type(exc).__name__})"
                ) from None
            if key.as_dict().get("crv") != "Ed25519" or not key.is_private:
                raise ConfigError(f"signing key {path} is not a private Ed25519 key")
            if path.stat().st_mode & 0o077:
                log.warning("signing key readable by others; chmod 600 it", path=str(path))
            kid = key.thumbprint()
            keys[kid] = key
            self._mtimes[kid] = (path.stat().st_mtime, path.name)
        return keys

    @property
    def _newest(self) -> str:
        return max(self._mtimes, key=lambda kid: self._mtimes[kid])

    def _create(self) -> None:
        key = OKPKey.generate_key("Ed25519")
        kid = key.thumbprint()
        data = json.dumps(key.as_dict(private=True, kid=kid), sort_keys=True).encode()
        final = self.folder / f"{kid}{_KEY_SUFFIX}"
        tmp = self.folder / f".{kid}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        log.info("created token-signing key", kid=kid)

    def public_jwks(self) -> dict[str, Any]:
        keys = []
        for kid, key in sorted(self.by_kid.items()):
            keys.append({**key.as_dict(private=False), "kid": kid, "alg": ALGORITHM, "use": "sig"})
        return {"keys": keys}


_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----.+?-----END \1-----", re.DOTALL)


class FileSigningKeys(SigningKeys):
    """The signing key of ``TAHUB_SIGNING_KEY_FILE``, the same in every hub process.

    The file holds PEM blocks: the first is the private Ed25519 key that signs; any later
    block (a public or private Ed25519 key) only verifies. During a key rotation the
    previous key stays as a later block until the tokens it signed have expired (the
    procedure is in docs/operations.md).
    """

    def __init__(self, path: Path) -> None:  # the folder-based constructor does not apply
        field = "TAHUB_SIGNING_KEY_FILE"
        try:
            text = path.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not PEM text"
            raise ConfigError(f"cannot read the signing key file {path} ({reason})",
                              field=field) from None
        blocks = [m.group(0) for m in _PEM_BLOCK.finditer(text)]
        if not blocks:
            raise ConfigError(f"signing key file {path} holds no PEM key", field=field)
        self.by_kid = {}
        for n, block in enumerate(blocks, 1):
            try:
                key = OKPKey.import_key(block.encode("ascii"))
            except (ValueError, JoseError) as exc:
                raise ConfigError(
                    f"signing key file {path}: PEM block {n} is not an Ed25519 key "
                    f"({type(exc).__name__})", field=field,
                ) from None
            if key.as_dict().get("crv") != "Ed25519":
                raise ConfigError(f"signing key file {path}: PEM block {n} is not an Ed25519 "
                                  "key", field=field)
            if n == 1 and not key.is_private:
                raise ConfigError(f"signing key file {path}: the first PEM block must be the "
                                  "private key that signs (later blocks may be public keys)",
                                  field=field)
            self.by_kid.setdefault(key.thumbprint(), key)
            if n == 1:
                self.signing = key
        if path.stat().st_mode & 0o007:  # group bits: Kubernetes mounts secrets 0440 (fsGroup)
            log.warning("signing key file readable by others; chmod 600 it", path=str(path))



def open_signing_keys(settings: Settings) -> SigningKeys:
    """The key file of ``TAHUB_SIGNING_KEY_FILE`` if set, else the data folder's keys."""
    key_file = settings.signing_key_file
    return FileSigningKeys(key_file) if key_file else SigningKeys(settings.keys_dir)

"""Reference documents generated from the code, so that they cannot drift from it.

``docs/settings.md`` is :func:`settings_markdown` verbatim (``tahub admin settings-doc
--out docs/settings.md`` rewrites it; a test keeps the two equal).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic_core import PydanticUndefined

from hub.settings import Settings

__all__ = ["settings_markdown"]

_INTRO = """\
# Settings

Every setting of the hub is an environment variable with the prefix `TAHUB_`, read once
when `tahub serve` (or any `tahub admin` command) starts; nothing is read at import time.
This page is generated from `hub/settings.py` by `tahub admin settings-doc --out
docs/settings.md`; edit the field descriptions there, not this file.
"""

_NOTES = """\

## Notes

* Files under `TAHUB_DATA_DIR`: `tahub.db` (SQLite metadata store, when
  `TAHUB_DATABASE_URL` is empty), `objects/` (committed extracts, when `TAHUB_STORAGE` is
  empty), `staging/` (unfinished uploads) and `keys/` (the token-signing key, a private
  Ed25519 JWK, mode 0600). Losing the key only invalidates the tokens in flight (a new
  one is made at start); anyone holding a copy can mint tokens, so keep it on the host.
  Several hub processes or replicas share one key instead: `TAHUB_SIGNING_KEY_FILE`
  (`openssl genpkey -algorithm ed25519 -out signing.pem`; rotation in
  `docs/operations.md`).
* `TAHUB_SETTINGS_FILE` names a TOML file of the same settings, keyed by the names
  without `TAHUB_` in lower case (`storage = "s3://tahub"`, `workers = 4`); a
  `TAHUB_*` variable overrides the file, and a `tahub serve` option overrides both.
  Relative paths in it are relative to the folder the hub starts in. A bad key or value
  is reported with the file, line and key.
* `TAHUB_PUBLIC_URL` is also the issuer (`iss`) of access tokens and the URL the OAuth2
  token endpoint checks for transport security: it must be `https://...` (the address of
  the TLS-terminating proxy in front of the hub), or plain `http://` on a loopback host for
  local use. Any other `http://` URL makes `POST /oauth/token` answer 400
  `insecure_transport`.
* With `TAHUB_STORAGE=s3://<bucket>[/<prefix>]` the bucket must exist when the hub starts
  (it never creates one). Every object carries its sha256 as metadata
  (`x-amz-meta-sha256`), checked after each write and on each download. Queries read
  local copies of the committed extracts in `TAHUB_CACHE_DIR`, downloaded once per host;
  size it for the extracts queried together. When the store cannot be reached, requests
  that need it answer 503 with `Retry-After` within seconds.
"""


def _default(value: Any) -> str:
    if value is PydanticUndefined or value is None or str(value) == "":
        return "(empty)"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`{value.as_posix()}`"
    return f"`{value}`"


def settings_markdown() -> str:
    """The settings reference: one row per field of :class:`~hub.settings.Settings`."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| Environment variable | Default | Description |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        description = " ".join((info.description or "").split()).replace("|", "\\|")
        default = "(machine)" if info.default_factory is not None else _default(info.default)
        rows.append(f"| `{prefix}{name.upper()}` | {default} | {description} |")
    return _INTRO + "\n" + "\n".join(rows) + "\n" + _NOTES

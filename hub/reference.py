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
* `TAHUB_PUBLIC_URL` is also the issuer (`iss`) of access tokens and the URL the OAuth2
  token endpoint checks for transport security: it must be `https://...` (the address of
  the TLS-terminating proxy in front of the hub), or plain `http://` on a loopback host for
  local use. Any other `http://` URL makes `POST /oauth/token` answer 400
  `insecure_transport`.
"""


def _default(value: Any) -> str:
    if value is PydanticUndefined or value is None or value == "":
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
        rows.append(f"| `{prefix}{name.upper()}` | {_default(info.default)} | {description} |")
    return _INTRO + "\n" + "\n".join(rows) + "\n" + _NOTES

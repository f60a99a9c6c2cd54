"""The rules of object keys, shared by every object store backend.

A key is a relative, '/'-separated path of safe segments, e.g.
``extracts/<org id>/<dataset>/<extract id>.parquet``: no absolute path, no empty, '.' or
'..' segment, nothing starting with '.' (names starting with :data:`TMP_PREFIX` are the
stores' own temporary files), at most 512 characters.
"""

from __future__ import annotations

import re

from hub.errors import InvalidInput

__all__ = ["TMP_PREFIX", "check_key", "check_prefix", "is_key"]

_SEGMENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=-]*$")
TMP_PREFIX = ".tmp-"


def is_key(key: str) -> bool:
    """Whether ``key`` follows the rules."""
    return 0 < len(key) <= 512 and all(_SEGMENT_RE.match(s) for s in key.split("/"))


def check_key(key: str) -> str:
    """Refuse keys that could escape the store: absolute, empty segments, '.' or '..'."""
    if not is_key(key):
        raise InvalidInput(
            f"invalid object key {key!r}: use relative '/'-separated names of letters, "
            "digits, '_', '-', '.' and '=' (no '..', no leading '/' or '.')",
            field="key",
        )
    return key


def check_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key possibly ending with '/'."""
    if prefix:
        check_key(prefix.rstrip("/"))
    return prefix

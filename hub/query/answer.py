"""A release as the metadata store keeps it, and as each answer sends it.

A release's JSON is written once (compact, :func:`hub.storage.db.json_text`) and stored
zstd-compressed, in a form that every answer extends without decoding it: the object less
its closing brace, as a zstd frame left open (each block flushed, none marked last;
RFC 8878, 3.1.1.2)::

    stored (releases.body)   zstd frame, open:  {"query_id":"led_...",...,"cells":[...]
    an answer (zstd)         the same bytes, then one last raw block: ,"reused":true,...}
    an answer (identity)     the stored bytes decompressed, then   ,"reused":true,...}

An answer adds its own fields (:data:`ANSWER_FIELDS`: whether it is reused, what it charged,
the member's budget now) after the stored ones, so a stored result never holds them. A raw
block is its bytes as they are behind a three-byte header, so closing the frame copies the
stored bytes once and compresses nothing; a client that does not accept zstd gets the
decompressed bytes, which are never JSON-decoded on the way out.

The level is zstd's default (3): with no content size given, its window is 2 MB, within
the 8 MB that HTTP's zstd content coding allows a sender (RFC 9659).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import zstandard

__all__ = ["ANSWER_FIELDS", "Answer", "stored_body", "stored_result"]

#: What an answer adds to its stored release (so a stored result must not hold them).
ANSWER_FIELDS = frozenset({"reused", "charged", "budget", "publication"})

_LEVEL = 3
_MAX_BLOCK = 128 * 1024  # a block's most bytes (RFC 8878, 3.1.1.2.4), if the window allows


def stored_body(text: str) -> bytes:
    """The stored form of a release whose JSON is ``text`` (a compact, non-empty object)."""
    if not (text.startswith("{") and text.endswith("}")) or text == "{}":
        raise ValueError("a release is a non-empty JSON object")
    frame = zstandard.ZstdCompressor(level=_LEVEL).compressobj()
    return frame.compress(text[:-1].encode()) + frame.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


def _opened(body: bytes) -> bytes:
    """The stored JSON, still open (decompressed, not decoded)."""
    out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(body)
    return out


def stored_result(body: bytes) -> dict[str, Any]:
    """A stored release's result, decoded (for the callers that need its values)."""
    out: dict[str, Any] = json.loads(_opened(body) + b"}")
    return out


@dataclass(frozen=True, slots=True)
class Answer:
    """A stored release (``body``, :func:`stored_body`) with this answer's ``fields``."""

    body: bytes
    fields: dict[str, Any]

    def _tail(self) -> bytes:
        """``,"reused":true,...}``: this answer's fields, closing the stored object."""
        if not self.fields:
            return b"}"
        return b"," + json.dumps(self.fields, separators=(",", ":"),
                                 allow_nan=False).encode()[1:]

    def zstd(self) -> bytes:
        """The answer as one zstd frame: the stored bytes as they are, then the tail in raw
        blocks, the last one marked last."""
        tail = self._tail()
        size = min(_MAX_BLOCK, zstandard.get_frame_parameters(self.body).window_size)
        blocks = [self.body]
        for start in range(0, len(tail), size):
            raw = tail[start:start + size]
            last = start + size >= len(tail)
            blocks += [(len(raw) << 3 | last).to_bytes(3, "little"), raw]  # type 0: raw
        return b"".join(blocks)

    def json(self) -> bytes:
        """The answer's JSON (identity): the stored bytes decompressed, then the tail."""
        return _opened(self.body) + self._tail()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.json())
        return out

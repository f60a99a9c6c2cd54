"""A release's stored form and its answers (hub.query.answer): one zstd frame whatever the
sizes, read whole by zstd itself and by httpx's decoder however the bytes arrive."""

from __future__ import annotations

import json
import random
from itertools import pairwise
from typing import Any

import pytest
import zstandard
from httpx._decoders import ZStandardDecoder

from hub.query.answer import Answer, stored_body, stored_result

RNG = random.Random(16)  # noqa: S311 - test data
SMALL = {"query_id": "led_1", "rows": [{"origin": "NG", "value": 1.5}]}
# noisy cells compress little: the stored frame holds many blocks
LARGE = {"query_id": "led_2", "rows": [{"origin": f"C{i % 250}", "value": RNG.gauss(0, 99)}
                                       for i in range(40_000)]}


def _text(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))


def _httpx(data: bytes, cuts: list[int]) -> bytes:
    decoder = ZStandardDecoder()
    edges = [0, *cuts, len(data)]
    return b"".join(decoder.decode(data[a:b]) for a, b in pairwise(edges)) + decoder.flush()


@pytest.mark.parametrize("result", [SMALL, LARGE], ids=["small", "large"])
@pytest.mark.parametrize("fields", [
    {"reused": True, "charged": {"amount": "0"}, "budget": None},
    {"reused": False, "note": "x" * 300_000},  # past a block's 128 KB: several raw blocks
    {},
], ids=["fields", "large-fields", "none"])
def test_an_answer_is_one_zstd_frame_however_it_is_cut(result: dict[str, Any],
                                                       fields: dict[str, Any]) -> None:
    text = _text(result)
    body = stored_body(text)
    assert stored_result(body) == result
    answer = Answer(body, fields)
    expected = _text({**result, **fields}).encode()
    assert answer.json() == expected
    wire = answer.zstd()
    assert wire.startswith(body)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(wire) == expected
    junction = len(body)
    for cut in range(junction - 4, min(junction + 5, len(wire))):  # a read ends at the tail
        assert _httpx(wire, [cut]) == expected
    assert _httpx(wire, sorted(RNG.sample(range(1, len(wire)), 20))) == expected


@pytest.mark.parametrize("text", ["{}", "[1]", ""])
def test_a_stored_release_is_a_non_empty_json_object(text: str) -> None:
    with pytest.raises(ValueError, match="non-empty JSON object"):
        stored_body(text)

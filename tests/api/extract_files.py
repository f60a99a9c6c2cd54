"""Valid extracts for the API tests: tests/hub/extract_files.py's rows, one token per
(salt, row) so that two files with different salts never share content or units."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from hub.contracts.model import Contract
from tests.hub.extract_files import KEY_ID, sha256_of, valid_rows
from tests.hub.extract_files import write_extract as _write_rows

__all__ = ["KEY_ID", "sha256_of", "write_extract"]


def write_extract(
    path: Path,
    contract: Contract,
    rows: int,
    *,
    salt: str = "a",
    override: dict[int, dict[str, Any]] | None = None,
) -> Path:
    """A valid extract of ``rows`` rows; ``override`` replaces cells (row index -> values)."""
    data = valid_rows(contract, rows)
    unit = contract.privacy_unit.name
    for i, row in enumerate(data):
        row[unit] = f"{KEY_ID}.{hashlib.sha256(f'{salt}:{i}'.encode()).hexdigest()}"
        row.update((override or {}).get(i, {}))
    return _write_rows(path, contract, data)

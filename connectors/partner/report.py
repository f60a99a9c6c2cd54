"""What a connector run found: counts, reasons, dropped columns, and the extract written.

Also the warning for dropped columns: a column of the export that the mapping does not use
never leaves the partner, but one that *looks like* an identifier or free text is named in
the report, so that the data engineer can confirm nothing was mapped by mistake.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub.errors import RowError

__all__ = ["DroppedColumn", "PreparedExtract", "ReasonCount", "column_hint"]


@dataclass(frozen=True)
class ReasonCount:
    field: str
    reason: str
    rows: int


@dataclass(frozen=True)
class DroppedColumn:
    """A column of the export that is not in the extract; ``hint`` flags risky ones."""

    name: str
    hint: str | None = None


@dataclass(frozen=True)
class PreparedExtract:
    """The result of :func:`connectors.partner.pipeline.prepare_extract`."""

    dataset: str
    contract_version: int
    key_id: str
    source: Path
    rows_read: int
    rows_valid: int
    rows_rejected: int
    total_errors: int
    path: Path
    size: int
    sha256: str
    reasons: list[ReasonCount] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)  # the first few, in row order
    dropped: list[DroppedColumn] = field(default_factory=list)
    rejects_path: Path | None = None

    @property
    def reject_ratio(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0


_IDENTIFIER_WORDS = {
    "name", "firstname", "lastname", "surname", "fullname", "forename", "phone", "mobile",
    "msisdn", "tel", "telephone", "email", "mail", "iban", "account", "acct", "passport",
    "nationalid", "ssn", "nin", "document", "doc", "dob", "birth", "birthdate", "address",
    "street", "postcode", "zip", "ip", "customer", "client", "sender", "receiver",
    "beneficiary", "card", "pan", "swift", "bic", "id",
}  # fmt: skip
_FREE_TEXT_WORDS = {
    "note", "notes", "comment", "comments", "remark", "remarks", "description", "narrative",
    "text", "memo", "detail", "details", "summary", "story", "free",
}  # fmt: skip
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_RE = re.compile(r"^\+?[\d\s().\-/]{7,20}$")
_IBAN_RE = re.compile(r"^[A-Z]{2}\d{2}[A-Z0-9 ]{10,34}$")


def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    parts = [p for p in re.split(r"[^a-z0-9]+", spaced.lower()) if p]
    joined = {a + b for a, b in itertools.pairwise(parts)}
    return set(parts) | joined


def column_hint(name: str, sample: Sequence[str]) -> str | None:
    """Why a dropped column deserves a second look, or None. ``sample``: some values."""
    words = _words(name)
    if words & _IDENTIFIER_WORDS:
        return "its name suggests an identifier"
    if words & _FREE_TEXT_WORDS:
        return "its name suggests free text"
    values = [v.strip() for v in sample if v and v.strip()]
    if not values:
        return None
    half = len(values) / 2
    if sum(bool(_EMAIL_RE.match(v)) for v in values) >= half:
        return "its values look like e-mail addresses"
    if sum(bool(_IBAN_RE.match(v.upper())) for v in values) >= half:
        return "its values look like IBANs"
    if sum(bool(_PHONE_RE.match(v)) and sum(c.isdigit() for c in v) >= 7 for v in values) >= half:
        return "its values look like phone or account numbers"
    if sum(len(v) >= 40 and v.count(" ") >= 5 for v in values) >= half:
        return "its values look like free text"
    return None

"""What a connector run found: counts, reasons, columns left behind, and the extract written.

Also the flag for columns left behind: a column of the export that the mapping does not use
never leaves the partner, but one that *looks like* an identifier or free text is flagged in
the report, so that the data engineer can confirm nothing was left unmapped by mistake
(:mod:`connectors.partner.leftovers` adds the columns whose values fit a contract field).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hub.errors import RowError

__all__ = ["DroppedColumn", "PreparedExtract", "ReasonCount", "column_hint", "values_hint"]


@dataclass(frozen=True)
class ReasonCount:
    field: str
    reason: str
    rows: int


@dataclass(frozen=True)
class DroppedColumn:
    """A column of the export that no field takes: ``hint`` flags the ones that look
    identifying, free text or mappable; ``sample`` holds a few of its values (masked);
    ``ignored`` is the mapping's reason when its ``ignore:`` lists the column."""

    name: str
    hint: str | None = None
    sample: tuple[str, ...] = ()
    ignored: str | None = None


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
    notes: list[str] = field(default_factory=list)  # what was assumed and how fields were read

    @property
    def reject_ratio(self) -> float:
        return self.rows_rejected / self.rows_read if self.rows_read else 0.0


# English, then the words partners' exports use in Italian, German, French and Spanish.
_IDENTIFIER_WORDS = {
    "name", "firstname", "lastname", "surname", "fullname", "forename", "phone", "mobile",
    "msisdn", "tel", "telephone", "email", "mail", "iban", "account", "acct", "passport",
    "nationalid", "ssn", "nin", "document", "doc", "dob", "birth", "birthdate", "address",
    "street", "postcode", "zip", "ip", "customer", "client", "sender", "receiver",
    "beneficiary", "card", "pan", "swift", "bic", "id",
    "nome", "cognome", "cliente", "conto", "telefono", "cellulare", "indirizzo", "nascita",
    "passaporto", "documento", "codicefiscale",
    "kunde", "kunden", "kundenname", "vorname", "nachname", "konto", "telefon", "handy",
    "adresse", "strasse", "geburtsdatum", "ausweis", "reisepass",
    "nom", "prenom", "compte", "naissance",
    "nombre", "apellido", "apellidos", "cuenta", "direccion", "nacimiento", "pasaporte",
}  # fmt: skip
_FREE_TEXT_WORDS = {
    "note", "notes", "comment", "comments", "remark", "remarks", "description", "narrative",
    "text", "memo", "detail", "details", "summary", "story", "free",
    "nota", "commento", "descrizione", "osservazioni", "vermerk", "bemerkung", "notiz",
    "kommentar", "beschreibung", "commentaire", "remarque", "comentario", "observaciones",
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
    return values_hint(values)


def values_hint(values: Sequence[str]) -> str | None:
    """Why values deserve a second look (identifier-shaped, free text), or None."""
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

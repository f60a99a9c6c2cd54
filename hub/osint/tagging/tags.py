"""What the tagger returns: tags with a confidence and their evidence, per item.

::

    Tagging                   one item's result
    ├── language: LanguageCheck   declared, detected, supported, the one used
    ├── relevance: Relevance      is this a human-trafficking incident? (with confidence)
    └── tags: Tag, ...            field, code, confidence, evidence (+ role, band)
                  └── Evidence    title or text, character span, matched text, sentence

Codes are those of :mod:`taxonomy`. A location's ``code`` is its country (alpha-2) and its
``role`` its stage in the route; an age's ``code`` is the age in years and its ``band`` the
CTDC band; the incident period's ``code`` is ``YYYY-MM``. The models are immutable pydantic
models, so a tagging serialises to JSON as it is (for the reviewers' queue).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .taxonomy import Field as TagField
from .taxonomy import Role

__all__ = ["Evidence", "LanguageCheck", "Relevance", "Tag", "Tagging"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Evidence(_Frozen):
    """Where a tag comes from: ``text[start:end]`` of the title or the body (``part``) is
    ``text``; ``sentence`` is the whole sentence around it."""

    part: Literal["title", "text"]
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str
    sentence: str


class Tag(_Frozen):
    """One suggested tag. The first evidence is the strongest."""

    field: TagField
    code: str
    confidence: float = Field(ge=0, le=1)
    evidence: tuple[Evidence, ...]
    role: Role | None = None
    band: str | None = None


class LanguageCheck(_Frozen):
    """The language the item was declared in, the one identified from its text, and the one
    used to tag it (None when neither is supported: the item is then not tagged)."""

    declared: str
    detected: str | None
    confidence: float = Field(ge=0, le=1)
    supported: bool
    used: str | None


class Relevance(_Frozen):
    """Whether the item reports a human-trafficking incident (rather than drug or wildlife
    trafficking, an awareness event or a policy debate)."""

    relevant: bool
    confidence: float = Field(ge=0, le=1)
    evidence: tuple[Evidence, ...] = ()
    # the signals the judgement was made from (see labels.relevance), each in [0, 1]
    signals: dict[str, float] = {}


class Tagging(_Frozen):
    """The tags suggested for one item. An irrelevant item, or one in an unsupported
    language, has no tags."""

    language: LanguageCheck
    relevance: Relevance
    tags: tuple[Tag, ...] = ()

    def of(self, field: TagField) -> tuple[Tag, ...]:
        """The tags of one field, most confident first."""
        return tuple(sorted((t for t in self.tags if t.field == field),
                            key=lambda t: -t.confidence))

    def codes(self, field: TagField) -> set[str]:
        """The codes of one field (locations: countries)."""
        return {t.code for t in self.tags if t.field == field}

    def locations(self) -> set[tuple[str, Role]]:
        """(country, role) of every location tag."""
        return {(t.code, t.role) for t in self.tags if t.field == "location" and t.role}

"""Crowd reports from the public: the challenge, the report and its receipt
(docs/osint.md#crowd-reports)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChallengeOut", "ReceiptOut", "ReportIn"]


class ChallengeOut(BaseModel):
    """A proof-of-work challenge: find a ``nonce`` (1 to 32 letters or digits) such that
    ``sha256(challenge + nonce)`` starts with ``bits`` zero bits, before ``expires_at``."""

    challenge: str
    bits: int
    expires_at: dt.datetime
    max_chars: int = Field(description="The longest report accepted (characters).")
    algorithm: Literal["sha256(challenge + nonce), leading zero bits"] = (
        "sha256(challenge + nonce), leading zero bits")


class ReportIn(BaseModel):
    """What a member of the public saw. Only ``text``, ``challenge`` and ``nonce`` are
    required; ``website`` must stay empty (a honeypot the report page hides)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(max_length=100_000,
                      description="What happened, in the sender's words (at most "
                      "TAHUB_REPORTS_MAX_CHARS characters); stored only encrypted.")
    language: Literal["en", "fr", "es"] | None = Field(
        default=None, description="The report's language; empty: identified from the text.")
    where: str | None = Field(default=None, max_length=1000,
                              description="Where it happened, in free text (200 characters).")
    when: dt.date | None = Field(default=None, description="When it happened (a date).")
    challenge: str = Field(max_length=200, description="From GET /v1/public/reports/challenge.")
    nonce: str = Field(max_length=64, description="The proof of work for the challenge.")
    website: str | None = Field(default=None, max_length=1000,
                                description="Leave empty (a honeypot).")


class ReceiptOut(BaseModel):
    """The report was received: its receipt, a random id that says nothing else."""

    receipt: str

"""What a source is, as the operator configures it, and what each fetch of it recorded.

:class:`SourceSpec` is the input (``tahub sources add``, ``POST /v1/osint/sources``): it is
checked whole and every problem is reported with its field (:func:`spec_of`).
:class:`Source` and :class:`FetchRecord` are what the API and the CLI show.
:class:`Entry` is one candidate article read from a feed or a folder, before collection.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.errors import InvalidInput, RowError

__all__ = [
    "LANGUAGES",
    "MIN_EVERY_MINUTES",
    "Entry",
    "FetchRecord",
    "Outcome",
    "Skip",
    "Source",
    "SourceChange",
    "SourceSpec",
    "spec_of",
]

#: The languages the tagger reads (hub.osint.tagging.lexicon.SUPPORTED_LANGUAGES); kept
#: here so that configuring a source does not load the tagger.
LANGUAGES = ("en", "fr", "es")
#: The shortest schedule a source may have: a feed is not polled more often than this.
MIN_EVERY_MINUTES = 5
Kind = Literal["feed", "folder"]
Trust = Literal["high", "medium", "low"]
Outcome = Literal["running", "ok", "not_modified", "failed"]
_HOST = re.compile(r"^(\[[0-9a-f:.]+\]|[a-z0-9]([a-z0-9.-]*[a-z0-9])?)(:[0-9]{1,5})?$")


class SourceSpec(BaseModel):
    """A source as configured. ``location``: the feed's http(s) URL, or a folder that exists
    and the hub can read (kept as its absolute path). ``hosts``: other hosts the feed's
    redirects and article links may reach (``host`` or ``host:port``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200, examples=["Coastal Herald"])
    kind: Kind = Field(description="feed (RSS or Atom over http/https) or folder (saved "
                       "feed files and articles, for closed networks)")
    location: str = Field(min_length=1, max_length=2000,
                          examples=["https://news.example/rss.xml"])
    language: str | None = Field(
        default=None, description="en, fr or es; null: identified per article")
    every_minutes: int = Field(default=60, ge=MIN_EVERY_MINUTES, le=60 * 24 * 30)
    trust: Trust = "medium"
    enabled: bool = True
    hosts: list[str] = Field(default_factory=list, max_length=20,
                             description="Other hosts its redirects and links may reach.")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("a name is printable text (no control characters)")
        return value

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower() or None
            if value is not None and value not in LANGUAGES:
                raise ValueError(f"the tagger reads {', '.join(LANGUAGES)}; leave it empty "
                                 "to identify each article's language")
        return value

    @field_validator("hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        hosts = sorted({h.strip().lower() for h in value if h.strip()})
        for host in hosts:
            if not _HOST.match(host):
                raise ValueError(f"{host[:100]!r} is not a host name (news.example or "
                                 "news.example:8080)")
        return hosts

    @model_validator(mode="after")
    def _location(self) -> SourceSpec:
        if self.kind == "feed":
            parts = urlsplit(self.location)
            if parts.scheme.lower() not in ("http", "https"):
                raise ValueError("location: a feed's address is an http or https URL")
            try:
                ok = bool(parts.hostname) and (parts.port is None or parts.port > 0)
            except ValueError:
                ok = False
            if not ok:
                raise ValueError("location: the feed's URL has no valid host")
        else:
            path = Path(self.location).expanduser()
            if not path.is_absolute():
                raise ValueError("location: a folder is given by its absolute path")
            if not path.is_dir():
                raise ValueError("location: no such folder on the hub's host")
            if not os.access(path, os.R_OK | os.X_OK):
                raise ValueError("location: the hub cannot read this folder")
            object.__setattr__(self, "location", str(path.resolve()))
        return self


class SourceChange(BaseModel):
    """Some settings of a source, to change (the others stay); its kind cannot change."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    location: str | None = Field(default=None, min_length=1, max_length=2000)
    language: str | None = None
    every_minutes: int | None = Field(default=None, ge=MIN_EVERY_MINUTES, le=60 * 24 * 30)
    trust: Trust | None = None
    enabled: bool | None = None
    hosts: list[str] | None = Field(default=None, max_length=20)


def spec_of(data: Any, what: str = "the source") -> SourceSpec:
    """A :class:`SourceSpec` from decoded JSON (or keyword values); every problem is listed
    in one :class:`InvalidInput`, each with its field."""
    try:
        return SourceSpec.model_validate(data)
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False):
            message = e["msg"].removeprefix("Value error, ")
            field = ".".join(str(p) for p in e["loc"]) or None
            if field is None and message.startswith("location: "):
                field, message = "location", message.removeprefix("location: ")
            errors.append(RowError(field, message))
        shown = "; ".join(str(e) for e in errors[:3])
        raise InvalidInput(f"{what} is invalid: {shown}", field=errors[0].field,
                           errors=errors) from None


class Skip(BaseModel):
    """An entry a fetch did not collect, and why."""

    ref: str = Field(description="Its link, or its file (and record) in a folder.")
    reason: str


class FetchRecord(BaseModel):
    """One fetch of one source: when, how it ended, what it found and did."""

    id: str
    source_id: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    outcome: Outcome = Field(description="running, ok, not_modified (HTTP 304) or failed")
    http_status: int | None
    found: int = Field(description="Entries read (feed items, folder records).")
    added: int = Field(description="Articles collected (new incidents or joined ones).")
    duplicates: int = Field(description="Entries already collected.")
    skipped: list[Skip]
    error: str | None = Field(description="Why the fetch failed.")


class Source(BaseModel):
    """A configured source, with its last fetch."""

    id: str
    name: str
    kind: Kind
    location: str
    language: str | None
    every_minutes: int
    trust: Trust
    enabled: bool
    hosts: list[str]
    next_fetch_at: dt.datetime | None
    created_at: dt.datetime
    last_fetch: FetchRecord | None = None

    def spec(self) -> dict[str, Any]:
        """Its configuration as :class:`SourceSpec` input."""
        return self.model_dump(include=set(SourceSpec.model_fields))


@dataclass(frozen=True, slots=True)
class Entry:
    """One article as read from a feed or a folder, before collection.

    ``ref`` names it in the fetch record; ``text`` is plain text (the whole article, or a
    feed's summary when ``complete`` is false); ``language`` as declared by the entry or
    its feed (None: unknown); ``problem`` why it cannot be collected (a bad record)."""

    ref: str
    title: str
    text: str
    url: str | None = None
    published: dt.datetime | None = None
    language: str | None = None
    complete: bool = True
    problem: str | None = None

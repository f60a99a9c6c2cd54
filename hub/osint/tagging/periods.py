"""The incident's month (``YYYY-MM``) from the dates a text gives, against its publication.

Absolute dates come from the language's patterns (``12 March 2024``, ``March 2024``, ``le
12 mars``, ``en marzo de 2024``, ``2024-03-12``) with month names from babel (CLDR);
a month without a year is the last such month on or before publication. Relative dates
(``yesterday``, ``last month``, ``on Tuesday``, ``le mois dernier``, ``el pasado martes``)
are resolved against the publication date. A year alone gives no month.

When a text has several dates, those in sentences about the incident itself (a raid, a
rescue, a report of something seen) come first, and those about what followed (a trial, a
sentence, a published report) or a long past (``since 2019``) last; ties go to the first
date in the text.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from functools import cache

from .negation import Scope
from .reader import Reading
from .tags import Tag
from .vocabulary import Vocabulary

__all__ = ["month_names", "period_tag"]

_ABSOLUTE = 0.85
_RELATIVE = 0.75


@dataclass(frozen=True, slots=True)
class _Date:
    year: int
    month: int
    start: int  # tokens
    end: int
    confidence: float


@cache
def month_names(language: str) -> dict[str, int]:
    """Folded month names (wide and abbreviated, babel's CLDR data) -> 1..12."""
    from babel.dates import get_month_names

    from .text import fold

    names: dict[str, int] = {}
    for width in ("wide", "abbreviated"):
        for context in ("format", "stand-alone"):
            for number, name in get_month_names(width, context, locale=language).items():
                names[fold(str(name)).rstrip(".")] = int(number)
    names.setdefault("sept", 9)
    return names


def _shift(day: dt.date, *, days: int = 0, weeks: int = 0, months: int = 0,
           years: int = 0) -> tuple[int, int]:
    moved = day + dt.timedelta(days=days, weeks=weeks)
    index = moved.year * 12 + (moved.month - 1) + months + 12 * years
    return index // 12, index % 12 + 1


def _absolute(reading: Reading, vocab: Vocabulary, published: dt.date) -> list[_Date]:
    from .text import fold

    names = month_names(vocab.language)
    doc = reading.doc
    found: list[_Date] = []
    taken: list[tuple[int, int]] = []
    for pattern in vocab.date_patterns:
        for match in pattern.finditer(reading.text):
            if any(s <= match.start() < e for s, e in taken):
                continue
            groups = match.groupdict()
            month_text = groups.get("month")
            if month_text is None:
                continue
            if month_text.isdigit():
                month = int(month_text)
            else:
                month = names.get(fold(month_text).rstrip("."), 0)
                if month_text[:1].islower() and vocab.language == "en":
                    month = 0  # English month names are capitalised ("may" is a verb)
            if not 1 <= month <= 12:
                continue
            year_text = groups.get("year")
            if year_text:
                year = int(year_text)
            else:
                year = published.year if month <= published.month else published.year - 1
            if (year, month) > (published.year, published.month):
                continue  # a date after publication is planned, not the incident's
            span = doc.char_span(match.start(), match.end(), alignment_mode="expand")
            if span is None:
                continue
            taken.append((match.start(), match.end()))
            found.append(_Date(year, month, span.start, span.end,
                               _ABSOLUTE if year_text else _ABSOLUTE - 0.1))
    return found


def _relative(reading: Reading, vocab: Vocabulary, published: dt.date) -> list[_Date]:
    found = []
    for hit in reading.found("relative_date"):
        offset = vocab.relative_dates.get(hit.key)
        if offset is None:
            continue
        year, month = _shift(published, **offset)
        found.append(_Date(year, month, hit.start, hit.end, _RELATIVE))
    for hit in reading.found("weekday"):
        day = vocab.weekdays.get(hit.key)
        if day is None:
            continue
        back = (published.weekday() - day) % 7 or 7  # the last such day before publication
        year, month = _shift(published, days=-back)
        found.append(_Date(year, month, hit.start, hit.end, _RELATIVE - 0.1))
    return found


def period_tag(reading: Reading, vocab: Vocabulary, scope: Scope,
               published: dt.date) -> Tag | None:
    """The incident's month: the latest date of the sentences that tell of the incident (a
    raid, a rescue, an escape, a return), else the latest other date that is not of a trial
    or a report; with none, the publication month (the exploitation is told as ongoing),
    unless the text dates things by the year only ("in 2024": no month)."""
    dates = [d for d in _absolute(reading, vocab, published) + _relative(
        reading, vocab, published) if not scope.negated(d.start, d.end)]
    event_sentences = {reading.sentence_of[h.start] for h in reading.found("event")}
    later_sentences = {reading.sentence_of[h.start] for h in reading.found("later")}

    def kind(date: _Date) -> int:
        sentence = reading.sentence_of[date.start]
        if sentence in later_sentences:
            return 2
        return 0 if sentence in event_sentences else 1

    for wanted in (0, 1):
        found = [d for d in dates if kind(d) == wanted]
        if found:
            best = max(found, key=lambda d: (d.year, d.month, -d.start))
            agreeing = sum(1 for d in found if (d.year, d.month) == (best.year, best.month))
            confidence = min(0.95, best.confidence + 0.05 * (agreeing - 1) - 0.1 * wanted)
            return Tag(field="incident_period", code=f"{best.year:04d}-{best.month:02d}",
                       confidence=round(confidence, 4),
                       evidence=(reading.evidence(best.start, best.end),))
    if _YEAR.search(reading.text) and not dates:
        return None
    return Tag(field="incident_period", code=f"{published.year:04d}-{published.month:02d}",
               confidence=_ONGOING, evidence=())


_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
# the publication month of an item that dates nothing: right about this often on dev
_ONGOING = 0.6

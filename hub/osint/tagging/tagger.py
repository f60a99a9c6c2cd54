"""The tagger: build once, then tag any number of items.

::

    tagger = Tagger()                       # loads py3langid; each language on first use
    tagging = tagger.tag(text, language="en", published=dt.date(2024, 3, 15), title=...)
    tagging.relevance.relevant, tagging.of("location"), tagging.codes("exploitation_type")

The path of one item: identify its language (:mod:`language`) -> read it once (tokens,
sentences, every phrase: :mod:`reader`) -> labels and relevance (:mod:`labels`) ->
locations and roles (:mod:`routes`) -> ages, age group, gender (:mod:`demographics`) ->
incident month (:mod:`periods`) -> tags under ``min_confidence`` dropped. An irrelevant
item, or one in an unsupported language, has no tags.

A tagger is not thread-safe while a language is being loaded; build it (or call
:meth:`Tagger.load`) before sharing it between threads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from .demographics import age_tags, gender_tags
from .labels import implied_tags, label_tags, negated_types, relevance
from .language import LanguageIdentifier
from .lexicon import SUPPORTED_LANGUAGES
from .negation import Scope
from .periods import period_tag
from .routes import location_tags
from .tags import Relevance, Tag, Tagging
from .taxonomy import FIELDS
from .vocabulary import Vocabulary

__all__ = ["Tagger"]


class Tagger:
    """Suggests taxonomy tags for news articles and crowd reports, locally.

    ``min_confidence`` is the confidence under which a tag is not suggested (0.5: a tag is
    kept when it is more likely right than wrong, by the development corpus).
    """

    def __init__(self, *, min_confidence: float = 0.5,
                 languages: Iterable[str] = ()) -> None:
        if not 0 <= min_confidence <= 1:
            raise ValueError("min_confidence must lie in [0, 1]")
        self.min_confidence = min_confidence
        self._identifier = LanguageIdentifier()
        self._vocabularies: dict[str, Vocabulary] = {}
        self.load(*languages)

    def load(self, *languages: str) -> None:
        """Build the vocabularies of these languages now (all supported ones if none is
        named) rather than on first use."""
        for language in languages or SUPPORTED_LANGUAGES:
            self._vocabulary(language)

    def _vocabulary(self, language: str) -> Vocabulary:
        vocab = self._vocabularies.get(language)
        if vocab is None:
            vocab = self._vocabularies[language] = Vocabulary(language)
        return vocab

    def tag(self, text: str, *, language: str, published: dt.date,
            title: str = "") -> Tagging:
        """The tags of one item: ``text`` (the body), in the declared ``language``,
        published on ``published`` (relative dates resolve against it)."""
        check = self._identifier.check(f"{title}\n{text}" if title else text, language)
        if not check.supported or check.used is None:
            return Tagging(language=check,
                           relevance=Relevance(relevant=False, confidence=0.0))
        vocab = self._vocabulary(check.used)
        reading = vocab.reader.read(text, title)
        scope = Scope(reading, vocab.lexicon.negation.window)
        labels = label_tags(reading, vocab, scope)
        judged = relevance(reading, vocab, scope, labels)
        if not judged.relevant:
            return Tagging(language=check, relevance=judged)
        tags: list[Tag] = implied_tags([*labels, *location_tags(reading, vocab, scope),
                                        *age_tags(reading, vocab, scope),
                                        *gender_tags(reading, vocab, scope)],
                                       denied=negated_types(reading, vocab, scope))
        period = period_tag(reading, vocab, scope, published)
        if period is not None:
            tags.append(period)
        order = {field: i for i, field in enumerate(FIELDS)}
        kept = sorted((t for t in tags if t.confidence >= self.min_confidence),
                      key=lambda t: (order[t.field], -t.confidence, t.code))
        return Tagging(language=check, relevance=judged, tags=tuple(kept))

"""Reading a text once: spaCy's blank pipeline (tokenizer, sentencizer) and one phrase matcher.

Each supported language has a :class:`Reader` built once from the tagger's vocabulary:
groups of phrases (place names, label cues, negation triggers, route cues...). Reading an
item tokenises title and body together, folds every token (case and accents, see
:func:`text.fold`), splits sentences (at full stops and at line breaks) and finds every
phrase of every group in one pass of spaCy's ``PhraseMatcher``; the other modules only look
up what was found. Nothing here is downloaded: ``spacy.blank`` needs no trained model.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import spacy
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span

from .tags import Evidence
from .text import fold, same_length_clean

__all__ = ["Hit", "Reader", "Reading"]

TITLE_GAP = "\n\n"


@dataclass(frozen=True, slots=True)
class Hit:
    """A phrase of a group found at tokens ``[start, end)``; ``key`` is its folded text."""

    group: str
    start: int
    end: int
    key: str


@dataclass(slots=True)
class Reading:
    """One item as read: tokens, sentences, and the phrases found, by group."""

    doc: Doc
    text: str
    title_length: int
    sentence_of: list[int]
    sentences: list[Span]
    norms: list[str]
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    # written without capitals (as many crowd reports are): names may be lower case
    informal: bool = False
    _ends: dict[str, dict[int, list[Hit]]] = field(default_factory=dict)

    def found(self, group: str) -> list[Hit]:
        """The hits of a group, in text order."""
        return self.hits.get(group, [])

    def ending_at(self, group: str, token: int) -> list[Hit]:
        """Hits of ``group`` whose last token is ``token - 1`` (right before ``token``)."""
        index = self._ends.get(group)
        if index is None:
            index = defaultdict(list)
            for hit in self.found(group):
                index[hit.end].append(hit)
            self._ends[group] = index
        return index.get(token, [])

    def starting_at(self, group: str, token: int) -> list[Hit]:
        """Hits of ``group`` that begin at ``token``."""
        hits = self.found(group)
        i = bisect.bisect_left([h.start for h in hits], token)
        out = []
        while i < len(hits) and hits[i].start == token:
            out.append(hits[i])
            i += 1
        return out

    def in_sentence(self, group: str, sentence: int) -> list[Hit]:
        """The hits of a group within one sentence."""
        sent = self.sentences[sentence]
        return [h for h in self.found(group) if sent.start <= h.start < sent.end]

    def evidence(self, start: int, end: int) -> Evidence:
        """The evidence of tokens ``[start, end)``: their characters in the title or the
        body, their text and their sentence."""
        doc = self.doc
        first, last = doc[start], doc[end - 1]
        begin, finish = first.idx, last.idx + len(last.text)
        sent = self.sentences[self.sentence_of[start]]
        sentence = sent.text.strip()
        if begin < self.title_length:
            return Evidence(part="title", start=begin, end=finish,
                            text=self.text[begin:finish], sentence=sentence)
        offset = self.title_length + len(TITLE_GAP) if self.title_length else 0
        return Evidence(part="text", start=begin - offset, end=finish - offset,
                        text=self.text[begin:finish], sentence=sentence)


class Reader:
    """The pipeline and matcher of one language (build once: adding ~25,000 phrases takes
    about a second)."""

    def __init__(self, language: str, vocabulary: Mapping[str, Iterable[str]],
                 names: Mapping[str, Collection[str]] | None = None) -> None:
        """``vocabulary``: phrase groups for the phrase matcher; ``names``: groups of keys
        (:func:`text.squash`) looked up over every run of up to eight tokens: the
        gazetteer's ~50,000 place names, which as matcher patterns would take seconds to
        build."""
        self.language = language
        self._names = {group: frozenset(keys) for group, keys in (names or {}).items()}
        self._longest = 8
        self.nlp = spacy.blank(language)
        self._sentencizer = self.nlp.add_pipe("sentencizer")
        self._matcher = PhraseMatcher(self.nlp.vocab, attr="NORM")
        # phrase -> its key (the folded tokens joined by spaces), for the payload tables
        self.keys: dict[str, str] = {}
        docs: dict[str, Doc] = {}
        wanted = sorted({p for phrases in vocabulary.values() for p in phrases if p.strip()})
        tokenizer: Any = self.nlp.tokenizer
        special = tokenizer.rules or {}
        # a plain word is one token (unless the tokenizer has an exception for it): making
        # its Doc directly is ten times faster than tokenising ~20,000 city names
        plain = [p for p in wanted if p.isalpha() and p not in special]
        other = [p for p in wanted if not (p.isalpha() and p not in special)]
        for phrase in plain:
            docs[phrase] = self._fold(Doc(self.nlp.vocab, words=[phrase]))
        # an elided article at a phrase's end ("l'", "originaires d'") is a token of its
        # own only before a word: tokenise the phrase with a word after it, then drop it
        elided = {p for p in other if p.endswith(("'", "\u2019"))}
        for phrase, doc in zip(other, tokenizer.pipe(
                same_length_clean(p + "a" if p in elided else p) for p in other), strict=True):
            if phrase in elided and len(doc) > 1 and doc[-1].text == "a":
                doc = Doc(self.nlp.vocab, words=[t.text for t in doc[:-1]],
                          spaces=[bool(t.whitespace_) for t in doc[:-1]])
            docs[phrase] = self._fold(doc)
        for phrase, doc in docs.items():
            self.keys[phrase] = " ".join(t.norm_ for t in doc)
        for group, phrases in vocabulary.items():
            patterns = [docs[p] for p in sorted(set(phrases)) if p in docs]
            if patterns:
                self._matcher.add(group, patterns)

    @staticmethod
    def _fold(doc: Doc) -> Doc:
        for token in doc:
            token.norm_ = fold(token.text)
        return doc

    def key(self, phrase: str) -> str:
        """The folded form under which a phrase is found (its tokens' folded texts joined
        by spaces)."""
        known = self.keys.get(phrase)
        if known is not None:
            return known
        return " ".join(fold(t.text) for t in self.nlp.make_doc(same_length_clean(phrase)))

    def read(self, text: str, title: str = "") -> Reading:
        """Tokenise, fold, split into sentences and match every group, once."""
        title = title.replace("\r", " ").replace("\n", " ")  # same length: offsets hold
        whole = f"{title}{TITLE_GAP}{text}" if title else text
        doc = self._fold(self.nlp.make_doc(same_length_clean(whole)))
        self._sentencizer(doc)
        for i in range(1, len(doc)):  # a line break ends a sentence (titles, list items)
            if "\n" in doc[i - 1].text_with_ws[len(doc[i - 1].text):] or \
                    (doc[i - 1].is_space and "\n" in doc[i - 1].text):
                doc[i].is_sent_start = True
        sentences = list(doc.sents)
        sentence_of = [0] * len(doc)
        for n, sent in enumerate(sentences):
            for i in range(sent.start, sent.end):
                sentence_of[i] = n
        norms = [t.norm_ for t in doc]
        strings = self.nlp.vocab.strings
        hits: dict[str, list[Hit]] = defaultdict(list)
        for match_id, start, end in self._matcher(doc):
            group = strings[match_id]
            hits[group].append(Hit(group, start, end, " ".join(norms[start:end])))
        if self._names:
            self._find_names(norms, hits)
        for found in hits.values():
            found.sort(key=lambda h: (h.start, -h.end))
        return Reading(doc=doc, text=whole, title_length=len(title),
                       sentence_of=sentence_of, sentences=sentences, norms=norms,
                       hits=dict(hits), informal=self._informal(doc))

    def _find_names(self, norms: list[str], hits: dict[str, list[Hit]]) -> None:
        """Every run of tokens, beginning and ending on a letter or digit, whose squashed
        text is a key of a name group."""
        squashed = ["".join(ch for ch in norm if ch.isalnum()) for norm in norms]
        count = len(norms)
        for start in range(count):
            if not squashed[start]:
                continue
            key = ""
            for end in range(start, min(count, start + self._longest)):
                if not squashed[end]:
                    if norms[end].strip() in ("", ",", ";", ".", "(", ")"):
                        break  # a name does not run over a comma or a full stop
                    continue
                key += squashed[end]
                for group, keys in self._names.items():
                    if key in keys:
                        hits[group].append(Hit(group, start, end + 1, key))

    @staticmethod
    def _informal(doc: Doc) -> bool:
        """Most sentences begin in lower case, or hardly a word inside them is capitalised:
        names cannot be told by their capitals."""
        starts = [t for t in doc if t.is_sent_start and t.is_alpha]
        inner = [t for t in doc if not t.is_sent_start and t.is_alpha and len(t) > 1]
        lower_starts = sum(t.text[0].islower() for t in starts)
        capitals = sum(t.text[0].isupper() for t in inner)
        return bool(starts) and (lower_starts * 2 > len(starts)
                                 or capitals < max(1, len(inner) // 50))

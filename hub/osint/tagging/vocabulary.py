"""One language's vocabulary: every phrase group the reader looks for, and what each means.

The reader finds phrases by group; the payload tables here say, for a phrase's folded key,
which codes it suggests and how strongly (labels, relevance), which gender it names, or
which date offset it stands for. Groups::

    place, blocked                       gazetteer surfaces, phrases that name no place
    label                                classified labels -> (field, code, weight)
    trafficking, incident, off_topic,    relevance signals -> weight
    not_incident
    neg_before, neg_after, speculation,  negation (NegEx-style)
    terminator
    origin, transit, destination,        route cues; "in X" (locative) takes its role
    locative                             from origin_verb or destination_verb; agency,
                                         linkers, not_route, no_route
    victim, perpetrator, perpetrator_verb, gender -> code, minor, adult
    context_transport, context_recruitment, lure
    determiner, conjunction
    relative_date -> offset, weekday -> day, last_word, event, later
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass

from .gazetteer import Gazetteer, Place
from .lexicon import Lexicon, expand, lexicon
from .reader import Reader
from .text import squash

__all__ = ["Suggestion", "Vocabulary"]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A label phrase's meaning: a field's code, and the weight of the phrase alone."""

    field: str
    code: str
    weight: float


def _all(phrases: list[str]) -> list[str]:
    return [each for phrase in phrases for each in expand(phrase)]


class Vocabulary:
    """The reader and the payload tables of one language (build once, a few seconds)."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.lexicon: Lexicon = lexicon(language)
        self.gazetteer = Gazetteer(language)
        lex = self.lexicon
        groups: dict[str, list[str]] = defaultdict(list)
        label_phrases: list[tuple[str, Suggestion]] = []
        for field in ("exploitation_type", "recruitment", "transport", "control"):
            for code, weighted in getattr(lex.labels, field).items():
                for weight, phrases in weighted.items():
                    for phrase in _all(phrases):
                        label_phrases.append((phrase, Suggestion(field, code, weight)))
        groups["label"] = [p for p, _ in label_phrases]
        for n, pair in enumerate(lex.pairs):
            groups[f"pair_a:{n}"] = _all(pair.a)
            groups[f"pair_b:{n}"] = _all(pair.b)
        relevance_phrases: dict[str, list[tuple[str, float]]] = {}
        for group in ("trafficking", "incident", "off_topic", "not_incident"):
            weighted = getattr(lex.relevance, group)
            relevance_phrases[group] = [(p, w) for w, ps in weighted.items() for p in _all(ps)]
            groups[group] = [p for p, _ in relevance_phrases[group]]
        neg = lex.negation
        groups["neg_before"] = _all(neg.before)
        groups["neg_after"] = _all(neg.after)
        groups["speculation"] = _all(neg.speculation)
        groups["terminator"] = _all(neg.terminators)
        roles = lex.roles
        for group in ("origin", "transit", "destination", "agency", "not_route", "linkers",
                      "no_route", "intended", "arrival", "land", "border", "police", "domestic"):
            groups[group] = _all(getattr(roles, group))
        groups["possessive"] = _all(roles.possessive)
        groups["locative"] = _all(roles.place)  # "in", "at": a role from the verb
        groups["origin_verb"] = _all(roles.origin_verbs)
        groups["destination_verb"] = _all(roles.destination_verbs)
        people = lex.people
        groups["victim"] = _all(people.victims)
        groups["perpetrator"] = _all(people.perpetrators)
        groups["perpetrator_verb"] = _all(people.perpetrator_verbs)
        groups["perpetrator_action"] = _all(people.perpetrator_actions)
        groups["passive"] = _all(people.passive)
        groups["participle_after"] = _all(people.participle_after)
        gender_phrases = [(p, code) for code, ps in people.gender.items() for p in _all(ps)]
        groups["gender"] = [p for p, _ in gender_phrases]
        groups["minor"] = _all(people.minor)
        groups["adult"] = _all(people.adult)
        groups["care"] = _all(people.care)
        groups["context_transport"] = _all(lex.context.transport)
        groups["context_recruitment"] = _all(lex.context.recruitment)
        groups["lure"] = _all(lex.context.lure)
        groups["determiner"] = _all(lex.determiners)
        groups["conjunction"] = _all(lex.conjunctions)
        dates = lex.dates
        relative = [(p, offset) for phrase, offset in dates.relative.items()
                    for p in expand(phrase)]
        groups["relative_date"] = [p for p, _ in relative]
        groups["weekday"] = list(dates.weekdays)
        groups["last_word"] = _all(dates.last)
        groups["event"] = _all(dates.event)
        groups["later"] = _all(dates.later)
        # place key (text.squash) -> candidates, and the forms as written (abbreviations
        # match only as written)
        self.places: dict[str, tuple[Place, ...]] = {}
        self.place_forms: dict[str, set[str]] = defaultdict(set)
        for surface, found in self.gazetteer.surfaces():
            place_key = squash(surface)
            known = self.places.get(place_key, ())
            self.places[place_key] = known + tuple(p for p in found if p not in known)
            self.place_forms[place_key].add(surface.replace(" ", ""))
        blocked = {squash(p) for p in self.gazetteer.blocked_phrases()}
        self.reader = Reader(language, groups, names={"place": self.places.keys(),
                                                      "blocked": blocked})

        key = self.reader.key
        self.labels: dict[str, list[Suggestion]] = defaultdict(list)
        for phrase, suggestion in label_phrases:
            suggested = self.labels[key(phrase)]
            if suggestion not in suggested:
                suggested.append(suggestion)
        self.relevance: dict[str, dict[str, float]] = {
            group: {key(p): w for p, w in pairs} for group, pairs in relevance_phrases.items()
        }
        self.gender: dict[str, str] = {key(p): code for p, code in gender_phrases}
        self.weak_gender = frozenset(key(p) for p in _all(people.weak_gender))
        self.relative_dates: dict[str, dict[str, int]] = {key(p): o for p, o in relative}
        self.weekdays: dict[str, int] = {key(p): d for p, d in dates.weekdays.items()}
        self.movement = frozenset(key(w) for w in roles.movement)
        self.border_words = frozenset(key(w) for w in _all(roles.border))
        self.sequence = frozenset(key(w) for w in _all(roles.sequence))
        self.passage = frozenset(key(w) for w in _all(roles.passage))
        self.age_patterns = tuple(re.compile(p, re.IGNORECASE) for p in lex.ages)
        self.date_patterns = tuple(re.compile(p, re.IGNORECASE) for p in dates.patterns)

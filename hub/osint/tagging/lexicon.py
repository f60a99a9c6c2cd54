"""The tagger's data files: lexicons per language, countries and places, as pydantic models.

The files are YAML under ``hub/osint/tagging/data/`` (shipped in the wheel) and load through
:mod:`hub.yamlfile`, so a mistake names its file and line. A phrase may use braces for
alternatives: ``forced {labour,labor}`` is two phrases, ``{sexually ,}exploited`` two more.
Weights are the share of items, in the development corpus, where a phrase alone was right:
they become the confidence of the tags the phrase suggests (see :mod:`labels`).

::

    en.yaml, fr.yaml, es.yaml   Lexicon: labels, relevance, negation, route cues, people,
                                ages, relative dates (one file per supported language)
    countries.yaml              Countries: demonyms and the names CLDR does not give
    places.yaml                 Places: extra places, cities to skip or prefer, blocked words
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hub.yamlfile import load_model

from .taxonomy import CONTROL, EXPLOITATION_TYPES, GENDERS, RECRUITMENT, TRANSPORT

__all__ = [
    "DATA",
    "SUPPORTED_LANGUAGES",
    "Countries",
    "Lexicon",
    "Places",
    "RelevanceModel",
    "countries",
    "expand",
    "lexicon",
    "places",
    "relevance_model",
]

DATA = Path(__file__).parent / "data"
SUPPORTED_LANGUAGES = ("en", "fr", "es")

Weight = Annotated[float, Field(gt=0, le=1)]
# weight -> phrases
Weighted = dict[Weight, list[str]]

_BRACES = re.compile(r"\{([^{}]*)\}")


def expand(phrase: str) -> list[str]:
    """Every phrase that ``phrase``'s brace alternatives stand for, spaces normalised.

    >>> expand("forced {labour,labor}")
    ['forced labour', 'forced labor']
    >>> expand("{sexually ,}exploited")
    ['sexually exploited', 'exploited']
    """
    match = _BRACES.search(phrase)
    if match is None:
        return [" ".join(phrase.split())]
    out: list[str] = []
    for option in match[1].split(","):
        out += expand(phrase[:match.start()] + option + phrase[match.end():])
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Labels(_Strict):
    """Phrases suggesting each code of the classified fields, by weight."""

    exploitation_type: dict[str, Weighted]
    recruitment: dict[str, Weighted]
    transport: dict[str, Weighted]
    control: dict[str, Weighted]

    @model_validator(mode="after")
    def _known_codes(self) -> Labels:
        closed = {"exploitation_type": EXPLOITATION_TYPES, "recruitment": RECRUITMENT,
                  "transport": TRANSPORT, "control": CONTROL}
        bad = [f"{field}.{code}" for field, allowed in closed.items()
               for code in getattr(self, field) if code not in allowed]
        if bad:
            raise ValueError(f"codes outside the HTCDS lists: {', '.join(bad)}")
        return self


class Pair(_Strict):
    """A code suggested by two words near each other in a sentence, in either order (wages
    ... nothing; passports ... kept): what phrase lists cannot enumerate."""

    field: str
    code: str
    weight: Weight
    window: int = Field(default=5, ge=1, le=12)
    a: list[str]
    b: list[str]


class Context(_Strict):
    """Words that, in the same sentence, confirm a field's cue is about that field (a boat
    that carried people, not one they worked on); a cue without one counts for less."""

    transport: list[str] = []
    recruitment: list[str] = []
    control: list[str] = []
    # words of a lure ("promised jobs as maids", "answered nanny adverts"): an exploitation
    # type named next to them may be only the job offered, not what happened
    lure: list[str] = []


class Relevance(_Strict):
    """Signals of a human-trafficking incident, and of the items that only look like one."""

    trafficking: Weighted
    incident: Weighted
    off_topic: Weighted
    not_incident: Weighted


class Negation(_Strict):
    """NegEx-style triggers: ``before`` a cue, ``after`` it, speculation, scope ends."""

    before: list[str]
    after: list[str]
    speculation: list[str]
    terminators: list[str]
    window: int = 6


class Roles(_Strict):
    """Cues of a place's role in the route (each ends right before the place, determiners
    aside), the verbs that give ``in X`` a role, and the words of agencies and events."""

    origin: list[str]
    transit: list[str]
    destination: list[str]
    place: list[str]
    origin_verbs: list[str]
    destination_verbs: list[str]
    agency: list[str]
    # words that tie an agency to a place ("the embassy of Nigeria", "Spain's police")
    linkers: list[str] = []
    not_route: list[str] = []
    # cues right before a place that take it off the route ("extradited to", "a summit in")
    no_route: list[str] = []
    # last words of destination cues that tell of movement ("to", "into", "vers", "hacia"):
    # of several such destinations, all but the last are transit (routes._chain)
    movement: list[str] = []
    # bare origin cues ("from", "depuis"): for victims whose demonym names another
    # country, a country left on the way ("Sudanese men ... a truck from Chad") is a transit
    passage: list[str] = []
    # possessive endings after a place ("from Libya's farms": no origin)
    possessive: list[str] = []
    # conjunctions of a journey's stages ("to Spain, then France", "puis en France"): of
    # two destinations so joined, the first is a transit
    sequence: list[str] = []
    # destination cues of a place only promised or intended ("jobs in"): movement too
    intended: list[str] = []
    # destination cues of an arrival ("landed in", "arrivés à"): movement too, so that of
    # several countries reached, all but the last are transit
    arrival: list[str] = []
    # nouns of a country's land or sea next to a demonym ("the Thai border", "Indonesian
    # waters", "la frontière espagnole"): the demonym names the country, not the victims
    land: list[str] = []
    # of those, the ones of a border: without a route cue ("near the German border") the
    # country is no stage of the route
    border: list[str] = []
    # police words: a city's or country's police ("Cairo police") is the place of a raid
    # when the item names no other destination
    police: list[str] = []
    # a move inside one country with no place named ("from neighbouring states", "to the
    # capital"): the country of destination is also the origin when none is named
    domestic: list[str] = []


class People(_Strict):
    """Nouns of people: who a demonym or an age describes, and how they are told apart."""

    victims: list[str]
    perpetrators: list[str]
    # what is said of perpetrators (arrested, charged), active or passive
    perpetrator_verbs: list[str]
    # what perpetrators do (recruited, forced): a perpetrator's only in the active voice
    perpetrator_actions: list[str] = []
    # auxiliaries of the passive voice ("was recruited": the victim)
    passive: list[str] = []
    # words after a past participle that make it passive ("women forced into", "girls
    # trafficked to"), unlike an active verb with its object ("forced the women")
    participle_after: list[str] = []
    gender: dict[str, list[str]]
    # gender words that alone say little of the victims (pronouns, "a man": often an
    # official or a suspect): they count for a third
    weak_gender: list[str] = []
    minor: list[str]
    adult: list[str]
    # words right before a child who is cared for, not a victim ("help with the couple's
    # children", "garde d'enfants", "cuidar a los niños")
    care: list[str] = []

    @field_validator("gender")
    @classmethod
    def _known_genders(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        bad = sorted(set(value) - set(GENDERS))
        if bad:
            raise ValueError(f"genders outside the HTCDS list: {', '.join(bad)}")
        return value


class Dates(_Strict):
    """Relative date words (resolved against the publication date) and date patterns."""

    # phrase -> offset: {"days": -1} | {"months": -1} | {"years": -1} | {"weeks": -1}
    relative: dict[str, dict[str, int]]
    # phrase -> a weekday, 0 = Monday ("on Tuesday" resolves to the last Tuesday)
    weekdays: dict[str, int] = {}
    # words that make a bare month name ("March") refer to the past or the coming one
    last: list[str] = []
    # regular expressions with groups day/month/year (month: a name or a number)
    patterns: list[str]
    # sentences with these words describe the incident (their dates come first)
    event: list[str] = []
    # sentences with these describe what came after (trials, sentences): their dates last
    later: list[str] = []


class Lexicon(_Strict):
    """One language's lexicon (``data/<language>.yaml``)."""

    language: str
    determiners: list[str]
    conjunctions: list[str]
    labels: Labels
    pairs: list[Pair] = []
    context: Context
    relevance: Relevance
    negation: Negation
    roles: Roles
    people: People
    # regular expressions with a group "age" (and "age2" for a range)
    ages: list[str]
    numbers: dict[str, int] = {}
    dates: Dates


class CountryNames(_Strict):
    """A country's demonyms and extra names in each language."""

    en: list[str] = []
    fr: list[str] = []
    es: list[str] = []
    names: dict[str, list[str]] = {}


class Countries(_Strict):
    """``data/countries.yaml``: alpha-2 code -> demonyms and extra names."""

    countries: dict[str, CountryNames]

    @field_validator("countries")
    @classmethod
    def _alpha2(cls, value: dict[str, CountryNames]) -> dict[str, CountryNames]:
        bad = [code for code in value if not re.fullmatch(r"[A-Z]{2}", code)]
        if bad:
            raise ValueError(f"not ISO 3166-1 alpha-2 codes: {', '.join(bad)}")
        return value


class ExtraPlace(_Strict):
    """A place the gazetteer should know besides the large cities (a region, a small town
    on a known route)."""

    country: str
    names: list[str]


class Places(_Strict):
    """``data/places.yaml``: extra places, names never (or not alone) taken as places."""

    min_population: int = 100_000
    alternate_names_population: int = 500_000
    extra: list[ExtraPlace] = []
    # names that are never places (common words, first names)
    stop: list[str] = []
    # names taken as a place only next to their country ("Victoria, Canada") or when a
    # candidate country is named elsewhere in the item
    ambiguous: list[str] = []
    # name -> country when several cities share it and the population prior is wrong
    prefer: dict[str, str] = {}
    # phrases that contain a country or demonym but name no country (South America)
    blocked: list[str] = []
    # city names that are also common words (small towns of these names are left out)
    common_words: list[str] = []
    # towns of at least this many people are in the gazetteer, those under
    # `min_population` only when their country is named in the item
    town_population: int = 15_000


class RelevanceModel(_Strict):
    """``data/relevance.yaml``: a logistic model of relevance over named signals."""

    bias: float
    weights: dict[str, float]


@cache
def relevance_model() -> RelevanceModel:
    """The relevance model's weights (read once per process)."""
    return load_model(DATA / "relevance.yaml", RelevanceModel)


@cache
def lexicon(language: str) -> Lexicon:
    """The lexicon of a supported language (read once per process)."""
    if language not in SUPPORTED_LANGUAGES:
        raise ValueError(f"no lexicon for language {language!r}")
    return load_model(DATA / f"{language}.yaml", Lexicon)


@cache
def countries() -> Countries:
    """The demonyms and extra country names (read once per process)."""
    return load_model(DATA / "countries.yaml", Countries)


@cache
def places() -> Places:
    """The extra places and the stop-lists (read once per process)."""
    return load_model(DATA / "places.yaml", Places)

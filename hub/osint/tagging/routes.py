"""Locations of the victims' route: which countries, and each one's role in it.

Place names come from the gazetteer (countries, demonyms, cities, regions); a city stands
for its country. A mention gets its role, in this order of precedence:

1. a cue right before it (determiners aside): ``from``/``recruited in`` (origin),
   ``via``/``through`` (transit), ``to``/``exploited in``/``raid in`` (destination), and
   their fr/es equivalents (``originaires de``, ``procedentes de``, ``à destination de``...);
2. a list or an apposition continuing the mention before it (``from Nigeria and Ghana``,
   ``Lagos, Nigeria``);
3. ``in X`` takes its role from the nearest verb before it (``recruited ... in`` origin,
   ``exploited ... in`` destination); with none, the place of an incident (a raid, a rescue)
   is the destination;
4. a demonym describing victims (``Nigerian women``, ``femmes nigérianes``) is the origin.

Not on the route: places that name an agency (``Spanish police``, ``the embassy of
Nigeria``), perpetrators (``Albanian gang``), reports and conferences, and negated or
speculative statements. Ambiguous city names prefer a country named right after them
(``Paris, Texas``) or anywhere in the item, then ``places.yaml: prefer``, then population.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

from .demographics import perpetrator_context
from .gazetteer import Place
from .labels import noisy_or
from .negation import Scope
from .reader import Hit, Reading
from .tags import Evidence, Tag
from .taxonomy import Role
from .text import fold
from .vocabulary import Vocabulary

__all__ = ["location_tags"]

# confidence of a role by how it was found
EXPLICIT = 0.9
LISTED = 0.85
VERB = 0.8
VICTIMS = 0.85
DEMONYM_ALONE = 0.7
INCIDENT_PLACE = 0.65
# a city this large is meant even when a small namesake lies in a country the item names
_BIG_CITY = 1_000_000
UNMARKED = 0.35
_GROUPS: tuple[tuple[str, Role | None], ...] = (
    ("origin", "origin"), ("transit", "transit"), ("destination", "destination"),
    ("no_route", None))


@dataclass(slots=True)
class _Mention:
    start: int
    end: int
    places: tuple[Place, ...]
    country: str | None = None
    confidence: float = 1.0  # of the country
    role: Role | None = None
    role_confidence: float = 0.0
    linked: _Mention | None = None  # the mention this one continues (list, apposition)
    apposition: bool = False
    movement: bool = False  # a destination reached by a movement cue ("to X"), not a stay
    land: Hit | None = None  # "the Thai border": a demonym naming the land, not people
    sequence: bool = False  # linked by a conjunction of stages ("puis en France")
    cue: str = ""  # the key of the route cue that gave the role
    intended: bool = False  # a destination only offered ("jobs in X")

    @property
    def kind(self) -> str:
        return self.places[0].kind

    @property
    def countries(self) -> set[str]:
        return {p.country for p in self.places}


def _spans(reading: Reading) -> list[Hit]:
    """Place hits, longest first where they overlap, none inside a blocked phrase."""
    blocked = reading.found("blocked")
    hits = sorted(reading.found("place"), key=lambda h: (-(h.end - h.start), h.start))
    taken: list[Hit] = []
    used: set[int] = set()
    for hit in hits:
        tokens = set(range(hit.start, hit.end))
        if tokens & used:
            continue
        if any(b.start <= hit.start and hit.end <= b.end for b in blocked):
            continue
        taken.append(hit)
        used |= tokens
    return sorted(taken, key=lambda h: h.start)


def _readable(reading: Reading, vocab: Vocabulary, hit: Hit) -> tuple[Place, ...]:
    """The candidates whose case rule the text keeps. In a text written without capitals,
    countries, demonyms, regions and the larger cities whose names are no common word may
    be in lower case."""
    text = reading.doc[hit.start:hit.end].text
    if hit.end - hit.start > 1 and reading.ending_at("determiner", hit.start + 1):
        text = reading.doc[hit.start + 1:hit.end].text  # "the Netherlands"
    out = []
    for place in vocab.places.get(hit.key, ()):
        if place.case == "proper" and not text[:1].isupper() and not (
                reading.informal and not place.minor and (
                    place.kind != "city" or hit.key not in vocab.gazetteer.common_words)):
            continue
        if place.case == "exact" and text.replace(" ", "") not in vocab.place_forms[hit.key]:
            continue
        out.append(place)
    return tuple(out)


def _skip_left(reading: Reading, token: int, group: str = "determiner") -> int:
    """The token before which a cue must end: ``token`` moved left past determiners."""
    for _ in range(3):
        before = reading.ending_at(group, token)
        if not before:
            break
        token = min(h.start for h in before)
    return token


def _positions(reading: Reading, token: int) -> list[int]:
    """``token`` and the tokens before each determiner in front of it: where a cue may end
    (``to the UK``; ``originaires du Nigeria``, whose ``du`` is also a determiner)."""
    out = [token]
    for _ in range(3):
        before = reading.ending_at("determiner", out[-1])
        if not before:
            break
        out.append(min(h.start for h in before))
    return out


def _cue(reading: Reading, token: int) -> tuple[Role | None, Hit | None]:
    """The longest route cue ending right before ``token`` (determiners aside). A cue of
    group ``no_route`` (``extradited to``, ``a conference in``) has no role."""
    best: tuple[Role | None, Hit | None] = (None, None)
    for position in _positions(reading, token):
        for group, role in _GROUPS:
            for hit in reading.ending_at(group, position):
                if best[1] is None or hit.start < best[1].start or (
                        hit.start == best[1].start and role is None):
                    best = (role, hit)
    return best


def _near(reading: Reading, group: str, start: int, end: int) -> Hit | None:
    """The hit of ``group`` nearest to tokens [start, end), within the sentence, adjacent
    on either side (at most 3 tokens away)."""
    sentence = reading.sentence_of[start]
    best: Hit | None = None
    for hit in reading.found(group):
        if reading.sentence_of[hit.start] != sentence:
            continue
        gap = hit.start - end if hit.start >= end else start - hit.end
        if 0 <= gap <= 3 and (best is None or gap < abs(best.start - end)):
            best = hit
    return best


def _agency(reading: Reading, mention: _Mention) -> bool:
    """``Spanish police``, ``Nigeria's agency``, ``l'ambassade du Nigeria``, ``las
    autoridades españolas``: the place names an agency, not a stage of the route."""
    after = mention.end
    links = reading.starting_at("linkers", after)
    if links:
        after = max(h.end for h in links)
    if reading.starting_at("agency", after):
        return True
    if mention.kind == "demonym" and reading.starting_at("agency", mention.end):
        return True
    before = _skip_left(reading, mention.start, "linkers")
    before = _skip_left(reading, before)
    if before != mention.start or mention.kind == "demonym":
        for hit in reading.ending_at("agency", before):
            if hit.end <= mention.start:
                return True
    return False


def _perpetrators(reading: Reading, mention: _Mention) -> bool:
    """A demonym or country naming perpetrators (``Albanian gang``, ``réseau nigérian``,
    ``three Thai men were arrested``, ``police arrested a Chinese man``, ``a
    Taiwanese-owned longliner``)."""
    if mention.kind not in ("demonym", "country"):
        return False  # a city names no people
    hit = _near(reading, "perpetrator", mention.start, mention.end)
    if hit is not None and abs(hit.start - mention.start) <= 2:
        victim = _near(reading, "victim", mention.start, mention.end)
        if victim is None or abs(hit.start - mention.start) < abs(victim.start - mention.start):
            return True
    person = _near(reading, "victim", mention.start, mention.end) or \
        _near(reading, "gender", mention.start, mention.end)
    if person is None or abs(person.start - mention.start) > 2:
        return False  # not a word describing people: "to Italy", "Spanish police"
    if person.start >= mention.end and any(
            t.is_punct for t in reading.doc[mention.end:person.start]):
        return False  # "via Dubaï, elles affirment": a clause of its own
    if perpetrator_context(reading, min(person.start, mention.start),
                           max(person.end, mention.end)):
        return True
    # "police arrested a Chinese man": the verb right before, determiners or a number aside
    first = min(person.start, mention.start)
    for hit in reading.found("perpetrator_verb"):
        between = reading.doc[hit.end:first] if hit.end <= first else None
        if between is not None and len(between) <= 3 and all(
                t.like_num or reading.ending_at("determiner", t.i + 1) for t in between):
            return True
    return False


def _verb_role(reading: Reading, at: int) -> tuple[Role | None, float]:
    """The role of ``in X`` from the nearest origin or destination verb before it in the
    sentence; else destination if the sentence tells of an incident."""
    sentence = reading.sentence_of[at]
    best: tuple[int, Role] | None = None
    verbs: tuple[tuple[str, Role], ...] = (("origin_verb", "origin"),
                                           ("destination_verb", "destination"))
    for group, role in verbs:
        for hit in reading.found(group):
            if hit.end <= at and reading.sentence_of[hit.start] == sentence and \
                    at - hit.end <= 8 and (best is None or hit.end > best[0]):
                best = (hit.end, role)
    if best is not None:
        return best[1], VERB
    if any(reading.sentence_of[h.start] == sentence for h in reading.found("destination_verb")):
        return "destination", INCIDENT_PLACE
    return "destination", UNMARKED


def _resolve(reading: Reading, vocab: Vocabulary, mentions: list[_Mention]) -> None:
    """Choose each mention's country among its candidates."""
    named = {m.places[0].country for m in mentions
             if len(m.countries) == 1 and not m.places[0].minor}
    for i, mention in enumerate(mentions):
        nxt = mentions[i + 1] if i + 1 < len(mentions) else None
        after = nxt.countries if nxt is not None and nxt.start <= mention.end + 1 else set()
        kept = tuple(p for p in mention.places
                     if not p.minor or p.country in named or p.country in after)
        if not kept:
            continue
        mention.places = kept
        if len(mention.countries) == 1:
            mention.country = mention.places[0].country
            mention.confidence = 0.95 if mention.kind in ("country", "demonym") else 0.9
            continue
        key = _key(reading, mention)
        if nxt is not None and nxt.start == mention.end + 1 and \
                reading.norms[mention.end] == "," and nxt.countries & mention.countries:
            mention.country = sorted(nxt.countries & mention.countries)[0]
            mention.confidence = 0.9
            continue
        inside = [p for p in mention.places if p.country in named]
        top = max(mention.places, key=lambda p: p.population)
        if inside and top.population >= _BIG_CITY and top not in inside and \
                max(p.population for p in inside) * 10 < top.population and \
                "".join(ch for ch in fold(top.name) if ch.isalnum()) == key:
            inside = []  # "via Madrid" of Colombian workers: Spain's capital, not a village
        if inside:
            mention.country = max(inside, key=lambda p: p.population).country
            mention.confidence = 0.85
            continue
        if key in vocab.gazetteer.ambiguous:
            continue
        preferred = vocab.gazetteer.prefer.get(key)
        if preferred in mention.countries:
            mention.country, mention.confidence = preferred, 0.75
            continue
        total = sum(max(p.population, 1) for p in mention.places)
        top = max(mention.places, key=lambda p: p.population)
        mention.country = top.country
        mention.confidence = max(top.population, 1) / total * 0.9


def _key(reading: Reading, mention: _Mention) -> str:
    """The gazetteer key (text.squash) of a mention's words."""
    return "".join(ch for norm in reading.norms[mention.start:mention.end] for ch in norm
                   if ch.isalnum())


def _link(reading: Reading, vocab: Vocabulary, mentions: list[_Mention]) -> None:
    """Mark mentions that continue the one before: ``Lagos, Nigeria`` (apposition) and
    ``Nigeria, Ghana and Togo`` (a list)."""
    for prev, mention in itertools.pairwise(mentions):
        between = reading.norms[prev.end:mention.start]
        if not between:
            continue
        if between == [","] and prev.kind in ("city", "region") and \
                mention.country == prev.country:
            mention.linked, mention.apposition = prev, True
            continue
        if (prev.kind == "demonym") != (mention.kind == "demonym"):
            continue  # "in Leicester, the Romanian lads": a place, then its people
        start = _skip_left(reading, mention.start)
        conj = [h for h in reading.ending_at("conjunction", start) if h.start == prev.end]
        if conj:
            mention.linked = prev
            mention.sequence = any(h.key in vocab.sequence for h in conj)


def _role(reading: Reading, vocab: Vocabulary, mention: _Mention) -> None:
    """Give a mention its role and the confidence of that role (None: not on the route)."""
    role, cue = _cue(reading, mention.start)
    if role == "origin" and reading.starting_at("possessive", mention.end):
        role, cue = None, None  # "testimonies from Libya's farms": no origin
    if cue is not None and role is None:
        mention.role, mention.role_confidence = None, 0.0
        return
    if mention.land is not None and mention.land.key in vocab.border_words and (
            cue is None or cue.key.split()[-1] not in vocab.movement):
        return  # "near the German border": no stage of the route ("to the Thai border" is)
    if role is not None and cue is not None:
        mention.role, mention.role_confidence = role, EXPLICIT
        mention.cue = cue.key
        mention.intended = role == "destination" and bool(reading.ending_at("intended", cue.end))
        mention.movement = role == "destination" and (
            cue.key.split()[-1] in vocab.movement or mention.intended or bool(
                reading.ending_at("arrival", cue.end)))
        return
    if mention.linked is not None and mention.linked.role is not None:
        mention.role = mention.linked.role
        mention.movement = mention.linked.movement
        mention.role_confidence = mention.linked.role_confidence * (
            1.0 if mention.apposition else LISTED / EXPLICIT)
        return
    if mention.land is None and (
            mention.kind == "demonym" or reading.starting_at("victim", mention.end)):
        victim = _near(reading, "victim", mention.start, mention.end)
        if victim is not None:
            mention.role, mention.role_confidence = "origin", VICTIMS
            return
        if mention.kind == "demonym":
            text = reading.doc[mention.start:mention.end].text
            counted = mention.start > 0 and reading.doc[mention.start - 1].like_num
            plural = text.lower().endswith("s") or counted
            mention.role = "origin"
            mention.role_confidence = DEMONYM_ALONE if plural else UNMARKED
            return
    places = [h for p in _positions(reading, mention.start)
              for h in reading.ending_at("locative", p)]
    if places:
        place = min(places, key=lambda h: h.start)
        mention.role, mention.role_confidence = _verb_role(reading, place.start)
        return
    if mention.kind in ("country", "city", "region") or mention.land is not None:
        role_, confidence = _verb_role(reading, mention.start)
        mention.role, mention.role_confidence = role_, min(confidence, UNMARKED)


def location_tags(reading: Reading, vocab: Vocabulary, scope: Scope) -> list[Tag]:
    """One tag per (country, role) of the victims' route, with every supporting mention."""
    mentions = []
    for hit in _spans(reading):
        places = _readable(reading, vocab, hit)
        if places:
            mentions.append(_Mention(hit.start, hit.end, places))
    _resolve(reading, vocab, mentions)
    mentions = [m for m in mentions if m.country is not None]
    _link(reading, vocab, mentions)
    kept: list[_Mention] = []
    policed: list[_Mention] = []
    for mention in mentions:
        if mention.kind == "demonym":
            land = reading.starting_at("land", mention.end) or reading.ending_at(
                "land", mention.start)
            mention.land = max(land, key=lambda h: h.end - h.start) if land else None
        if mention.apposition and mention.linked in kept:
            _role(reading, vocab, mention)
            kept.append(mention)
            continue
        if _agency(reading, mention):
            if _police(reading, mention) and scope.stated(mention.start, mention.end):
                policed.append(mention)
            continue
        if mention.land is None and _perpetrators(reading, mention):
            continue
        if not scope.stated(mention.start, mention.end):
            continue
        _role(reading, vocab, mention)
        if mention.role is None:
            continue
        if mention.role_confidence < EXPLICIT and _not_route(reading, mention):
            continue
        kept.append(mention)
    _chain(kept)
    _stages(kept)
    _passage(vocab, kept)
    _raid_place(kept)
    _police_place(kept, policed)
    tags = _merge(reading, kept)
    if not any(t.role == "destination" for t in tags):
        tags += _local_place(reading, vocab, scope)
    return tags + _domestic(reading, scope, tags)


LOCAL_PLACE = 0.6


def _local_place(reading: Reading, vocab: Vocabulary, scope: Scope) -> list[Tag]:
    """With no destination made out, a small town (by far the largest of its name) right
    after ``in``, ``at``, ``outside`` (``a strawberry farm outside Hereford``) is where the
    victims were seen or exploited: the destination. Small towns are otherwise taken only
    when their country is named."""
    for hit in _spans(reading):
        found = sorted(vocab.places.get(hit.key, ()), key=lambda p: -p.population)
        if not found or not all(p.minor and p.kind == "city" for p in found) or \
                hit.key in vocab.gazetteer.ambiguous:
            continue
        if len(found) > 1 and found[0].population < 2 * found[1].population:
            continue  # towns of one name in two countries, of like size
        if not reading.doc[hit.start].text[:1].isupper() and not reading.informal:
            continue
        if not any(reading.ending_at("locative", p) for p in _positions(reading, hit.start)):
            continue
        if not scope.stated(hit.start, hit.end):
            continue
        return [Tag(field="location", code=found[0].country, confidence=LOCAL_PLACE,
                    evidence=(reading.evidence(hit.start, hit.end),), role="destination")]
    return []


def _police(reading: Reading, mention: _Mention) -> bool:
    """``Cairo police``, ``la police gabonaise``, ``Guyana Police Force``: a place's police
    (the police word within two tokens after, or right before a demonym)."""
    sentence = reading.sentence_of[mention.start]
    for hit in reading.found("police"):
        if reading.sentence_of[hit.start] != sentence:
            continue
        if 0 <= hit.start - mention.end <= 2:
            return True
        if mention.kind == "demonym" and 0 <= mention.start - hit.end <= 1:
            return True
    return False


def _police_place(kept: list[_Mention], policed: list[_Mention]) -> None:
    """With no destination made out, the place whose police freed or arrested is where
    the raid took place: the destination (``Cairo police arrested three brokers``)."""
    if not policed or any(m.role == "destination" and m.role_confidence * m.confidence >= 0.5
                          for m in kept):
        return
    first = policed[0]
    if first.kind == "demonym" and any(m.role == "origin" and m.country == first.country
                                       for m in kept):
        return  # "la police gabonaise" of victims from Gabon: their home, not the raid
    first.role, first.role_confidence = "destination", INCIDENT_PLACE
    kept.append(first)


def _domestic(reading: Reading, scope: Scope, tags: list[Tag]) -> list[Tag]:
    """``brought to Kathmandu from neighbouring districts``, ``a la capital``: a move
    inside one country; with only a destination named, it is the origin too (and with only
    an origin named, the destination too)."""
    hits = [h for h in reading.found("domestic") if scope.stated(h.start, h.end)]
    if not hits:
        return []
    origins = [t for t in tags if t.role == "origin"]
    destinations = [t for t in tags if t.role == "destination"]
    if bool(origins) == bool(destinations):
        return []
    best = max(origins or destinations, key=lambda t: t.confidence)
    return [Tag(field="location", code=best.code,
                role="destination" if origins else "origin",
                confidence=round(min(best.confidence, 0.6), 4),
                evidence=(reading.evidence(hits[0].start, hits[0].end),))]


def _chain(mentions: list[_Mention]) -> None:
    """``flew to Dubai, then on to Baghdad``: of the countries reached by movement cues, all
    but the last are transit, unless the victims also stayed or were exploited there (or
    the countries are listed together: ``to Italy and Spain``)."""
    moved: dict[str, int] = {}
    stayed: set[str] = set()
    offered = {m.country for m in mentions if m.intended}
    for mention in mentions:
        if mention.role != "destination" or mention.country is None:
            continue
        if mention.movement and mention.linked is None:
            moved[mention.country] = max(moved.get(mention.country, -1), mention.start)
        elif not mention.movement and mention.role_confidence >= VERB:
            stayed.add(mention.country)  # held, exploited, found there ("near X" is no stay)
    # the last country reached; none when the victims were offered jobs in one country
    # and held or exploited in another ("jobs in Thailand ... a compound in Laos")
    lured = bool(stayed - set(moved)) and bool(offered & set(moved))
    if len(moved) < 2 and not lured:
        return
    last = "" if lured else max(moved, key=lambda c: moved[c])
    for mention in mentions:
        if mention.movement and mention.country in moved and mention.country != last \
                and mention.country not in stayed:
            mention.role = "transit"


def _passage(vocab: Vocabulary, mentions: list[_Mention]) -> None:
    """``31 Sudanese men ... a truck across the desert from Chad``: a country the victims
    came from by a bare ``from`` is a transit when their demonym names another country of
    origin and they went on to a third (the destination)."""
    people = {m.country for m in mentions if m.role == "origin" and m.kind == "demonym"
              and m.land is None and m.cue == ""}
    if not people:
        return
    ends = {m.country for m in mentions if m.role == "destination"
            and m.role_confidence * m.confidence >= 0.5}
    for mention in mentions:
        if mention.role == "origin" and mention.cue in vocab.passage and \
                mention.kind != "demonym" and mention.country not in people and \
                ends - {mention.country} - people:
            mention.role = "transit"


def _stages(mentions: list[_Mention]) -> None:
    """``arrivés en Espagne puis en France``: of two destinations joined as stages of a
    journey, the first is a transit (unless it is also the last country named so)."""
    last = {m.country for m in mentions if m.sequence and m.role == "destination"}
    for mention in mentions:
        prev = mention.linked
        if mention.sequence and prev is not None and mention.role == "destination" and \
                prev.role == "destination" and prev.country != mention.country and \
                prev.country not in last:
            prev.role = "transit"


def _raid_place(mentions: list[_Mention]) -> None:
    """With no destination made out, the place where things happened (``in X`` without a
    verb, a raid's place) is the destination."""
    best = 0.0
    for mention in mentions:
        if mention.role == "destination":
            best = max(best, mention.role_confidence * mention.confidence)
    if best >= 0.5:
        return
    weak = [m for m in mentions if m.role == "destination" and m.role_confidence <= UNMARKED]
    if weak:
        weak[0].role_confidence = INCIDENT_PLACE


def _not_route(reading: Reading, mention: _Mention) -> bool:
    """A place named for a report, a conference, a statement: within 4 tokens before."""
    sentence = reading.sentence_of[mention.start]
    return any(reading.sentence_of[h.start] == sentence and 0 <= mention.start - h.end <= 4
               for h in reading.found("not_route"))


def _merge(reading: Reading, mentions: list[_Mention]) -> list[Tag]:
    grouped: dict[tuple[str, Role], list[_Mention]] = defaultdict(list)
    for mention in mentions:
        if mention.country is not None and mention.role is not None:
            grouped[(mention.country, mention.role)].append(mention)
    best_role: dict[str, float] = defaultdict(float)
    best_places: dict[str, set[str]] = defaultdict(set)
    scores: dict[tuple[str, Role], float] = {}
    for (country, role), found in grouped.items():
        score = noisy_or(m.role_confidence * m.confidence for m in found)
        scores[(country, role)] = score
        if score > best_role[country]:
            best_role[country] = score
            best_places[country] = {_key(reading, m) for m in found}
    tags = []
    for (country, role), found in grouped.items():
        score = scores[(country, role)]
        if role == "transit" and (country, "origin") in scores:
            continue  # "crossed from Morocco" of Moroccan boys: their origin, not a transit
        # a country with a clear role elsewhere loses a weak default one
        if score < INCIDENT_PLACE < best_role[country] and best_role[country] >= VERB and (
                not all(m.kind in ("city", "region") for m in found)
                or {_key(reading, m) for m in found} <= best_places[country]):
            continue  # unless another town of the country: "de Puebla ... en la Ciudad de México"
        found.sort(key=lambda m: (-(m.role_confidence * m.confidence), m.start))
        evidence: list[Evidence] = []
        for m in found[:3]:
            evidence.append(reading.evidence(m.start, m.end))
        tags.append(Tag(field="location", code=country, confidence=round(score, 4),
                        evidence=tuple(evidence), role=role))
    return tags

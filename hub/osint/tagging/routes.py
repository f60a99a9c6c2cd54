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
from .vocabulary import Vocabulary

__all__ = ["location_tags"]

# confidence of a role by how it was found
EXPLICIT = 0.9
LISTED = 0.85
VERB = 0.8
VICTIMS = 0.85
DEMONYM_ALONE = 0.7
INCIDENT_PLACE = 0.65
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


def _link(reading: Reading, mentions: list[_Mention]) -> None:
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
        conj = reading.ending_at("conjunction", start)
        if conj and min(h.start for h in conj) == prev.end:
            mention.linked = prev


def _role(reading: Reading, vocab: Vocabulary, mention: _Mention) -> None:
    """Give a mention its role and the confidence of that role (None: not on the route)."""
    role, cue = _cue(reading, mention.start)
    if cue is not None and role is None:
        mention.role, mention.role_confidence = None, 0.0
        return
    if role is not None and cue is not None:
        mention.role, mention.role_confidence = role, EXPLICIT
        mention.movement = role == "destination" and (
            cue.key.split()[-1] in vocab.movement or bool(
                reading.ending_at("intended", cue.end)))
        return
    if mention.linked is not None and mention.linked.role is not None:
        mention.role = mention.linked.role
        mention.movement = mention.linked.movement
        mention.role_confidence = mention.linked.role_confidence * (
            1.0 if mention.apposition else LISTED / EXPLICIT)
        return
    if mention.kind == "demonym" or reading.starting_at("victim", mention.end):
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
    if mention.kind in ("country", "city", "region"):
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
    _link(reading, mentions)
    kept: list[_Mention] = []
    for mention in mentions:
        if mention.apposition and mention.linked in kept:
            _role(reading, vocab, mention)
            kept.append(mention)
            continue
        if _agency(reading, mention) or _perpetrators(reading, mention):
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
    _raid_place(kept)
    return _merge(reading, kept)


def _chain(mentions: list[_Mention]) -> None:
    """``flew to Dubai, then on to Baghdad``: of the countries reached by movement cues, all
    but the last are transit, unless the victims also stayed or were exploited there (or
    the countries are listed together: ``to Italy and Spain``)."""
    moved: dict[str, int] = {}
    stayed: set[str] = set()
    for mention in mentions:
        if mention.role != "destination" or mention.country is None:
            continue
        if mention.movement and mention.linked is None:
            moved[mention.country] = max(moved.get(mention.country, -1), mention.start)
        elif not mention.movement:
            stayed.add(mention.country)
    if len(moved) < 2:
        return
    last = max(moved, key=lambda c: moved[c])
    for mention in mentions:
        if mention.movement and mention.country in moved and mention.country != last \
                and mention.country not in stayed:
            mention.role = "transit"


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
    scores: dict[tuple[str, Role], float] = {}
    for (country, role), found in grouped.items():
        score = noisy_or(m.role_confidence * m.confidence for m in found)
        scores[(country, role)] = score
        best_role[country] = max(best_role[country], score)
    tags = []
    for (country, role), found in grouped.items():
        score = scores[(country, role)]
        # a country with a clear role elsewhere loses a weak default one
        if score < INCIDENT_PLACE < best_role[country] and best_role[country] >= VERB:
            continue
        found.sort(key=lambda m: (-(m.role_confidence * m.confidence), m.start))
        evidence: list[Evidence] = []
        for m in found[:3]:
            evidence.append(reading.evidence(m.start, m.end))
        tags.append(Tag(field="location", code=country, confidence=round(score, 4),
                        evidence=tuple(evidence), role=role))
    return tags

"""The victims' ages, age group and gender, from what the text states about them.

Ages come from the language's patterns (``16-year-old``, ``aged 15 to 17``, ``âgée de 16
ans``, ``de 17 años``), each with its CTDC band (:func:`taxonomy.age_band`). The age group
is ``minor`` when a victim is under 18 or described as a child, ``adult`` when one is 18 or
older or described as a woman or a man, ``both`` when both hold. Gender follows the HTCDS
codes from the nouns that describe victims.

Only victims count: a person noun (or an age) near an arrest, a charge or an action of a
trafficker in the active voice (``a 45-year-old man was arrested``, ``a woman recruited
the girls``) describes a perpetrator and is left out; so is anything negated.
"""

from __future__ import annotations

from collections import defaultdict

from .labels import noisy_or
from .negation import Scope
from .reader import Hit, Reading
from .tags import Evidence, Tag
from .taxonomy import age_band
from .vocabulary import Vocabulary

__all__ = ["age_tags", "gender_tags", "perpetrator_context"]

_AGE_WEIGHT = 0.9
_PERSON_GROUPS = ("victim", "perpetrator", "gender")


def _person_near(reading: Reading, start: int, end: int) -> Hit | None:
    """The person noun nearest to tokens [start, end), within 3 tokens, same sentence."""
    sentence = reading.sentence_of[start]
    best: tuple[int, Hit] | None = None
    for group in _PERSON_GROUPS:
        for hit in reading.found(group):
            if reading.sentence_of[hit.start] != sentence:
                continue
            # a person inside [start, end) ("Paraguayan women" itself) is the nearest
            gap = hit.start - end if hit.start >= end else \
                start - hit.end if hit.end <= start else -1
            if -1 <= gap <= 3 and (best is None or gap < best[0] or (
                    gap == best[0] and hit.group == "perpetrator")):
                best = (gap, hit)
    return best[1] if best else None


def perpetrator_context(reading: Reading, start: int, end: int) -> bool:
    """Tokens [start, end) (a person noun or an age) describe a perpetrator: the person is
    a perpetrator noun, or is followed within five tokens by what is said of perpetrators
    (arrested, charged) or by a trafficker's action in the active voice."""
    person = _person_near(reading, start, end)
    if person is not None and person.group == "perpetrator":
        return True
    right = max(end, person.end if person else end)
    sentence = reading.sentence_of[start]
    for hit in reading.found("perpetrator_verb"):
        if right <= hit.start <= right + 5 and reading.sentence_of[hit.start] == sentence:
            return True
    for hit in reading.found("perpetrator_action"):
        if right <= hit.start <= right + 3 and reading.sentence_of[hit.start] == sentence:
            passive = reading.ending_at("passive", hit.start) or any(
                p.end <= hit.start and hit.start - p.end <= 1 for p in reading.found("passive"))
            # "women forced into prostitution": a participle, the women are its object
            participle = bool(reading.starting_at("participle_after", hit.end))
            if not passive and not participle:
                return True
    return False


def _ages(reading: Reading, vocab: Vocabulary) -> list[tuple[int, int, int]]:
    """(age, first token, end token) of every stated age."""
    found: dict[tuple[int, int], tuple[int, int, int]] = {}
    numbers = vocab.lexicon.numbers
    doc = reading.doc
    for pattern in vocab.age_patterns:
        for match in pattern.finditer(reading.text):
            span = doc.char_span(match.start(), match.end(), alignment_mode="expand")
            if span is None:
                continue
            values = []
            for group in ("age", "age2", "age3", "agew"):
                value = match.groupdict().get(group)
                if value is None:
                    continue
                number = int(value) if value.isdigit() else numbers.get(value.lower())
                if number is not None and 0 < number < 100:
                    values.append(number)
            for value in values:
                found.setdefault((value, span.start), (value, span.start, span.end))
    return sorted(found.values(), key=lambda a: a[1])


def _cared_for(reading: Reading, hit: Hit) -> bool:
    """A child the victim looks after ("help with the couple's children", "garde
    d'enfants"): a care phrase ends right before it, determiners aside."""
    token = hit.start
    for _ in range(3):
        if reading.ending_at("care", token):
            return True
        before = reading.ending_at("determiner", token)
        if not before:
            return False
        token = min(h.start for h in before)
    return False


def age_tags(reading: Reading, vocab: Vocabulary, scope: Scope) -> list[Tag]:
    """Stated victim ages (with their CTDC band) and the age group."""
    ages: dict[int, list[Evidence]] = defaultdict(list)
    minor: list[tuple[float, Hit | None, Evidence]] = []
    adult: list[tuple[float, Hit | None, Evidence]] = []
    for age, start, end in _ages(reading, vocab):
        if perpetrator_context(reading, start, end) or scope.negated(start, end):
            continue
        evidence = reading.evidence(start, end)
        ages[age].append(evidence)
        (minor if age < 18 else adult).append((_AGE_WEIGHT, None, evidence))
    for group, into, weight in (("minor", minor, 0.85), ("adult", adult, 0.75)):
        for hit in reading.found(group):
            if perpetrator_context(reading, hit.start, hit.end) or \
                    not scope.stated(hit.start, hit.end) or _cared_for(reading, hit):
                continue
            into.append((weight, hit, reading.evidence(hit.start, hit.end)))
    tags = [Tag(field="age", code=str(age), confidence=_AGE_WEIGHT, evidence=tuple(ev[:3]),
                band=age_band(age)) for age, ev in sorted(ages.items())]
    is_minor = noisy_or(w for w, _, _ in minor)
    is_adult = noisy_or(w for w, _, _ in adult)
    # "girls" of 19 are adults: a stated adult age outweighs a word for a child, and back
    if any(h is None for _, h, _ in adult) and not any(h is None for _, h, _ in minor):
        is_minor = noisy_or(w * 0.5 for w, h, _ in minor)
    if any(h is None for _, h, _ in minor) and not any(h is None for _, h, _ in adult):
        is_adult = noisy_or(w * 0.5 for w, h, _ in adult)
    chosen: tuple[str, float, list[tuple[float, Hit | None, Evidence]]] | None = None
    if is_minor >= 0.5 and is_adult >= 0.5:
        chosen = ("both", min(is_minor, is_adult), minor[:2] + adult[:1])
    elif is_minor >= 0.5:
        chosen = ("minor", is_minor, minor[:3])
    elif is_adult >= 0.5:
        chosen = ("adult", is_adult, adult[:3])
    if chosen is not None:
        code, confidence, supporting = chosen
        tags.append(Tag(field="age_group", code=code, confidence=round(confidence, 4),
                        evidence=tuple(e for _, _, e in supporting)))
    return tags


def gender_tags(reading: Reading, vocab: Vocabulary, scope: Scope) -> list[Tag]:
    """The HTCDS genders of the victims described."""
    found: dict[str, list[Hit]] = defaultdict(list)
    hits = reading.found("gender")
    longest = [h for h in hits if not any(
        o.start <= h.start and h.end <= o.end and (o.end - o.start) > (h.end - h.start)
        for o in hits)]
    for hit in longest:
        code = vocab.gender.get(hit.key)
        if code is None or perpetrator_context(reading, hit.start, hit.end) or \
                not scope.stated(hit.start, hit.end):
            continue
        found[code].append(hit)
    tags = []
    for code, code_hits in found.items():
        weights = {h.key: 0.3 if h.key in vocab.weak_gender else 0.8 for h in code_hits}
        confidence = noisy_or(weights.values())
        if confidence < 0.5:
            continue
        code_hits.sort(key=lambda h: -weights[h.key])
        tags.append(Tag(field="gender", code=code, confidence=round(confidence, 4),
                        evidence=tuple(reading.evidence(h.start, h.end) for h in code_hits[:3])))
    return tags

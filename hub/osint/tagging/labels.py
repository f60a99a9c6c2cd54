"""Classified labels (exploitation type, recruitment, transport, control) and relevance.

Each phrase of a language's lexicon suggests one code with a weight: how often, on the
development corpus, that phrase alone meant the code. A code's confidence combines the
weights of its stated phrases as independent evidence (noisy-or): two medium cues make a
strong one. A phrase inside a longer one counts once (``labour`` in ``child labour``), a
negated or speculative one not at all (:mod:`negation`), and a transport or recruitment
phrase with no word of that field in its sentence counts half (a boat people worked on is
not how they were moved).

Relevance weighs human-trafficking signals against the signs of other items: drug, arms or
wildlife trafficking, awareness events and policy debate (:func:`relevance`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

from .lexicon import Pair, relevance_model
from .negation import Scope
from .reader import Hit, Reading
from .tags import Evidence, Relevance, Tag
from .vocabulary import Vocabulary

__all__ = ["implied_tags", "label_tags", "negated_types", "noisy_or", "relevance",
           "relevance_signals"]

# a cue of these fields without a word of the field in its sentence counts this much
_OUT_OF_CONTEXT = 0.5
_CAP = 0.99


def noisy_or(weights: Iterable[float]) -> float:
    """1 - prod(1 - w): the chance at least one of independent cues is right."""
    miss = 1.0
    for weight in weights:
        miss *= 1.0 - weight
    return min(_CAP, 1.0 - miss)


def _outermost(hits: list[Hit]) -> list[Hit]:
    """The hits not strictly inside a longer hit."""
    return [h for h in hits if not any(
        o.start <= h.start and h.end <= o.end and (o.end - o.start) > (h.end - h.start)
        for o in hits)]


def _in_context(reading: Reading, hit: Hit, field: str) -> bool:
    group = f"context_{field}"
    if group not in ("context_transport", "context_recruitment"):
        return True
    sentence = reading.sentence_of[hit.start]
    return any(reading.sentence_of[h.start] == sentence for h in reading.found(group))


def label_tags(reading: Reading, vocab: Vocabulary, scope: Scope) -> list[Tag]:
    """The classified-label tags of one reading, one per (field, code)."""
    found: dict[tuple[str, str], list[tuple[float, Hit]]] = defaultdict(list)
    for hit in _outermost(reading.found("label")):
        if not scope.stated(hit.start, hit.end):
            continue
        for suggestion in vocab.labels.get(hit.key, ()):
            weight = suggestion.weight
            if not _in_context(reading, hit, suggestion.field):
                weight *= _OUT_OF_CONTEXT
            found[(suggestion.field, suggestion.code)].append((weight, hit))
    triggers = {h.start for h in reading.found("neg_before")}
    for hit, pair in _pairs(reading, vocab):
        # a pair with a negation of its own ("wages ... never", "n'avaient pas été payés")
        # states a negative fact: the "ne" of its "ne ... pas" does not deny it
        own = any(hit.start <= t < hit.end for t in triggers)
        if (own or not scope.negated(hit.start, hit.end)) and not scope.speculative(hit.start):
            found[(pair.field, pair.code)].append((pair.weight, hit))
    lures = _lures(reading, [h for wh in found.values() for _, h in wh])
    tags = []
    for (field, code), weighted in found.items():
        weighted.sort(key=lambda wh: (-wh[0], wh[1].start))
        evidence = _evidence(reading, [h for _, h in weighted])
        distinct: dict[str, float] = {}  # a phrase said twice is one cue
        for weight, hit in weighted:
            distinct[hit.key] = max(distinct.get(hit.key, 0.0), weight)
        tags.append(Tag(field=field, code=code,  # type: ignore[arg-type]
                        confidence=round(noisy_or(distinct.values()), 4),
                        evidence=evidence))
    if _named_and_denied(reading, vocab, scope):
        tags = [t for t in tags if t.field != "exploitation_type" or max(
            w for w, _ in found[(t.field, t.code)]) >= _WORK_WORD]
    return _yield_types(_specific_over_generic(tags, found), found, lures)


# the weight under which a cue is only a word of work (farm, workers, wages), not a named type
_WORK_WORD = 0.5


def _named_and_denied(reading: Reading, vocab: Vocabulary, scope: Scope) -> bool:
    """An exploitation type is named clearly only to be denied ("found no evidence of forced
    labour"): the work words of the item (farm, workers, payslips) then describe the place
    inspected, not an exploitation, and suggest no type of their own."""
    return any(scope.negated(h.start, h.end) for h in reading.found("label")
               if any(s.field == "exploitation_type" and s.weight >= 0.8
                      for s in vocab.labels.get(h.key, ())))


# a specific type named clearly makes forced labour, the generic type, need its own name
_GENERIC = "ForcedLabour"
_EXPLICIT = 0.95
# the confidence a specific type needs to outweigh generic work words; servitude, the
# domestic worker's unpaid work, needs less (her wages and hours are her servitude)
_SPECIFIC = 0.85
_SPECIFIC_OF = {"Servitude": 0.7}
# a type only weakly suggested (customers, sexual abuse) yields to another type named clearly
_WEAK = 0.6
_CLEAR = 0.9
_LURE_BEFORE = 4
_LURE_AFTER = 2


def _lures(reading: Reading, hits: list[Hit]) -> set[tuple[int, int]]:
    """The spans of hits named next to a lure word, in its sentence ("promised jobs as
    housemaids", "answered nanny adverts"): the job offered, perhaps not the one done."""
    lure = reading.found("lure")
    out: set[tuple[int, int]] = set()
    for hit in hits:
        sentence = reading.sentence_of[hit.start]
        for word in lure:
            if reading.sentence_of[word.start] != sentence:
                continue
            if 0 <= hit.start - word.end <= _LURE_BEFORE or \
                    0 <= word.start - hit.end <= _LURE_AFTER:
                out.add((hit.start, hit.end))
                break
    return out


def _yield_types(tags: list[Tag], found: dict[tuple[str, str], list[tuple[float, Hit]]],
                 lures: set[tuple[int, int]]) -> list[Tag]:
    """An exploitation type suggested only weakly (its best cue under ``_WEAK``) or only
    next to a lure word yields (confidence halved) to another type named clearly and not
    as a lure: the surrogate mothers' "paying clients" are no sexual exploitation, the
    "housemaid jobs" offered were the lure of girls forced into prostitution."""
    def clear(code: str) -> float:
        return noisy_or(w for w, h in found.get(("exploitation_type", code), [])
                        if (h.start, h.end) not in lures)

    codes = [t.code for t in tags if t.field == "exploitation_type"]
    halve = set()
    for code in codes:
        weighted = found.get(("exploitation_type", code), [])
        if not weighted or code == "ChildLabour":
            continue
        weak = max(w for w, _ in weighted) <= _WEAK
        lured = all((h.start, h.end) in lures for _, h in weighted)
        if not (weak or lured):
            continue
        if any(clear(other) >= _CLEAR for other in codes
               if other not in (code, "ChildLabour")):
            halve.add(code)
    if not halve:
        return tags
    return [t.model_copy(update={"confidence": round(t.confidence * 0.5, 4)})
            if t.field == "exploitation_type" and t.code in halve else t for t in tags]


def _pairs(reading: Reading, vocab: Vocabulary) -> list[tuple[Hit, Pair]]:
    """Hits spanning both words of a pair rule, within its window in one sentence."""
    out = []
    for n, pair in enumerate(vocab.lexicon.pairs):
        for a in reading.found(f"pair_a:{n}"):
            sentence = reading.sentence_of[a.start]
            for b in reading.found(f"pair_b:{n}"):
                if reading.sentence_of[b.start] != sentence or (
                        b.start < a.end and a.start < b.end):
                    continue
                gap = b.start - a.end if b.start >= a.end else a.start - b.end
                if gap <= pair.window:
                    start, end = min(a.start, b.start), max(a.end, b.end)
                    out.append((Hit("pair", start, end, f"pair:{n}"), pair))
                    break
    return out


def _specific_over_generic(tags: list[Tag],
                           found: dict[tuple[str, str], list[tuple[float, Hit]]]) -> list[Tag]:
    """Forced labour suggested only by work words (farm, restaurant, unpaid work) yields to
    a clearly named other type (sexual exploitation, servitude, forced marriage...): the
    restaurant was the lure, the maid's unpaid work is her servitude."""
    specific = any(t.confidence >= _SPECIFIC_OF.get(t.code, _SPECIFIC) for t in tags
                   if t.field == "exploitation_type" and t.code not in (_GENERIC, "ChildLabour"))
    generic_best = max((w for w, _ in found.get(("exploitation_type", _GENERIC), [])),
                       default=0.0)
    if not specific or generic_best >= _EXPLICIT:
        return tags
    return [t.model_copy(update={"confidence": round(t.confidence * 0.5, 4)})
            if t.field == "exploitation_type" and t.code == _GENERIC else t for t in tags]


def negated_types(reading: Reading, vocab: Vocabulary, scope: Scope) -> bool:
    """Some exploitation type is named only to be denied ("no evidence of forced labour")."""
    return any(scope.negated(h.start, h.end) for h in reading.found("label")
               if any(s.field == "exploitation_type" for s in vocab.labels.get(h.key, ())))


def implied_tags(tags: list[Tag], *, denied: bool = False) -> list[Tag]:
    """Exploitation types the other tags imply.

    * Child labour: minors (age group minor or both) in forced labour or servitude.
    * Forced labour: a relevant item with no type of its own whose controls are those of
      work (hours, wages, documents, debts): labour exploitation is the common case; not
      when the text denies an exploitation type (``denied``).
    """
    by_code = {(t.field, t.code): t for t in tags}
    out = list(tags)
    minors = [t for t in tags if t.field == "age_group" and t.code in ("minor", "both")]
    labour = [t for t in tags if t.field == "exploitation_type"
              and t.code in ("ForcedLabour", "Servitude") and t.confidence >= 0.5]
    types = [t for t in tags if t.field == "exploitation_type" and t.confidence >= 0.5]
    work_controls = [t for t in tags if t.field == "control" and t.code in (
        "ExcessiveWorkingHours", "TakesEarnings", "WithholdsDocuments", "DebtBondage")]
    generic = by_code.get(("exploitation_type", "ForcedLabour"))
    if not types and not denied and (work_controls or generic is not None):
        confidence = noisy_or([0.3, 0.15 * len(work_controls),
                               generic.confidence if generic else 0.0])
        evidence = (generic.evidence if generic else ()) + tuple(
            e for t in work_controls[:2] for e in t.evidence[:1])
        if generic is not None:
            out.remove(generic)
        labour = [Tag(field="exploitation_type", code="ForcedLabour",
                      confidence=round(confidence, 4), evidence=evidence)]
        out += labour
    if minors and labour and ("exploitation_type", "ChildLabour") not in by_code:
        confidence = min(minors[0].confidence, max(t.confidence for t in labour)) * 0.9
        evidence = minors[0].evidence[:1] + labour[0].evidence[:1]
        out.append(Tag(field="exploitation_type", code="ChildLabour",
                       confidence=round(confidence, 4), evidence=evidence))
    return out


def _evidence(reading: Reading, hits: list[Hit], limit: int = 3) -> tuple[Evidence, ...]:
    seen: set[tuple[int, int]] = set()
    out = []
    for hit in hits:
        if (hit.start, hit.end) in seen:
            continue
        seen.add((hit.start, hit.end))
        out.append(reading.evidence(hit.start, hit.end))
        if len(out) == limit:
            break
    return tuple(out)


def _signal(reading: Reading, vocab: Vocabulary, scope: Scope, group: str,
            stated_only: bool = True, unless: str | None = None,
            skip: frozenset[int] = frozenset()) -> tuple[float, list[Hit]]:
    """The noisy-or of a relevance group's hits (stated ones only, unless told otherwise;
    none overlapping a hit of group ``unless``: "drug trafficking" is no trafficking cue;
    none in the sentences ``skip``)."""
    weights = vocab.relevance[group]
    other = reading.found(unless) if unless else []
    hits = [h for h in _outermost(reading.found(group))
            if (not stated_only or not scope.negated(h.start, h.end)) and not any(
                o.start < h.end and h.start < o.end for o in other)
            and reading.sentence_of[h.start] not in skip]
    hits.sort(key=lambda h: -weights.get(h.key, 0.0))
    return noisy_or(weights.get(h.key, 0.0) for h in hits), hits


# the weight from which a cue of forced criminality names it (made to sell drugs, not "theft")
_FORCED_CRIME = 0.8


def _forced_crime(reading: Reading, vocab: Vocabulary, scope: Scope) -> frozenset[int]:
    """The sentences that state forced criminality ("made to sell crack cocaine", "obligados
    a transportar droga"): their drugs are what the victims were made to sell or carry, no
    sign of a drug-trafficking item."""
    out = {reading.sentence_of[h.start] for h in reading.found("label")
           if scope.stated(h.start, h.end) and any(
               s.field == "exploitation_type" and s.code == "Other" and s.weight >= _FORCED_CRIME
               for s in vocab.labels.get(h.key, ()))}
    out |= {reading.sentence_of[hit.start] for hit, pair in _pairs(reading, vocab)
            if pair.field == "exploitation_type" and pair.code == "Other"
            and scope.stated(hit.start, hit.end)}
    return frozenset(out)


def relevance_signals(reading: Reading, vocab: Vocabulary, scope: Scope,
                      labels: list[Tag]) -> tuple[dict[str, float], list[Hit]]:
    """The signals relevance is judged from, each in [0, 1], and the hits to show."""
    trafficking, t_hits = _signal(reading, vocab, scope, "trafficking", unless="off_topic")
    incident, i_hits = _signal(reading, vocab, scope, "incident")
    off_topic, _ = _signal(reading, vocab, scope, "off_topic", stated_only=False,
                           skip=_forced_crime(reading, vocab, scope))
    not_incident, _ = _signal(reading, vocab, scope, "not_incident", stated_only=False)
    best: dict[str, float] = defaultdict(float)
    control = []
    for tag in labels:
        best[tag.field] = max(best[tag.field], tag.confidence)
        if tag.field == "control":
            control.append(tag.confidence)
    cues = [h for group in ("trafficking", "label") for h in reading.found(group)]
    negated = sum(scope.negated(h.start, h.end) for h in cues)
    victims = len(reading.found("victim"))
    signals = {
        "trafficking": trafficking, "exploitation": best["exploitation_type"],
        "control": noisy_or(control), "recruitment": best["recruitment"],
        "incident": incident, "off_topic": off_topic, "not_incident": not_incident,
        "negated": negated / len(cues) if cues else 0.0, "victims": min(1.0, victims / 4),
    }
    # an event, a campaign, a policy with no case in it: no victim, no incident, no control
    signals["no_case"] = signals["not_incident"] * (1.0 - max(
        incident, signals["control"], signals["victims"]))
    return {k: round(v, 4) for k, v in signals.items()}, t_hits[:2] + i_hits[:1]


def relevance(reading: Reading, vocab: Vocabulary, scope: Scope,
              labels: list[Tag]) -> Relevance:
    """Does the item report a human-trafficking incident? A logistic model over the
    signals of :func:`relevance_signals` (weights in ``data/relevance.yaml``, fitted on the
    development corpus by ``bench/tagging.py --fit-relevance``)."""
    signals, shown = relevance_signals(reading, vocab, scope, labels)
    model = relevance_model()
    logit = model.bias + sum(model.weights.get(k, 0.0) * v for k, v in signals.items())
    probability = 1.0 / (1.0 + math.exp(-logit))
    relevant = probability >= 0.5
    return Relevance(relevant=relevant,
                     confidence=round(probability if relevant else 1.0 - probability, 4),
                     evidence=_evidence(reading, shown) if relevant else (),
                     signals=signals)

"""Coding: the tags a reviewer decides for an incident, checked against the taxonomy.

An incident's suggested tags come from its items' taggings (:mod:`hub.osint.tagging`), merged
(:func:`suggestions`); its coded tags are what a reviewer accepted or wrote
(:class:`CodedTag`), stored in ``osint_incidents.coded`` and in each ``osint_decisions``
row. Both are plain lists of tags keyed by ``(field, code, role)``, so that a decision can be
compared with what was suggested (:mod:`hub.osint.precision`)::

    field              code                                           role
    exploitation_type  HTCDS TypeOfExploitation (htcds_exploitation_type)
    recruitment        HTCDS MethodOfRecruitment (htcds_recruitment)
    control            HTCDS MethodsOfControl (htcds_means_of_control)
    transport          Air, Road, Rail, Water, OnFoot (transport_mode)
    location           ISO 3166-1 alpha-2 (iso3166_alpha2)            origin | transit |
                                                                      destination
    age_group          minor, adult, both (age_group)
    age_band           a CTDC age band (age_band)
    gender             HTCDS gender (htcds_gender)
    incident_period    the incident's month, YYYY-MM

The code lists are the contracts' shared domains (``contracts/domains``, named in brackets),
so that a coded incident always fits the ``incidents`` contract; the tagger's own lists
(:mod:`hub.osint.tagging.taxonomy`) stand in for a domain a custom contracts folder lacks.
The tagger's ``age`` tag (an exact age in years) is suggested as its CTDC band: no exact age
is ever coded. ``age_group``, ``age_band`` and ``incident_period`` take one value each (the
``incidents`` contract's single categories).

The accepted incident's ``coded`` column holds the same tags as one record, the shape the
incidents dataset reads (:func:`record`, :mod:`hub.osint.incidents`)::

    {"exploitation_type": [...], "recruitment": [...], "transport": [...], "control": [...],
     "gender": [...], "locations": [{"country": "NG", "role": "origin"}, ...],
     "age_group": "adult" | null, "age_band": "18-20" | null, "period": "2026-03" | null}
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from hub.errors import InvalidInput, RowError, UnknownDataset
from hub.osint.tagging import taxonomy

__all__ = ["FIELDS", "SINGLE", "CodeLists", "CodedTag", "TagKey", "coded", "key_of", "record",
           "single_valued", "suggestions", "tags_of"]

#: The fields a reviewer codes, in the order pages list them.
FIELDS: Final = ("exploitation_type", "location", "recruitment", "transport", "control",
                 "age_group", "age_band", "gender", "incident_period")
#: Fields with one value per incident.
SINGLE: Final = ("age_group", "age_band", "incident_period")
_LISTED: Final = ("exploitation_type", "recruitment", "transport", "control", "gender")
#: The most tags one incident may be coded with.
MAX_TAGS: Final = 100
_DOMAINS: Final = {
    "exploitation_type": "htcds_exploitation_type", "recruitment": "htcds_recruitment",
    "control": "htcds_means_of_control", "transport": "transport_mode",
    "location": "iso3166_alpha2", "age_group": "age_group", "age_band": "age_band",
    "gender": "htcds_gender",
}
_FALLBACK: Final[dict[str, tuple[str, ...]]] = {
    "exploitation_type": taxonomy.EXPLOITATION_TYPES, "recruitment": taxonomy.RECRUITMENT,
    "control": taxonomy.CONTROL, "transport": taxonomy.TRANSPORT,
    "age_group": taxonomy.AGE_GROUPS, "gender": taxonomy.GENDERS,
    "age_band": tuple(label for label, _, _ in taxonomy.AGE_BANDS),
}
_PERIOD = re.compile(r"^(19|20)\d\d-(0[1-9]|1[0-2])$")
_ALPHA2 = re.compile(r"^[A-Z]{2}$")

TagKey = tuple[str, str, str | None]  # (field, code, role)


@dataclass(frozen=True, slots=True)
class CodedTag:
    """One coded tag (module docstring): ``role`` only for locations."""

    field: str
    code: str
    role: str | None = None

    @property
    def key(self) -> TagKey:
        return (self.field, self.code, self.role)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"field": self.field, "code": self.code}
        if self.role is not None:
            out["role"] = self.role
        return out


def key_of(tag: Mapping[str, Any]) -> TagKey:
    """The ``(field, code, role)`` of a tag as JSON (suggested or coded)."""
    return (str(tag["field"]), str(tag["code"]), tag.get("role"))


class CodeLists:
    """The codes each field may take: from the contracts' shared domains where present
    (``ContractRegistry.domains``), else the tagger's taxonomy."""

    def __init__(self, domains: Mapping[str, Iterable[str]] | None = None,
                 months: tuple[str, str] | None = None) -> None:
        self._months = months
        lists: dict[str, frozenset[str]] = {}
        for field, domain in _DOMAINS.items():
            codes = (domains or {}).get(domain)
            if codes is None and field == "location":
                continue  # any two capital letters the gazetteer knows, checked below
            lists[field] = frozenset(codes if codes is not None else _FALLBACK[field])
        self._lists = lists

    @classmethod
    def from_registry(cls, registry: Any) -> CodeLists:
        """From a :class:`~hub.contracts.model.ContractRegistry`'s named domains, and the
        months of the ``incidents`` contract's period."""
        months = None
        with contextlib.suppress(KeyError, UnknownDataset):
            period = registry.get("incidents").field("period").domain
            months = (str(period.min), str(period.max))
        return cls({name: [c.code for c in d.categories]
                    for name, d in getattr(registry, "domains", {}).items()}, months)

    def codes(self, field: str) -> frozenset[str] | None:
        """The closed list of ``field``, or None (periods; countries with no domain)."""
        return self._lists.get(field)

    def check(self, field: str, code: str, role: str | None) -> tuple[str, str] | None:
        """Which part of (field, code, role) is not a valid coded tag and why, or None."""
        if field not in FIELDS:
            return "field", f"unknown field {field!r}; fields: {', '.join(FIELDS)}"
        if field == "location":
            if role not in taxonomy.ROLES:
                return "role", (f"a location needs its role in the route: "
                                f"{', '.join(taxonomy.ROLES)}")
        elif role is not None:
            return "role", f"only a location has a role, not {field}"
        if field == "incident_period":
            if not _PERIOD.match(code):
                return "code", f"{code!r} is not a month (YYYY-MM)"
            if self._months and not self._months[0] <= code <= self._months[1]:
                return "code", (f"{code} is outside the incidents dataset's months "
                                f"({self._months[0]} to {self._months[1]})")
            return None
        known = self._lists.get(field)
        if known is None:  # a country without a domain of countries
            return None if _ALPHA2.match(code) else (
                "code", f"{code!r} is not an ISO 3166 alpha-2 code")
        if code not in known:
            sample = ", ".join(sorted(known)[:12]) + (", ..." if len(known) > 12 else "")
            return "code", f"{code!r} is not a code of {field} ({sample})"
        return None


def coded(data: Any, lists: CodeLists, *, where: str = "tags") -> tuple[CodedTag, ...]:
    """A reviewer's tags from JSON (a list of ``{field, code, role}``), every one checked;
    all problems are reported together (:class:`InvalidInput`, each with its ``tags[i]``
    field). Repeated tags count once; the order is :data:`FIELDS`, then code and role."""
    if not isinstance(data, list):
        raise InvalidInput(f"{where} must be a list of tags {{field, code, role}}", field=where)
    if len(data) > MAX_TAGS:
        raise InvalidInput(f"at most {MAX_TAGS} tags per incident ({len(data)} given)",
                           field=where)
    errors: list[RowError] = []
    out: dict[TagKey, CodedTag] = {}
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if not isinstance(item, Mapping) or set(item) - {"field", "code", "role"}:
            errors.append(RowError(at, "a tag is an object with field, code and (locations) "
                                       "role, and nothing else"))
            continue
        field, code, role = item.get("field"), item.get("code"), item.get("role")
        if not isinstance(field, str) or not isinstance(code, str) or not (
                role is None or isinstance(role, str)):
            errors.append(RowError(at, "field and code are text, role is text or absent"))
            continue
        if field == "location":
            code = code.strip().upper()
        problem = lists.check(field, code.strip(), role)
        if problem is not None:
            errors.append(RowError(f"{at}.{problem[0]}", problem[1]))
            continue
        tag = CodedTag(field, code.strip(), role)
        out.setdefault(tag.key, tag)
    for field in SINGLE:
        values = [t.code for t in out.values() if t.field == field]
        if len(values) > 1:
            errors.append(RowError(where, f"{field} takes one value, not {len(values)} "
                                          f"({', '.join(sorted(values))})"))
    if errors:
        shown = "; ".join(f"{e.field}: {e.reason}" for e in errors[:3])
        raise InvalidInput(f"the coded tags are invalid: {shown}", field=errors[0].field,
                           errors=errors)
    order = {f: i for i, f in enumerate(FIELDS)}
    return tuple(sorted(out.values(), key=lambda t: (order[t.field], t.code, t.role or "")))


def single_valued(tags: Iterable[CodedTag]) -> tuple[CodedTag, ...]:
    """``tags`` with only the first value of each of :data:`SINGLE` (suggestions come most
    confident first)."""
    seen: set[str] = set()
    out = []
    for tag in tags:
        if tag.field in SINGLE:
            if tag.field in seen:
                continue
            seen.add(tag.field)
        out.append(tag)
    return tuple(out)


def record(tags: Iterable[CodedTag]) -> dict[str, Any]:
    """The coded tags as the incident's record (module docstring)."""
    tags = list(tags)
    out: dict[str, Any] = {field: [t.code for t in tags if t.field == field]
                           for field in _LISTED}
    out["locations"] = [{"country": t.code, "role": t.role} for t in tags
                        if t.field == "location"]
    for field, name in (("age_group", "age_group"), ("age_band", "age_band"),
                        ("incident_period", "period")):
        out[name] = next((t.code for t in tags if t.field == field), None)
    return out


def tags_of(coded_record: Mapping[str, Any] | None) -> tuple[CodedTag, ...]:
    """The coded tags of an incident's record (:func:`record`'s inverse)."""
    if not coded_record:
        return ()
    out = [CodedTag(field, str(code)) for field in _LISTED
           for code in coded_record.get(field) or ()]
    out += [CodedTag("location", str(loc["country"]), loc.get("role"))
            for loc in coded_record.get("locations") or ()]
    for field, name in (("age_group", "age_group"), ("age_band", "age_band"),
                        ("incident_period", "period")):
        if coded_record.get(name):
            out.append(CodedTag(field, str(coded_record[name])))
    return tuple(out)


def _suggested_key(tag: Mapping[str, Any]) -> TagKey | None:
    """A tagger's tag as a coded key: ``age`` becomes its CTDC band; unknown fields None."""
    field = tag.get("field")
    if field == "age":
        band = tag.get("band")
        return ("age_band", str(band), None) if band else None
    if field not in FIELDS:
        return None
    return (str(field), str(tag.get("code")),
            tag.get("role") if field == "location" else None)


def suggestions(items: Sequence[tuple[str, Mapping[str, Any] | None]]) -> list[dict[str, Any]]:
    """The suggested tags of an incident, merged across its items' taggings
    (``(item id, tagging JSON)``): one per ``(field, code, role)``, with the best confidence
    and every item's evidence (``item``, ``part``, ``start``, ``end``, ``text``,
    ``sentence``), strongest first; ordered by :data:`FIELDS`, then confidence."""
    merged: dict[TagKey, dict[str, Any]] = {}
    for item_id, tagging in items:
        for tag in (tagging or {}).get("tags") or ():
            key = _suggested_key(tag)
            if key is None:
                continue
            confidence = float(tag.get("confidence") or 0)
            entry = merged.setdefault(key, {
                "field": key[0], "code": key[1], **({"role": key[2]} if key[2] else {}),
                "confidence": confidence, "items": [], "evidence": []})
            entry["confidence"] = max(entry["confidence"], confidence)
            if item_id not in entry["items"]:
                entry["items"].append(item_id)
            if tag.get("field") == "age":
                entry.setdefault("ages", []).append(str(tag.get("code")))
            for ev in tag.get("evidence") or ():
                entry["evidence"].append({"item": item_id, "part": ev.get("part"),
                                          "start": ev.get("start"), "end": ev.get("end"),
                                          "text": ev.get("text"),
                                          "sentence": ev.get("sentence"),
                                          "confidence": confidence})
    order = {f: i for i, f in enumerate(FIELDS)}
    out = sorted(merged.values(), key=lambda t: (order[t["field"]], -t["confidence"],
                                                 t["code"], t.get("role") or ""))
    for entry in out:
        entry["confidence"] = round(entry["confidence"], 3)
        entry["evidence"].sort(key=lambda e: -e.pop("confidence"))
    return out

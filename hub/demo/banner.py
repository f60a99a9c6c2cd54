"""What ``tahub demo`` prints once the data is in: commands that work when copied, and who to
sign in as on each page.

* The commands are printed whole, one per line, never folded at the terminal's width (a
  folded command pastes as two), with absolute paths, so that they work from any folder.
* ``tahub`` and ``tahub-connect`` are the commands of the environment running the demo. When
  they are not on ``PATH`` already, the way to put them there is printed once, first:
  ``source .venv/bin/activate`` in a checkout, else the activate script (or ``bin`` folder)
  of that environment by its absolute path.
* Each page of the web interface and the API docs comes with the person to sign in as, the
  password the demo generated (also in the member's ``people.env``) and the role.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

__all__ = ["Person", "Walkthrough", "activation", "show"]


@dataclass(frozen=True)
class Person:
    """A demo person who signs in, as the member's ``people.env`` has them."""

    email: str
    password: str
    role: str
    org: str


@dataclass(frozen=True)
class Walkthrough:
    """The paths and people the banner names (all absolute)."""

    url: str
    data_dir: Path
    partners_dir: Path
    partner_env: Path
    analyst_env: Path
    officer_envs: tuple[Path, Path]
    export: Path
    mapping: Path
    analyst: Person
    engineer: Person
    officers: tuple[Person, Person]
    linked_note: str
    reviewer: Person | None = None  # the review queue (hub.osint.review)


def activation(executable: str | None = None, cwd: Path | None = None,
               path: str | None = None) -> str | None:
    """The line that puts this environment's ``tahub`` and ``tahub-connect`` on ``PATH``, or
    None when they are there already: ``source .venv/bin/activate`` when the environment is
    ``.venv`` of the current folder (a checkout), else its activate script by absolute path,
    else its ``bin`` folder put first on ``PATH``."""
    bindir = Path(executable or sys.executable).parent
    found = [shutil.which(name, path=path) for name in ("tahub", "tahub-connect")]
    if all(f is not None and Path(f).parent == bindir for f in found):
        return None
    script = bindir / "activate"
    if not script.is_file():
        return f"export PATH={shlex.quote(str(bindir))}:\"$PATH\""
    here = (cwd or Path.cwd()).resolve()
    try:
        relative = script.resolve().relative_to(here)
    except ValueError:
        return f"source {shlex.quote(str(script))}"
    return f"source {shlex.quote(str(relative))}"


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _signs_in(who: Person) -> str:
    return f"{who.email}  password {who.password}  (role {who.role}, {who.org})"


def show(console: Console, w: Walkthrough, *, activate: str | None) -> None:
    """Print the banner: where things are, who signs in where, and commands to copy."""
    def say(text: str = "", style: str | None = None) -> None:
        console.print(text, soft_wrap=True, markup=False, highlight=False, style=style)

    def commands(lines: Sequence[str]) -> None:
        for line in lines:
            say(f"  {line}")

    url = w.url
    say(f"The hub is running at {url}", style="bold green")
    say(f"Hub data: {w.data_dir}")
    say(f"Partner side (the partners' machines; never read by the hub): {w.partners_dir}")
    say()
    say("Sign in on the web (each password is also in the member's people.env):", "bold")
    pages: tuple[tuple[str, str, list[str]], ...] = (
        ("Analyst workspace", f"{url}/ui#/workspace", ["sign in as " + _signs_in(w.analyst)]),
        ("Governance console", f"{url}/ui#/governance",
         ["sign in as " + _signs_in(w.officers[0]),
          "a second officer, of another member, approves: " + _signs_in(w.officers[1])]),
        ("Partner uploads", f"{url}/ui#/partner", ["sign in as " + _signs_in(w.engineer)]))
    if w.reviewer is not None:
        pages += (("Review queue", f"{url}/ui#/review",
                   ["sign in as " + _signs_in(w.reviewer),
                    "claim incidents from news and crowd reports, code their tags; "
                    f"precision of the tags at {url}/ui#/review-precision"]),
                  ("Report what you saw", f"{url}/report",
                   ["the public's page: no account, English, French or Spanish; the report "
                    "waits in the review queue"]))
    for title, address, lines in pages:
        say(f"  {title:<20} {address}")
        for line in lines:
            say(f"  {'':<20} {line}")
    say(f"  {'API docs':<20} {url}/docs")
    say(f"  {'':<20} no sign-in to read; to try a call, Authorize with an access token "
        "(the curl command below)")
    say()
    say("In another terminal" + (", first, once:" if activate else ":"), "bold")
    if activate:
        commands([activate])
        say()
    say("Act as a partner's upload system (docs/connector.md):", "bold")
    commands([
        f"set -a; . {_q(w.partner_env)}; set +a",
        "tahub-connect list",
        f"tahub-connect push {_q(w.export)} --mapping {_q(w.mapping)}",
        "curl -s -u \"$TAHUB_CLIENT_ID:$TAHUB_CLIENT_SECRET\" -d grant_type=client_credentials "
        f"{url}/oauth/token",
    ])
    say()
    say("Act as an analyst (README, docs/analyst.md):", "bold")
    commands([
        f"set -a; . {_q(w.analyst_env)}; set +a",
        "tahub query policies",
        f"# {w.linked_note}:",
        "tahub query run bank_alerts --by origin_country --by destination_country --measure "
        "linked_units --cost 1/5 --sort linked_units --limit 5",
        "tahub query run case_records --route --measure count_units --measure linked_units "
        "--top 10 --cost 1/5",
        "tahub query budget",
    ])
    say()
    say("Act as a governance officer (README, docs/governance.md):", "bold")
    commands([
        f"set -a; . {_q(w.officer_envs[0])}; set +a",
        "tahub policy active",
        f"# the second officer: set -a; . {_q(w.officer_envs[1])}; set +a",
    ])
    say()
    say("Or sign in as a person, once per profile (in a terminal with no .env loaded); "
        "later tahub query and tahub policy commands need no --hub and no client:", "bold")
    commands([
        f"tahub login --hub {url}    # as {w.analyst.email}",
        "tahub query budget",
        f"tahub login --hub {url} --profile officer    # as {w.officers[0].email}",
        "tahub policy active --profile officer",
    ])
    say()
    say("Press Ctrl-C to stop.")

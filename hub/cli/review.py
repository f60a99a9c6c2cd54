"""``tahub review``: the reviewers' work, read on the hub's machine (docs/osint.md#review).

``publish`` publishes the accepted incidents as the ``incidents`` dataset now
(:mod:`hub.osint.incidents`; the hub also does it after every decision).

``precision`` is the per-tag precision of the tagger's suggestions from the reviewers'
decisions (:mod:`hub.osint.precision`), the same report as ``GET /v1/review/precision`` and
the review pages: per field and code, how often it was suggested, how often reviewers kept
it, and the tags they added that were not suggested.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from connectors.common.cli import console, user_errors
from hub.cli import context

__all__ = ["app"]

app = typer.Typer(help="The reviewers' queue of incidents from open sources "
                  "(docs/osint.md#review).", no_args_is_help=True)


def _share(value: Any) -> str:
    return "-" if value is None else f"{value:.0%}"


@app.command("precision")
@user_errors
def precision(
    since: Annotated[str | None, typer.Option(help="Decisions from this date (YYYY-MM-DD).")
                     ] = None,
    until: Annotated[str | None, typer.Option(help="Decisions before this date (YYYY-MM-DD).")
                     ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Per-tag precision of the suggested tags, from the reviewers' decisions."""
    from hub.osint.precision import precision_report
    from hub.storage.db import make_engine

    settings = context.settings()
    engine = make_engine(settings.database_url)
    try:
        context.migrate(engine)
        report = precision_report(engine, None, since=since, until=until)
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    span = (f" from {report['since'][:10]}" if report["since"] else "") + (
        f" to {report['until'][:10]}" if report["until"] else "")
    actions = ", ".join(f"{n} {a}" for a, n in report["by_action"].items())
    typer.echo(f"{report['decisions']} decisions{span} ({actions})")
    if not report["tags"]:
        typer.echo("no decision has judged a suggested tag yet")
        return
    table = Table(title="Precision of the suggested tags")
    for column in ("field", "code", "role", "suggested", "kept", "precision", "added"):
        table.add_column(column, justify="right" if column in (
            "suggested", "kept", "precision", "added") else "left")
    for field in report["fields"]:
        table.add_row(field["field"], "(all)", "", str(field["suggested"]),
                      str(field["kept"]), _share(field["precision"]), str(field["added"]),
                      style="bold")
        for tag in (t for t in report["tags"] if t["field"] == field["field"]):
            table.add_row("", tag["code"], tag["role"] or "", str(tag["suggested"]),
                          str(tag["kept"]), _share(tag["precision"]), str(tag["added"]))
    console().print(table)


@app.command("publish")
@user_errors
def publish() -> None:
    """Publish the accepted incidents as the incidents dataset now (the hub also does it
    after every decision), replacing the extract they were published in before."""
    with context.services(context.settings()) as services:
        done = services.incidents.publish()
    if done.extract is None:
        typer.echo("no incident has been accepted yet: nothing to publish")
    elif done.new:
        typer.echo(f"published {done.rows} incidents as extract {done.extract}"
                   + (f" (replacing {', '.join(done.withdrawn)})" if done.withdrawn else ""))
    else:
        typer.echo(f"the {done.rows} accepted incidents are published already "
                   f"(extract {done.extract})")
    for incident, reason in done.left_out:
        typer.echo(f"left out incident {incident}, which its contract refuses ({reason}); "
                   "claim it and correct its tags", err=True)

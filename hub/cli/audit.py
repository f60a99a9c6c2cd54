"""``tahub audit``: read, verify and export the tamper-evident audit log (docs/audit.md).

``list`` reads entries as sentences with names ("Ana Silva (Banca Italia) ran a query on
bank_alerts costing rho 0.1."), their fields with ``--details``; ``export`` keeps the ids and
exact amounts, with the hashes that ``verify`` checks.
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from connectors.common.auditsentences import detail_lines, sentence
from connectors.common.cli import console, user_errors
from hub.cli import context
from hub.errors import ConfigError

__all__ = ["app"]

app = typer.Typer(help="The tamper-evident audit log (docs/audit.md).", no_args_is_help=True)


@app.command("verify")
@user_errors
def audit_verify() -> None:
    """Recompute the audit chain; name the first bad entry and exit 1 if it is broken."""
    with context.audit_log(context.settings()) as audit:
        report = audit.verify()
    if not report.ok:
        typer.echo(f"audit log BROKEN at seq {report.bad_seq}: {report.reason}", err=True)
        typer.echo(f"(entries 1 to {report.checked} verify)", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit log intact: {report.checked} entries; head seq {report.head_seq} "
               f"hash {report.head_hash}")


Since = Annotated[str | None, typer.Option(help="From this ISO date/time (UTC).")]
Until = Annotated[str | None, typer.Option(help="Before this ISO date/time (UTC).")]
Org = Annotated[str | None, typer.Option(help="Only this organisation (org_...).")]
Actor = Annotated[str | None, typer.Option(
    help="Only this actor (a person's usr_... or a client's tahub_... id).")]
ActionFilter = Annotated[
    str | None, typer.Option(help="Only this action (query.charged) or family (query.*).")]
Dataset = Annotated[str | None, typer.Option(help="Only this dataset.")]


@app.command("list")
@user_errors
def audit_list(
    since: Since = None,
    until: Until = None,
    org: Org = None,
    actor: Actor = None,
    action: ActionFilter = None,
    dataset: Dataset = None,
    last: Annotated[int, typer.Option(min=1, help="How many of the latest entries.")] = 50,
    details: Annotated[bool, typer.Option(
        "--details", help="Each entry's fields under its sentence.")] = False,
) -> None:
    """The latest audit entries, oldest first, as sentences with names and decimal amounts."""
    from hub.governance.auditread import AuditFilter

    flt = AuditFilter.parse(org=org, actor=actor, action=action, since=since, until=until,
                            dataset=dataset)
    with context.identity(context.settings()) as identity:
        names = context.names(identity)
        entries = deque(identity.audit.scan(flt.where()), maxlen=last)
    if not entries:
        typer.echo("no audit entry matches")
        return
    table = Table(title="Audit log")
    table.add_column("#", justify="right")
    table.add_column("when (UTC)")
    table.add_column("what happened", overflow="fold")
    for entry in entries:
        row = entry.as_json()
        text = sentence(row, names)
        if details:
            text += "\n" + "\n".join(f"  {line}" for line in [
                f"action: {row['action']}",
                *([f"by: {row['actor']}" + (f" of {row['org']}" if row["org"] else "")]
                  if row["actor"] or row["org"] else []),
                *([f"about: {row['object_type']} {row['object_id'] or ''}".rstrip()]
                  if row["object_type"] else []),
                *detail_lines(row, names)])
        table.add_row(str(entry.seq), entry.at.strftime("%Y-%m-%d %H:%M:%S"), escape(text))
    console().print(table)


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@app.command("export")
@user_errors
def audit_export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL),
    since: Since = None,
    until: Until = None,
    org: Org = None,
    actor: Actor = None,
    action: ActionFilter = None,
    dataset: Dataset = None,
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Export audit entries (with their hashes) as JSONL or CSV."""
    from hub.governance.auditread import AuditFilter, render

    flt = AuditFilter.parse(org=org, actor=actor, action=action, since=since, until=until,
                            dataset=dataset)
    with context.audit_log(context.settings()) as audit:
        lines = render(audit.scan(flt.where()), fmt.value)
        if out is None:
            for line in lines:
                typer.echo(line, nl=False)
            return
        try:
            with out.open("w", encoding="utf-8", newline="") as fh:
                fh.writelines(lines)
        except OSError as exc:
            raise ConfigError(f"cannot write {out} ({exc.strerror or exc})") from None
    typer.echo(f"wrote {out}", err=True)

"""``tahub audit``: verify and export the tamper-evident audit log (docs/audit.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from connectors.common.cli import user_errors
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


class ExportFormat(StrEnum):
    JSONL = "jsonl"
    CSV = "csv"


@app.command("export")
@user_errors
def audit_export(
    fmt: Annotated[ExportFormat, typer.Option("--format", help="jsonl or csv.")] = (
        ExportFormat.JSONL),
    since: Annotated[str | None, typer.Option(help="From this ISO date/time (UTC).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this ISO date/time (UTC).")] = None,
    org: Annotated[str | None, typer.Option(help="Only this organisation (org_...).")] = None,
    actor: Annotated[str | None, typer.Option(help="Only this actor (client id).")] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action (query.charged) or family (query.*).")
    ] = None,
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
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

"""``tahub admin``: the hub administrator's commands (schema, clean-up, members, clients,
people, budgets)."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.panel import Panel
from rich.table import Table

from connectors.common.cli import console, user_errors
from hub.actors import MemberKind, Role
from hub.cli import context
from hub.cli.people import app as person_app
from hub.cli.reports import purge_reports, reports_key

__all__ = ["app"]

app = typer.Typer(help="Administer the hub: schema, clean-up, members.", no_args_is_help=True)
member_app = typer.Typer(help="Member organisations.", no_args_is_help=True)
client_app = typer.Typer(help="OAuth2 clients of members.", no_args_is_help=True)
budget_app = typer.Typer(help="The privacy-budget ledger.", no_args_is_help=True)
app.add_typer(member_app, name="member")
app.add_typer(client_app, name="client")
app.add_typer(person_app, name="person")
app.add_typer(budget_app, name="budget")
app.command("reports-key")(reports_key)  # crowd reports (hub.cli.reports)
app.command("purge-reports")(purge_reports)


# -- schema and clean-up -----------------------------------------------------------------
@app.command()
@user_errors
def migrate() -> None:
    """Bring the metadata store to the latest schema (also done at every start)."""
    from hub.storage.db import make_engine

    settings = context.settings()
    engine = make_engine(settings.database_url)
    try:
        context.migrate(engine)
    finally:
        engine.dispose()
    typer.echo("metadata store is at the latest schema")


@app.command()
@user_errors
def sweep() -> None:
    """Expire stale uploads, remove staging files and orphan objects, and expired sign-in
    codes and refresh tokens."""
    with context.services(context.settings()) as services:
        report = services.sweep()
    typer.echo(
        f"expired uploads: {report['expired_uploads']}, "
        f"staging files removed: {report['staging_files_removed']}, "
        f"orphan objects removed: {report['orphan_objects_removed']}, "
        f"expired sign-in rows removed: {report['sign_in_rows_removed']}"
    )


@app.command("settings-doc")
@user_errors
def settings_doc(
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Print the settings reference (docs/settings.md)."""
    from hub.cli.reference import settings_markdown

    context.write_or_print(settings_markdown(), out)


def _show_credentials(creds: Any, title: str) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    grid.add_row("organisation", f"{creds.org_name} ({creds.org_id})")
    grid.add_row("client id", creds.client_id)
    grid.add_row("client secret", creds.client_secret)
    grid.add_row("roles", ", ".join(creds.roles))
    out = console()
    out.print(Panel(grid, title=title, expand=False))
    out.print(
        "The client secret is shown only this once and cannot be recovered (the hub keeps "
        "only a hash). Hand it to the member's system now; if it is lost, add a new client "
        "and revoke this one."
    )


RoleOption = Annotated[
    list[Role], typer.Option("--role", help="A role of the client (repeat for several).")
]


@member_app.command("add")
@user_errors
def member_add(
    name: Annotated[str, typer.Argument(help="The member organisation's name.")],
    kind: Annotated[MemberKind, typer.Option(help="What kind of organisation it is.")],
    role: RoleOption,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the credentials as JSON, for scripts.")
    ] = False,
) -> None:
    """Register a member organisation and its first client (prints the secret once)."""
    with context.identity(context.settings()) as identity:
        creds = identity.register_member(name, kind, role, actor=context.cli_actor())
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(creds)))
    else:
        _show_credentials(creds, f"New member: {creds.org_name}")


@member_app.command("limits")
@user_errors
def member_limits(
    org_id: Annotated[str, typer.Argument(help="The member organisation's id (org_...).")],
    max_rows: Annotated[int | None, typer.Option(
        min=1, help="Most rows one of its extracts may hold.")] = None,
    max_decoded_bytes: Annotated[int | None, typer.Option(
        min=1, help="Most bytes one of its extracts may decode to.")] = None,
    max_ratio: Annotated[int | None, typer.Option(
        min=1, help="Most decoded bytes per uploaded byte.")] = None,
    reset: Annotated[bool, typer.Option(
        "--reset", help="Clear its own limits: the hub's settings apply again.")] = False,
) -> None:
    """Show, set or clear a member's own extract limits (without options: show them).

    They replace TAHUB_MAX_EXTRACT_ROWS, TAHUB_MAX_DECODED_BYTES and TAHUB_MAX_DECODED_RATIO
    for this member's extracts, e.g. for a bank whose monthly export is larger than others'.
    """
    from hub.storage.db import MEMBER_LIMITS as names

    if reset and any(v is not None for v in (max_rows, max_decoded_bytes, max_ratio)):
        raise typer.BadParameter("--reset clears every limit: give it alone")
    given = dict(zip(names, (max_rows, max_decoded_bytes, max_ratio), strict=True))
    changes = dict.fromkeys(names) if reset else {k: v for k, v in given.items() if v}
    settings = context.settings()
    with context.identity(settings) as identity:
        now = identity.set_extract_limits(org_id, changes, actor=context.cli_actor())
        name = context.names(identity).org(org_id)
    table = Table(title=f"Extract limits of {name} ({org_id})")
    for column in ("limit", "value", "from"):
        table.add_column(column)
    for name, own in now.items():
        value = own if own is not None else getattr(settings, name)
        table.add_row(name, f"{value:,}", "this member" if own is not None
                      else f"TAHUB_{name.upper()}")
    console().print(table)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


@app.command()
@user_errors
def links(
    limit: Annotated[int, typer.Option(min=1, help="How many of the largest persons to list.")]
    = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
    = False,
) -> None:
    """Persons linked across partners and datasets: how many, how large, and the persons
    with more identifiers than TAHUB_LINK_MAX_TOKENS with the tokens most of their units
    share (candidates for TAHUB_LINK_STOP_LIST; docs/privacy.md, "Persons across
    partners"). Tokens are pseudonyms: only partners, with the network key, can tell what
    they stand for."""
    with context.services(context.settings()) as services:
        report = services.ingest.links.report(services.ingest.link_sources(), limit)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report), indent=2))
        return
    summary = Table(title="Persons across partners and datasets")
    for column in ("units", "identifiers", "persons", "persons of several units",
                   "largest (identifiers)", f"over {report.max_tokens} identifiers"):
        summary.add_column(column, justify="right")
    summary.add_row(*(str(v) for v in (report.anchors, report.identifiers, report.persons,
                                       report.merged_persons, report.largest,
                                       report.over_cap)))
    console().print(summary)
    if not report.oversized:
        return
    table = Table(title="Largest persons: likely shared identifiers (a call centre, an agent)")
    for column in ("person", "identifiers", "units", "most shared tokens (units)"):
        table.add_column(column, overflow="fold")
    for p in report.oversized:
        shared = "\n".join(f"{t['kind']} {t['token']} ({t['units']})"
                           for t in p["shared"])
        table.add_row(str(p["person"]), str(p["identifiers"]), str(p["units"]), shared)
    console().print(table)


@budget_app.command("show")
@user_errors
def budget_show(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
) -> None:
    """Privacy budget spent per dataset and member since the ledger began (as decimals, and
    exact).

    What is left depends on each dataset's policy; members see it with their own balance.
    """
    from connectors.common.amounts import amount
    from hub.query.ledger import Ledger

    settings = context.settings()
    with context.identity(settings) as identity:
        rows = Ledger(identity.audit.engine).spending(dataset)
        names = context.names(identity)
    if not rows:
        typer.echo("nothing spent yet" + (f" on {dataset}" if dataset else ""))
        return
    table = Table(title="Privacy budget spent")
    for column in ("dataset", "organisation", "spent", "exact", "queries", "released",
                   "charged", "failed"):
        table.add_column(column, overflow="fold")
    totals: dict[tuple[str, str], Any] = {}
    for r in rows:
        table.add_row(r.dataset, names.org(r.org), amount(r.spent, r.measure.value),
                      str(r.spent), str(r.entries), str(r.released), str(r.charged),
                      str(r.failed))
        key = (r.dataset, r.measure.value)
        totals[key] = totals.get(key, 0) + r.spent
    for (name, measure), spent in sorted(totals.items()):
        table.add_row(name, "(all members: cumulative loss)", amount(spent, measure),
                      str(spent), "", "", "", "")
    console().print(table)


@member_app.command("list")
@user_errors
def member_list() -> None:
    """Members and their clients (ids and roles; secrets are never shown)."""
    with context.identity(context.settings()) as identity:
        members = identity.members()
    table = Table(title="Members")
    for column in ("organisation", "name", "kind", "client id", "roles", "created", "status"):
        table.add_column(column, overflow="fold")
    for m in members:
        rows = m["clients"] or [None]
        for c in rows:
            table.add_row(
                m["id"],
                m["name"],
                m["kind"],
                c["client_id"] if c else "",
                ", ".join(c["roles"]) if c else "",
                _when(c["created_at"] if c else m["created_at"]),
                ("revoked " + _when(c["revoked_at"]) if c["revoked_at"] else "active")
                if c
                else "no clients",
            )
    console().print(table)


@client_app.command("add")
@user_errors
def client_add(
    org_id: Annotated[str, typer.Argument(help="The member organisation's id (org_...).")],
    role: RoleOption,
) -> None:
    """Add a client to a member (prints the secret once)."""
    with context.identity(context.settings()) as identity:
        creds = identity.add_client(org_id, role, actor=context.cli_actor())
    _show_credentials(creds, f"New client for {creds.org_name}")


@client_app.command("revoke")
@user_errors
def client_revoke(
    client_id: Annotated[str, typer.Argument(help="The client id (tahub_...).")],
) -> None:
    """Revoke a client: its tokens stop working at once."""
    with context.identity(context.settings()) as identity:
        identity.revoke_client(client_id, actor=context.cli_actor())
    typer.echo(f"client {client_id} revoked")

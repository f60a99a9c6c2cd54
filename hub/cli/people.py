"""``tahub admin person``: the people of member organisations (the hub administrator's CLI).

::

    tahub admin person add EMAIL --org ORG_ID --role R [--role R] [--name N]
                           [--password-stdin | --no-password]   a generated password otherwise
    tahub admin person list [--org ORG_ID]
    tahub admin person password EMAIL [--password-stdin]        set a new password
    tahub admin person roles EMAIL --role R [--role R]
    tahub admin person disable EMAIL                            no sign-in; tokens stop working

A person signs in with ``tahub login`` (or the web interface) at the hub's own provider with
the password, or at the organisation's provider (``TAHUB_OIDC_ISSUER``) when
``--no-password`` was given: the first sign-in there links the person by verified e-mail.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.table import Table

from connectors.common.cli import console, user_errors
from hub.actors import Role
from hub.cli import context
from hub.errors import InvalidInput

__all__ = ["app"]

app = typer.Typer(help="People of member organisations: sign-in accounts and their roles.",
                  no_args_is_help=True)

Roles = Annotated[list[Role], typer.Option("--role", help="A role (repeat for several).")]
PasswordStdin = Annotated[bool, typer.Option(
    "--password-stdin", help="Read the password from standard input (one line).")]


def _stdin_password() -> str:
    line = sys.stdin.readline().rstrip("\n")
    if not line:
        raise InvalidInput("no password on standard input", field="password")
    return line


@app.command("add")
@user_errors
def add(
    email: Annotated[str, typer.Argument(help="The person's e-mail address (their login).")],
    org: Annotated[str, typer.Option(help="The member organisation's id (org_...).")],
    role: Roles,
    name: Annotated[str, typer.Option(help="The person's name.")] = "",
    password_stdin: PasswordStdin = False,
    no_password: Annotated[bool, typer.Option(
        "--no-password", help="No hub password: the person signs in at the external "
        "identity provider only.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
) -> None:
    """Register a person of a member organisation (prints a generated password once)."""
    password = _stdin_password() if password_stdin else None
    with context.identity(context.settings()) as identity:
        created = identity.people.add(org, email, name, role, password=password,
                                      generate_password=not (password_stdin or no_password),
                                      actor=context.cli_actor())
    if as_json:
        typer.echo(json.dumps({**created.person.as_json(), "password": created.password}))
        return
    out = console()
    p = created.person
    out.print(f"person {p.id}: {p.name} <{p.email}> of {p.org_name}, roles "
              f"{', '.join(p.roles)}")
    if created.password is not None:
        out.print(f"password: {created.password}")
        out.print("The password is shown only this once (the hub keeps an argon2 hash). "
                  "Hand it over securely; the person can sign in with `tahub login`.")


@app.command("list")
@user_errors
def list_people(
    org: Annotated[str | None, typer.Option(help="Only this organisation (org_...).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")] = False,
) -> None:
    """People and their roles (never passwords)."""
    with context.identity(context.settings()) as identity:
        found = identity.people.list(org)
    if as_json:
        typer.echo(json.dumps([p.as_json() for p in found]))
        return
    table = Table(title="People")
    for column in ("id", "e-mail", "name", "organisation", "roles", "sign-in", "status"):
        table.add_column(column, overflow="fold")
    for p in found:
        how = ", ".join(w for w, on in (("password", p.has_password),
                                         ("external", p.issuer is not None)) if on)
        table.add_row(p.id, p.email, p.name, p.org_name, ", ".join(p.roles),
                      how or "external (not linked yet)",
                      "disabled" if p.disabled else "active")
    console().print(table)


@app.command("password")
@user_errors
def password(
    email: Annotated[str, typer.Argument(help="The person's e-mail address.")],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a person's password (prompted, or read from standard input)."""
    secret = _stdin_password() if password_stdin else typer.prompt(
        "new password", hide_input=True, confirmation_prompt=True)
    with context.identity(context.settings()) as identity:
        person = identity.people.by_email(email)
        identity.people.set_password(person.id, secret, actor=context.cli_actor())
    typer.echo(f"password of {person.email} set")


@app.command("roles")
@user_errors
def roles(
    email: Annotated[str, typer.Argument(help="The person's e-mail address.")],
    role: Roles,
) -> None:
    """Replace a person's roles (effective at their next request)."""
    with context.identity(context.settings()) as identity:
        person = identity.people.by_email(email)
        identity.people.set_roles(person.id, role, actor=context.cli_actor())
    typer.echo(f"{person.email}: roles {', '.join(sorted(r.value for r in role))}")


@app.command("disable")
@user_errors
def disable(email: Annotated[str, typer.Argument(help="The person's e-mail address.")]
            ) -> None:
    """Disable a person: no new sign-in, and every token issued to them stops working."""
    with context.identity(context.settings()) as identity:
        person = identity.people.by_email(email)
        identity.people.disable(person.id, actor=context.cli_actor())
    typer.echo(f"{person.email} disabled")

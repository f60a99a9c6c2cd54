"""``tahub contracts`` and ``tahub policy check|schema``: contract and policy files, offline
(their JSON Schemas for editors, and file:line checks for CI)."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from connectors.common.cli import console, user_errors
from connectors.governance.cli import app as policy_app
from hub.cli import context
from hub.contracts.model import Contract, ContractRegistry, NamedDomain, json_schema_text
from hub.errors import ConfigError, ContractError

__all__ = ["SchemaKind", "contracts_app", "policy_app"]

contracts_app = typer.Typer(help="Data contracts.", no_args_is_help=True)


class SchemaKind(StrEnum):
    CONTRACT = "contract"  # contracts/contract.schema.json
    DOMAIN = "domain"  # contracts/domain.schema.json


_FILE_RE = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.yaml$")


# -- contracts ----------------------------------------------------------------------------
@contracts_app.command("list")
@user_errors
def contracts_list() -> None:
    """The contracts this hub serves."""
    registry = ContractRegistry.load(context.settings().contracts_dir)
    table = Table(title="Data contracts")
    for column in ("dataset", "version", "title", "fields"):
        table.add_column(column)
    for contract in registry:
        table.add_row(
            contract.dataset, str(contract.version), contract.title, str(len(contract.fields))
        )
    console().print(table)


@contracts_app.command("schema")
@user_errors
def contracts_schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    kind: Annotated[
        SchemaKind, typer.Option(help="Contract files, or shared-domain files.")
    ] = SchemaKind.CONTRACT,
) -> None:
    """Print the JSON Schema of contract (or shared-domain) files, for editors."""
    context.write_or_print(json_schema_text(kind.value), out)


def _problem_lines(path: Path, exc: ConfigError) -> list[str]:
    """A file's errors as 'file:line: field: reason' lines (the detail when none is listed)."""
    return [
        f"{path}:{e.line}: {e.field + ': ' if e.field else ''}{e.reason}"
        if e.line is not None
        else f"{path}: {e}"
        for e in exc.errors
    ] or [f"{path}: {exc.detail}"]


def _report_checks(files: list[Path], check: Callable[[Path], list[str]]) -> None:
    """Print 'ok' per clean file and every problem; exit 1 if there is any."""
    problems: list[str] = []
    for path in files:
        found = check(path)
        problems += found
        if not found:
            typer.echo(f"ok: {path}")
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        typer.echo(f"{len(problems)} error(s)", err=True)
        raise typer.Exit(1)


def _check_file(path: Path, default_domains: dict[str, NamedDomain]) -> list[str]:
    """Every problem of one contract (or shared-domain) file, as 'file:line: field: reason'."""
    from hub.yamlfile import load_model

    try:
        if path.parent.name == "domains":
            load_model(path, NamedDomain, error=ContractError)
            return []
        domains = dict(default_domains)
        for domain_file in sorted((path.parent / "domains").glob("*.yaml")):
            named = load_model(domain_file, NamedDomain, error=ContractError)
            domains[named.name] = named
        contract = load_model(path, Contract, error=ContractError, context={"domains": domains})
    except ContractError as exc:
        return _problem_lines(path, exc)
    match = _FILE_RE.match(path.name)
    if match is None:
        return [f"{path}:1: contract files are named <dataset>.v<N>.yaml"]
    if (contract.dataset, contract.version) != (match["dataset"], int(match["version"])):
        return [
            f"{path}:1: declares {contract.dataset} v{contract.version}, "
            "which does not match the file name"
        ]
    return []


@contracts_app.command("check")
@user_errors
def contracts_check(
    files: Annotated[list[Path], typer.Argument(help="Contract YAML files to check.")],
) -> None:
    """Check contract files; print every error as file:line and exit 1 if any."""
    registry = ContractRegistry.load(context.settings().contracts_dir)
    _report_checks(files, lambda path: _check_file(path, registry.domains))


# -- policies -----------------------------------------------------------------------------
@policy_app.command("check")
@user_errors
def policy_check(
    files: Annotated[list[Path], typer.Argument(help="Policy YAML files to check.")],
) -> None:
    """Check policy files against the contracts; print each error as file:line: reason."""
    from hub.governance.policies import PolicyError, load_policy_file

    registry = ContractRegistry.load(context.settings().contracts_dir)

    def check(path: Path) -> list[str]:
        try:
            load_policy_file(path, registry)
        except PolicyError as exc:
            return _problem_lines(path, exc)
        return []

    _report_checks(files, check)


@policy_app.command("schema")
@user_errors
def policy_schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Print the JSON Schema of policy files (policies/policy.schema.json), for editors."""
    from hub.governance.policies import policy_schema_text

    context.write_or_print(policy_schema_text(), out)

"""``tahub``: run and administer a hub. A thin shell over the services.

::

    tahub serve [--host H] [--port P] [--workers N]   run the hub (uvicorn; N processes)
    tahub admin migrate                          bring the metadata store to the latest schema
    tahub admin sweep                            clean expired uploads and orphan objects
    tahub admin member add NAME --kind K --role R [--role R]   new member + first client
    tahub admin member list                      members and their clients (never secrets)
    tahub admin client add ORG_ID --role R       another client for a member
    tahub admin client revoke CLIENT_ID          revoke a client (its tokens stop working)
    tahub admin person add|list|password|roles|disable   people and their sign-in
                                                 (hub.personcli, docs/people.md)
    tahub admin settings-doc [--out FILE]        the settings reference (docs/settings.md)
    tahub admin budget show [--dataset D]        privacy budget spent per dataset and member
    tahub audit verify                           recompute the audit chain; exit 1 if broken
    tahub audit export [--format jsonl|csv] [--since --until --org --actor --action]
    tahub contracts list | schema [--kind K] [--out FILE] | check FILE...
    tahub policy check FILE... | schema [--out FILE]   sharing policy files, offline
    tahub policy propose|proposals|show|approve|reject|withdraw|restore|active|export|import
                 |budgets                        four-eyes policy changes on a hub
                                                 (connectors.governancecli, docs/governance.md)
    tahub demo                                   the guided demo (hub.demo)
    tahub login [--hub URL] [--no-browser] | logout   a person signs in (connectors.login)
    tahub query run|estimate|budget|policies|history|show   an analyst's DP queries
                                                 (connectors.analystcli, docs/analyst.md)
    tahub query releases|release|publish|withdraw   published releases (docs/releases.md)

Settings come from ``TAHUB_*`` environment variables and the TOML file
``TAHUB_SETTINGS_FILE`` names (``docs/settings.md``); health, metrics, logs, workers and
shutdown are in ``docs/operations.md``. A user error prints its message and exits with
status 1, without a traceback.
"""

from __future__ import annotations

import dataclasses
import getpass
import importlib
import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import structlog
import typer
from rich.panel import Panel
from rich.table import Table

from connectors.analystcli import app as query_app
from connectors.governancecli import app as policy_app
from connectors.login import login_command, logout_command
from hub.actors import MemberKind, Role
from hub.cliutil import console, user_errors
from hub.contracts import Contract, ContractRegistry, NamedDomain, json_schema_text
from hub.errors import ConfigError, ContractError
from hub.logging import configure_logging
from hub.personcli import app as person_app
from hub.settings import Settings, load_settings

__all__ = ["SchemaKind", "app", "main"]

log = structlog.get_logger("hub.cli")

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="tahub",
    help="Run and administer a tahub hub.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
admin_app = typer.Typer(help="Administer the hub: schema, clean-up, members.", no_args_is_help=True)
member_app = typer.Typer(help="Member organisations.", no_args_is_help=True)
client_app = typer.Typer(help="OAuth2 clients of members.", no_args_is_help=True)
contracts_app = typer.Typer(help="Data contracts.", no_args_is_help=True)
app.add_typer(admin_app, name="admin")
app.add_typer(contracts_app, name="contracts")
app.add_typer(policy_app, name="policy")
admin_app.add_typer(member_app, name="member")
admin_app.add_typer(client_app, name="client")
admin_app.add_typer(person_app, name="person")
budget_app = typer.Typer(help="The privacy-budget ledger.", no_args_is_help=True)
admin_app.add_typer(budget_app, name="budget")
audit_app = typer.Typer(help="The tamper-evident audit log (docs/audit.md).",
                        no_args_is_help=True)
app.add_typer(audit_app, name="audit")
app.add_typer(query_app, name="query")
app.command("login")(login_command)
app.command("logout")(logout_command)

class SchemaKind(StrEnum):
    CONTRACT = "contract"  # contracts/contract.schema.json
    DOMAIN = "domain"  # contracts/domain.schema.json


_FILE_RE = re.compile(r"^(?P<dataset>[a-z][a-z0-9_]*)\.v(?P<version>[1-9][0-9]*)\.yaml$")


def _settings(**overrides: Any) -> Settings:
    """Settings from the environment and the settings file; a bad value is a ConfigError
    naming its variable (or file and key)."""
    return load_settings(**overrides)


@contextmanager
def _services(settings: Settings) -> Iterator[Any]:
    from hub.api.app import build_services  # the web stack loads only when needed

    configure_logging(settings)
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


@contextmanager
def _identity(settings: Settings) -> Iterator[Any]:
    from hub.db import make_engine
    from hub.identity import IdentityService

    configure_logging(settings)
    engine = make_engine(settings.database_url)
    try:
        _migrate(engine)
        yield IdentityService(engine=engine, settings=settings)
    finally:
        engine.dispose()


def _cli_actor() -> str:
    """Who acts through the admin CLI, as the audit log names them: ``cli:<OS user>``."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (OSError, KeyError):  # no user name (a container without a passwd entry)
        return f"cli:uid{os.getuid()}"


@contextmanager
def _audit_log(settings: Settings) -> Iterator[Any]:
    from hub.audit import AuditLog
    from hub.db import make_engine

    configure_logging(settings)
    engine = make_engine(settings.database_url)
    try:
        _migrate(engine)
        yield AuditLog(engine)
    finally:
        engine.dispose()


def _migrate(engine: Any) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from hub.db import upgrade

    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot open the metadata store ({type(exc).__name__}); check TAHUB_DATABASE_URL"
        ) from None


# -- serve --------------------------------------------------------------------------------
@app.command()
@user_errors
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (TAHUB_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (TAHUB_PORT).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Hub processes on the one port (TAHUB_WORKERS).")
    ] = None,
) -> None:
    """Run the hub (docs/operations.md).

    Migrations run here, once; a bad setting, contract or database fails here with a clear
    message. With several workers, the ingest sweep runs here too, and uvicorn then starts
    the worker processes, each building its app from the environment
    (``hub.api.app:app_from_env``); their metrics are summed through
    ``PROMETHEUS_MULTIPROC_DIR`` (default ``<data_dir>/prometheus``, emptied here). On
    SIGTERM the hub stops accepting connections and gives in-flight requests
    ``TAHUB_SHUTDOWN_GRACE_SECONDS`` to finish.
    """
    import uvicorn

    settings = _settings(host=host, port=port, workers=workers)
    swept: dict[str, int] = {}
    with _services(settings) as services:
        if settings.workers > 1:  # once here; the workers do not sweep
            swept = services.sweep()
    common: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }
    if settings.workers == 1:
        from hub.api.app import create_app

        uvicorn.run(create_app(settings), **common)
        return
    from hub.metrics import MULTIPROC_ENV, prepare_multiprocess_dir

    # The workers read their settings from the environment: pass the options given here.
    given = {"TAHUB_HOST": host, "TAHUB_PORT": port, "TAHUB_WORKERS": workers}
    os.environ.update({name: str(value) for name, value in given.items() if value is not None})
    metrics_dir = os.environ.get(MULTIPROC_ENV) or str(settings.data_dir / "prometheus")
    os.environ[MULTIPROC_ENV] = str(prepare_multiprocess_dir(Path(metrics_dir)).resolve())
    log.info("starting workers", workers=settings.workers, **swept)
    uvicorn.run("hub.api.app:app_from_env", factory=True, workers=settings.workers, **common)


# -- admin --------------------------------------------------------------------------------
@admin_app.command()
@user_errors
def migrate() -> None:
    """Bring the metadata store to the latest schema (also done at every start)."""
    from hub.db import make_engine

    settings = _settings()
    engine = make_engine(settings.database_url)
    try:
        _migrate(engine)
    finally:
        engine.dispose()
    typer.echo("metadata store is at the latest schema")


@admin_app.command()
@user_errors
def sweep() -> None:
    """Expire stale uploads, remove staging files and orphan objects, and expired sign-in
    codes and refresh tokens."""
    with _services(_settings()) as services:
        report = services.sweep()
    typer.echo(
        f"expired uploads: {report['expired_uploads']}, "
        f"staging files removed: {report['staging_files_removed']}, "
        f"orphan objects removed: {report['orphan_objects_removed']}, "
        f"expired sign-in rows removed: {report['sign_in_rows_removed']}"
    )


@admin_app.command("settings-doc")
@user_errors
def settings_doc(
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Print the settings reference (docs/settings.md)."""
    from hub.reference import settings_markdown

    _write_or_print(settings_markdown(), out)


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
    with _identity(_settings()) as identity:
        creds = identity.register_member(name, kind, role, actor=_cli_actor())
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(creds)))
    else:
        _show_credentials(creds, f"New member: {creds.org_name}")


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value is not None else ""


@budget_app.command("show")
@user_errors
def budget_show(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
) -> None:
    """Privacy budget spent per dataset and member since the ledger began (exact amounts).

    What is left depends on each dataset's policy; members see it with their own balance.
    """
    from hub.db import make_engine
    from hub.ledger import Ledger

    settings = _settings()
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    try:
        _migrate(engine)
        rows = Ledger(engine).spending(dataset)
    finally:
        engine.dispose()
    if not rows:
        typer.echo("nothing spent yet" + (f" on {dataset}" if dataset else ""))
        return
    table = Table(title="Privacy budget spent")
    for column in ("dataset", "organisation", "measure", "spent", "≈", "queries", "released",
                   "charged", "failed"):
        table.add_column(column, overflow="fold")
    totals: dict[tuple[str, str], Any] = {}
    for r in rows:
        table.add_row(r.dataset, r.org, r.measure.value, str(r.spent), f"{float(r.spent):.6g}",
                      str(r.entries), str(r.released), str(r.charged), str(r.failed))
        key = (r.dataset, r.measure.value)
        totals[key] = totals.get(key, 0) + r.spent
    for (name, measure), spent in sorted(totals.items()):
        table.add_row(name, "(all members: cumulative loss)", measure, str(spent),
                      f"{float(spent):.6g}", "", "", "", "")
    console().print(table)


@member_app.command("list")
@user_errors
def member_list() -> None:
    """Members and their clients (ids and roles; secrets are never shown)."""
    with _identity(_settings()) as identity:
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
    with _identity(_settings()) as identity:
        creds = identity.add_client(org_id, role, actor=_cli_actor())
    _show_credentials(creds, f"New client for {creds.org_name}")


@client_app.command("revoke")
@user_errors
def client_revoke(
    client_id: Annotated[str, typer.Argument(help="The client id (tahub_...).")],
) -> None:
    """Revoke a client: its tokens stop working at once."""
    with _identity(_settings()) as identity:
        identity.revoke_client(client_id, actor=_cli_actor())
    typer.echo(f"client {client_id} revoked")


# -- audit -------------------------------------------------------------------------------
@audit_app.command("verify")
@user_errors
def audit_verify() -> None:
    """Recompute the audit chain; name the first bad entry and exit 1 if it is broken."""
    with _audit_log(_settings()) as audit:
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


@audit_app.command("export")
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
    from hub.auditread import AuditFilter, render

    flt = AuditFilter.parse(org=org, actor=actor, action=action, since=since, until=until,
                            dataset=dataset)
    with _audit_log(_settings()) as audit:
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


# -- contracts ----------------------------------------------------------------------------
@contracts_app.command("list")
@user_errors
def contracts_list() -> None:
    """The contracts this hub serves."""
    registry = ContractRegistry.load(_settings().contracts_dir)
    table = Table(title="Data contracts")
    for column in ("dataset", "version", "title", "fields"):
        table.add_column(column)
    for contract in registry:
        table.add_row(
            contract.dataset, str(contract.version), contract.title, str(len(contract.fields))
        )
    console().print(table)


def _write_or_print(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out} ({exc.strerror or exc})") from None
    typer.echo(f"wrote {out}")


@contracts_app.command("schema")
@user_errors
def contracts_schema(
    out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
    kind: Annotated[
        SchemaKind, typer.Option(help="Contract files, or shared-domain files.")
    ] = SchemaKind.CONTRACT,
) -> None:
    """Print the JSON Schema of contract (or shared-domain) files, for editors."""
    _write_or_print(json_schema_text(kind.value), out)


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
    registry = ContractRegistry.load(_settings().contracts_dir)
    _report_checks(files, lambda path: _check_file(path, registry.domains))


# -- policies -----------------------------------------------------------------------------
@policy_app.command("check")
@user_errors
def policy_check(
    files: Annotated[list[Path], typer.Argument(help="Policy YAML files to check.")],
) -> None:
    """Check policy files against the contracts; print each error as file:line: reason."""
    from hub.policies import PolicyError, load_policy_file

    registry = ContractRegistry.load(_settings().contracts_dir)

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
    from hub.policies import policy_schema_text

    _write_or_print(policy_schema_text(), out)


# -- demo ---------------------------------------------------------------------------------
@app.command()
@user_errors
def demo(
    port: Annotated[int | None, typer.Option(help="Port to serve on (TAHUB_PORT).")] = None,
    partners_dir: Annotated[
        Path | None,
        typer.Option(help="Partner-side folder. Default: tahub-demo-partners beside the data."),
    ] = None,
    reset: Annotated[bool, typer.Option(help="Delete earlier demo data first.")] = False,
    serve: Annotated[
        bool, typer.Option(help="Keep serving after loading the data (until Ctrl-C).")
    ] = True,
) -> None:
    """Run the hub with five demo members whose synthetic data went through the connector."""
    demo_module = importlib.import_module("hub.demo")  # loaded only for this command
    settings = _settings(port=port)
    configure_logging(settings)
    demo_module.main(settings, partners_dir=partners_dir, reset=reset, serve=serve)


def main() -> None:
    """Entry point of the ``tahub`` command."""
    app()


if __name__ == "__main__":
    main()

"""``tahub-connect``: the partner's command line, a thin shell over :mod:`connectors`.

Exit codes: 0 done; 1 refused (by validation or by the hub, or the hub is unreachable);
2 usage or configuration error (bad mapping, no key, missing credentials). Errors are
printed as the error's own text, never as a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from connectors.common.cli import ClientId, ClientSecret, Hub, Profile
from connectors.partner.client import ExtractInfo, HubClient
from connectors.partner.display import show_check, show_prepared, size
from connectors.partner.limits import ConnectorLimits
from connectors.partner.mapping import load_mapping
from connectors.partner.pipeline import prepare_extract
from connectors.partner.preview import check_export
from connectors.partner.pseudonymise import NetworkKey, load_network_key
from connectors.partner.suggest import suggest_mapping
from connectors.partner.template import mapping_template
from hub import __version__
from hub.contracts.model import ContractRegistry
from hub.errors import ConfigError, TahubError, UnknownDataset

__all__ = ["app", "main"]

app = typer.Typer(
    name="tahub-connect",
    help="Validate, pseudonymise and upload extracts to a tahub hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
mapping_app = typer.Typer(help="Write and check mapping files.", no_args_is_help=True)
key_app = typer.Typer(help="The network key that pseudonymises identifiers.", no_args_is_help=True)
app.add_typer(mapping_app, name="mapping")
app.add_typer(key_app, name="key")

KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="Network key file (default: TAHUB_NETWORK_KEY, then TAHUB_NETWORK_KEY_FILE).",
    ),
]
Contracts = Annotated[
    Path | None,
    typer.Option("--contracts", help="Folder of data contracts (default: those shipped)."),
]
MappingFile = Annotated[Path, typer.Option("--mapping", "-m", help="The mapping YAML file.")]
Source = Annotated[
    Path, typer.Argument(help="The export: CSV, Parquet, Excel, SQLite, or a folder (sql).")
]
Out = Annotated[
    Path | None,
    typer.Option("--out", "-o", help="Extract file (default: <dataset>.v<N>.parquet)."),
]
Rejects = Annotated[
    Path | None,
    typer.Option("--rejects", help="Rejects CSV (default: next to the extract)."),
]
MaxRejectRatio = Annotated[
    float | None,
    typer.Option(
        "--max-reject-ratio",
        min=0.0,
        max=1.0,
        help="Refuse the run when more than this share of rows is rejected "
        "(default: the mapping's max_reject_ratio, 5% unless it says otherwise).",
    ),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tahub-connect {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Validate, pseudonymise and upload extracts to a tahub hub."""


@contextmanager
def _reported() -> Iterator[Console]:
    """Print a ``TahubError`` as its text and exit 2 (configuration) or 1 (refusal)."""
    err = Console(stderr=True)
    try:
        yield err
    except (ConfigError, UnknownDataset) as exc:  # a local lookup: the command was wrong
        err.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(2) from None
    except TahubError as exc:
        err.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(1) from None


def _run_push(
    source: Path,
    mapping: Path,
    *,
    out: Path | None,
    rejects: Path | None,
    dry_run: bool,
    hub: str | None,
    client_id: str | None,
    client_secret: str | None,
    profile: str | None = None,
    key_file: Path | None,
    max_reject_ratio: float | None,
    contracts: Path | None,
) -> None:
    console = Console()
    with _reported() as err:
        registry = ContractRegistry.load(contracts)
        m = load_mapping(mapping, registry)
        key = load_network_key(key_file)
        limits = ConnectorLimits.from_env()  # before the work: a bad setting fails first
        client = None if dry_run else HubClient.from_env(hub, client_id, client_secret,
                                                          profile=profile)
        try:
            if client is not None:
                client.authenticate()  # wrong credentials fail before the work, not after
            out_path = out or Path(f"{m.dataset}.v{m.contract_version}.parquet")
            rejects_path = rejects or out_path.with_name(f"{out_path.stem}.rejects.csv")
            with err.status("reading") as status:
                prepared = prepare_extract(
                    source,
                    m,
                    key=key,
                    out_path=out_path,
                    rejects_path=rejects_path,
                    registry=registry,
                    max_reject_ratio=max_reject_ratio,
                    progress=status.update,
                    limits=limits,
                )
            show_prepared(console, prepared)
            if client is None:
                console.print("Dry run: nothing was uploaded.")
                return
            with Progress(
                TextColumn("uploading"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=err,
            ) as bar:
                task = bar.add_task("upload", total=prepared.size)
                outcome = client.upload(
                    prepared.path,
                    dataset=prepared.dataset,
                    contract_version=prepared.contract_version,
                    sha256=prepared.sha256,
                    on_progress=lambda done, total: bar.update(task, completed=done, total=total),
                )
            e = outcome.extract
            if outcome.duplicate:
                console.print(f"The hub already has this extract: {e.id} ({e.rows:,} rows).")
            else:
                resumed = (
                    f"; resumed at byte {outcome.resumed_from:,}" if outcome.resumed_from else ""
                )
                console.print(
                    f"Uploaded extract {e.id} ({e.rows:,} rows, {size(e.size)}){resumed}."
                )
        finally:
            if client is not None:
                client.close()


@app.command()
def push(
    source: Source,
    mapping: MappingFile,
    out: Out = None,
    rejects: Rejects = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate and write files; upload nothing.")
    ] = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
    key_file: KeyFile = None,
    max_reject_ratio: MaxRejectRatio = None,
    contracts: Contracts = None,
) -> None:
    """Validate SOURCE against the contract, pseudonymise it, write the extract, upload it."""
    _run_push(
        source,
        mapping,
        out=out,
        rejects=rejects,
        dry_run=dry_run,
        hub=hub,
        client_id=client_id,
        client_secret=client_secret,
        profile=profile,
        key_file=key_file,
        max_reject_ratio=max_reject_ratio,
        contracts=contracts,
    )


@app.command()
def validate(
    source: Source,
    mapping: MappingFile,
    out: Out = None,
    rejects: Rejects = None,
    key_file: KeyFile = None,
    max_reject_ratio: MaxRejectRatio = None,
    contracts: Contracts = None,
) -> None:
    """Like ``push --dry-run``: check and write the extract, upload nothing."""
    _run_push(
        source,
        mapping,
        out=out,
        rejects=rejects,
        dry_run=True,
        hub=None,
        client_id=None,
        client_secret=None,
        key_file=key_file,
        max_reject_ratio=max_reject_ratio,
        contracts=contracts,
    )


@app.command()
def check(
    source: Source,
    mapping: MappingFile,
    samples: Annotated[
        int, typer.Option("--samples", min=1, max=20, help="Values shown per field.")
    ] = 3,
    contracts: Contracts = None,
) -> None:
    """Show how the mapping reads SOURCE: per field, raw values beside what they become,
    rejects, magnitudes against the contract, columns left behind. Writes nothing and needs
    no key; exits 1 when `push` would stop."""
    with _reported() as err:
        registry = ContractRegistry.load(contracts)
        m = load_mapping(mapping, registry)
        with err.status("reading") as status:
            result = check_export(
                source, m, registry=registry, samples=samples, progress=status.update,
                limits=ConnectorLimits.from_env(),
            )
        show_check(Console(), result)
        if result.would_stop:
            raise typer.Exit(1)


def _extracts_table(extracts: list[ExtractInfo]) -> Table:
    table = Table(title="Extracts")
    for name in ("id", "dataset", "v", "rows", "status", "created", "key id"):
        table.add_column(name, overflow="fold")
    for e in extracts:
        table.add_row(
            e.id,
            e.dataset,
            str(e.contract_version),
            f"{e.rows:,}",
            e.status,
            e.created_at.strftime("%Y-%m-%d %H:%M"),
            e.key_id,
        )
    return table


@app.command("list")
def list_extracts(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    include_withdrawn: Annotated[
        bool, typer.Option("--all", help="Include withdrawn extracts.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Your organisation's extracts on the hub."""
    with (_reported(),
          HubClient.from_env(hub, client_id, client_secret, profile=profile) as client):
        extracts = client.list_extracts(dataset=dataset, include_withdrawn=include_withdrawn)
        if as_json:
            typer.echo(json.dumps([e.model_dump(mode="json") for e in extracts], indent=2))
        else:
            Console().print(_extracts_table(extracts))


@app.command()
def withdraw(
    extract_id: Annotated[str, typer.Argument(help="The extract's id (see `list`).")],
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Withdraw one of your extracts: the hub deletes it and no later query reads it."""
    with (_reported(),
          HubClient.from_env(hub, client_id, client_secret, profile=profile) as client):
        e = client.withdraw(extract_id)
        Console().print(f"Withdrawn {e.id} ({e.dataset} v{e.contract_version}, {e.rows:,} rows).")


@app.command()
def contracts(
    local: Annotated[
        bool, typer.Option("--local", help="The contracts shipped with this connector.")
    ] = False,
    contracts_dir: Contracts = None,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """The data contracts the hub knows (or, with --local, this connector)."""
    with _reported():
        if local:
            rows = [
                {"dataset": c.dataset, "version": c.version, "title": c.title}
                for c in ContractRegistry.load(contracts_dir)
            ]
        else:
            with HubClient.from_env(hub, client_id, client_secret,
                                    profile=profile) as client:
                rows = client.contracts()
        table = Table(title="Data contracts")
        for name in ("dataset", "version", "title"):
            table.add_column(name)
        for row in rows:
            table.add_row(str(row["dataset"]), str(row["version"]), str(row.get("title", "")))
        Console().print(table)


@mapping_app.command("template")
def mapping_template_command(
    dataset: Annotated[str, typer.Option(help="The contract's dataset.")],
    version: Annotated[
        int | None, typer.Option(help="Contract version (default: the newest).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of printing.")
    ] = None,
    contracts_dir: Contracts = None,
) -> None:
    """A commented mapping file for one contract, to fill in."""
    with _reported():
        contract = ContractRegistry.load(contracts_dir).get(dataset, version)
        text = mapping_template(contract)
        if out is None:
            typer.echo(text, nl=False)
            return
        if out.exists():
            raise ConfigError(f"{out} already exists; choose another --out")
        out.write_text(text, encoding="utf-8")
        Console().print(f"Wrote {out}: set each `column:` to your export's column names.")


@mapping_app.command("suggest")
def mapping_suggest_command(
    source: Annotated[Path, typer.Argument(help="A sample of the export (CSV, Parquet, Excel).")],
    dataset: Annotated[
        str | None, typer.Option(help="The contract's dataset (default: the best fit).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Contract version (default: the newest).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write here instead of printing.")
    ] = None,
    contracts_dir: Contracts = None,
) -> None:
    """Propose a mapping from a sample of the export, to edit: encoding, delimiter, which
    column feeds which field, date formats, number formats, code lists."""
    with _reported():
        if out is not None and out.exists():
            raise ConfigError(f"{out} already exists; choose another --out")
        registry = ContractRegistry.load(contracts_dir)
        text = suggest_mapping(source, registry, dataset=dataset, version=version)
        if out is None:
            typer.echo(text, nl=False)
            return
        out.write_text(text, encoding="utf-8")
        Console().print(
            f"Wrote {out}: check every line marked TODO, then run "
            f"`tahub-connect check {source} --mapping {out}`."
        )


@mapping_app.command("check")
def mapping_check(
    mapping: Annotated[Path, typer.Argument(help="The mapping YAML file.")],
    contracts_dir: Contracts = None,
) -> None:
    """Check a mapping file against its contract (no data needed)."""
    with _reported():
        m = load_mapping(mapping, ContractRegistry.load(contracts_dir))
        Console().print(
            f"{mapping}: OK ({m.dataset} v{m.contract_version}, {len(m.fields)} fields mapped)"
        )


@key_app.command("new")
def key_new(
    out: Annotated[Path, typer.Option("--out", "-o", help="The key file to create (0600).")],
) -> None:
    """Generate a network key. Share it with the other partners' connectors, never the hub."""
    with _reported():
        key = NetworkKey.generate()
        key.write(out)
        Console().print(
            f"Wrote network key {key.key_id} to {out} (readable by you only).\n"
            "Share it with the other partners out of band (e.g. each one's secret manager); "
            "never give it to the hub operator."
        )


@key_app.command("id")
def key_id(key_file: KeyFile = None) -> None:
    """Print the id of the configured network key (safe to share; the key is not)."""
    with _reported():
        typer.echo(load_network_key(key_file).key_id)


def main() -> None:
    """Entry point of the ``tahub-connect`` script."""
    app()

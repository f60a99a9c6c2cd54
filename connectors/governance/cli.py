"""``tahub policy``: a governance officer's command line, a thin shell over
:class:`~connectors.governance.client.GovernanceClient` (and the offline ``check`` and ``schema``,
added by :mod:`hub.cli.main`).

::

    tahub policy propose FILE [--effective-at WHEN] [--note N] [--dry-run]   diff + proposal
    tahub policy proposals [--dataset D] [--status S] [-q] pending (or other) versions
    tahub policy show ID                                   text, diff and approvals
    tahub policy approve ID [--note N]                     another officer than the proposer
    tahub policy reject ID --reason R
    tahub policy withdraw ID                               the proposer
    tahub policy restore DATASET VERSION [--effective-at WHEN] [--note N]
    tahub policy active                                    every dataset's active version
    tahub policy export [--out DIR]                        the active versions, as files
    tahub policy import DIR|FILE...                        propose every file that differs
    tahub policy budgets [--dataset D]                     spent and left, per member

Organisations and people are shown by name (``GET /v1/directory``), amounts as decimals; the
ids and exact amounts are in ``--json``.

Credentials as for ``tahub query``: ``--hub``, ``--client-id``, ``--client-secret`` or the
``TAHUB_*`` variables, of a client with the ``governance`` role; or an officer signed in with
``tahub login`` (``--profile``), whose profile also gives the hub.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.syntax import Syntax
from rich.table import Table

from connectors.common.amounts import amount
from connectors.common.cli import (
    ClientId,
    ClientSecret,
    Hub,
    Profile,
    console,
    user_errors,
)
from connectors.common.names import Names
from connectors.governance.client import GovernanceClient
from hub.errors import HubRequestError, InvalidInput

__all__ = ["app"]

app = typer.Typer(
    name="policy",
    help="Sharing policies: check files offline; propose, review and export them on a hub.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EffectiveAt = Annotated[
    str | None,
    typer.Option(help="When the change takes effect once approved (ISO date or time; "
                 "default: at once)."),
]
Note = Annotated[str | None, typer.Option(help="Why: shown to the reviewers and audited.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the hub's JSON, for scripts.")]


def _client(hub: str | None, client_id: str | None, client_secret: str | None,
            profile: str | None) -> GovernanceClient:
    return GovernanceClient.from_env(hub, client_id, client_secret, profile=profile)


def _file_errors(exc: HubRequestError, name: str) -> HubRequestError:
    """A refused policy file: one ``file:line: field: reason`` line per error."""
    errors = exc.problem_body.get("errors") or []
    if not errors:
        return exc
    lines = [f"{name}:{e.get('line') or '?'}: "
             + (f"{e['field']}: " if e.get("field") else "") + str(e.get("reason"))
             for e in errors]
    return HubRequestError(exc.detail + "\n" + "\n".join(f"  {line}" for line in lines),
                           http_status=exc.http_status, problem=exc.problem_body)


def _names(client: GovernanceClient, as_json: bool) -> Names | None:
    """The directory's names (not needed for --json)."""
    return None if as_json else Names.from_directory(client.directory())


def _who(actor: str | None, org: str | None, names: Names | None) -> str:
    return names.who(actor, org) if names is not None else f"{actor} ({org})"


def _show(view: dict[str, Any], *, diff: bool = True, names: Names | None = None) -> None:
    out = console()
    needed = view.get("still_needed") or {}
    waiting = ""
    if view.get("status") == "pending" and any(needed.values()):
        waiting = (f" - needs {needed.get('officers', 0)} more officer(s)"
                   + (f" from {needed['organisations']} more organisation(s)"
                      if needed.get("organisations") else ""))
    out.print(f"[bold]{escape(str(view.get('dataset')))} version {view.get('version')}[/] "
              f"({view.get('id') or 'not stored'}): {view.get('status')}{waiting}")
    if view.get("effective_at"):
        out.print(f"effective at {view['effective_at']}")
    if view.get("note"):
        out.print(f"note: {escape(view['note'])}")
    if view.get("reason"):
        out.print(f"rejected: {escape(view['reason'])}")
    if names is not None and view.get("proposed_by"):
        by = _who(view["proposed_by"], view.get("proposed_org"), names)
        out.print(f"proposed by {escape(by)} at {view.get('proposed_at')}")
    for approval in view.get("approvals") or []:
        out.print(f"approved by {escape(_who(approval['actor'], approval['org'], names))} at "
                  f"{approval['at']}")
    if view.get("budget_changed"):
        before, after = view.get("limits_before") or {}, view.get("limits") or {}
        keys = ("global_total", "per_member", "per_query", "per_month")
        measure = after.get("measure") or before.get("measure")
        changed = [f"{k}: {amount(before.get(k), measure, exact=True)} -> "
                   f"{amount(after.get(k), measure, exact=True)}" for k in keys
                   if before.get(k) != after.get(k)]
        out.print("[bold]budget changes[/]: " + ("; ".join(changed) or "new policy"))
    if diff and view.get("diff"):
        out.print(Syntax(view["diff"], "diff", theme="ansi_dark", background_color="default"))


@app.command()
@user_errors
def propose(
    file: Annotated[Path, typer.Argument(help="The new policy file, <dataset>.yaml.")],
    effective_at: EffectiveAt = None,
    note: Note = None,
    dry_run: Annotated[bool, typer.Option(help="Validate and diff only; store nothing.")]
    = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Propose a policy file as its dataset's new policy; another officer must approve."""
    text = _read(file)
    with _client(hub, client_id, client_secret, profile) as client:
        try:
            view = client.propose(text, filename=file.name, effective_at=effective_at,
                                  note=note, dry_run=dry_run)
        except HubRequestError as exc:
            raise _file_errors(exc, str(file)) from None
    _print(view, as_json)
    if not as_json and view.get("outcome") == "existing":
        console().print("the same change was already proposed: nothing new stored")


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {file} ({type(exc).__name__})", field="file") from None


@app.command()
@user_errors
def proposals(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    status: Annotated[str | None, typer.Option(
        help="pending (default), scheduled, active, retired, rejected, withdrawn, "
        "superseded or all.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only the ids, one per line.")]
    = False,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Policy versions by status, newest first (default: those waiting for review)."""
    with _client(hub, client_id, client_secret, profile) as client:
        views = client.proposals(dataset=dataset, status=status)
        names = _names(client, as_json or quiet or not views)
    if quiet:
        for v in views:
            typer.echo(v["id"])
        return
    if as_json:
        typer.echo(json.dumps(views, indent=2))
        return
    if not views:
        console().print(f"no {status or 'pending'} proposals")
        return
    table = Table(title=f"Policy versions ({status or 'pending'})")
    for column in ("id", "dataset", "version", "status", "proposed by", "proposed at",
                   "effective at", "approvals", "note"):
        table.add_column(column, overflow="fold")
    for v in views:
        table.add_row(str(v["id"]), v["dataset"], str(v["version"]), v["status"],
                      escape(_who(v["proposed_by"], v.get("proposed_org"), names)),
                      str(v["proposed_at"]),
                      str(v.get("effective_at") or "on approval"),
                      str(len(v.get("approvals") or [])), escape(v.get("note") or ""))
    console().print(table)


def _print(view: dict[str, Any], as_json: bool, *, diff: bool = True,
           names: Names | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(view, indent=2))
    else:
        _show(view, diff=diff, names=names)


@app.command()
@user_errors
def show(
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id (pv_...).")],
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """One proposal: its status, approvals and diff against the version it changes."""
    with _client(hub, client_id, client_secret, profile) as client:
        view = client.proposal(proposal_id)
        names = _names(client, as_json)
    _print(view, as_json, names=names)


@app.command()
@user_errors
def approve(
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id (pv_...).")],
    note: Note = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Approve a proposal (not your own); at quorum it takes effect or is scheduled."""
    with _client(hub, client_id, client_secret, profile) as client:
        _print(client.approve(proposal_id, note=note), as_json, diff=False,
               names=_names(client, as_json))


@app.command()
@user_errors
def reject(
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id (pv_...).")],
    reason: Annotated[str, typer.Option(help="Why: the proposer and the audit log see it.")],
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Reject another officer's proposal, with a reason."""
    with _client(hub, client_id, client_secret, profile) as client:
        _print(client.reject(proposal_id, reason=reason), as_json, diff=False,
               names=_names(client, as_json))


@app.command()
@user_errors
def withdraw(
    proposal_id: Annotated[str, typer.Argument(help="The proposal's id (pv_...).")],
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Withdraw your own pending proposal."""
    with _client(hub, client_id, client_secret, profile) as client:
        _print(client.withdraw(proposal_id), as_json, diff=False,
               names=_names(client, as_json))


@app.command()
@user_errors
def restore(
    dataset: Annotated[str, typer.Argument(help="The dataset, e.g. bank_alerts.")],
    version: Annotated[int, typer.Argument(help="The version to bring back.")],
    effective_at: EffectiveAt = None,
    note: Note = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Propose an earlier version of a policy again (reviewed like any change)."""
    with _client(hub, client_id, client_secret, profile) as client:
        view = client.restore(dataset, version, effective_at=effective_at, note=note)
    _print(view, as_json)


@app.command()
@user_errors
def active(
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Every dataset's active policy version, what is scheduled and what waits for review."""
    with _client(hub, client_id, client_secret, profile) as client:
        views = client.policies()
    if as_json:
        typer.echo(json.dumps(views, indent=2))
        return
    table = Table(title="Active sharing policies")
    for column in ("dataset", "version", "active since", "scheduled", "pending"):
        table.add_column(column, overflow="fold")
    for v in views:
        scheduled = ", ".join(f"v{s['version']} at {s['effective_at']}"
                              for s in v.get("scheduled", []))
        table.add_row(v["dataset"], str(v.get("version", "-")), str(v.get("activated_at")),
                      scheduled or "-", str(v.get("pending", 0)))
    console().print(table)


@app.command()
@user_errors
def export(
    out: Annotated[Path, typer.Option(help="The folder to write <dataset>.yaml files to.")]
    = Path("policies"),
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Write the active policies to a folder (exact texts), e.g. to commit them to git."""
    with _client(hub, client_id, client_secret, profile) as client:
        written = client.export_policies(out)
    for path in written:
        typer.echo(f"wrote {path}")


@app.command("import")
@user_errors
def import_(
    paths: Annotated[list[Path], typer.Argument(help="Policy files, or folders of them.")],
    effective_at: EffectiveAt = None,
    note: Note = None,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """Propose every policy file that differs from its dataset's active version.

    Every file is validated first (a dry run); if any is refused, nothing is proposed."""
    files = sorted({f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir()
                                               else [p])})
    if not files:
        raise InvalidInput("no policy files (*.yaml) given", field="paths")
    texts = {f: _read(f) for f in files}
    with _client(hub, client_id, client_secret, profile) as client:
        active = {p["dataset"]: p.get("yaml") for p in client.policies()}
        changed = []
        for f, text in texts.items():
            if active.get(f.stem) == text:
                typer.echo(f"unchanged: {f}")
                continue
            try:
                client.propose(text, filename=f.name, effective_at=effective_at, note=note,
                               dry_run=True)
            except HubRequestError as exc:
                raise _file_errors(exc, str(f)) from None
            changed.append(f)
        for f in changed:
            view = client.propose(texts[f], filename=f.name, effective_at=effective_at,
                                  note=note)
            typer.echo(f"proposed: {f} -> {view['dataset']} version {view['version']} "
                       f"({view['id']}, {view['outcome']})")


@app.command()
@user_errors
def budgets(
    dataset: Annotated[str | None, typer.Option(help="Only this dataset.")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """What each member has spent and has left, per dataset (as decimals; exact with
    --json)."""
    with _client(hub, client_id, client_secret, profile) as client:
        views = client.budgets(dataset)
        names = _names(client, as_json)
    if as_json or names is None:
        typer.echo(json.dumps(views, indent=2))
        return
    for v in views:
        measure = v["accounting"]
        table = Table(title=f"{v['dataset']} ({measure}): global "
                      f"{amount(v['global'], measure, exact=True)}, per member "
                      f"{amount(v['per_member'], measure, exact=True)}")
        for column in ("organisation", "spent", "left", "this month", "global left"):
            table.add_column(column, overflow="fold")
        for m in v["members"]:
            table.add_row(escape(names.org(m["org"])),
                          *(amount(x, exact=True) for x in (
                              m["member"]["spent"], m["member"]["left"], m["month"]["spent"],
                              m["global"]["left"])))
        if not v["members"]:
            table.add_row("(nothing spent yet)", "", "", "", "")
        console().print(table)


@app.command("suggest-bounds")
@user_errors
def suggest_bounds(
    dataset: Annotated[str, typer.Argument(help="The dataset whose bounds to size.")],
    cost: Annotated[str, typer.Option(help="Privacy cost, charged to your organisation "
                                      "(exact: '1/50').")],
    quantile: Annotated[list[float] | None, typer.Option(
        "--quantile", help="A quantile level (repeat); default 0.5 0.9 0.95 0.99.")] = None,
    as_json: AsJson = False,
    hub: Hub = None,
    client_id: ClientId = None,
    client_secret: ClientSecret = None,
    profile: Profile = None,
) -> None:
    """DP quantiles of the rows each unit contributes, to size contribution_bounds."""
    with _client(hub, client_id, client_secret, profile) as client:
        view = client.suggest_bounds(dataset, cost, quantiles=quantile)
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    for name in ("rows_per_unit", "rows_per_unit_per_period"):
        if name not in view:
            continue
        part = view[name]
        typer.echo(f"{dataset}: {name.replace('_', ' ')} (current bound: {part['current']})")
        table = Table()
        table.add_column("quantile")
        table.add_column("rows")
        for level, value in part["quantiles"].items():
            table.add_row(level, str(value))
        console().print(table)
        typer.echo(part["note"])
    typer.echo(f"charged {view['charged']['amount']} ({view['charged']['measure']})"
               + (" - a stored answer, free" if view.get("reused") else ""))

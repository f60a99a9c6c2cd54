"""``tahub sources`` and ``tahub collect``: the sources of open-source collection (the hub
administrator's CLI, on the hub's host: it reads the hub's settings and metadata store).

::

    tahub sources add NAME (--feed URL | --folder PATH) [--language en|fr|es]
                      [--every MINUTES] [--trust high|medium|low] [--host HOST]... [--disabled]
    tahub sources list
    tahub sources show NAME [--fetches N]     the source and its latest fetches, skipped
                                              entries with their reasons
    tahub sources change NAME [--location ...] [--language ...] [--every ...] [--trust ...]
                              [--host HOST]... [--name NEW]
    tahub sources disable|enable|remove NAME
    tahub sources fetch NAME                  fetch it now, whatever its schedule
    tahub collect [--once] [--source NAME]    fetch what is due (again and again, or once)

docs/osint.md (Sources).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from connectors.common.cli import console, user_errors
from hub.cli import context
from hub.errors import InvalidInput

__all__ = ["app", "collect"]

app = typer.Typer(help="Sources of open-source collection: news feeds and folders.",
                  no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The source's name (or id).")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON, for scripts.")]
Hosts = Annotated[list[str] | None, typer.Option(
    "--host", help="Another host its redirects and article links may reach (repeat).")]


@contextmanager
def _sources() -> Iterator[tuple[Any, Any]]:
    """(Sources, Fetcher) on the hub's metadata store, migrated."""
    from hub.logging import configure_logging
    from hub.osint.sources import Sources, fetcher_for
    from hub.storage.db import make_engine

    settings = context.settings()
    configure_logging(settings)
    engine = make_engine(settings.database_url)
    try:
        context.migrate(engine)
        fetcher = fetcher_for(engine, settings)
        try:
            yield Sources(engine), fetcher
        finally:
            fetcher.close()
    finally:
        engine.dispose()


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "-"


def _last(source: Any) -> str:
    f = source.last_fetch
    if f is None:
        return "never"
    if f.outcome == "failed":
        return f"failed {_when(f.started_at)}: {f.error}"
    return f"{f.outcome} {_when(f.started_at)}: +{f.added}, {f.duplicates} dup., " \
           f"{len(f.skipped)} skipped"


def _print_fetch(record: Any, name: str) -> None:
    out = console()
    if record.outcome == "failed":
        status = f" (HTTP {record.http_status})" if record.http_status else ""
        out.print(f"[red]{name}: failed{status}[/red]: {record.error}")
    elif record.outcome == "not_modified":
        out.print(f"{name}: not modified since the last fetch (HTTP 304)")
    else:
        out.print(f"{name}: {record.found} found, {record.added} added, "
                  f"{record.duplicates} duplicates, {len(record.skipped)} skipped")
    for skip in record.skipped[:20]:
        out.print(f"  skipped {skip.ref}: {skip.reason}", markup=False, highlight=False)
    if len(record.skipped) > 20:
        out.print(f"  ... and {len(record.skipped) - 20} more (tahub sources show)")


@app.command("add")
@user_errors
def add(
    name: Annotated[str, typer.Argument(help="A name for the source (unique).")],
    feed: Annotated[str | None, typer.Option(help="The feed's http(s) URL.")] = None,
    folder: Annotated[str | None, typer.Option(
        help="A folder on this host of saved feeds and articles.")] = None,
    language: Annotated[str | None, typer.Option(
        help="en, fr or es; none: identified per article.")] = None,
    every: Annotated[int, typer.Option(help="Minutes between fetches (at least 5).")] = 60,
    trust: Annotated[str, typer.Option(help="high, medium or low.")] = "medium",
    host: Hosts = None,
    disabled: Annotated[bool, typer.Option(help="Add it without fetching it yet.")] = False,
    as_json: AsJson = False,
) -> None:
    """Add a news feed or a folder source (fetched at once, then every --every minutes)."""
    if (feed is None) == (folder is None):
        raise InvalidInput("give either --feed URL or --folder PATH", field="location")
    spec = {"name": name, "kind": "feed" if feed else "folder", "location": feed or folder,
            "language": language, "every_minutes": every, "trust": trust,
            "hosts": host or [], "enabled": not disabled}
    with _sources() as (sources, _):
        source = sources.add(spec, actor=context.cli_actor())
    if as_json:
        typer.echo(source.model_dump_json())
        return
    console().print(f"source {source.id}: {source.name} ({source.kind} {source.location}), "
                    f"every {source.every_minutes} min, trust {source.trust}"
                    + ("" if source.enabled else ", disabled"))


@app.command("list")
@user_errors
def list_sources(as_json: AsJson = False) -> None:
    """Every source, its schedule and its last fetch."""
    with _sources() as (sources, _):
        found = sources.all()
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in found]))
        return
    table = Table(title="Sources")
    for column in ("name", "kind", "location", "language", "every", "trust", "status",
                   "next fetch", "last fetch"):
        table.add_column(column, overflow="fold")
    for s in found:
        table.add_row(s.name, s.kind, s.location, s.language or "any",
                      f"{s.every_minutes} min", s.trust,
                      "enabled" if s.enabled else "disabled",
                      _when(s.next_fetch_at) if s.enabled else "-", _last(s))
    console().print(table)


@app.command("show")
@user_errors
def show(name: Name, fetches: Annotated[int, typer.Option(
        help="How many of the latest fetches to list.")] = 10,
         as_json: AsJson = False) -> None:
    """One source and its latest fetches, with the entries they skipped and why."""
    with _sources() as (sources, _):
        source = sources.get(name)
        records = sources.fetches(source.id, fetches)
    if as_json:
        typer.echo(json.dumps({**source.model_dump(mode="json"),
                               "fetches": [r.model_dump(mode="json") for r in records]}))
        return
    out = console()
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in (("id", source.id), ("name", source.name), ("kind", source.kind),
                       ("location", source.location), ("language", source.language or "any"),
                       ("every", f"{source.every_minutes} min"), ("trust", source.trust),
                       ("hosts", ", ".join(source.hosts) or "-"),
                       ("status", "enabled" if source.enabled else "disabled"),
                       ("next fetch", _when(source.next_fetch_at))):
        grid.add_row(key, value)
    out.print(grid)
    table = Table(title="Latest fetches")
    for column in ("started", "outcome", "HTTP", "found", "added", "dup.", "skipped",
                   "error"):
        table.add_column(column, overflow="fold")
    for r in records:
        table.add_row(_when(r.started_at), r.outcome, str(r.http_status or "-"),
                      str(r.found), str(r.added), str(r.duplicates), str(len(r.skipped)),
                      r.error or "")
    out.print(table)
    if records and records[0].skipped:
        skipped = Table(title="Skipped in the latest fetch")
        skipped.add_column("entry", overflow="fold")
        skipped.add_column("reason", overflow="fold")
        for skip in records[0].skipped:
            skipped.add_row(skip.ref, skip.reason)
        out.print(skipped)


@app.command("change")
@user_errors
def change(
    name: Name,
    new_name: Annotated[str | None, typer.Option("--name", help="A new name.")] = None,
    location: Annotated[str | None, typer.Option(help="A new URL or folder.")] = None,
    language: Annotated[str | None, typer.Option(
        help="en, fr or es; 'any': identified per article.")] = None,
    every: Annotated[int | None, typer.Option(help="Minutes between fetches.")] = None,
    trust: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    host: Hosts = None,
) -> None:
    """Change some of a source's settings (the others stay)."""
    changes: dict[str, Any] = {k: v for k, v in (
        ("name", new_name), ("location", location), ("every_minutes", every),
        ("trust", trust), ("hosts", host)) if v is not None}
    if language is not None:
        changes["language"] = None if language.lower() in ("any", "") else language
    if not changes:
        raise InvalidInput("nothing to change: give at least one option", field=None)
    with _sources() as (sources, _):
        source = sources.change(name, changes, actor=context.cli_actor())
    console().print(f"{source.name}: {source.kind} {source.location}, language "
                    f"{source.language or 'any'}, every {source.every_minutes} min, trust "
                    f"{source.trust}")


@app.command("disable")
@user_errors
def disable(name: Name) -> None:
    """Stop fetching a source (it stays, with its record)."""
    with _sources() as (sources, _):
        source = sources.enable(name, False, actor=context.cli_actor())
    typer.echo(f"{source.name} disabled")


@app.command("enable")
@user_errors
def enable(name: Name) -> None:
    """Fetch a source again (at once, then on its schedule)."""
    with _sources() as (sources, _):
        source = sources.enable(name, True, actor=context.cli_actor())
    typer.echo(f"{source.name} enabled")


@app.command("remove")
@user_errors
def remove(name: Name) -> None:
    """Remove a source nothing was collected from (otherwise: disable it)."""
    with _sources() as (sources, _):
        source = sources.remove(name, actor=context.cli_actor())
    typer.echo(f"{source.name} removed")


@app.command("fetch")
@user_errors
def fetch(name: Name, as_json: AsJson = False) -> None:
    """Fetch a source now, whatever its schedule, and print what the fetch did."""
    with _sources() as (sources, fetcher):
        source = sources.get(name)
        with _progress() as progress:
            record = fetcher.fetch(source.id, _tracker(progress, source.name))
    if as_json:
        typer.echo(record.model_dump_json())
        return
    _print_fetch(record, source.name)


@contextmanager
def _progress() -> Iterator[Progress]:
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console(),
                  transient=True) as progress:
        yield progress


def _tracker(progress: Progress, name: str) -> Any:
    task = progress.add_task(f"fetching {name}", total=None)

    def update(done: int, total: int | None) -> None:
        progress.update(task, completed=done, total=total)

    return update


@user_errors
def collect(
    once: Annotated[bool, typer.Option(
        "--once", help="Fetch what is due now, then stop.")] = False,
    source: Annotated[str | None, typer.Option(
        "--source", help="Only this source, now, whatever its schedule.")] = None,
) -> None:
    """Fetch the sources that are due, again and again (until Ctrl-C), or once.

    Several `tahub collect` and hub processes (TAHUB_COLLECT=true) may run at once: each due
    source is fetched by one of them."""
    from hub.osint.sources import Poller

    settings = context.settings()
    with _sources() as (sources, fetcher):
        if source is not None:
            chosen = sources.get(source)
            with _progress() as progress:
                record = fetcher.fetch(chosen.id, _tracker(progress, chosen.name))
            _print_fetch(record, chosen.name)
            return
        poller = Poller(sources, fetcher, interval=settings.collect_poll_seconds)
        names = {s.id: s.name for s in sources.all()}
        with _progress() as progress:

            def on_fetch(claimed: Any) -> Any:
                names[claimed.id] = claimed.name
                return _tracker(progress, claimed.name)

            def on_done(record: Any) -> None:
                _print_fetch(record, names.get(record.source_id, record.source_id))

            if once:
                if not poller.run_due(on_fetch, on_done):
                    console().print("no source is due")
                return
            console().print(f"collecting: every {settings.collect_poll_seconds} s, the "
                            "sources that are due (Ctrl-C stops)")
            try:
                poller.run_forever(on_fetch, on_done)
            except KeyboardInterrupt:
                poller.stop()

"""``tahub demo``: a hub on the embedded default, five members and their data, in one command.

What it does, in order:

1. opens the hub's data folder (``TAHUB_DATA_DIR``, default ``./tahub-data``) and registers
   five demo members: two banks, a money-transfer firm, an NGO and a police unit, each with
   a partner client for uploads and an analyst client for DP queries (``tahub admin member
   add`` and ``tahub admin client add`` do the same by hand), and people who sign in: an
   analyst and a partner engineer at each, a governance officer at two;
2. starts the real hub on a loopback port, with the shipped policies' budgets raised so that
   every walkthrough runs twice (:mod:`hub.demo.budgets`; unless ``TAHUB_POLICIES_DIR`` names
   other policies);
3. on the *partner side* (a separate folder, ``./tahub-demo-partners`` by default, standing
   for five partners' own machines: the hub never reads it) writes each partner's synthetic
   exports in its own formats (:mod:`hub.demo.synthetic`; the money-transfer firm sends two,
   its flows and its red-flag alerts), a mapping file for each, its credentials
   (``partner.env``, ``analyst.env``; ``governance.env`` for two of them) and the network
   pseudonymisation key that only the partners share;
4. pushes every export through the real connector code path over HTTP: mapping,
   validation, pseudonymisation, zstd Parquet, resumable upload, server-side re-validation
   and commit;
5. collects the demo's open sources (:mod:`hub.demo.opensources`): a folder of saved
   articles as a folder source, fetched once, and three crowd reports, all waiting in the
   reviewers' queue;
6. prints where the hub is, who to sign in as on each page, and commands that work when
   copied (:mod:`hub.demo.banner`), and keeps serving until Ctrl-C.

Running it again reuses what exists (uploads are idempotent); ``--reset`` starts afresh.

May import: anything in hub and connectors (only ``tahub demo`` imports it).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from pydantic import SecretStr
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from hub.actors import MemberKind, Role
from hub.api.app import build_services, create_app
from hub.demo.banner import Person, Walkthrough, activation, show
from hub.demo.budgets import write_demo_policies
from hub.demo.opensources import seed_open_sources, write_newsroom
from hub.demo.synthetic import (
    LINKED,
    LINKED_CORRIDOR,
    PARTNERS,
    DemoExport,
    DemoPartner,
    write_exports,
)
from hub.errors import ConfigError, Conflict
from hub.settings import Settings

__all__ = ["DemoPartnerState", "main", "reports_key", "seed"]

_CREDENTIALS = "partner.env"
_ANALYST = "analyst.env"
_GOVERNANCE = "governance.env"
#: Members with a governance officer's client: two organisations, so that a policy change
#: proposed by one can be approved by the other (four eyes, docs/governance.md).
_OFFICERS = ("safepassage", "metpolice")
#: The member whose volunteers review incidents from news and the public (hub.osint.review).
_REVIEWERS = ("safepassage",)
#: People who sign in (``tahub login``, the web interface), one for each role a page serves:
#: an analyst and a partner engineer at every member, a governance officer at each of the two
#: above, a reviewer at the NGO; their e-mail and password in ``people.env`` (``<WHO>_EMAIL``,
#: ``<WHO>_PASSWORD``).
#: The ``admin`` role grants nothing through the API: the hub's administration is
#: ``tahub admin`` on the hub's machine, which whoever runs the demo has.
_PEOPLE = "people.env"
_WHO = (("analyst", Role.ANALYST), ("engineer", Role.PARTNER), ("officer", Role.GOVERNANCE),
        ("reviewer", Role.REVIEWER))


@dataclass(frozen=True)
class DemoPartnerState:
    """One export a partner pushed, and what the hub made of it."""

    partner: DemoPartner
    export: DemoExport
    folder: Path
    client_id: str
    extract_id: str
    rows: int
    rejected: int
    duplicate: bool


def _write_secret(path: Path, text: str) -> None:
    """A credentials file only its owner can read, never overwritten."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)


def reports_key(data_dir: Path) -> str:
    """The demo's key for crowd reports, made once in ``<data_dir>/keys/reports.key`` (only
    its owner reads it) and kept, so that the reports of an earlier run still open. Outside
    the demo an operator sets ``TAHUB_REPORTS_KEYS`` (``tahub admin reports-key``)."""
    path = data_dir / "keys" / "reports.key"
    if not path.exists():
        from hub.osint.sealing import new_key

        _write_secret(path, new_key() + "\n")
    return path.read_text(encoding="utf-8").strip()


def _role_env(settings: Settings, p: DemoPartner, role: Role, client_id: str,
              secret: str) -> str:
    what = {Role.ANALYST: "an analyst's hub credentials (role analyst: DP queries only",
            Role.GOVERNANCE: "a governance officer's hub credentials (role governance: "
                             "policy changes, budgets, audit"}[role]
    return (
        f"# {p.name}: {what};\n"
        f"# `tahub admin client add ORG_ID --role {role.value}` does the same by hand)\n"
        f"TAHUB_HUB_URL={settings.public_url}\n"
        f"TAHUB_CLIENT_ID={client_id}\nTAHUB_CLIENT_SECRET={secret}\n"
    )


def _people_wanted(p: DemoPartner) -> list[tuple[str, Role]]:
    return [(who, role) for who, role in _WHO
            if (role is not Role.GOVERNANCE or p.slug in _OFFICERS)
            and (role is not Role.REVIEWER or p.slug in _REVIEWERS)]


def _people_missing(partners_dir: Path, p: DemoPartner) -> list[tuple[str, Role]]:
    """The member's people not in its ``people.env`` yet (a folder of an earlier demo)."""
    kept = _env_file(partners_dir / p.slug / _PEOPLE)
    return [(who, role) for who, role in _people_wanted(p) if f"{who.upper()}_EMAIL" not in kept]


def _env_file(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


def _add_people(services: Any, settings: Settings, partners_dir: Path, p: DemoPartner,
                org_id: str, wanted: list[tuple[str, Role]]) -> None:
    """The member's people, with generated passwords kept on the partner side only."""
    path = partners_dir / p.slug / _PEOPLE
    lines = [] if path.exists() else [
        f"# {p.name}: people who sign in at {settings.public_url} (`tahub login`, /ui)"]
    for who, role in wanted:
        email = f"{who}@{p.slug}.example"
        try:
            created = services.identity.people.add(
                org_id, email, f"{p.name} {who}", [role], generate_password=True,
                actor="hub:demo")
        except Conflict:
            raise ConfigError(f"{settings.data_dir} already has the demo person {email}, whose "
                              f"password is not in {path}; run `tahub demo --reset`") from None
        key = who.upper()
        lines += [f"{key}_EMAIL={email}", f"{key}_PASSWORD={created.password}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # only its owner reads
    with os.fdopen(fd, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def _register(settings: Settings, partners_dir: Path) -> dict[str, dict[str, str]]:
    """Register the demo members once; their credentials live on the partner side only.

    Each member gets a partner client (``partner.env``: uploads) and an analyst client
    (``analyst.env``: DP queries), as a real member would keep its upload system's and its
    analysts' credentials apart; two members also get a governance officer's client
    (``governance.env``).
    """
    creds: dict[str, dict[str, str]] = {}
    missing = [p for p in PARTNERS if not (partners_dir / p.slug / _CREDENTIALS).exists()]
    wanted = [(p, _ANALYST, Role.ANALYST) for p in PARTNERS] + [
        (p, _GOVERNANCE, Role.GOVERNANCE) for p in PARTNERS if p.slug in _OFFICERS]
    no_client = [(p, name, role) for p, name, role in wanted
                 if not (partners_dir / p.slug / name).exists()]
    no_people = [p for p in PARTNERS if _people_missing(partners_dir, p)]
    if missing or no_client or no_people:
        services = build_services(settings)
        try:
            known = {m["name"]: m["id"] for m in services.identity.members()}
            clash = [p.name for p in missing if p.name in known]
            if clash:
                raise ConfigError(
                    f"{settings.data_dir} already has demo members ({', '.join(clash)}) whose "
                    f"credentials are not in {partners_dir}; run `tahub demo --reset`"
                )
            for p in missing:
                c = services.identity.register_member(p.name, MemberKind(p.kind), [Role.PARTNER])
                known[p.name] = c.org_id
                _write_secret(
                    partners_dir / p.slug / _CREDENTIALS,
                    f"# {p.name}: hub credentials (shown once by `tahub admin member add`)\n"
                    f"TAHUB_HUB_URL={settings.public_url}\n"
                    f"TAHUB_CLIENT_ID={c.client_id}\nTAHUB_CLIENT_SECRET={c.client_secret}\n"
                    f"TAHUB_NETWORK_KEY_FILE={(partners_dir / 'network.key').resolve()}\n",
                )
            for p in no_people:
                if p.name in known:
                    _add_people(services, settings, partners_dir, p, known[p.name],
                                _people_missing(partners_dir, p))
            for p, name, role in no_client:
                if p.name not in known:
                    raise ConfigError(
                        f"{p.name} is not a member of the hub in {settings.data_dir}; "
                        "run `tahub demo --reset`"
                    )
                a = services.identity.add_client(known[p.name], [role])
                _write_secret(partners_dir / p.slug / name,
                              _role_env(settings, p, role, a.client_id, a.client_secret))
        finally:
            services.close()
    for p in PARTNERS:
        lines = (partners_dir / p.slug / _CREDENTIALS).read_text(encoding="utf-8").splitlines()
        creds[p.slug] = dict(
            line.split("=", 1) for line in lines if "=" in line and not line.startswith("#")
        )
    return creds


def _mapping_name(export: DemoExport) -> str:
    """The mapping file of ``export`` in its partner's folder (one per dataset it feeds)."""
    return f"{export.dataset}.mapping.yaml"


def seed(
    settings: Settings, partners_dir: Path, *, console: Console | None = None
) -> list[DemoPartnerState]:
    """Partner side: write exports, then push each through the connector to the running hub."""
    from connectors import HubClient, NetworkKey, load_mapping, load_network_key, prepare_extract

    console = console or Console()
    creds = _register(settings, partners_dir)
    key_file = partners_dir / "network.key"
    if not key_file.exists():
        NetworkKey.generate().write(key_file)
    key = load_network_key(key_file)
    with console.status("Writing the partners' synthetic exports..."):
        exports = write_exports(partners_dir)
    mappings = resources.files("hub.demo") / "mappings"
    states = []
    for p in PARTNERS:
        folder = partners_dir / p.slug
        c = creds[p.slug]
        for e in p.exports:
            mapping_path = folder / _mapping_name(e)
            mapping_path.write_text((mappings / f"{e.key}.yaml").read_text(encoding="utf-8"))
            prepared = prepare_extract(
                exports[e.key],
                load_mapping(mapping_path),
                key=key,
                out_path=folder / f"{e.dataset}.parquet",
                rejects_path=folder / f"{e.dataset}.rejects.csv",
            )
            with (
                HubClient(c["TAHUB_HUB_URL"], c["TAHUB_CLIENT_ID"],
                          c["TAHUB_CLIENT_SECRET"]) as hub,
                Progress(
                    TextColumn(f"[bold]{f'{p.name}, {e.dataset}':<56}"), BarColumn(),
                    DownloadColumn(), TransferSpeedColumn(), console=console, transient=True,
                ) as bar,
            ):
                task = bar.add_task("upload", total=prepared.size)

                def shown(done: int, _total: int, bar: Progress = bar,
                          task: TaskID = task) -> None:
                    bar.update(task, completed=done)

                outcome = hub.upload(
                    prepared.path,
                    dataset=prepared.dataset,
                    contract_version=prepared.contract_version,
                    sha256=prepared.sha256,
                    on_progress=shown,
                )
            states.append(
                DemoPartnerState(p, e, folder, c["TAHUB_CLIENT_ID"], outcome.extract.id,
                                 outcome.extract.rows, prepared.rows_rejected,
                                 outcome.duplicate)
            )
    return states


def _summary(console: Console, settings: Settings, partners_dir: Path,
             states: list[DemoPartnerState]) -> None:
    table = Table(title="Demo members and their extracts on the hub")
    for column in ("member", "kind", "dataset", "rows", "extract", "client id"):
        table.add_column(column)
    for s in states:
        table.add_row(s.partner.name, s.partner.kind,
                      f"{s.export.dataset} v{s.export.contract_version}", f"{s.rows:,}",
                      s.extract_id + (" (already there)" if s.duplicate else ""), s.client_id)
    console.print(table)
    console.print()
    folder = partners_dir.resolve()
    first, export = PARTNERS[0], PARTNERS[0].exports[0]
    by_slug = {p.slug: p for p in PARTNERS}

    def person(slug: str, who: str, role: Role) -> Person:
        kept = _env_file(folder / slug / _PEOPLE)
        key = who.upper()
        return Person(kept.get(f"{key}_EMAIL", "?"), kept.get(f"{key}_PASSWORD", "?"),
                      role.value, by_slug[slug].name)

    show(console, Walkthrough(
        url=settings.public_url,
        data_dir=settings.data_dir.resolve(),
        partners_dir=folder,
        partner_env=folder / first.slug / _CREDENTIALS,
        analyst_env=folder / first.slug / _ANALYST,
        officer_envs=(folder / _OFFICERS[0] / _GOVERNANCE, folder / _OFFICERS[1] / _GOVERNANCE),
        export=folder / first.slug / export.file,
        mapping=folder / first.slug / _mapping_name(export),
        analyst=person(first.slug, "analyst", Role.ANALYST),
        engineer=person(first.slug, "engineer", Role.PARTNER),
        officers=(person(_OFFICERS[0], "officer", Role.GOVERNANCE),
                  person(_OFFICERS[1], "officer", Role.GOVERNANCE)),
        reviewer=person(_REVIEWERS[0], "reviewer", Role.REVIEWER),
        linked_note=(f"customers flagged by two or more members, one person wherever an IBAN, "
                     f"a phone or an e-mail matches ({LINKED} planted on "
                     f"{' -> '.join(LINKED_CORRIDOR)}, each with another IBAN at each bank)"),
    ), activate=activation())


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread handles Ctrl-C
        pass


def _start(settings: Settings) -> tuple[_Server, threading.Thread, Any]:
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", lifespan="on",
    )
    server = _Server(config)
    thread = threading.Thread(target=server.run, name="tahub-demo-hub", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise ConfigError(
                f"the hub could not start on {settings.host}:{settings.port} "
                "(is the port in use? set TAHUB_PORT)", field="TAHUB_PORT"
            )
        time.sleep(0.05)
    return server, thread, app


def main(
    settings: Settings,
    *,
    partners_dir: Path | None = None,
    reset: bool = False,
    serve: bool = True,
    console: Console | None = None,
) -> list[DemoPartnerState]:
    """Run the demo (see the module docstring); returns what each partner uploaded."""
    console = console or Console()
    partners_dir = partners_dir or settings.data_dir.resolve().parent / "tahub-demo-partners"
    if reset:
        for folder in (settings.data_dir, partners_dir):
            shutil.rmtree(folder, ignore_errors=True)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.policies_dir is None:  # the shipped policies, with budgets for the demo
        policies = write_demo_policies(settings.data_dir / "demo-policies")
        settings = settings.model_copy(update={"policies_dir": policies})
    if not settings.reports_key_list():  # crowd reports (/report): a key of the demo's own
        settings = settings.model_copy(update={
            "reports_keys": SecretStr(reports_key(settings.data_dir))})
    server, thread, app = _start(settings)
    states: list[DemoPartnerState] = []
    try:
        states = seed(settings, partners_dir, console=console)
        with console.status("Collecting the demo's open sources and crowd reports..."):
            seed_open_sources(app.state.services,
                              write_newsroom(settings.data_dir / "demo-newsroom"),
                              reviewer=f"reviewer@{_REVIEWERS[0]}.example")
        (partners_dir / "demo.json").write_text(json.dumps(
            {s.export.key: {"extract": s.extract_id, "rows": s.rows} for s in states},
            indent=2,
        ))
        _summary(console, settings, partners_dir, states)
        while serve and thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        console.print("\nStopping the hub...")
    finally:
        server.should_exit = True
        thread.join(30)
    return states

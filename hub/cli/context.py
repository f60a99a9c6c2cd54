"""What the ``tahub`` command groups share: settings, services, the metadata store, the
CLI's actor in the audit log, and writing a generated file."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from hub.errors import ConfigError
from hub.logging import configure_logging
from hub.settings import Settings, load_settings

__all__ = ["audit_log", "cli_actor", "identity", "migrate", "names", "services", "settings",
           "write_or_print"]


def settings(**overrides: Any) -> Settings:
    """Settings from the environment and the settings file; a bad value is a ConfigError
    naming its variable (or file and key)."""
    return load_settings(**overrides)


@contextmanager
def services(settings: Settings) -> Iterator[Any]:
    from hub.api.app import build_services  # the web stack loads only when needed

    configure_logging(settings)
    services = build_services(settings)
    try:
        yield services
    finally:
        services.close()


@contextmanager
def identity(settings: Settings) -> Iterator[Any]:
    from hub.identity.service import IdentityService
    from hub.storage.db import make_engine

    configure_logging(settings)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        yield IdentityService(engine=engine, settings=settings)
    finally:
        engine.dispose()


def names(identity: Any) -> Any:
    """Every organisation's and person's name (the hub's administrator reads them all), as
    :class:`connectors.common.names.Names` for the command's tables and sentences."""
    from connectors.common.names import Names

    return Names({m["id"]: m["name"] for m in identity.members()},
                 {p.id: (p.name, p.org_id) for p in identity.people.list()})


def cli_actor() -> str:
    """Who acts through the admin CLI, as the audit log names them: ``cli:<OS user>``."""
    try:
        return f"cli:{getpass.getuser()}"[:128]
    except (OSError, KeyError):  # no user name (a container without a passwd entry)
        return f"cli:uid{os.getuid()}"


@contextmanager
def audit_log(settings: Settings) -> Iterator[Any]:
    from hub.governance.audit import AuditLog
    from hub.storage.db import make_engine

    configure_logging(settings)
    engine = make_engine(settings.database_url)
    try:
        migrate(engine)
        yield AuditLog(engine)
    finally:
        engine.dispose()


def migrate(engine: Any) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from hub.storage.db import upgrade

    try:
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot open the metadata store ({type(exc).__name__}); check TAHUB_DATABASE_URL"
        ) from None


def write_or_print(text: str, out: Path | None) -> None:
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {out} ({exc.strerror or exc})") from None
    typer.echo(f"wrote {out}")

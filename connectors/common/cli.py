"""What the command-line shells share (``tahub-connect``, ``tahub query``, ``tahub policy``,
``tahub login`` and the hub's ``tahub``): the console, the user-error wrapper and the
hub/credential options. The hub comes from ``--hub``, else ``TAHUB_HUB_URL``, else the
``--profile`` (``TAHUB_PROFILE``) that ``tahub login`` signed in with
(:meth:`connectors.common.session.HubSession.from_env`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Annotated, ParamSpec, TypeVar

import typer
from rich.console import Console

from hub.errors import TahubError

__all__ = ["ClientId", "ClientSecret", "Hub", "Profile", "console", "user_errors"]

P = ParamSpec("P")
R = TypeVar("R")

Hub = Annotated[
    str | None,
    typer.Option("--hub", envvar="TAHUB_HUB_URL",
                 help="The hub's URL. Default: the one `tahub login` remembered."),
]
Profile = Annotated[
    str | None,
    typer.Option("--profile", envvar="TAHUB_PROFILE",
                 help="The `tahub login` profile: its hub and sign-in. Default: default."),
]
ClientId = Annotated[
    str | None, typer.Option("--client-id", envvar="TAHUB_CLIENT_ID", help="OAuth2 client id.")
]
ClientSecret = Annotated[
    str | None,
    typer.Option(
        "--client-secret",
        envvar="TAHUB_CLIENT_SECRET",
        help="OAuth2 client secret (prefer the environment variable).",
        show_default=False,
    ),
]


def console() -> Console:
    out = Console(highlight=False)
    if not out.is_terminal:
        out.width = 160  # piped or captured: do not fold ids across lines
    return out


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Print a TahubError's message (no traceback) and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except TahubError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None

    return wrapper

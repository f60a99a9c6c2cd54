"""What the `tahub` command's groups share: the console and the user-error wrapper."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from hub.errors import TahubError

__all__ = ["console", "user_errors"]

P = ParamSpec("P")
R = TypeVar("R")


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

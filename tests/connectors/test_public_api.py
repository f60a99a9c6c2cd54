"""The connector's public surface is explicit, and importing it stays light and side-effect free."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys
import types

import connectors


def test_all_names_exist_and_are_sorted() -> None:
    assert connectors.__all__ == sorted(connectors.__all__)
    for name in connectors.__all__:
        assert hasattr(connectors, name), name


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(connectors).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public == set(connectors.__all__) - {"__version__"}


def test_exported_objects_come_from_the_connectors_package() -> None:
    for name in connectors.__all__:
        value = getattr(connectors, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert value.__module__.startswith("connectors."), (name, value.__module__)


def test_every_module_declares_what_it_exports() -> None:
    for info in pkgutil.walk_packages(connectors.__path__, "connectors."):
        if info.ispkg:  # a folder's __init__ only describes it
            continue
        module = importlib.import_module(info.name)
        exported = getattr(module, "__all__", None)
        assert exported is not None, info.name
        for name in exported:
            assert hasattr(module, name), (info.name, name)


def test_importing_the_connector_loads_no_server_side_library() -> None:
    code = (
        "import sys, connectors, connectors.partner.cli; "
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", code], check=True, capture_output=True, text=True
        ).stdout.split()
    )
    assert not loaded & {
        "fastapi",
        "starlette",
        "uvicorn",
        "sqlalchemy",
        "alembic",
        "joserfc",
        "authlib",
        "openpyxl",
    }

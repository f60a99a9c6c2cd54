"""The domain core imports no web framework, database driver, query engine or auth library."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

HUB = Path(__file__).resolve().parents[2] / "hub"
CORE = ["errors", "contracts", "validation", "actors", "yamlfile", "accounting", "budget",
        "policies", "proposals", "queries", "privacy/__init__", "privacy/noise",
        "privacy/intervals"]
FORBIDDEN = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "duckdb", "authlib",
             "joserfc", "httpx", "pyarrow", "minio", "boto3"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_adapter_library(module: str) -> None:
    assert not _imports(HUB / f"{module}.py") & FORBIDDEN

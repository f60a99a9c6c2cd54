"""The layout holds its architecture (hub/__init__.py draws it).

* Each subpackage of ``hub`` and ``connectors`` declares in its ``__init__`` docstring what
  it may import (``May import: ...``); every import of every module keeps to it, and the
  declared rules have no cycle.
* The domain core imports no web framework, database driver, query engine or auth library.
* No module imports another that (through any chain) imports it back.

Imports are read from the source (ast), including those inside functions: a function-level
import is still a dependency.
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "connectors")

# The domain core: pure rules on plain values.
CORE = ["hub/errors.py", "hub/actors.py", "hub/yamlfile.py", "hub/settings.py",
        "hub/contracts/model.py", "hub/contracts/validation.py",
        "hub/privacy/accounting.py", "hub/privacy/budget.py", "hub/privacy/noise.py",
        "hub/privacy/intervals.py", "hub/governance/policies.py",
        "hub/governance/proposals.py", "hub/query/request.py", "hub/query/plan.py",
        "hub/query/authorisation.py", "hub/api/ratelimit.py",
        # the open-source tagger: text in, tags out
        *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "hub/osint/tagging").glob("*.py"))]
FORBIDDEN = {"fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "duckdb", "authlib",
             "joserfc", "httpx", "pyarrow", "minio", "boto3", "psycopg", "polars", "pandas"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


@cache
def _imports(path: Path) -> tuple[tuple[int, str], ...]:
    """(line, module) of every absolute import in the file, at any depth."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            # `from hub.privacy import noise` imports the submodule hub.privacy.noise
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names
                      if f"{node.module}.{alias.name}" in _modules()]
    return tuple(found)


def _internal(name: str) -> str | None:
    """The project module an import names (its longest known prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in _modules():
            return ".".join(parts[:end])
    return None


def _unit(module: str) -> str:
    """The layout unit a module belongs to: its subpackage, or itself (a top-level module)."""
    parts = module.split(".")
    if len(parts) >= 2 and (ROOT / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def _rules() -> dict[str, tuple[str, ...] | None]:
    """Each subpackage's declared 'May import:' list (None: anything)."""
    rules: dict[str, tuple[str, ...] | None] = {}
    for pkg in PACKAGES:
        for init in sorted((ROOT / pkg).glob("*/__init__.py")):
            doc = ast.get_docstring(ast.parse(init.read_text())) or ""
            match = re.search(r"^May import:(.*?)(?:\n\s*\n|\Z)", doc, re.M | re.S)
            unit = _module_name(init)
            assert match, f"{init.relative_to(ROOT)} does not say what it may import"
            text = " ".join(match[1].split())
            if text.startswith("anything"):
                rules[unit] = None
            else:
                names = re.findall(r"\b(?:hub|connectors)(?:\.[a-z_]+)*", text)
                rules[unit] = tuple(names)
    return rules


def _allowed(target: str, allowed: tuple[str, ...]) -> bool:
    return any(target == a or target.startswith(a + ".") for a in allowed)


def test_every_subpackage_declares_its_imports_and_keeps_to_them() -> None:
    rules = _rules()
    assert {"hub.api", "hub.contracts", "hub.ingest", "hub.query", "hub.governance",
            "hub.identity", "hub.storage", "hub.privacy", "connectors.partner",
            "connectors.analyst", "connectors.governance", "connectors.common"} <= set(rules)
    offences = []
    for module, path in _modules().items():
        unit = _unit(module)
        allowed = rules.get(unit, ())
        for line, name in _imports(path):
            target = _internal(name)
            if target is None or allowed is None or _unit(target) == unit:
                continue
            if target in ("hub", "connectors") and module.split(".")[0] == target:
                continue  # the package itself: its version, or the public re-exports
            if unit in rules and not _allowed(target, allowed):
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {target}, which "
                                f"{unit} may not import (May import: {', '.join(allowed)})")
    assert not offences, "\n".join(offences)


def test_top_level_modules_import_only_each_other() -> None:
    """hub/errors.py, settings.py...: the innermost layer, below every subpackage."""
    offences = []
    for module, path in _modules().items():
        if module.count(".") != 1 or path.name == "__init__.py" or module.startswith("connectors"):
            continue
        for line, name in _imports(path):
            target = _internal(name)
            if target is not None and _unit(target) != target:
                offences.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not offences, "\n".join(offences)


def test_the_declared_layers_have_no_cycle() -> None:
    rules = {unit: allowed for unit, allowed in _rules().items() if allowed is not None}
    graph = {unit: {u for u in rules if u != unit and _allowed(u, allowed)}
             for unit, allowed in rules.items()}
    assert _cycle(graph) is None, f"the May import rules form a cycle: {_cycle(graph)}"


@pytest.mark.parametrize("path", CORE)
def test_core_module_imports_no_adapter_library(path: str) -> None:
    bad = [f"{path}:{line} imports {name}" for line, name in _imports(ROOT / path)
           if name.split(".")[0] in FORBIDDEN]
    assert not bad, "\n".join(bad)


def test_no_import_cycles() -> None:
    graph = {module: {t for _, name in _imports(path)
                      if (t := _internal(name)) is not None and t != module
                      and t not in ("hub", "connectors")}
             for module, path in _modules().items()}
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph, or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_layering_test_catches_what_it_should(tmp_path: Path) -> None:
    """The checks are not vacuous: a cycle and a forbidden edge are found."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert _allowed("hub.storage.db", ("hub.storage",))
    assert not _allowed("hub.storagex", ("hub.storage",))
    assert _unit("hub.query.plan") == "hub.query" and _unit("hub.errors") == "hub.errors"

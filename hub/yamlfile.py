"""Load a YAML file into a pydantic model and report every error with its file and line.

Contracts, mapping files and (later) policies are all YAML edited by people. A plain
``model_validate(yaml.safe_load(...))`` loses the line numbers, so this module composes the
YAML node tree as well and maps each pydantic error location (``fields.3.domain``) back to
the line of that node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from hub.errors import ConfigError, RowError

__all__ = ["load_model", "validate_document"]

M = TypeVar("M", bound=BaseModel)
# libyaml's C loader when PyYAML was built with it: ten times faster on the 249-country lists.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line_of(node: yaml.Node | None, loc: tuple[int | str, ...]) -> int | None:
    """1-based line of the deepest node on ``loc`` that exists in the YAML tree."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                    child = value
                    line = key.start_mark.line + 1
                    break
        elif (
            isinstance(node, yaml.SequenceNode)
            and isinstance(part, int)
            and 0 <= part < len(node.value)
        ):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _duplicate_keys(node: yaml.Node, path: tuple[str, ...] = (),
                    visited: set[int] | None = None) -> list[RowError]:
    """A :class:`RowError` for every key repeated within one mapping of the tree (a node
    reached again through an alias is looked at once)."""
    visited = set() if visited is None else visited
    if id(node) in visited:
        return []
    visited.add(id(node))
    errors: list[RowError] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            label = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
            if isinstance(key, yaml.ScalarNode):
                line = key.start_mark.line + 1
                seen = first.get((key.tag, key.value))
                if seen is None:
                    first[(key.tag, key.value)] = line
                else:
                    errors.append(RowError(
                        ".".join((*path, label)),
                        f"duplicate key {label!r} (first at line {seen}): a key may appear "
                        "once in a mapping, otherwise the last one would silently win",
                        line=line,
                    ))
            errors += _duplicate_keys(value, (*path, label), visited)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            errors += _duplicate_keys(item, (*path, str(i)), visited)
    return errors


def validate_document(
    text: str, model: type[M], *, source: str, error: type[ConfigError] = ConfigError,
    context: dict[str, Any] | None = None,
) -> M:
    """Parse YAML ``text`` and validate it as ``model``; raise ``error`` listing every problem."""
    try:
        tree = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader, C or Python
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = str(getattr(exc, "problem", None) or exc)
        raise error(
            f"{source}: not valid YAML", errors=[RowError(None, reason, line=line)], file=source
        ) from None
    if not isinstance(data, dict):
        raise error(
            f"{source}: expected a mapping at the top level",
            errors=[RowError(None, "expected a mapping at the top level", line=1)],
            file=source,
        )
    duplicates = _duplicate_keys(tree) if tree is not None else []
    if duplicates:
        raise error(
            f"{source}: {len(duplicates)} duplicate key(s)", errors=duplicates, file=source
        )
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        errors = []
        for e in exc.errors(include_url=False):
            loc = tuple(e["loc"])
            field = ".".join(str(p) for p in loc) or None
            reason = e["msg"].removeprefix("Value error, ")
            errors.append(RowError(field, reason, line=_line_of(tree, loc)))
        raise error(
            f"{source}: {len(errors)} error(s)", errors=errors, file=source
        ) from None


def load_model(
    path: Path, model: type[M], *, error: type[ConfigError] = ConfigError,
    context: dict[str, Any] | None = None,
) -> M:
    """Read ``path`` and validate it as ``model`` (see :func:`validate_document`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read ({exc.__class__.__name__})", file=str(path)) from None
    return validate_document(text, model, source=str(path), error=error, context=context)

"""Render the tahub Helm chart without the helm binary, for the static deploy tests.

The chart's templates keep to a small subset of Go templates on purpose, and this renders
exactly that subset, strictly (a missing value is an error, not Helm's ``<no value>``):

* ``{{ .Values.a.b }}``, ``{{ .Release.Name }}``, ``{{ .Chart.AppVersion }}``, string
  literals, and pipelines through ``quote``, ``indent N``, ``nindent N``, ``toYaml`` and
  ``sha256sum`` (``{{ toYaml .Values.x | indent 4 }}`` calls with the piped value last);
* ``{{ if X }} ... {{ else }} ... {{ end }}`` with Go's truthiness;
* ``{{-`` and ``-}}`` trim the whitespace before / after the action, newlines included;
* ``{{/* comments */}}``.

Anything else raises ``TemplateError``, so a template that outgrows the subset fails the tests
instead of rendering wrongly.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = ["TemplateError", "render", "render_chart"]

_ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)
_NUMBER = re.compile(r"^-?[0-9]+$")


class TemplateError(ValueError):
    pass


@dataclass
class _Node:
    kind: str  # "text" | "expr" | "if"
    text: str = ""
    cond: str = ""
    then: list[_Node] = field(default_factory=list)
    otherwise: list[_Node] = field(default_factory=list)


def _tokens(source: str) -> list[tuple[str, str]]:
    """("text", s) and ("action", expr) pairs with the trim markers applied."""
    out: list[tuple[str, str]] = []
    pos, trim_next = 0, False
    for match in _ACTION.finditer(source):
        text = source[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        out.append(("text", text))
        out.append(("action", match.group(2)))
        pos, trim_next = match.end(), bool(match.group(3))
    tail = source[pos:]
    out.append(("text", tail.lstrip() if trim_next else tail))
    return out


def _parse(tokens: list[tuple[str, str]]) -> list[_Node]:
    root: list[_Node] = []
    stack: list[tuple[_Node, list[_Node]]] = []  # (if node, the branch being filled)
    current = root
    for kind, value in tokens:
        if kind == "text":
            current.append(_Node("text", text=value))
        elif value.startswith("/*"):
            if not value.endswith("*/"):
                raise TemplateError(f"unterminated comment: {value!r}")
        elif value.startswith("if "):
            node = _Node("if", cond=value[3:].strip())
            current.append(node)
            stack.append((node, current))
            current = node.then
        elif value == "else":
            if not stack:
                raise TemplateError("else without if")
            current = stack[-1][0].otherwise
        elif value == "end":
            if not stack:
                raise TemplateError("end without if")
            current = stack.pop()[1]
        elif value.split(" ", 1)[0] in {"range", "with", "define", "include", "template"}:
            raise TemplateError(f"unsupported action {{{{ {value} }}}}")
        else:
            current.append(_Node("expr", text=value))
    if stack:
        raise TemplateError("if without end")
    return root


def _lookup(path: str, context: Mapping[str, Any]) -> Any:
    value: Any = context
    for part in path.strip(".").split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise TemplateError(f"no value for {path}")
        value = value[part]
    return value


def _indent(width: int, text: Any) -> str:
    pad = " " * width
    return "\n".join(pad + line if line else line for line in str(text).split("\n"))


def _to_yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")


_FUNCS: dict[str, Callable[..., Any]] = {
    "quote": lambda v: json.dumps(_text(v)),
    "indent": lambda n, v: _indent(int(n), v),
    "nindent": lambda n, v: "\n" + _indent(int(n), v),
    "toYaml": _to_yaml,
    "sha256sum": lambda v: hashlib.sha256(_text(v).encode()).hexdigest(),
}


def _argument(word: str, context: Mapping[str, Any]) -> Any:
    if word.startswith("."):
        return _lookup(word, context)
    if _NUMBER.match(word):
        return int(word)
    return word  # a string literal, already unquoted by shlex


def _evaluate(expr: str, context: Mapping[str, Any]) -> Any:
    value: Any = None
    for i, command in enumerate(expr.split("|")):
        words = shlex.split(command.strip())
        if not words:
            raise TemplateError(f"empty command in {expr!r}")
        head, args = words[0], [_argument(w, context) for w in words[1:]]
        if head in _FUNCS:
            value = _FUNCS[head](*args, *([value] if i else []))
        elif i == 0 and not args:
            value = _argument(head, context)
        else:
            raise TemplateError(f"unsupported function {head!r} in {expr!r}")
    return value


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "") and not (
        isinstance(value, (Mapping, list)) and not value
    )


def _text(value: Any) -> str:
    if value is None:
        raise TemplateError("a value is null")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _emit(nodes: list[_Node], context: Mapping[str, Any]) -> str:
    parts: list[str] = []
    for node in nodes:
        if node.kind == "text":
            parts.append(node.text)
        elif node.kind == "expr":
            parts.append(_text(_evaluate(node.text, context)))
        else:
            branch = node.then if _truthy(_evaluate(node.cond, context)) else node.otherwise
            parts.append(_emit(branch, context))
    return "".join(parts)


def render(source: str, context: Mapping[str, Any]) -> str:
    """One template rendered against ``{"Values": ..., "Release": ..., "Chart": ...}``."""
    return _emit(_parse(_tokens(source)), context)


def render_chart(
    chart_dir: Path, values: Mapping[str, Any] | None = None, release: str = "tahub"
) -> dict[str, str]:
    """Every file of ``templates/`` rendered, by file name (``values`` replaces values.yaml)."""
    chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
    if values is None:
        values = yaml.safe_load((chart_dir / "values.yaml").read_text())
    context = {
        "Values": values,
        "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        "Chart": {"Name": chart["name"], "Version": chart["version"],
                  "AppVersion": chart["appVersion"]},
    }
    return {
        path.name: render(path.read_text(), context)
        for path in sorted((chart_dir / "templates").iterdir())
        if path.is_file()
    }

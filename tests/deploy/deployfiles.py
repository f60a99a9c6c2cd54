"""The deploy/ files read the way Docker Compose, Docker and Helm read them, for the tests.

No Docker engine or Kubernetes runs here, so the tests parse the files instead: compose's
variable interpolation and ``env_file``, the Dockerfile's instructions and the Helm chart
(rendered by :mod:`tests.deploy.helmlite`). Paths are the repository's; ``deploy/.env``
is ``deploy/.env.example`` (what ``make-secrets.sh`` copies).
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.helmlite import render_chart

__all__ = [
    "CHART",
    "DEPLOY",
    "ROOT",
    "Dockerfile",
    "chart_objects",
    "chart_settings_toml",
    "chart_values",
    "compose",
    "compose_environment",
    "container_env",
    "env_file",
    "interpolate",
    "toml_text",
]

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "tahub"

_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_]*)=(?P<value>.*)$")
_VAR = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped, no quoting)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match["key"]] = match["value"]
    return values


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name, "")
        if op in (":?", "?") and not value:
            raise KeyError(f"compose would refuse to start: ${{{name}}} is unset ({arg})")
        if op in (":-", "-") and not value:
            return str(arg)
        return value

    return _VAR.sub(one, text)


def compose() -> dict[str, Any]:
    """docker-compose.yml with the variables of .env.example interpolated, anchors merged."""
    text = (DEPLOY / "docker-compose.yml").read_text()
    loaded: dict[str, Any] = yaml.safe_load(interpolate(text, env_file(DEPLOY / ".env.example")))
    return loaded


@dataclass(frozen=True)
class Dockerfile:
    """The final stage of deploy/Dockerfile, instruction by instruction."""

    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments), continuation lines joined

    @classmethod
    def read(cls, path: Path = DEPLOY / "Dockerfile") -> Dockerfile:
        joined = re.sub(r"\\\n", " ", path.read_text())
        instructions = []
        for line in joined.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                word, _, rest = line.partition(" ")
                instructions.append((word.upper(), " ".join(rest.split())))
        return cls(instructions)

    def all(self, word: str) -> list[str]:
        return [args for w, args in self.instructions if w == word]

    @property
    def final_stage(self) -> list[tuple[str, str]]:
        starts = [i for i, (w, _) in enumerate(self.instructions) if w == "FROM"]
        return self.instructions[starts[-1]:]

    def env(self) -> dict[str, str]:
        """ENV of the final stage (KEY=VALUE form)."""
        values: dict[str, str] = {}
        for word, args in self.final_stage:
            if word == "ENV":
                for item in shlex.split(args):
                    key, _, value = item.partition("=")
                    values[key] = value
        return values

    def exec_form(self, word: str) -> list[str]:
        """The JSON array of the final stage's ENTRYPOINT / CMD / HEALTHCHECK ... CMD."""
        args = [a for w, a in self.final_stage if w == word][-1]
        loaded: list[str] = json.loads(args[args.index("["):])
        return loaded


def compose_environment(service: str) -> dict[str, str]:
    """What a compose service's process sees: the image's ENV (for the hub image), then its
    env_file (``.env`` read as ``.env.example``), then ``environment``."""
    spec = compose()["services"][service]
    env: dict[str, str] = {}
    if spec.get("image", "").startswith("tahub:"):
        env.update(Dockerfile.read().env())
    for name in spec.get("env_file", []):
        path = DEPLOY / name
        env.update(env_file(path.with_name(".env.example") if path.name == ".env" else path))
    env.update({k: str(v) for k, v in (spec.get("environment") or {}).items()})
    return env


def chart_objects(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders (NOTES.txt excluded)."""
    objects: list[dict[str, Any]] = []
    for name, text in render_chart(CHART, values).items():
        if name.endswith(".yaml"):
            objects.extend(d for d in yaml.safe_load_all(text) if d)
    return objects


def chart_values() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((CHART / "values.yaml").read_text())
    return loaded


def chart_settings_toml(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The settings file of the chart's ConfigMap, parsed."""
    (configmap,) = [o for o in objects if o["kind"] == "ConfigMap"]
    return tomllib.loads(configmap["data"]["tahub.toml"])


def container_env(container: dict[str, Any]) -> dict[str, Any]:
    """name -> value, or -> ("secret", secret name, key) for a secretKeyRef."""
    env: dict[str, Any] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = ("secret", ref["name"], ref["key"])
    return env


def toml_text(values: dict[str, Any]) -> str:
    """A flat TOML document of strings, integers and booleans."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            lines.append(f"{key} = {'true' if value else 'false'}")
        elif isinstance(value, int):
            lines.append(f"{key} = {value}")
        else:
            lines.append(f"{key} = {json.dumps(str(value))}")
    return "\n".join(lines) + "\n"

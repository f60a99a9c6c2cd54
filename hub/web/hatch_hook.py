"""The wheel's build hook (pyproject.toml ``[tool.hatch.build.hooks.custom]``).

Builds the web interface's vendored assets (hub/web/assets.py) before a wheel or an editable
install is made, so that every install carries them; a wheel whose assets cannot be built is
not made. Not shipped in the wheel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

_ASSETS = Path(__file__).resolve().parent / "assets.py"


class WebAssets(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        spec = importlib.util.spec_from_file_location("tahub_web_assets", _ASSETS)
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {_ASSETS}")
        assets = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(assets)
        assets.build()

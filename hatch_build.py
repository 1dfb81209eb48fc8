"""Wheel build hook: ship the template's release history (a git bundle) beside the template.

Every `v*` tag of this repository reachable from HEAD becomes one tagged commit of the bundle (see
`podium.templates.build_history_bundle`), so an installed podium can update projects rendered by any
earlier release, offline. The sdist carries the bundle too, for wheels built from it without git.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

WHEEL_PATH = "podium/_template_history.bundle"
SDIST_PATH = "template_history.bundle"


class TemplateHistoryHook(BuildHookInterface):
    """Add the template history bundle to the wheel (`podium/`) and to the sdist (its root)."""

    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return  # an editable install runs from the checkout, which has no bundle: the store starts empty
        root = Path(self.root)
        self._scratch = Path(tempfile.mkdtemp(prefix="podium-build-"))
        bundle = self._scratch / "template_history.bundle"
        if _is_git_checkout(root):
            tags = _build_bundle(root, bundle)
            if not tags:
                self.app.display_warning("no v* release tag reachable from HEAD: the wheel carries no template history")
                return
            self.app.display_info(f"template history: {', '.join(tags)}")
        elif (root / SDIST_PATH).is_file():  # a wheel built from an sdist
            bundle = root / SDIST_PATH
        else:
            self.app.display_warning("neither git nor an sdist's bundle: the wheel carries no template history")
            return
        target = WHEEL_PATH if self.target_name == "wheel" else SDIST_PATH
        build_data["force_include"][str(bundle)] = target

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if scratch := getattr(self, "_scratch", None):
            shutil.rmtree(scratch, ignore_errors=True)


def _is_git_checkout(root: Path) -> bool:
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=root, capture_output=True, text=True)
    except OSError:  # no git installed
        return False
    return result.returncode == 0 and Path(result.stdout.strip()).resolve() == root.resolve()


def _build_bundle(root: Path, bundle: Path) -> list[str]:
    """podium's own store code, imported from this source tree (not from an installed podium)."""
    sys.path.insert(0, str(root / "generator"))
    try:
        templates = importlib.import_module("podium.templates")
    finally:
        sys.path.remove(str(root / "generator"))
    if not Path(templates.__file__).resolve().is_relative_to(root.resolve()):
        raise RuntimeError(f"hatch_build.py: imported {templates.__file__}, not this source tree's podium")
    return templates.build_history_bundle(root, bundle)

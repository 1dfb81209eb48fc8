"""Render the template into a temporary folder and run one of the rendered package's modules in it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from podium.project import create_project


def run_in_project(module: str, arguments: list[str], package: str = "bench") -> None:
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data={"project_name": package}, defaults=True, quiet=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
        subprocess.run([sys.executable, "-m", f"{package}.{module}", *arguments], cwd=project, env=env, check=True)

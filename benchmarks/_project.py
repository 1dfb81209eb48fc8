"""Render the template into a temporary folder and run one of the rendered package's modules in it."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from podium.project import create_project


def run_in_project(module: str, arguments: list[str], package: str = "bench") -> None:
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data={"project_name": package}, defaults=True, quiet=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
        subprocess.run([sys.executable, "-m", f"{package}.{module}", *arguments], cwd=project, env=env, check=True)


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}


def demo_training_speed(
    answers: dict, overrides: list[str], write_competition: Callable[[Path, Path], dict], after_training: str
) -> tuple[float, str]:
    """Render a demo's project, write its competition, train fold 0 for 2 epochs (only the second validated)
    and run `after_training` (Python code, {package} filled in) in the project. Returns (training images/s of
    epoch 1, data loading included; the last line that code printed)."""
    package = answers["package_name"]
    with tempfile.TemporaryDirectory() as folder:
        project = create_project(Path(folder) / package, data=dict(answers), defaults=True, quiet=True)
        counts = write_competition(project / "data", Path(folder) / "holdout")
        settings = [*overrides, "train.epochs=2", "folds.train_folds=[0]", "train.eval_every=2"]
        for stage in ("folds", "train"):
            command = [sys.executable, "-m", package, stage, *settings]
            subprocess.run(command, cwd=project, env=ENV, check=True, capture_output=True)
        history = (project / "outputs/baseline/fold_0/history.csv").read_text().splitlines()
        seconds = float(history[1].split(",")[-1])
        code = after_training.format(package=package, overrides=settings)
        output = subprocess.run(
            [sys.executable, "-c", code], cwd=project, env=ENV, check=True, capture_output=True, text=True
        ).stdout
    trained = counts["train"] // 2  # fold 0 of 2 trains on the other half
    return trained / seconds, output.strip().splitlines()[-1]

"""Render the template and run the rendered project's own test suite in it, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from podium.render import create_project


@pytest.mark.slow
@pytest.mark.parametrize("task", ["classification", "detection", "segmentation"])
def test_rendered_project_passes_its_own_tests(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, task: str
) -> None:
    answers = {"project_name": "Rendered Comp", "task": task}
    project = create_project(tmp_path / "comp", data=answers, defaults=True, quiet=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    # The three projects' stand-ins of the Kaggle image differ by a few packages: each is built from the last.
    session = tmp_path_factory.getbasetemp()
    session = session.parent if os.environ.get("PYTEST_XDIST_WORKER") else session  # the workers' shared folder
    env["IMAGE_STAND_IN_CACHE"] = str(session / "image-stand-ins")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-n",
            "auto",
            "--maxprocesses=4",
            "--dist=loadfile",
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=2400,  # each project builds and uses a stand-in of the Kaggle image
    )
    print(result.stdout[-8000:], result.stderr[-4000:])
    assert result.returncode == 0
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.slow
def test_rendered_project_smoke_run_from_its_cli(tmp_path: Path) -> None:
    """`python -m <package> run -e smoke` on a tiny competition, as the project README says."""
    project = create_project(tmp_path / "comp", data={"project_name": "Smoke Comp"}, defaults=True, quiet=True)
    make_data = (
        "from smoke_comp.tests.conftest import write_competition; from pathlib import Path; "
        "write_competition(Path('data'))"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    subprocess.run([sys.executable, "-c", make_data], cwd=project, check=True, env=env)
    result = subprocess.run(
        [sys.executable, "-m", "smoke_comp", "run", "-e", "smoke", "data.num_workers=0", "model.backbone=test_resnet"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert (project / "outputs" / "smoke" / "submissions" / "submission.csv").is_file()
    # Outputs and data stay out of git.
    assert subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout == ""

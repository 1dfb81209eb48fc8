"""`podium demo --fast`: the bundled competition end to end, and its summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from podium.cli import app
from typer.testing import CliRunner


@pytest.mark.slow
def test_fast_demo_writes_a_summary_and_a_valid_submission(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(dest), "--fast"])
    assert result.exit_code == 0, result.output
    summary = json.loads((dest / "summary.json").read_text())
    for key in ("task", "metric", "cv_mean", "cv_std", "test_score", "submission", "project_dir", "seconds"):
        assert key in summary, key
    assert summary["task"] == "classification" and summary["metric"] == "accuracy"
    assert summary["n_folds"] == 2
    # 6 epochs from scratch on 8x8 digits: well above chance (0.1), the full demo reaches >= 0.985.
    assert summary["cv_mean"] > 0.8 and summary["test_score"] > 0.8
    assert 0.9 < summary["baseline"]["cv_mean"] <= 1.0
    submission = pd.read_csv(summary["submission"], dtype={"id": str})
    truth = pd.read_csv(dest / "holdout" / "test_labels.csv", dtype={"id": str})
    assert sorted(submission["id"]) == sorted(truth["id"])
    accuracy = (submission.set_index("id")["label"].loc[truth["id"]].to_numpy() == truth["label"].to_numpy()).mean()
    assert accuracy == pytest.approx(summary["test_score"])
    assert "CV accuracy (2 folds)" in result.output


@pytest.mark.slow
def test_fast_detection_demo_scores_the_held_out_boxes(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(dest), "--task", "detection", "--fast"])
    assert result.exit_code == 0, result.output
    summary = json.loads((dest / "summary.json").read_text())
    assert summary["task"] == "detection" and summary["metric"] == "map50"
    assert summary["n_folds"] == 2 and "baseline" not in summary
    assert 0.0 <= summary["cv_mean"] <= 1.0 and 0.0 <= summary["test_score"] <= 1.0
    submission = pd.read_csv(summary["submission"], dtype={"id": str}, keep_default_na=False)
    sample = pd.read_csv(Path(summary["project_dir"]) / "data" / "sample_submission.csv", dtype={"id": str})
    assert submission["id"].tolist() == sample["id"].tolist()
    assert list(submission.columns) == ["id", "PredictionString"]
    tokens = " ".join(submission["PredictionString"]).split()
    assert len(tokens) % 6 == 0 and set(tokens[::6]) <= {str(d) for d in range(10)}
    assert (dest / "holdout" / "test_boxes.csv").is_file()
    assert "CV map50 (2 folds)" in result.output


@pytest.mark.slow
def test_fast_segmentation_demo_scores_the_held_out_masks(tmp_path: Path) -> None:
    dest = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", str(dest), "--task", "segmentation", "--fast"])
    assert result.exit_code == 0, result.output
    summary = json.loads((dest / "summary.json").read_text())
    assert summary["task"] == "segmentation" and summary["metric"] == "dice"
    assert 0.0 <= summary["cv_mean"] <= 1.0 and 0.0 <= summary["test_score"] <= 1.0
    submission = pd.read_csv(summary["submission"], dtype=str, keep_default_na=False)
    sample = pd.read_csv(Path(summary["project_dir"]) / "data" / "sample_submission.csv", dtype=str)
    assert submission[["id", "ClassId"]].equals(sample[["id", "ClassId"]])
    assert "CV dice (2 folds)" in result.output
    # The demo's settings (data.classes among them) are the project's own: later commands read them as they are.
    project = Path(summary["project_dir"])
    overlay = yaml.safe_load((project / "configs" / "experiment" / "demo.yaml").read_text())
    assert overlay["data"]["classes"] == [str(digit) for digit in range(10)] and overlay["experiment"] == "baseline"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=project, capture_output=True, text=True).stdout == ""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}
    for command in (
        ["ensemble", "ensemble.members=[outputs/baseline]", "experiment=blend"],
        ["submit", "experiment=blend"],
    ):
        ran = subprocess.run([sys.executable, "-m", "digit_masks_demo", *command], cwd=project, env=env,
                             capture_output=True, text=True)  # fmt: skip
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = CliRunner().invoke(app, ["demo", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in result.output

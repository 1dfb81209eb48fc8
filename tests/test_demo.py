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
from podium.demo import print_summary
from typer.testing import CliRunner

from .browser import chromium, render_in_chromium, screenshot_dir

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "disabled", "NO_ALBUMENTATIONS_UPDATE": "1"}


# A tune report of 14 trials over 8 settings (long names, wide values), as `tune` writes it.
TUNE_REPORT = """
import optuna
from pathlib import Path
from {package}.tools.tune import trials_frame
from {package}.tools.tune_report import tune_report

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
names = ["train.lr", "train.weight_decay", "model.drop_path_rate", "train.label_smoothing",
         "segmentation.loss_weights.dice", "train.mixup_alpha", "model.image_size", "aug.train"]
def objective(trial):
    values = [trial.suggest_float(name, 1e-5, 1.0, log=True) for name in names[:6]]
    size = trial.suggest_categorical(names[6], [128, 192, 256])
    trial.suggest_categorical(names[7], ["configs/aug/light.yaml", "configs/aug/a_much_longer_pipeline_name.yaml"])
    return sum(values) / 6 + size / 1000
study.optimize(objective, n_trials=14)
html = tune_report(study, trials_frame(study), "accuracy", Path("configs/experiment/tuned.yaml"))
Path("reports").mkdir(exist_ok=True)
Path("reports/tune.html").write_text(html)
"""


def reports_render_in_chromium(summary: dict, tmp_path: Path) -> None:
    """`eda` and `analyze` on the demo's project and run, and a tune report of a made-up study: each HTML report,
    and a page of the plots `run` left, loads in Chromium with every image decoded and nothing past the window's
    right edge. Screenshots are kept in PODIUM_SCREENSHOTS when it is set."""
    chromium()
    project = Path(summary["project_dir"])
    package = next(path.parent.name for path in project.glob("*/cli.py"))
    for command in (["eda"], ["analyze", "-e", "demo"]):
        ran = subprocess.run([sys.executable, "-m", package, *command], cwd=project, env=ENV,
                             capture_output=True, text=True)  # fmt: skip
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    ran = subprocess.run([sys.executable, "-c", TUNE_REPORT.format(package=package)], cwd=project, env=ENV,
                         capture_output=True, text=True)  # fmt: skip
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    run = Path(summary["submission"]).parents[1]
    plots = sorted((run / "plots").glob("*.png"))
    assert len(plots) >= 3, plots
    gallery = run / "plots" / "index.html"
    gallery.write_text("<html><body>" + "".join(f'<img src="{p.name}"><br>' for p in plots) + "</body></html>")
    shots = screenshot_dir(tmp_path)
    pages = {"eda": project / "reports" / "eda.html", "analysis": run / "reports" / "analysis.html",
             "tune": project / "reports" / "tune.html", "plots": gallery}  # fmt: skip
    for name, page in pages.items():
        rendered = render_in_chromium(page, shots / f"{summary['task']}-{name}.png")
        assert rendered.images >= 2 and rendered.broken == 0, (page, rendered)
        if name != "plots":  # the plots are shown at their own size; the reports must fit the window
            assert rendered.overflow_px == 0, (page, rendered)


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
    reports_render_in_chromium(summary, tmp_path)


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
    reports_render_in_chromium(summary, tmp_path)


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
    reports_render_in_chromium(summary, tmp_path)
    for command in (
        ["ensemble", "ensemble.members=[outputs/baseline]", "experiment=blend"],
        ["submit", "experiment=blend"],
    ):
        ran = subprocess.run([sys.executable, "-m", "digit_masks_demo", *command], cwd=project, env=ENV,
                             capture_output=True, text=True)  # fmt: skip
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def test_demo_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    result = CliRunner().invoke(app, ["demo", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not empty" in result.output


def test_summary_keeps_every_path_whole_at_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The summary the demo ends with, its rows the longest any task prints; piped, at COLUMNS=80: nothing is cut
    (no "submissions/submi…") and each path is whole on one line."""
    monkeypatch.setenv("COLUMNS", "80")
    dest = tmp_path / "a-folder-name-long-enough-to-pass-eighty-columns" / "podium-demo"
    project = dest / "digit_masks_demo"
    submission = project / "outputs" / "baseline" / "submissions" / "submission.csv"
    assert len(f"submission: {submission}") > 80
    summary = {
        "task": "segmentation",
        "metric": "dice",
        "cv_mean": 0.70164,
        "cv_std": 0.13841,
        "n_folds": 2,
        "oof_score_tuned": 0.7211,
        "baseline": {"name": "RBF SVC on pixels, same folds", "cv_mean": 0.9861},
        "test_score": 0.92283,
        "test_details": {"dice_where_present": 0.68291},
        "submission": str(submission),
        "project_dir": str(project),
        "seconds": 125.4,
    }
    print_summary(summary, "digit masks", dest / "summary.json")
    output = capsys.readouterr().out
    lines = output.splitlines()
    assert "\x1b" not in output and "…" not in output, output
    assert f"submission: {submission}" in lines, output
    assert f"project: {project}" in lines and f"summary: {dest / 'summary.json'}" in lines, output
    table = lines[: lines.index(f"submission: {submission}")]
    assert all(len(line) <= 80 for line in table), output
    for shown in (
        "0.7016 ± 0.1384",
        "OOF after tuning thresholds and minimum areas",
        "0.7211",
        "RBF SVC on pixels, same folds",
        "0.9861",
        "test dice (held-out labels)",
        "0.9228",
        "test dice where present",
        "125 s",
    ):
        assert shown in output, shown

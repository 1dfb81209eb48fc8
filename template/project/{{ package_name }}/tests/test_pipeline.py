"""A fast-dev run through the CLI (folds -> train -> predict with TTA -> submit), resume, W&B offline,
offline weights, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import timm
import torch
from typer.testing import CliRunner

from ..cli import app
from ..errors import ModelError
from ..models import create_model
from .conftest import CSV_LAYOUT, PACKAGE, PROJECT_ROOT, fast_overrides, write_competition


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def overrides(tmp_path: Path, competition: Path) -> list[str]:
    return [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]


def test_fast_dev_run_writes_every_stage_file(tmp_path: Path, overrides: list[str]) -> None:
    result = invoke("run", *overrides)
    assert result.exit_code == 0, result.output
    run = tmp_path / "outputs" / "baseline"
    for name in (
        "config.yaml",
        "run.json",
        "folds.csv",
        "oof.csv",
        "metrics.json",
        "classes.json",
        "fold_0/best.pt",
        "fold_0/last.pt",
        "fold_1/history.csv",
        "predictions/test_fold_1.csv",
        "predictions/test.csv",
        "submissions/submission.csv",
    ):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    scores = list(metrics["folds"].values())
    assert metrics["cv_mean"] == pytest.approx(np.mean(scores))
    assert metrics["cv_std"] == pytest.approx(np.std(scores))
    stages = json.loads((run / "run.json").read_text())
    assert set(stages) == {"train", "predict"}
    assert set(stages["train"]["git"]) == {"commit", "dirty"}
    assert "tta:\n  - identity\n  - hflip\n  - rot90" in (run / "config.predict.yaml").read_text()
    assert "backbone: test_resnet" in (run / "config.yaml").read_text()
    oof = pd.read_csv(run / "oof.csv")
    assert list(oof.columns) == ["id", "fold", "blue", "green", "red"]
    test = pd.read_csv(run / "predictions" / "test.csv")
    assert np.allclose(test[["blue", "green", "red"]].sum(axis=1), 1.0, atol=1e-5)
    fold_mean = np.mean(
        [pd.read_csv(run / f"predictions/test_fold_{k}.csv")[["red"]].to_numpy() for k in (0, 1)], axis=0
    )
    assert np.allclose(test[["red"]].to_numpy(), fold_mean, atol=1e-6)
    submission = pd.read_csv(run / "submissions" / "submission.csv")
    sample = pd.read_csv(tmp_path / "data" / "sample_submission.csv")
    assert submission["id"].tolist() == sample["id"].tolist()
    assert set(submission["label"]) <= {"red", "green", "blue"}
    assert "CV" in result.output and "submission" in result.output


def test_run_reads_a_shared_fold_file_without_rewriting_it(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("folds", *overrides, "experiment=first").exit_code == 0
    shared = tmp_path / "outputs" / "first" / "folds.csv"
    frame = pd.read_csv(shared)
    frame["fold"] = 1 - frame["fold"]  # hand-made folds: must survive another experiment's run
    frame.to_csv(shared, index=False)
    before = shared.read_text()
    result = invoke("run", *overrides, "experiment=second", f"folds.path={shared}")
    assert result.exit_code == 0, result.output
    assert shared.read_text() == before
    assert not (tmp_path / "outputs" / "second" / "folds.csv").exists()
    oof = pd.read_csv(tmp_path / "outputs" / "second" / "oof.csv", dtype={"id": str})
    assert (oof.set_index("id")["fold"] == frame.set_index("id").loc[oof["id"], "fold"]).all()


def test_submit_never_overwrites(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("run", *overrides).exit_code == 0
    second = invoke("submit", *overrides)
    assert second.exit_code == 0, second.output
    files = sorted((tmp_path / "outputs" / "baseline" / "submissions").glob("submission_*.csv"))
    assert len(files) == 2
    assert "CV accuracy" in second.output


def test_resume_continues_an_interrupted_fold(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("folds", *overrides).exit_code == 0
    first = invoke("train", *overrides, "train.epochs=1", "folds.train_folds=[0]")
    assert first.exit_code == 0, first.output
    run = tmp_path / "outputs" / "baseline"
    (run / "fold_0" / "metrics.json").unlink()  # as if killed after epoch 1 of 2
    resumed = invoke("train", *overrides, "train.epochs=2", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "fold 0: resuming after epoch 1" in resumed.output
    history = pd.read_csv(run / "fold_0" / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert pd.read_csv(run / "fold_1" / "history.csv")["epoch"].tolist() == [1, 2]
    saved = torch.load(run / "fold_0" / "last.pt", weights_only=True)
    assert saved["state"]["epoch"] == 2


def test_multi_label_ema_bf16_and_probability_submission(tmp_path: Path) -> None:
    root = write_competition(tmp_path / "ml", multi_label=True)
    classes = ["blue", "green", "red"]
    pd.DataFrame({"id": [f"te{i:03d}" for i in range(6)], **{c: 0.5 for c in classes}}).to_csv(
        root / "sample_submission.csv", index=False
    )
    overrides = [
        *CSV_LAYOUT,
        *fast_overrides(root, tmp_path / "outputs"),
        "data.multi_label=true",
        "folds.strategy=multilabel_stratified_kfold",
        "metric=f1_macro",
        "train.ema=true",
        "train.amp=bf16",
        "train.accumulate_steps=2",
        "train.grad_clip=1.0",
    ]
    result = invoke("run", *overrides)
    assert result.exit_code == 0, result.output
    submission = pd.read_csv(tmp_path / "outputs" / "baseline" / "submissions" / "submission.csv")
    assert list(submission.columns) == ["id", *classes]
    assert submission[classes].to_numpy().min() >= 0 and submission[classes].to_numpy().max() <= 1


def test_wandb_offline_run_per_fold(tmp_path: Path, overrides: list[str], monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert invoke("folds", *overrides).exit_code == 0
    result = invoke("train", *overrides, "wandb.mode=offline", "folds.train_folds=[0]")
    assert result.exit_code == 0, result.output
    runs = sorted((tmp_path / "outputs" / "baseline" / "wandb").glob("offline-run-*"))
    assert len(runs) == 2  # fold 0 and the CV summary
    assert all(list(run.glob("*.wandb")) for run in runs)


def test_local_weights_file_loads_into_the_backbone(tmp_path: Path, make_config) -> None:
    source = timm.create_model("test_resnet", pretrained=False, num_classes=3)
    weights = tmp_path / "weights.pth"
    torch.save(source.state_dict(), weights)
    config = make_config("model.pretrained=true", f"model.weights={weights}")
    model = create_model(config.model, num_classes=3)
    stem = next(name for name in source.state_dict() if name.endswith("weight"))
    assert torch.equal(model.state_dict()[stem], source.state_dict()[stem])
    with pytest.raises(ModelError, match="model.weights .*missing.pth: file not found"):
        create_model(make_config("model.pretrained=true", f"model.weights={tmp_path / 'missing.pth'}").model, 3)


def test_offline_download_error_tells_how_to_fix(make_config) -> None:
    with pytest.raises(ModelError, match="set model.weights=PATH"):
        create_model(make_config("model.pretrained=true", "model.backbone=resnet10t").model, num_classes=3)


def test_unknown_backbone_suggests_names(make_config) -> None:
    with pytest.raises(ModelError, match="'resnet1888' is not a timm model; did you mean 'resnet18'"):
        create_model(make_config("model.backbone=resnet1888").model, num_classes=3)


def _corrupt_train_image(root: Path) -> None:
    (root / "train" / "tr002.png").write_bytes(b"junk")


def _extra_test_image(root: Path) -> None:
    (root / "test" / "te009.png").write_bytes((root / "test" / "te000.png").read_bytes())


@pytest.mark.parametrize(
    ("breakage", "workers", "message"),
    [
        (_corrupt_train_image, 0, "tr002.png: cannot decode image"),
        # From a DataLoader worker process, which re-raises the error with its whole traceback.
        (_corrupt_train_image, 1, "tr002.png: cannot decode image"),
        (_extra_test_image, 0, "ids differ from the test folder (test image 'te009' is not listed)"),
    ],
    ids=["corrupt-image", "corrupt-image-in-worker", "sample-ids-differ"],
)
def test_cli_errors_are_one_line_without_traceback(
    competition, overrides, breakage, workers: int, message: str
) -> None:
    breakage(competition)
    result = subprocess.run(
        [sys.executable, "-m", PACKAGE, "run", *overrides, f"data.num_workers={workers}"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stdout.splitlines() if line.startswith("error:")]
    assert len(errors) == 1


def test_unknown_config_key_from_the_cli() -> None:
    result = invoke("train", "train.lrr=0.1")
    assert result.exit_code == 2
    assert "config key 'train.lrr' is not known; did you mean 'train.lr'?" in result.output


def test_every_command_has_help() -> None:
    for command in ("folds", "train", "predict", "submit", "run"):
        result = invoke(command, "--help")
        assert result.exit_code == 0, result.output
        assert "--config" in result.output and "--experiment" in result.output


def test_predict_without_training_says_what_to_run(overrides: list[str]) -> None:
    result = invoke("predict", *overrides)
    assert result.exit_code == 2
    assert "run the `train` command first" in result.output

"""Analysis: each section's numbers on arrays with known answers, Grad-CAM and attention maps, the report
and W&B media of a tiny run, the CV-vs-LB ledger, and one-line errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import timm
import torch
from PIL import Image
from typer.testing import CliRunner

from ..analysis import (
    confusion,
    cv_lb_correlation,
    distribution_shift,
    error_rate_by_bins,
    image_attributes,
    label_issue_candidates,
    per_class_report,
    rank_errors,
)
from ..cli import app
from ..explain import attention_rollout, cam_heatmaps, default_target_layer
from .conftest import CSV_LAYOUT, fast_overrides

TARGETS = np.array([0, 0, 1, 1, 2])
PROBS = np.array([[0.9, 0.1, 0.0], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.05, 0.9, 0.05], [0.1, 0.1, 0.8]])


def test_confusion_and_per_class_report() -> None:
    predicted = PROBS.argmax(axis=1)
    assert confusion(TARGETS, predicted, 3).tolist() == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    report = per_class_report(TARGETS, predicted, ["a", "b", "c"])
    assert report["precision"].tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    assert report["recall"].tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert report["support"].tolist() == [2, 2, 1]


def test_rank_errors_orders_by_confidence() -> None:
    wrong, right = rank_errors(TARGETS, PROBS, 2)
    assert wrong.tolist() == [1]  # the only wrong one
    assert right.tolist() == [2, 4]  # lowest probability of the true class first: 0.7, 0.8


def test_distribution_shift_and_label_noise() -> None:
    assert distribution_shift(np.array([5, 5]), np.array([5, 5])) == 0.0
    assert distribution_shift(np.array([10, 0]), np.array([0, 3])) == 1.0
    assert distribution_shift(np.array([3, 1]), np.array([1, 1])) == pytest.approx(0.25)
    assert label_issue_candidates(TARGETS, PROBS, threshold=0.35).tolist() == [1]


def test_error_rate_by_bins() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0])
    errors = np.array([1, 1, 0, 0, 0, 0, 0, 1], dtype=float)
    frame = error_rate_by_bins(values, errors, bins=2)
    assert frame["count"].tolist() == [4, 4]
    assert frame["error_rate"].tolist() == [0.5, 0.25]


def test_cv_lb_correlation_needs_three_points() -> None:
    ledger = pd.DataFrame({"cv": [0.8, 0.85, 0.9], "public_lb": [0.7, np.nan, 0.8]})
    assert cv_lb_correlation(ledger) is None
    ledger.loc[1, "public_lb"] = 0.75
    assert cv_lb_correlation(ledger) == pytest.approx(1.0)


def test_image_attributes_see_blur_and_brightness(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sharp = (rng.random((64, 48, 3)) * 255).astype(np.uint8)
    blurred = cv2.GaussianBlur(sharp, (9, 9), 3)
    Image.fromarray(sharp).save(tmp_path / "sharp.png")
    Image.fromarray(blurred).save(tmp_path / "blurred.png")
    Image.fromarray(np.full((10, 10, 3), 200, np.uint8)).save(tmp_path / "bright.png")
    sharp_attributes = image_attributes(str(tmp_path / "sharp.png"))
    assert image_attributes(str(tmp_path / "blurred.png"))["sharpness"] < sharp_attributes["sharpness"] / 10
    assert sharp_attributes["aspect"] == pytest.approx(48 / 64)
    assert image_attributes(str(tmp_path / "bright.png"))["brightness"] == pytest.approx(200)


@pytest.mark.parametrize(
    ("backbone", "layer_type"),
    [
        ("test_resnet", "BasicBlock"),
        ("test_convnext", "ConvNeXtStage"),
        ("test_efficientnet", "Conv2d"),
        ("test_vit", "LayerNorm"),
    ],
)
def test_target_layer_per_family(backbone: str, layer_type: str) -> None:
    model = timm.create_model(backbone, pretrained=False, num_classes=3)
    assert type(default_target_layer(model)).__name__ == layer_type


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "eigencam"])
def test_cam_maps_of_a_cnn_have_image_shape_and_unit_range(method: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_efficientnet", pretrained=False, num_classes=3)
    maps = cam_heatmaps(model, torch.rand(2, 3, 96, 96), [0, 2], method)
    assert maps.shape == (2, 96, 96)
    assert maps.min() >= 0.0 and maps.max() == pytest.approx(1.0, abs=1e-5)


def test_vit_gradcam_and_attention_rollout() -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=3)
    size = model.pretrained_cfg["input_size"][-1]
    images = torch.rand(2, 3, size, size)
    maps = cam_heatmaps(model, images, [0, 1], "gradcam")
    assert maps.shape == (2, size, size) and maps.min() >= 0.0 and maps.max() <= 1.0
    fused_before = [block.attn.fused_attn for block in model.blocks]
    rollout = attention_rollout(model, images)
    assert rollout.shape == (2, size, size)
    assert rollout.min() == pytest.approx(0.0) and rollout.max() == pytest.approx(1.0)
    assert [block.attn.fused_attn for block in model.blocks] == fused_before  # hooks and flags restored
    assert all(not block.attn.attn_drop._forward_hooks for block in model.blocks)
    with pytest.raises(ValueError, match="not a ViT"):
        attention_rollout(timm.create_model("test_resnet", pretrained=False), images)


@pytest.fixture
def trained(tmp_path: Path, competition: Path) -> list[str]:
    overrides = [
        *CSV_LAYOUT,
        *fast_overrides(competition, tmp_path / "outputs"),
        "model.image_size=64",
        "model.backbone=test_efficientnet",
    ]
    result = CliRunner().invoke(app, ["run", *overrides])
    assert result.exit_code == 0, result.output
    return overrides


def test_analysis_report_numbers_and_wandb_media(tmp_path: Path, trained: list[str], monkeypatch) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    submission = next((tmp_path / "outputs" / "baseline" / "submissions").glob("submission_*.csv"))
    lb = CliRunner().invoke(app, ["lb", submission.name, "0.91", "--set", f"output_dir={tmp_path / 'outputs'}"])
    assert lb.exit_code == 0, lb.output
    result = CliRunner().invoke(app, ["analyze", *trained, "wandb.mode=offline", "analyze.examples=4"])
    assert result.exit_code == 0, result.output
    reports = tmp_path / "outputs" / "baseline" / "reports"
    numbers = json.loads((reports / "analysis.json").read_text())
    oof = pd.read_csv(tmp_path / "outputs" / "baseline" / "oof.csv")
    assert np.array(numbers["confusion_matrix"]).sum() == len(oof)
    assert [r["view"] for r in numbers["accuracy_under_transformations"]] == [
        "identity",
        "hflip",
        "vflip",
        "rot90",
        "rot180",
        "rot270",
    ]
    assert {r["attribute"] for r in numbers["error_rate_by_attribute"]} == {
        "area",
        "aspect",
        "brightness",
        "contrast",
        "sharpness",
    }
    assert len(numbers["per_class"]) == 3 and numbers["cam_images"] >= 1
    page = (reports / "analysis.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "Confusion matrix" in page and "0.91" in page
    runs = list((tmp_path / "outputs" / "baseline" / "wandb").glob("offline-run-*"))
    assert len(list(runs[0].glob("files/media/images/analysis/*.png"))) >= 5
    assert list(runs[0].glob("files/media/table/analysis/*.json"))
    ledger = pd.read_csv(tmp_path / "outputs" / "submissions.csv")
    assert ledger["public_lb"].tolist() == [0.91] and ledger["experiment"].tolist() == ["baseline"]


def test_analyze_without_predictions_is_one_line(tmp_path: Path, competition: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]
    result = CliRunner().invoke(app, ["analyze", *overrides])
    assert result.exit_code == 2
    assert "has no OOF predictions (oof.csv); run train and predict first" in result.output


def test_analyze_with_another_architecture_is_one_line(trained: list[str]) -> None:
    result = CliRunner().invoke(app, ["analyze", *trained, "model.backbone=test_resnet"])
    assert result.exit_code == 2
    assert "checkpoint is a 'test_efficientnet' but model.backbone is 'test_resnet'" in result.output


def test_lb_for_an_unknown_submission_is_one_line(tmp_path: Path, trained: list[str]) -> None:
    result = CliRunner().invoke(app, ["lb", "nope.csv", "0.5", "--set", f"output_dir={tmp_path / 'outputs'}"])
    assert result.exit_code == 2
    assert "no submission 'nope.csv'" in result.output


def test_analyze_an_ensemble_folder_given_as_a_path(tmp_path: Path, trained: list[str]) -> None:
    outputs = tmp_path / "outputs"
    members = f"ensemble.members=[{outputs / 'baseline'},{outputs / 'baseline'}]"
    assert CliRunner().invoke(app, ["ensemble", *trained, members, "experiment=blend"]).exit_code == 0
    result = CliRunner().invoke(app, ["analyze", str(outputs / "blend"), *trained])
    assert result.exit_code == 0, result.output
    numbers = json.loads((outputs / "blend" / "reports" / "analysis.json").read_text())
    assert "confusion_matrix" in numbers and "accuracy_under_transformations" not in numbers
    assert "skipped: this run has no fold checkpoints" in (outputs / "blend" / "reports" / "analysis.html").read_text()


def test_lb_scores_from_the_kaggle_cli(tmp_path: Path, trained: list[str], monkeypatch) -> None:
    submission = next((tmp_path / "outputs" / "baseline" / "submissions").glob("submission_*.csv"))
    fake = tmp_path / "bin" / "kaggle"
    fake.parent.mkdir()
    fake.write_text(
        "#!/bin/sh\necho 'fileName,date,description,status,publicScore,privateScore'\n"
        f"echo '{submission.name},2026-01-01,,complete,0.8765,'\necho 'other.csv,2026-01-01,,complete,0.5,'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    result = CliRunner().invoke(
        app, ["lb", "--kaggle", "digit-recognizer", "--set", f"output_dir={tmp_path / 'outputs'}"]
    )
    assert result.exit_code == 0, result.output
    assert pd.read_csv(tmp_path / "outputs" / "submissions.csv")["public_lb"].tolist() == [0.8765]

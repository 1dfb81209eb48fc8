"""The benchmark's held-out writers lay fake arrays out as competitions podium reads (the real datasets are fetched
from registries only when the benchmark runs), the hand loop reads their boxes, and the summary's target holds."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from podium.demo import holdout_accuracy
from podium.demo_scoring import mask_value_offset
from podium.discover import inspect_competition

from .conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import hand_loops
import held_out_datasets
from held_out_datasets import write_boxes_arrays, write_masks_arrays
from podium import demo
from vs_hand_loop import DIGIT_VARIANTS, summarise


def test_boxes_are_written_as_a_boxes_csv_competition_the_hand_loop_reads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (96, 128, 3), dtype=np.uint8) for _ in range(10)]
    boxes = [np.array([[4.0, 6.0, 40.0, 50.0, 0.0], [50.0, 10.0, 90.0, 80.0, 0.0]])[: 1 + i % 2] for i in range(10)]
    counts = write_boxes_arrays(images, boxes, tmp_path / "data", tmp_path / "holdout")
    assert counts == {"train": 8, "test": 2}
    findings = inspect_competition(tmp_path / "data")
    assert findings.answers["task"] == "detection" and findings.answers["data_layout"] == "boxes_csv"
    table = pd.read_csv(tmp_path / "data" / "train.csv", dtype={"id": str})
    classes, corners = hand_loops.read_boxes(table)
    assert len(corners) == sum(1 + i % 2 for i in range(10)) - len(pd.read_csv(tmp_path / "holdout" / "test_boxes.csv"))
    assert set(classes) == {0} and set(map(tuple, corners.tolist())) <= {(4, 6, 40, 50), (50, 10, 90, 80)}
    truth = pd.read_csv(tmp_path / "holdout" / "test_boxes.csv", dtype={"id": str})
    sample = pd.read_csv(tmp_path / "data" / "sample_submission.csv", dtype={"id": str})
    assert set(truth["id"]) == set(sample["id"]) and not set(sample["id"]) & set(table["id"])


def test_masks_are_written_with_class_ids_that_are_the_mask_values(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(10)]
    masks = [np.zeros((64, 64), np.uint8) for _ in range(10)]
    for k, mask in enumerate(masks):
        mask[8:30, 8:30], mask[40:60, 40:60] = 1, 1 + k % 2
    write_masks_arrays(images, masks, 2, tmp_path / "data", tmp_path / "holdout")
    findings = inspect_competition(tmp_path / "data")
    assert findings.answers["task"] == "segmentation" and findings.answers["data_layout"] == "masks"
    sample = pd.read_csv(tmp_path / "data" / "sample_submission.csv", dtype=str)
    assert sorted(sample["ClassId"].unique()) == ["1", "2"] and mask_value_offset(sample["ClassId"]) == 0
    assert mask_value_offset(pd.Series(["0", "9"])) == 1  # the digit masks demo: class k is mask value k + 1
    assert len(list((tmp_path / "holdout" / "masks").glob("*.png"))) == sample["id"].nunique() == 2


def test_elpv_cells_are_labelled_defective_from_probability_one_half(tmp_path: Path, monkeypatch) -> None:
    data = tmp_path / "package" / "elpv_dataset" / "data"
    (data / "images").mkdir(parents=True)
    probabilities = [0.0, 1 / 3, 2 / 3, 1.0] * 5
    for k in range(len(probabilities)):
        Image.fromarray(np.full((30, 30), k, np.uint8)).save(data / "images" / f"cell{k:04d}.png")
    lines = [f"images/cell{k:04d}.png  {p:.16f}  {'mono' if k % 2 else 'poly'}" for k, p in enumerate(probabilities)]
    (data / "labels.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(held_out_datasets, "pip_package", lambda requirement: tmp_path / "package")
    images, labels = held_out_datasets.fetch_elpv()
    assert images.shape == (20, 30, 30) and images[7].max() == 7
    assert labels.tolist() == ["functional", "functional", "defective", "defective"] * 5
    assert held_out_datasets.write_elpv(tmp_path / "data", tmp_path / "holdout") == {"train": 16, "test": 4}
    findings = inspect_competition(tmp_path / "data")
    assert findings.answers["task"] == "classification" and findings.answers["data_layout"] == "csv"
    truth = pd.read_csv(tmp_path / "holdout" / "test_labels.csv", dtype=str)
    truth.to_csv(tmp_path / "right.csv", index=False)
    truth.assign(label=truth["label"].map({"defective": "functional", "functional": "defective"})).to_csv(
        tmp_path / "wrong.csv", index=False
    )
    assert holdout_accuracy(tmp_path / "right.csv", tmp_path / "holdout" / "test_labels.csv") == 1.0
    assert holdout_accuracy(tmp_path / "wrong.csv", tmp_path / "holdout" / "test_labels.csv") == 0.0


def test_development_variants_write_small_sets_of_large_scenes_and_restore_the_demo(tmp_path: Path) -> None:
    saved = demo.SCENE_SIZE, demo.SCENES, demo.DIGIT_SCALES
    _, write = DIGIT_VARIANTS["digit_boxes_large"]
    assert write(tmp_path / "data", tmp_path / "holdout") == {"train": 48, "test": 16}
    assert saved == (demo.SCENE_SIZE, demo.SCENES, demo.DIGIT_SCALES)
    assert Image.open(tmp_path / "data" / "train" / "train_0000.png").size == (384, 384)
    sides = pd.read_csv(tmp_path / "data" / "train.csv")["bbox"].map(lambda b: json.loads(b)[2])
    assert sides.min() >= 8 * 12 and sides.max() <= 8 * 20
    _, write_masks = DIGIT_VARIANTS["digit_masks_small"]
    write_masks(tmp_path / "masks", tmp_path / "masks_holdout")
    sample = pd.read_csv(tmp_path / "masks" / "sample_submission.csv", dtype=str)
    assert sorted(sample["ClassId"].unique(), key=int) == [str(k) for k in range(1, 11)]  # the mask values


def test_the_large_mnist_development_case_is_mnist_upsampled_to_224_px(monkeypatch: pytest.MonkeyPatch) -> None:
    import public_datasets

    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (2600, 28, 28)).astype(np.uint8)
    small[:, 10:18, 10:18] = 255  # a bright square each image keeps when upsampled
    monkeypatch.setattr(public_datasets, "mnist_5k", lambda: (small, np.arange(2600) % 10))
    images, labels = public_datasets.mnist_large()
    assert images.shape == (2500, 224, 224) and images.dtype == np.uint8
    assert (labels == np.arange(2500) % 10).all()
    assert images[7, 90:130, 90:130].min() >= 250 and images[7].mean() < 200


def test_the_summary_gives_mean_and_std_and_whether_podium_holds_the_target() -> None:
    rows = [
        {"case": "a", "metric": "dice", "podium": podium, "hand_loop": hand}
        for podium, hand in ((0.80, 0.90), (0.82, 0.70), (0.84, 0.80))
    ]
    [line] = summarise(rows)
    assert line["podium_mean"] == pytest.approx(0.82) and line["hand_mean"] == pytest.approx(0.8)
    assert line["hand_std"] == pytest.approx(0.1) and line["seeds"] == 3 and line["holds"]
    losing = [{**row, "podium": row["podium"] - 0.2} for row in rows]
    assert not summarise(losing)[0]["holds"]

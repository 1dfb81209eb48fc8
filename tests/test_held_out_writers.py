"""The benchmark's held-out writers lay fake arrays out as competitions podium reads (the real datasets are fetched
from registries only when the benchmark runs), the hand loop reads their boxes, and the summary's target holds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from podium.demo_scoring import mask_value_offset
from podium.discover import inspect_competition

from .conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

import hand_loops
from held_out_datasets import write_boxes_arrays, write_masks_arrays
from vs_hand_loop import summarise


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

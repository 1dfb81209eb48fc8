"""Scorers of the demos' held-out test labels. They import the rendered project's own readers and metrics, so
they run inside the project: `python -m podium.demo_scoring TASK PACKAGE SUBMISSION HOLDOUT` prints one JSON line."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def scenes_map50(package: str, submission: Path, holdout: Path) -> float:
    """mAP@.5 of a detection submission against held-out boxes (one row per box, bbox [x, y, w, h])."""
    labels = importlib.import_module(f"{package}.tasks.detection.labels")
    submission_strings = importlib.import_module(f"{package}.tasks.detection.submission")
    metric = importlib.import_module(f"{package}.tasks.detection.metric")
    tokens = importlib.import_module(f"{package}.config").load_config().detection.submission_tokens
    truth = pd.read_csv(holdout, dtype={"id": str})
    predicted = pd.read_csv(submission, dtype={"id": str}, keep_default_na=False).set_index("id")
    targets, outputs = [], []
    for image_id in predicted.index:
        rows = truth[truth["id"] == image_id]
        boxes = labels.to_xyxy(np.array([json.loads(b) for b in rows["bbox"]]).reshape(-1, 4), "xywh")
        targets.append({"boxes": boxes, "labels": rows["class"].to_numpy()})
        found, scores, names = submission_strings.parse_prediction_string(
            predicted.loc[image_id, "PredictionString"], tokens
        )
        outputs.append({"boxes": found, "scores": scores, "labels": np.array([int(x) for x in names], dtype=int)})
    return float(metric.coco_map(np.array(targets, dtype=object), np.array(outputs, dtype=object))[1])


def mask_value_offset(class_ids: pd.Series) -> int:
    """Class ids numbered from 1 are the masks' values (Severstal's convention); from 0 (the digit masks demo's
    digits), each is its mask value minus one."""
    return 0 if class_ids.astype(int).min() >= 1 else 1


def masks_dice(package: str, submission: Path, holdout: Path) -> dict[str, float]:
    """Dice per test image and digit as the competition scores it (an empty prediction of an absent digit is 1),
    and over the (image, digit) pairs where the digit is present, the stricter figure."""
    from PIL import Image

    labels = importlib.import_module(f"{package}.tasks.segmentation.labels")
    metric = importlib.import_module(f"{package}.tasks.segmentation.metric")
    rows = pd.read_csv(submission, dtype=str, keep_default_na=False)
    offset = mask_value_offset(rows["ClassId"])
    predicted, truth = [], []
    for row in rows.itertuples(index=False):
        mask = np.asarray(Image.open(holdout / "masks" / f"{row.id}.png"))
        predicted.append(labels.rle_decode(row.EncodedPixels, mask.shape)[None])
        truth.append((mask == int(row.ClassId) + offset).astype(np.uint8)[None])
    dice, _, present = metric.per_image_scores(np.stack(predicted), np.stack(truth))
    return {"score": float(dice.mean()), "dice_non_empty": float(dice[present].mean())}


SCORERS = {"detection": scenes_map50, "segmentation": masks_dice}


def main(argv: list[str]) -> Any:
    task, package, submission, holdout = argv
    print(json.dumps(SCORERS[task](package, Path(submission), Path(holdout))))


if __name__ == "__main__":
    main(sys.argv[1:])

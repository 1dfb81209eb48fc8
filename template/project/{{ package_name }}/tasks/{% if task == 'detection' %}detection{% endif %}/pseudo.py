"""Detection pseudo-labels: test boxes scored at or above pseudo.threshold become labels; an image holding a box
in the uncertain band [pseudo.uncertain, pseudo.threshold) is left out, since its unsure object would otherwise
train as background. With pseudo.soft each box is kept in a training sample with probability equal to its score."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...config import Config
from ...core.data import LabelledTable, check_unique_ids, read_csv, require_columns, with_pseudo_rows
from ...core.errors import DataError
from ...core.runs import write_csv
from .blend import read_member
from .submission import INTERNAL_TOKENS, parse_prediction_string, prediction_string


def select_boxes(scores: np.ndarray, threshold: float, uncertain: float) -> np.ndarray | None:
    """The boxes of one image to keep as labels (a boolean mask), or None when the image is left out."""
    if ((scores >= uncertain) & (scores < threshold)).any():
        return None
    return scores >= threshold


def pseudo_label_frame(
    ids: np.ndarray, outputs: np.ndarray, image_paths: dict[str, str], threshold: float, uncertain: float
) -> pd.DataFrame:
    """id, path, width, height, prediction ('class_index score x1 y1 x2 y2 ...') of the images kept."""
    rows = []
    for image_id, output in zip(ids, outputs, strict=True):
        keep = select_boxes(output["scores"], threshold, uncertain)
        if keep is None:
            continue
        boxes = output["boxes"]
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])  # zero-width boxes cannot be augmented
        if image_id not in image_paths:
            raise DataError(f"pseudo: prediction id '{image_id}' has no image in data.test_images")
        labels = [str(label) for label in output["labels"][keep]]
        text = prediction_string(output["boxes"][keep], output["scores"][keep], labels, INTERNAL_TOKENS)
        width, height = output["size"]
        rows.append(
            {"id": image_id, "path": image_paths[image_id], "width": width, "height": height, "prediction": text}
        )
    return pd.DataFrame(rows, columns=["id", "path", "width", "height", "prediction"])


def write_pseudo_labels(
    task: Any, config: Config, source: Path, image_paths: dict[str, str], folder: Path
) -> dict[str, Any]:
    """`folder`/pseudo_labels.csv from the test boxes in `source`; images taken, left out and boxes kept."""
    ids, outputs = read_member(task, source, "test")  # run predict (or ensemble) first
    settings = config.pseudo
    if settings.uncertain > settings.threshold:
        raise DataError(f"pseudo.uncertain={settings.uncertain} is above pseudo.threshold={settings.threshold}")
    frame = pseudo_label_frame(ids.astype(str), outputs, image_paths, settings.threshold, settings.uncertain)
    if frame.empty:
        raise DataError(
            f"{source}: every test image holds a box scored in [pseudo.uncertain={settings.uncertain}, "
            f"pseudo.threshold={settings.threshold}): lower the threshold or the uncertain bound"
        )
    boxes = int(sum(len(text.split()) // 6 for text in frame["prediction"]))
    file = write_csv(folder / "pseudo_labels.csv", frame)
    return {"file": file, "selected": len(frame), "of": len(ids), "boxes": boxes}


def round_overrides(config: Config) -> dict[str, Any]:
    return {}


def with_pseudo_labels(
    table: LabelledTable, folds: np.ndarray, path: Path, config: Config
) -> tuple[LabelledTable, np.ndarray, None]:
    """Pseudo rows as detection targets (boxes, labels; with pseudo.soft the scores as keep probabilities)."""
    frame = read_csv(path)
    require_columns(frame, ["id", "path", "width", "height", "prediction"], path)
    check_unique_ids(frame["id"], path)
    targets = []
    for row, text in enumerate(frame["prediction"].fillna("").astype(str)):
        try:
            boxes, scores, labels = parse_prediction_string(text, INTERNAL_TOKENS)
            label_index = np.array([int(label) for label in labels], dtype=np.int64)
        except ValueError as error:
            raise DataError(f"{path}: row {row + 2}: {error}") from error
        if len(label_index) and (label_index.min() < 0 or label_index.max() >= len(table.classes)):
            raise DataError(f"{path}: row {row + 2}: class index {label_index.max()} beyond {len(table.classes)}")
        target: dict[str, Any] = {"boxes": np.asarray(boxes, np.float32).reshape(-1, 4), "labels": label_index}
        if config.pseudo.soft:
            target["keep"] = np.asarray(scores, dtype=np.float64)
        targets.append(target)
    target_array = np.empty(len(targets), dtype=object)
    target_array[:] = targets
    extended, all_folds = with_pseudo_rows(table, folds, frame[["id", "path", "width", "height"]], target_array, path)
    return extended, all_folds, None

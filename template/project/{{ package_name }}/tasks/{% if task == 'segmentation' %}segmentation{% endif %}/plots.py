"""Segmentation's plots after every `run`: Dice and IoU per class, the pixel confusion matrix and validation
images with their true and predicted masks (from the OOF predictions; no model is loaded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
import pandas as pd

from ...config import Config
from ...core.data import LabelledTable, read_image
from ...core.report.analysis import table_rows
from ...core.report.page import heatmap
from ...core.runs import RunPaths
from .analysis import OOF_FILE, class_table, mask_rows

if TYPE_CHECKING:
    from .task import SegmentationTask

SHOWN = 4  # validation images drawn, three panels each


def pixel_confusion(predicted: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """(K+1, K+1) pixel counts, truth in rows, prediction in columns; index 0 is background (no class), a pixel
    takes its first class (N, K, H, W masks)."""

    def index(masks: np.ndarray) -> np.ndarray:
        return np.where(masks.any(axis=1), masks.argmax(axis=1) + 1, 0)

    size = predicted.shape[1] + 1
    pairs = index(targets).ravel() * size + index(predicted).ravel()
    return np.bincount(pairs, minlength=size * size).reshape(size, size)


def run_figures(
    config: Config, task: SegmentationTask, table: LabelledTable, paths: RunPaths
) -> dict[str, bytes | pd.DataFrame]:
    classes: list[str] = task.classes
    path = paths.root / OOF_FILE
    task.load_postprocessing(paths.root)
    ids, outputs = task.read_predictions(path)
    rows = table_rows(ids, table, path)
    predicted, targets = task._masks(outputs, task.post)
    predicted, targets = predicted.astype(bool), targets.astype(bool)
    matrix = pixel_confusion(predicted, targets)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    picked = list(range(min(SHOWN, len(rows))))
    height, width = targets.shape[-2:]
    image_paths = table.frame["path"].to_numpy()[rows]
    images = [cv2.resize(read_image(image_paths[i]), (width, height), interpolation=cv2.INTER_LINEAR) for i in picked]
    return {
        "per_class": class_table(predicted, targets, classes),
        "confusion_matrix": heatmap(
            shares,
            ["background", *classes],
            "pixel shares of each true class",
            "{:.2f}",
            0.0,
            1.0,
            ("truth", "prediction"),
        ),
        "validation_predictions": mask_rows(
            images, predicted[picked], targets[picked], [str(ids[i]) for i in picked], classes
        ),
    }

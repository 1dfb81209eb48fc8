"""Detection's plots after every `run`: AP per class, precision-recall curves and validation images with their
true (solid) and predicted (dashed) boxes in their class colours (from the OOF predictions; no model is loaded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...config import Config
from ...core.data import LabelledTable
from ...core.report.analysis import table_rows
from ...core.runs import RunPaths
from .analysis import ap_tables, boxes_grid, kept, pr_curves
from .metric import coco_evaluation

if TYPE_CHECKING:
    from .task import DetectionTask

SHOWN = 8  # validation images drawn


def run_figures(
    config: Config, task: DetectionTask, table: LabelledTable, paths: RunPaths
) -> dict[str, bytes | pd.DataFrame]:
    classes: list[str] = task.classes
    ids, outputs = task.read_predictions(paths.oof)
    rows = table_rows(ids, table, paths.oof)
    targets = table.targets[rows]
    figures: dict[str, bytes | pd.DataFrame] = {}
    evaluation = coco_evaluation(targets, outputs)
    if evaluation is not None:
        figures["per_class"] = ap_tables(evaluation, classes)[1]
        figures["pr_curves"] = pr_curves(evaluation, classes)
    threshold = config.analyze.score_threshold
    picked = np.arange(len(rows))[:SHOWN]
    image_paths = table.frame["path"].to_numpy()[rows]
    figures["validation_predictions"] = boxes_grid(
        [image_paths[i] for i in picked],
        [targets[i] for i in picked],
        [kept(outputs[i], threshold) for i in picked],
        [f"{ids[i]}: true solid, predicted dashed (score >= {threshold})" for i in picked],
        classes,
    )
    return figures

"""Classification's plots after every `run`: the per-class table, the confusion matrix and validation images
with their true and predicted classes (from the OOF predictions; no model is loaded)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ...config import Config
from ...core.data import LabelledTable
from ...core.report.analysis import table_rows
from ...core.report.page import heatmap, image_grid
from ...core.runs import RunPaths
from .analysis import confusion, per_class_report, rank_errors

if TYPE_CHECKING:
    from .task import ClassificationTask

SHOWN = 8  # validation images drawn: the most confident mistakes first, then the least confident right ones


def run_figures(
    config: Config, task: ClassificationTask, table: LabelledTable, paths: RunPaths
) -> dict[str, bytes | pd.DataFrame]:
    classes: list[str] = task.classes
    oof = pd.read_csv(paths.oof, dtype={"id": str})
    rows = table_rows(oof["id"].to_numpy(), table, paths.oof)
    probabilities = oof[classes].to_numpy(np.float64)
    targets = table.targets[rows]
    multi = config.data.multi_label
    predicted = (probabilities >= config.submit.threshold).astype(int) if multi else probabilities.argmax(axis=1)
    figures: dict[str, bytes | pd.DataFrame] = {"per_class": per_class_report(targets, predicted, classes)}
    if multi:
        return figures
    figures["confusion_matrix"] = heatmap(
        confusion(targets, predicted, len(classes)), classes, "confusion", "{:.0f}", axis_labels=("truth", "prediction")
    )
    wrong, right = rank_errors(targets, probabilities, SHOWN)
    picked = np.concatenate([wrong, right])[:SHOWN]
    titles = [
        f"true {classes[targets[i]]}\npredicted {classes[predicted[i]]} {probabilities[i, predicted[i]]:.2f}"
        for i in picked
    ]
    figures["validation_predictions"] = image_grid(table.frame["path"].to_numpy()[rows[picked]].tolist(), titles)
    return figures

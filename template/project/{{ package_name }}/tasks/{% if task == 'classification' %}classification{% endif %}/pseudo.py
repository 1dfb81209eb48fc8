"""Classification pseudo-labels: confident test predictions become label rows (argmax, or the probabilities
with pseudo.soft), read back into every fold's training part."""

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


def select_confident(probabilities: np.ndarray, threshold: float, multi_label: bool) -> np.ndarray:
    """Rows to keep: top probability >= threshold (single-label), or every class decided either way
    (p >= threshold or p <= 1 - threshold) for multi-label."""
    if not 0 <= threshold <= 1:
        raise DataError(f"pseudo.threshold {threshold}: expected a number in [0, 1]")
    if multi_label:
        return ((probabilities >= threshold) | (probabilities <= 1 - threshold)).all(axis=1)
    return probabilities.max(axis=1) >= threshold


def pseudo_label_frame(
    predictions: pd.DataFrame,
    image_paths: dict[str, str],
    classes: list[str],
    threshold: float,
    multi_label: bool,
    soft: bool,
) -> pd.DataFrame:
    """The pseudo-label file: `id`, `path`, then probabilities (soft) or 0/1 labels (hard) per class."""
    probabilities = predictions[classes].to_numpy(dtype=np.float64)
    keep = select_confident(probabilities, threshold, multi_label)
    kept = probabilities[keep]
    if not soft:
        kept = (kept >= 0.5).astype(float) if multi_label else np.eye(len(classes))[kept.argmax(axis=1)]
    ids = predictions["id"].astype(str).to_numpy()[keep]
    missing = [i for i in ids if i not in image_paths]
    if missing:
        raise DataError(f"pseudo: prediction id '{missing[0]}' has no image in data.test_images")
    frame = pd.DataFrame(kept, columns=classes)
    frame.insert(0, "path", [image_paths[i] for i in ids])
    frame.insert(0, "id", ids)
    return frame


def write_pseudo_labels(
    task: Any, config: Config, source: Path, image_paths: dict[str, str], folder: Path
) -> dict[str, Any]:
    """`folder`/pseudo_labels.csv from the test predictions in `source`; what was taken of how many."""
    ids, probabilities = read_member(task, source, "test")  # run predict (or ensemble) first
    predictions = pd.DataFrame(probabilities, columns=task.classes).assign(id=ids)
    settings = config.pseudo
    labels = pseudo_label_frame(
        predictions, image_paths, task.classes, settings.threshold, config.data.multi_label, settings.soft
    )
    if labels.empty:
        top = predictions[task.classes].to_numpy().max()
        raise DataError(
            f"{source}: no prediction reaches pseudo.threshold={settings.threshold} "
            f"(the highest is {top:.3f}; label smoothing caps confidence): lower the threshold"
        )
    file = write_csv(folder / "pseudo_labels.csv", labels)
    return {"file": file, "selected": len(labels), "of": len(predictions)}


def round_overrides(config: Config) -> dict[str, Any]:
    return {}


def with_pseudo_labels(
    table: LabelledTable, folds: np.ndarray, path: Path, config: Config
) -> tuple[LabelledTable, np.ndarray, np.ndarray | None]:
    """Pseudo rows joined as PSEUDO_FOLD; the training targets are the probabilities themselves with
    pseudo.soft, else None (the table's hard labels)."""
    frame = read_csv(path)
    require_columns(frame, ["id", "path", *table.classes], path)
    check_unique_ids(frame["id"], path)
    values = frame[table.classes].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float32)
    if len(values) and (np.isnan(values).any() or values.min() < 0 or values.max() > 1):
        raise DataError(f"{path}: class columns must hold probabilities in [0, 1]")
    hard = (values >= 0.5).astype(np.float32) if table.multi_label else values.argmax(axis=1).astype(np.int64)
    extended, all_folds = with_pseudo_rows(table, folds, frame[["id", "path"]], hard, path)
    training = None
    if config.pseudo.soft:
        own = table.targets if table.multi_label else np.eye(len(table.classes), dtype=np.float32)[table.targets]
        training = np.concatenate([own.astype(np.float32), values])
    return extended, all_folds, training

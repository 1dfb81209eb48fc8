"""Pseudo-labelling: keep confident test predictions as labels and retrain with them in every fold's
training part (never in validation), for a configured number of rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .config import Config, with_overrides
from .data import read_test_table
from .errors import DataError
from .predict import predict
from .runs import RunPaths, read_json, write_csv, write_json
from .tasks import require_task
from .train import train


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


def pseudo(config: Config) -> list[dict[str, Any]]:
    """Rounds of: label confident predictions, retrain into <experiment>-pseudo<r>, predict again."""
    require_task(config, "pseudo")
    paths = RunPaths.from_config(config)
    if not paths.metrics.is_file() or not paths.classes.is_file():
        raise DataError(f"{paths.root}: no trained run (metrics.json, classes.json); run train first")
    classes = read_json(paths.classes)
    source = Path(config.pseudo.source or paths.test_predictions)
    test = read_test_table(config.data)
    image_paths = dict(zip(test["id"], test["path"], strict=True))
    cv_before = read_json(paths.metrics)["cv_mean"]
    rounds = []
    for round_number in range(1, config.pseudo.rounds + 1):
        if not source.is_file():
            raise DataError(f"{source}: test predictions not found; run predict (or ensemble) first")
        predictions = pd.read_csv(source, dtype={"id": str})
        labels = pseudo_label_frame(
            predictions, image_paths, classes, config.pseudo.threshold, config.data.multi_label, config.pseudo.soft
        )
        if labels.empty:
            top = predictions[classes].to_numpy().max()
            raise DataError(
                f"{source}: no prediction reaches pseudo.threshold={config.pseudo.threshold} "
                f"(the highest is {top:.3f}; label smoothing caps confidence): lower the threshold"
            )
        round_dir = RunPaths(config.output_dir / f"{config.experiment}-pseudo{round_number}")
        label_file = write_csv(round_dir.root / "pseudo_labels.csv", labels)
        round_config = with_overrides(
            config,
            {
                "experiment": round_dir.root.name,
                "data": {"pseudo_labels": str(label_file)},
                "folds": {"path": str(paths.folds)},
            },
        )
        metrics = train(round_config)
        predict(round_config)
        rounds.append(
            {
                "round": round_number,
                "selected": len(labels),
                "of": len(predictions),
                "cv_before": cv_before,
                "cv_after": metrics["cv_mean"],
                "run": str(round_dir.root),
            }
        )
        print(
            f"pseudo round {round_number}: {len(labels)}/{len(predictions)} test images labelled; "
            f"CV {cv_before:.4f} -> {metrics['cv_mean']:.4f}"
        )
        cv_before, source = metrics["cv_mean"], round_dir.test_predictions
    write_json(paths.root / "pseudo.json", rounds)
    return rounds

"""The fold file's readers: every stage after `folds` (train, predict, soups, analysis, EDA) reads the split of
the run folder through these, never through the `folds` stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config
from .data import LabelledTable
from .errors import DataError


def read_folds(path: Path, table: LabelledTable) -> np.ndarray:
    """The fold of each row of `table`, from a fold file that must cover exactly its ids."""
    if not path.is_file():
        raise DataError(f"{path}: fold file not found; run the `folds` command first")
    frame = pd.read_csv(path, dtype={"id": str})
    if list(frame.columns[:2]) != ["id", "fold"]:
        raise DataError(f"{path}: expected columns id, fold")
    mapping = dict(zip(frame["id"], frame["fold"], strict=True))
    missing = [image_id for image_id in table.ids if image_id not in mapping]
    if missing:
        raise DataError(f"{path}: no fold for id '{missing[0]}' ({len(missing)} ids); re-run `folds`")
    return np.array([mapping[image_id] for image_id in table.ids], dtype=np.int64)


def check_fold_count(folds: np.ndarray, config: Config, path: Path) -> None:
    """The fold file must hold the folds config.folds asks for: a stale file would silently win."""
    found = len({int(fold) for fold in np.unique(folds) if fold >= 0})
    expected = 1 if config.folds.strategy == "holdout" else config.folds.n_splits
    if found != expected:
        key = "folds.strategy=holdout" if config.folds.strategy == "holdout" else f"folds.n_splits={expected}"
        raise DataError(
            f"{path}: {found} folds, but {key}; write new folds with `run` (or the `folds` command in a new run), or "
            f"keep these with folds.n_splits={found}"
        )


def folds_to_train(folds: np.ndarray, only: list[int] | None) -> list[int]:
    """The folds to train: folds.train_folds when set (each must be in the fold file), else every one."""
    available = sorted(int(fold) for fold in np.unique(folds) if fold >= 0)
    if only is None:
        return available
    unknown = sorted(set(only) - set(available))
    if unknown:
        raise DataError(f"folds.train_folds {unknown}: the fold file has folds {available}")
    return sorted(only)

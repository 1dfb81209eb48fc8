"""Fold assignment: a registry of scikit-learn and iterstrat splitters writing one fold file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from .config import Config
from .core.data import LabelledTable
from .core.errors import DataError
from .core.registry import lookup
from .core.runs import RunPaths, run_lock, write_csv
from .settings import require_valid_settings
from .tasks import read_train_table

HOLDOUT_TRAIN = -1  # rows never validated: always in the training part


def _single_labels(targets: np.ndarray) -> np.ndarray:
    # Multi-label targets stratify single-label splitters by their first class present.
    return targets.argmax(axis=1) if targets.ndim == 2 else targets


def _holdout(targets: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int, ratio: float):
    labels = _single_labels(targets)
    stratify = labels if np.bincount(labels).min(initial=2) >= 2 else None
    _, valid = train_test_split(np.arange(len(targets)), test_size=ratio, random_state=seed, stratify=stratify)
    yield np.setdiff1d(np.arange(len(targets)), valid), valid


def _kfold(targets: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int, ratio: float):
    yield from KFold(n_splits, shuffle=True, random_state=seed).split(targets)


def _stratified(targets: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int, ratio: float):
    yield from StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(targets, _single_labels(targets))


def _multilabel(targets: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int, ratio: float):
    matrix = targets if targets.ndim == 2 else np.eye(targets.max() + 1)[targets]
    yield from MultilabelStratifiedKFold(n_splits, shuffle=True, random_state=seed).split(matrix, matrix)


def _group(targets: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int, ratio: float):
    yield from GroupKFold(n_splits).split(targets, groups=groups)


def _stratified_group(targets: np.ndarray, groups: np.ndarray | None, n_splits: int, seed: int, ratio: float):
    splitter = StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)
    yield from splitter.split(targets, _single_labels(targets), groups=groups)


SPLITTERS: dict[str, Callable] = {
    "holdout": _holdout,
    "kfold": _kfold,
    "stratified_kfold": _stratified,
    "multilabel_stratified_kfold": _multilabel,
    "group_kfold": _group,
    "stratified_group_kfold": _stratified_group,
}
GROUPED = {"group_kfold", "stratified_group_kfold"}


def assign_folds(
    targets: np.ndarray,
    *,
    strategy: str,
    n_splits: int = 5,
    seed: int = 42,
    groups: np.ndarray | None = None,
    holdout_ratio: float = 0.2,
) -> np.ndarray:
    """The validation fold of each sample (-1: never validated), from a registered splitter."""
    splitter = lookup(SPLITTERS, strategy, "folds.strategy")
    if strategy in GROUPED and groups is None:
        raise DataError(f"folds.strategy={strategy} needs folds.group_column")
    folds = np.full(len(targets), HOLDOUT_TRAIN, dtype=np.int64)
    try:
        splits = list(splitter(targets, groups, n_splits, seed, holdout_ratio))
    except ValueError as error:
        raise DataError(f"folds.strategy={strategy}: {' '.join(str(error).split())}") from error
    for fold, (_, valid) in enumerate(splits):
        folds[valid] = fold
    return folds


def table_folds(config: Config, table: LabelledTable) -> np.ndarray:
    """The fold of each row of `table` under config.folds (the `check` preflight splits the same way)."""
    groups = None
    if config.folds.group_column:
        if config.folds.group_column not in table.frame.columns:
            raise DataError(f"{table.source}: missing group column '{config.folds.group_column}'")
        groups = table.frame[config.folds.group_column].to_numpy()
    return assign_folds(
        table.targets if table.strata is None else table.strata,
        strategy=config.folds.strategy,
        n_splits=config.folds.n_splits,
        seed=config.folds.seed,
        groups=groups,
        holdout_ratio=config.folds.holdout_ratio,
    )


def trained_runs_on(fold_file: Path, output_dir: Path) -> list[Path]:
    """Run folders under `output_dir` whose training (checkpoints or metrics) used `fold_file`."""
    runs = []
    for saved in sorted(output_dir.glob("*/config.yaml")):
        root = saved.parent
        if not (root / "metrics.json").is_file() and not any(root.glob("fold_*")):
            continue
        recorded = (yaml.safe_load(saved.read_text()) or {}).get("folds", {}).get("path")
        used = Path(recorded) if recorded else root / "folds.csv"
        if used.resolve() == fold_file.resolve():
            runs.append(root)
    return runs


def make_folds(
    config: Config, table: LabelledTable | None = None, *, retraining: tuple[Path, ...] = (), lock_wait: float = 0
) -> Path:
    """Write the fold file (`id`, `fold`) and return its path. A fold file that a trained run used is not replaced
    by other folds (its OOF and `--resume` would silently mix two splits), unless `retraining` names every such
    run: `run` trains them again right after."""
    require_valid_settings(config)
    paths = RunPaths.from_config(config)
    with run_lock(paths, "folds", wait=lock_wait):
        table = table or read_train_table(config.data)
        frame = pd.DataFrame({"id": table.ids, "fold": table_folds(config, table)})
        if paths.folds.is_file():
            existing = pd.read_csv(paths.folds, dtype={"id": str})
            if existing.equals(frame.astype({"id": str})):
                return paths.folds  # the same split: nothing to write
            retrained = {run.resolve() for run in retraining}
            users = [run for run in trained_runs_on(paths.folds, config.output_dir) if run.resolve() not in retrained]
            if users:
                raise DataError(
                    f"{paths.folds}: the training in {users[0]} used these folds; new folds would make its OOF and "
                    "`train --resume` mix two splits. Train on new folds in another run (experiment=NAME), or "
                    "`run` them, which moves the earlier training to previous/ first"
                )
        return write_csv(paths.folds, frame)

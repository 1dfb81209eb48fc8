"""Fold strategies: every row validated once, groups never cross folds, class ratios hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ..core.errors import DataError
from ..core.fold_file import read_folds
from ..folds import SPLITTERS, assign_folds, make_folds
from ..tasks import read_train_table
from .conftest import TASK

RNG = np.random.default_rng(0)
LABELS = np.repeat(np.arange(4), [100, 60, 30, 10])
GROUPS = RNG.integers(0, 40, len(LABELS))


@pytest.mark.parametrize("strategy", sorted(set(SPLITTERS) - {"holdout"}))
def test_each_row_is_validated_exactly_once(strategy: str) -> None:
    folds = assign_folds(LABELS, strategy=strategy, n_splits=5, seed=1, groups=GROUPS)
    assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]
    assert len(folds) == len(LABELS)


@pytest.mark.parametrize("strategy", ["group_kfold", "stratified_group_kfold"])
def test_no_group_crosses_folds(strategy: str) -> None:
    folds = assign_folds(LABELS, strategy=strategy, n_splits=5, seed=1, groups=GROUPS)
    per_group = pd.DataFrame({"group": GROUPS, "fold": folds}).groupby("group")["fold"].nunique()
    assert per_group.max() == 1


def test_stratified_folds_keep_class_ratios() -> None:
    folds = assign_folds(LABELS, strategy="stratified_kfold", n_splits=5, seed=3)
    overall = np.bincount(LABELS) / len(LABELS)
    for fold in range(5):
        ratio = np.bincount(LABELS[folds == fold], minlength=4) / (folds == fold).sum()
        assert np.abs(ratio - overall).max() < 0.02
    # Exact counts: StratifiedKFold puts 100/5 of class 0 and 10/5 of class 3 in every fold.
    assert [int(((folds == f) & (LABELS == 3)).sum()) for f in range(5)] == [2, 2, 2, 2, 2]


def test_multilabel_stratification_balances_every_label() -> None:
    targets = (RNG.random((300, 5)) < [0.5, 0.3, 0.2, 0.1, 0.05]).astype(np.float32)
    folds = assign_folds(targets, strategy="multilabel_stratified_kfold", n_splits=3, seed=0)
    per_fold = np.stack([targets[folds == f].sum(axis=0) for f in range(3)])
    assert (per_fold.max(axis=0) - per_fold.min(axis=0)).max() <= 2


def test_holdout_keeps_the_ratio_and_trains_on_the_rest() -> None:
    folds = assign_folds(LABELS, strategy="holdout", holdout_ratio=0.25, seed=0)
    assert (folds == 0).sum() == 50
    assert set(np.unique(folds)) == {-1, 0}


def test_group_strategy_without_groups_is_an_error() -> None:
    with pytest.raises(DataError, match="needs folds.group_column"):
        assign_folds(LABELS, strategy="group_kfold", n_splits=5)


@pytest.mark.skipif(TASK != "classification", reason="classification CSV data; the fold logic is task-independent")
def test_same_seed_same_folds_and_fold_file_round_trip(make_config) -> None:
    config = make_config("folds.strategy=group_kfold", "folds.group_column=site", "folds.n_splits=3")
    path = make_folds(config)
    table = read_train_table(config.data)
    folds = read_folds(path, table)
    sites = table.frame["site"].to_numpy()
    assert all(len(set(folds[sites == site])) == 1 for site in set(sites))
    assert (read_folds(make_folds(config), table) == folds).all()


@pytest.mark.skipif(TASK != "classification", reason="classification CSV data; the fold logic is task-independent")
def test_missing_fold_file_says_which_command_to_run(make_config, tmp_path) -> None:
    config = make_config()
    with pytest.raises(DataError, match="run the `folds` command first"):
        read_folds(tmp_path / "nope.csv", read_train_table(config.data))


@pytest.mark.skipif(TASK != "classification", reason="classification CSV data; the fold logic is task-independent")
def test_group_column_missing_from_csv(make_config) -> None:
    with pytest.raises(DataError, match="missing group column 'hospital'"):
        make_folds(make_config("folds.strategy=group_kfold", "folds.group_column=hospital"))

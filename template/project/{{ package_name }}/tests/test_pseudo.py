"""Pseudo-labelling: confident selection, hard and soft labels, and never a pseudo label in validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from ..cli import app
from ..data import PSEUDO_FOLD, read_train_table, with_pseudo_labels
from ..errors import DataError
from ..folds import folds_to_train
from ..pseudo import pseudo_label_frame, select_confident
from .conftest import CSV_LAYOUT, fast_overrides

PROBS = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98]])


def test_select_confident_single_and_multi_label() -> None:
    assert select_confident(PROBS, 0.9, multi_label=False).tolist() == [True, False, True]
    multi = np.array([[0.97, 0.02], [0.97, 0.5], [0.05, 0.92]])
    assert select_confident(multi, 0.9, multi_label=True).tolist() == [True, False, True]
    with pytest.raises(DataError, match=r"pseudo.threshold 1.5: expected a number in \[0, 1\]"):
        select_confident(PROBS, 1.5, multi_label=False)


def test_pseudo_label_frame_hard_and_soft() -> None:
    predictions = pd.DataFrame({"id": ["a", "b", "c"], "x": PROBS[:, 0], "y": PROBS[:, 1]})
    paths = {"a": "A.png", "b": "B.png", "c": "C.png"}
    hard = pseudo_label_frame(predictions, paths, ["x", "y"], 0.9, multi_label=False, soft=False)
    assert hard.to_dict("list") == {"id": ["a", "c"], "path": ["A.png", "C.png"], "x": [1.0, 0.0], "y": [0.0, 1.0]}
    soft = pseudo_label_frame(predictions, paths, ["x", "y"], 0.9, multi_label=False, soft=True)
    assert soft["x"].tolist() == [0.95, 0.02]


def test_pseudo_rows_join_every_training_part_and_no_validation(make_config, competition: Path, tmp_path) -> None:
    config = make_config()
    table = read_train_table(config.data)
    folds = np.arange(len(table.ids)) % 2
    test_images = sorted((competition / "test").glob("*.png"))
    labels = pd.DataFrame({"id": [p.stem for p in test_images], "path": [str(p) for p in test_images]})
    for index, name in enumerate(table.classes):
        labels[name] = [1.0 if i % 3 == index else 0.0 for i in range(len(labels))]
    labels.to_csv(tmp_path / "pseudo.csv", index=False)
    extended, all_folds, soft = with_pseudo_labels(table, folds, tmp_path / "pseudo.csv", soft=True)
    pseudo_rows = np.flatnonzero(all_folds == PSEUDO_FOLD)
    assert len(pseudo_rows) == len(test_images)
    assert extended.frame["id"].iloc[pseudo_rows].tolist() == [p.stem for p in test_images]
    assert extended.targets[pseudo_rows].tolist() == [i % 3 for i in range(len(test_images))]  # hard = argmax
    assert folds_to_train(all_folds, None) == [0, 1]
    for fold in (0, 1):
        assert not set(np.flatnonzero(all_folds == fold)) & set(pseudo_rows)  # never validated
        assert set(pseudo_rows) <= set(np.flatnonzero(all_folds != fold))  # always trained on
    assert soft.shape == (len(table.ids) + len(test_images), 3)
    labels.loc[0, "id"] = table.ids[0]
    labels.to_csv(tmp_path / "clash.csv", index=False)
    with pytest.raises(DataError, match="is also a training id"):
        with_pseudo_labels(table, folds, tmp_path / "clash.csv", soft=False)


def test_pseudo_command_reports_rounds_and_keeps_validation_clean(tmp_path: Path, competition: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]
    assert CliRunner().invoke(app, ["run", *overrides]).exit_code == 0
    result = CliRunner().invoke(app, ["pseudo", *overrides, "pseudo.threshold=0.0", "pseudo.rounds=2"])
    assert result.exit_code == 0, result.output
    rounds = json.loads((tmp_path / "outputs" / "baseline" / "pseudo.json").read_text())
    assert [r["round"] for r in rounds] == [1, 2]
    assert all(r["selected"] == 6 and r["of"] == 6 for r in rounds)
    for number in (1, 2):
        run = tmp_path / "outputs" / f"baseline-pseudo{number}"
        oof_ids = set(pd.read_csv(run / "oof.csv", dtype={"id": str})["id"])
        assert not any(i.startswith("te") for i in oof_ids)  # pseudo-labelled test images never validated
        assert len(pd.read_csv(run / "pseudo_labels.csv")) == 6
    assert rounds[1]["cv_before"] == pytest.approx(rounds[0]["cv_after"])


def test_nothing_confident_enough_is_one_line(tmp_path: Path, competition: Path) -> None:
    overrides = [*CSV_LAYOUT, *fast_overrides(competition, tmp_path / "outputs")]
    assert CliRunner().invoke(app, ["run", *overrides]).exit_code == 0
    result = CliRunner().invoke(app, ["pseudo", *overrides, "pseudo.threshold=1.0"])
    assert result.exit_code == 2
    assert "no prediction reaches pseudo.threshold=1.0" in result.output
    assert not (tmp_path / "outputs" / "baseline-pseudo1").exists()

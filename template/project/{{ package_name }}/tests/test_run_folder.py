"""The run folder, for this task: a shared fold file is read and never rewritten, submit never overwrites, and an
interrupted fold resumes where it stopped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from ..cli import app
from ..config import load_config
from .conftest import TASK, WRITERS, task_overrides


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def overrides(tmp_path: Path) -> list[str]:
    WRITERS[TASK](tmp_path / "data")
    return task_overrides(tmp_path / "data", tmp_path / "outputs")


def oof_folds(run: Path) -> pd.Series:
    """Each OOF image's fold, from oof.csv (classification, detection) or oof.npz (segmentation)."""
    if (run / "oof.npz").is_file():
        arrays = np.load(run / "oof.npz")
        return pd.Series(arrays["fold"], index=arrays["ids"].astype(str))
    return pd.read_csv(run / "oof.csv", dtype={"id": str}).set_index("id")["fold"]


def test_run_reads_a_shared_fold_file_without_rewriting_it(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("folds", *overrides, "experiment=first").exit_code == 0
    shared = tmp_path / "outputs" / "first" / "folds.csv"
    frame = pd.read_csv(shared, dtype={"id": str})
    frame["fold"] = 1 - frame["fold"]  # hand-made folds: must survive another experiment's run
    frame.to_csv(shared, index=False)
    before = shared.read_text()
    result = invoke("run", *overrides, "experiment=second", f"folds.path={shared}")
    assert result.exit_code == 0, result.output
    assert shared.read_text() == before
    assert not (tmp_path / "outputs" / "second" / "folds.csv").exists()
    folds = oof_folds(tmp_path / "outputs" / "second")
    assert len(folds) == len(frame) and (folds == frame.set_index("id").loc[folds.index, "fold"]).all()


def test_submit_never_overwrites(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("run", *overrides).exit_code == 0
    second = invoke("submit", *overrides)
    assert second.exit_code == 0, second.output
    files = sorted((tmp_path / "outputs" / "baseline" / "submissions").glob("submission_*.csv"))
    assert len(files) == 2
    assert f"CV {load_config(overrides).metric}" in second.output


def test_resume_continues_an_interrupted_fold(tmp_path: Path, overrides: list[str]) -> None:
    assert invoke("folds", *overrides).exit_code == 0
    first = invoke("train", *overrides, "train.epochs=1", "folds.train_folds=[0]")
    assert first.exit_code == 0, first.output
    run = tmp_path / "outputs" / "baseline"
    (run / "fold_0" / "metrics.json").unlink()  # as if killed after epoch 1 of 2
    # --resume goes on with the run's own settings (fold 0 only) and the overrides given: train the other fold too
    resumed = invoke("train", *overrides, "train.epochs=2", "folds.train_folds=null", "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "fold 0: resuming after epoch 1" in resumed.output
    history = pd.read_csv(run / "fold_0" / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert pd.read_csv(run / "fold_1" / "history.csv")["epoch"].tolist() == [1, 2]
    saved = torch.load(run / "fold_0" / "last.pt", weights_only=True)
    assert saved["state"]["epoch"] == 2

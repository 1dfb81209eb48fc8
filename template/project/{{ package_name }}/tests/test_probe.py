"""The batch fitted to a time budget (core/probe.py, core/recipe.py): a timed training step, the halving rule, its
printed reason and config.yaml, and a resumed run keeping what it was fitted to."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ..config import load_config
from ..core import probe
from ..core.distributed import Runtime, resolve_device
from ..core.recipe import (
    HALVING_COST,
    budget_batch_choice,
    budget_batch_size,
    budget_can_halve,
    budget_updates,
    image_seconds_at,
)
from ..core.runs import RunPaths
from ..folds import make_folds
from ..tasks import create_task
from ..train import read_fold_inputs, train
from .conftest import TASK, WRITERS, task_overrides


def test_an_image_s_time_between_two_timed_batches_is_geometric() -> None:
    times = {8: 0.04, 32: 0.01}
    assert image_seconds_at(times, 16) == pytest.approx(0.02)
    assert image_seconds_at(times, 4) == 0.04 and image_seconds_at(times, 64) == 0.01
    assert image_seconds_at({8: 0.3}, 32) == 0.3


@pytest.mark.parametrize(
    ("batch", "times", "expected"),
    [
        (32, {8: 0.001, 32: 0.001}, 32),  # 60 s buy 1875 updates at 32: enough
        (32, {8: 0.005, 32: 0.005}, 16),  # 375 at 32, 750 at 16
        (32, {8: 0.11, 32: 0.18}, 8),  # 10 at 32, and a smaller batch is faster an image: 68 at 8
        (32, {8: 0.021, 32: 0.0115}, 32),  # 163 at 32, but each halving slows an image 1.35x
        (64, {8: 0.002, 64: 0.002}, 32),
        (4, {4: 0.5}, 4),  # already under the floor
        (12, {8: 0.5, 12: 0.5}, 12),  # half of 12 is under the floor
    ],
)
def test_a_budget_short_of_updates_gets_a_smaller_batch_where_it_costs_few_images(
    batch: int, times: dict[int, float], expected: int
) -> None:
    assert budget_batch_size(batch, times, 60, min_steps=500, accumulate=1) == expected


def test_the_budget_fit_halves_only_while_updates_fall_short_and_images_stay_cheap() -> None:
    for small, large in [(a, b) for a in np.geomspace(1e-4, 1.0, 12) for b in np.geomspace(1e-4, 1.0, 12)]:
        times = {8: float(small), 32: float(large)}
        batch = budget_batch_size(32, times, 60, 500, 1)
        assert batch in (8, 16, 32)
        if batch < 32:
            assert budget_updates(batch * 2, image_seconds_at(times, batch * 2), 60, 1) < 500
            assert image_seconds_at(times, batch) <= HALVING_COST * image_seconds_at(times, batch * 2)
        if batch > 8:  # it stopped: enough updates, or the next half would slow an image too much
            enough = budget_updates(batch, image_seconds_at(times, batch), 60, 1) >= 500
            assert enough or image_seconds_at(times, batch // 2) > HALVING_COST * image_seconds_at(times, batch)
    assert budget_updates(32, 0.01, 64, 2) == 100  # accumulation: two steps an update


def test_the_budget_batch_choice_says_why_and_scales_the_lr() -> None:
    times = {8: 0.18, 32: 0.18}
    assert budget_batch_choice(load_config([]), times) is None  # no budget
    budgeted = ["train.time_budget_minutes=1", "train.lr=0.002", "train.batch_size=32"]
    assert budget_batch_choice(load_config([*budgeted, "train.fit_batch_to_budget=false"]), times) is None
    assert budget_batch_choice(load_config(budgeted), {8: 1e-4, 32: 1e-4}) is None
    choice = budget_batch_choice(load_config(budgeted), times)
    assert choice is not None and choice.settings == {"train": {"batch_size": 8, "lr": 0.001}}
    assert "train.batch_size=8 (from 32): a training step took 0.18 s at 8, 0.18 s at 32 an image" in choice.reason
    assert "about 41 updates at 8, 10 at 32" in choice.reason


def _competition(tmp_path: Path, extra: list[str]) -> tuple[list[str], RunPaths]:
    WRITERS[TASK](tmp_path / "data")
    overrides = [*task_overrides(tmp_path / "data", tmp_path / "outputs"), *extra]
    config = load_config(overrides)
    make_folds(config)
    return overrides, RunPaths.from_config(config)


def test_a_training_step_is_timed_per_image_at_8_and_at_the_batch_size(tmp_path: Path) -> None:
    overrides, paths = _competition(tmp_path, ["train.batch_size=16"])
    config = load_config(overrides)
    inputs = read_fold_inputs(config, paths)
    train_index = np.flatnonzero(inputs.folds != 0)
    times = probe.time_training_images(
        config,
        lambda settings: create_task(settings, inputs.table.classes),
        inputs.table,
        train_index,
        resolve_device("cpu"),
    )
    assert sorted(times) == sorted({min(8, len(train_index)), min(16, len(train_index))})  # the fold's at most
    assert all(0 < seconds < 10 and math.isfinite(seconds) for seconds in times.values())


def test_a_budgeted_run_records_the_fitted_batch_and_a_resume_keeps_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    budget = ["train.time_budget_minutes=0.05", "train.batch_size=16", "train.lr=0.002", "train.max_steps_per_epoch=2"]
    overrides, paths = _competition(tmp_path, [*budget, "train.min_updates_per_epoch=null", "folds.train_folds=[0]"])
    slow = {8: 1.0, 16: 1.0}  # a slow machine: 3 s buy no update
    monkeypatch.setattr(probe, "time_training_images", lambda *args: slow)
    train(load_config(overrides))
    output = capsys.readouterr().out
    assert "fitted to the data: train.batch_size=8 (from 16): a training step took 1 s at 8, 1 s at 16 an" in output
    recorded = load_config(base=paths.config).train
    assert recorded.batch_size == 8 and recorded.lr == pytest.approx(0.002 * math.sqrt(0.5), rel=1e-3)
    assert pd.read_csv(paths.history(0))["updates"].iloc[-1] >= 1
    fitted = {"batch_size": 8, "lr": recorded.lr}
    assert json.loads(paths.run_info.read_text())["train"]["budget_batch"] == fitted
    monkeypatch.setattr(probe, "time_training_images", lambda *args: {8: 1e-6, 16: 1e-6})  # would keep 16
    (paths.root / "fold_0" / "metrics.json").unlink()  # as if stopped before the fold ended
    train(load_config(overrides), resume=True)
    assert "train.batch_size=8, train.lr=0.00141: as the run fitted them (--resume)" in capsys.readouterr().out
    assert load_config(base=paths.config).train.batch_size == 8
    assert json.loads(paths.run_info.read_text())["train"]["budget_batch"] == fitted
    unfitted = probe.fit_batch_to_budget(  # a resumed run that was not fitted is not timed either
        load_config(overrides), lambda c: None, None, np.arange(4), Runtime(resolve_device("cpu")), resume=True
    )
    assert unfitted is None


def test_a_batch_with_nothing_to_halve_is_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    def timing(*args: object) -> dict[int, float]:
        raise AssertionError("timed a batch the fit cannot lower")

    monkeypatch.setattr(probe, "time_training_images", timing)
    assert [size for size in (4, 8, 12, 16, 32) if budget_can_halve(size)] == [16, 32]
    for size in (4, 8, 12):
        config = load_config(["train.time_budget_minutes=1", f"train.batch_size={size}"])
        runtime = Runtime(resolve_device("cpu"))
        assert probe.fit_batch_to_budget(config, lambda c: None, None, np.arange(4), runtime) is None


def test_a_step_that_runs_out_of_memory_leaves_the_batch_to_training(monkeypatch: pytest.MonkeyPatch) -> None:
    def out_of_memory(*args: object) -> dict[int, float]:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(probe, "time_training_images", out_of_memory)
    config = load_config(["train.time_budget_minutes=1"])
    assert probe.fit_batch_to_budget(config, lambda c: None, None, np.arange(4), Runtime(resolve_device("cpu"))) is None

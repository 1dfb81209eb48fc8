"""Training against the clock: the schedule follows elapsed time, training stops in time, resume continues."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ..config import load_config
from ..core.budget import WARMUP_STEPS, Planner, RunBudget, TimeBudget, create_run_budget, folds_affordable
from ..core.engine import create_optimizer, create_scheduler
from ..core.fold import FoldRun
from ..core.recipe import SMALLEST_FITTED_BATCH, batch_choice, fitted_batch_size, updates_per_epoch
from ..core.runs import RunPaths
from ..folds import make_folds
from ..train import read_fold_inputs, train
from .conftest import TASK, WRITERS, task_overrides


def test_the_clock_schedule_warms_up_then_reaches_min_lr_when_the_budget_ends() -> None:
    config = load_config(
        [
            "train.time_budget_minutes=1",
            "train.epochs=10",
            "train.warmup_epochs=1",
            "train.lr=0.01",
            "train.warmup_lr=0.0001",
            "train.min_lr=0.00001",
        ]
    )
    optimizer = create_optimizer(torch.nn.Linear(2, 2), config.train)
    scheduler = create_scheduler(optimizer, config.train, updates_per_epoch=7, maximize=True)
    now = [0.0]
    budget = TimeBudget(60, config.train.epochs, clock=lambda: now[0])
    rates = {}
    for second in (0, 3, 6, 30, 59, 60, 90):
        now[0] = second
        scheduler.step_update(num_updates=budget.schedule_step())
        rates[second] = optimizer.param_groups[0]["lr"]
    assert rates[0] == pytest.approx(0.0001)  # warm-up starts at warmup_lr
    assert rates[0] < rates[3] < rates[6]
    assert rates[6] == pytest.approx(0.01, rel=0.05)  # warm-up is warmup_epochs/epochs of the budget
    assert rates[6] > rates[30] > rates[59] > rates[60]
    assert rates[60] == pytest.approx(0.00001) and rates[90] == pytest.approx(0.00001)  # min_lr at the end


def test_the_budget_keeps_time_for_the_last_evaluation_and_shares_a_run_budget() -> None:
    now = [0.0]
    budget = TimeBudget(10, 5, spent_before=4, clock=lambda: now[0])  # 4 s spent before an interruption
    assert budget.elapsed() == 4 and not budget.spent()
    budget.keep_for(3)
    now[0] = 3.0
    assert budget.spent() and budget.fraction() == 1.0  # 7 s spent + 3 s kept for the evaluation
    assert create_run_budget(None, "run", 5, 3) is None and create_run_budget(2, "fold", 5, 3) is None
    run_budget = RunBudget(120, 3, min_steps=5, clock=lambda: now[0])
    assert run_budget.fold_seconds(0) == pytest.approx(40)  # the run's clock starts with the budget
    now[0] = 63.0
    assert run_budget.fold_seconds(1) == pytest.approx(30)  # 60 s left for the 2 folds left


def test_a_run_budget_keeps_the_folds_it_can_give_the_minimum_updates() -> None:
    assert folds_affordable(100, update_seconds=0.04, min_steps=500, folds_left=5) == 5
    assert folds_affordable(100, update_seconds=0.1, min_steps=500, folds_left=5) == 2
    assert folds_affordable(100, update_seconds=0.6, min_steps=500, folds_left=5) == 1  # one fold at least
    now = [0.0]
    run_budget = RunBudget(120, 5, min_steps=500, clock=lambda: now[0])
    assert run_budget.fold_seconds(0) == pytest.approx(24)
    now[0] = 12.0  # an update takes 0.12 s: 120 s give 500 updates to 2 folds, not 5
    assert run_budget.plan(0, step_seconds=0.12, fold_elapsed=12) == pytest.approx(60)
    assert run_budget.folds == 2
    assert run_budget.plan(0, step_seconds=0.01, fold_elapsed=12) is None  # enough time: the plan stands
    # Counted in optimizer updates: with 4 batches an update, a batch of 0.03 s is an update of 0.12 s.
    later = [0.0]
    accumulating = RunBudget(120, 5, min_steps=500, accumulate=4, clock=lambda: later[0])
    later[0] = 12.0
    assert accumulating.plan(0, step_seconds=0.03, fold_elapsed=12) == pytest.approx(60)


def test_a_budgeted_run_stops_in_time_ends_at_min_lr_and_resume_continues_the_budget(tmp_path: Path) -> None:
    WRITERS[TASK](tmp_path / "data")
    budget_minutes = 0.06
    overrides = [
        *task_overrides(tmp_path / "data", tmp_path / "outputs"),
        "folds.train_folds=[0]",
        "train.epochs=2",  # under a budget it only shapes the schedule: the clock ends training
        "train.max_steps_per_epoch=1",
        "train.eval_every=1000",
        f"train.time_budget_minutes={budget_minutes}",
        "train.warmup_epochs=0",
    ]
    config = load_config(overrides)
    make_folds(config)
    train(config)
    paths = RunPaths.from_config(config)
    history = pd.read_csv(paths.history(0))
    assert len(history) > 2  # the clock ended training, not train.epochs
    assert history[config.metric].notna().sum() == 1  # eval_every in epochs still holds; the last is evaluated
    assert history["seconds"].sum() <= budget_minutes * 60 + history["seconds"].max()  # plus one step and evaluation
    assert pd.notna(history[config.metric].iloc[-1])  # the last epoch was evaluated
    train_config = config.train
    assert history["lr"].iloc[-1] <= train_config.min_lr + 0.05 * (train_config.lr - train_config.min_lr)
    saved = torch.load(paths.checkpoint(0, "last"), map_location="cpu", weights_only=True)
    spent = saved["state"]["elapsed_seconds"]
    assert spent >= 0.5 * budget_minutes * 60

    inputs = read_fold_inputs(config, paths)
    from ..core.distributed import Runtime

    run = FoldRun.build(
        config,
        inputs.task,
        inputs.table,
        inputs.folds,
        0,
        runtime=Runtime(torch.device("cpu")),
        paths=paths,
        resume=True,
        training_targets=None,
        budget_seconds=budget_minutes * 60,
    )
    assert run.budget is not None and run.budget.elapsed() >= spent  # continues, does not restart


def test_the_planner_times_steady_steps_only_and_is_asked_once_a_tenth_of_the_epoch_is_timed() -> None:
    """The first steps compile the model and wait for the first batches (10 s each here against 0.1 s): the
    planner gets the time of a steady step, not one inflated by the warm-up."""
    asked = []
    budget = TimeBudget(30, 10, planner=Planner(lambda step, spent: asked.append(step) or 90.0, until_planned=0.0))
    times = np.cumsum([10.0] * WARMUP_STEPS + [0.1] * 97)
    for step in range(1, WARMUP_STEPS + 10):
        budget.observe(step, total_steps=100, epoch_seconds=float(times[step - 1]))
    assert asked == [] and budget.seconds == 30
    budget.observe(WARMUP_STEPS + 10, total_steps=100, epoch_seconds=float(times[WARMUP_STEPS + 9]))
    assert asked == [pytest.approx(0.1)] and budget.seconds == 90  # steady steps of 0.1 s
    budget.observe(50, total_steps=100, epoch_seconds=float(times[49]))
    assert len(asked) == 1


def test_a_fold_whose_budget_ran_out_within_the_warm_up_is_planned_when_it_ends() -> None:
    """A slow machine can spend a short fold budget before the steady steps: the folds after it must still be
    planned (else each gets an even share of a budget that cannot train them)."""
    asked = []
    planner = Planner(lambda step, spent: asked.append((step, spent)) or None, until_planned=0.0)
    budget = TimeBudget(3, 10, planner=planner)
    budget.observe(1, total_steps=2, epoch_seconds=2.5)  # the first step, a warm-up one: no plan yet
    assert asked == []
    budget.plan_at_end(5.0)
    budget.plan_at_end(7.0)  # once only
    assert len(asked) == 1 and asked[0][0] == 5.0


def test_a_first_step_slower_than_the_fold_share_does_not_end_the_fold_before_its_plan() -> None:
    """Five folds of a 60 s run budget start with 12 s each; a first step of 17 s must not end the first fold (the
    plan after the second step gives it the whole run), and once planned its own budget rules again."""
    now = [0.0]
    run_budget = RunBudget(60, 5, min_steps=500, clock=lambda: now[0])
    planner = Planner(lambda step, spent: run_budget.plan(0, step, spent), until_planned=run_budget.left())
    budget = TimeBudget(run_budget.fold_seconds(0), 10, planner=planner, clock=lambda: now[0])
    now[0] = 17.0
    budget.observe(1, total_steps=2, epoch_seconds=17.0)  # the warm-up step: timing starts after it
    assert not budget.spent()  # past its 12 s share, not past the run's 60 s
    now[0] = 34.0
    budget.observe(2, total_steps=2, epoch_seconds=34.0)  # planned: 60 s give one fold 3 updates, not 500
    assert run_budget.folds == 1 and budget.seconds == pytest.approx(60) and not budget.spent()
    now[0] = 60.0
    assert budget.spent()
    unplanned = TimeBudget(12, 10, planner=Planner(lambda step, spent: None, until_planned=60), clock=lambda: now[0])
    now[0] += 13
    assert not unplanned.spent()
    unplanned.plan_at_end(13.0)  # asked once, its share stands: the fold's own 12 s rule again
    assert unplanned.spent()


@pytest.mark.parametrize("accumulate", [1, 4])
def test_the_first_update_of_an_epoch_is_never_timed(accumulate: int) -> None:
    asked = []
    budget = TimeBudget(30, 10, planner=Planner(lambda epoch, spent: asked.append(epoch) or None, until_planned=0.0))
    steps = range(accumulate, 41, accumulate)  # observed after each optimizer update
    seconds = {step: 20.0 + 0.5 * (step - accumulate) for step in steps}  # the first update took 20 s
    for step in steps:
        budget.observe(step, total_steps=40, epoch_seconds=seconds[step])
    assert asked == [pytest.approx(0.5)]  # steady steps of 0.5 s


def test_a_one_step_epoch_is_timed_whole() -> None:
    asked = []
    budget = TimeBudget(30, 10, planner=Planner(lambda epoch, spent: asked.append(epoch) or None, until_planned=0.0))
    budget.observe(1, total_steps=1, epoch_seconds=2.0)
    assert asked == [2.0]  # the one step, warm-up and all


def test_a_short_run_budget_trains_the_folds_it_can_afford(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    WRITERS[TASK](tmp_path / "data")
    overrides = [
        *task_overrides(tmp_path / "data", tmp_path / "outputs"),
        "folds.n_splits=3",
        "folds.train_folds=null",
        "train.time_budget_minutes=0.05",
        "train.time_budget_scope=run",
        "train.time_budget_min_steps=100000",
    ]
    config = load_config(overrides)
    make_folds(config)
    result = train(config)
    metrics = result.metrics
    # What `run` predicts with is config.yaml as train wrote it (with what it fitted to the data).
    assert result.config == load_config(base=RunPaths.from_config(config).config)
    assert list(metrics["folds"]) == ["0"]  # 3 s cannot give 100,000 updates to more than one fold
    output = capsys.readouterr().out
    assert "time budget: folds [1, 2] left out" in output
    planned = r"time budget: an optimizer update takes about [\d.e-]+ s, so 1 fold\(s\) get about \d+ updates"
    assert re.search(planned, output), output
    paths = RunPaths.from_config(config)
    folds = pd.read_csv(paths.folds)["fold"]
    assert f"the CV rests on {int((folds == 0).sum())} validation image(s) (fold(s) [0] of 3)" in output
    assert "folds.n_splits=10 folds.train_folds=[0]" in output
    assert paths.fold_metrics(0).is_file() and not paths.fold_metrics(1).exists()
    # The fold spent its share of the run's budget, and says so: not "a time budget of 0.05 min".
    assert re.search(r"fold 0: its \d+\.\d s of the run's 0\.05 min spent after \d+ epochs", output), output


def test_plateau_cannot_follow_the_clock() -> None:
    from ..core.errors import ConfigError

    with pytest.raises(ConfigError, match="train.scheduler=plateau follows validation scores, not the clock"):
        load_config(["train.time_budget_minutes=1", "train.scheduler=plateau"])


@pytest.mark.parametrize(
    ("images", "batch", "processes", "expected"),
    [
        (19, 32, 1, 8),
        (65, 32, 1, 8),
        (233, 32, 1, 8),
        (600, 32, 1, 32),
        (9, 32, 1, 4),
        (1000, 32, 1, 32),
        (233, 32, 2, 8),
        (19, 4, 1, 4),
        (60, 24, 1, 12),
    ],
)
def test_a_small_training_set_gets_a_batch_that_leaves_it_enough_updates(
    images: int, batch: int, processes: int, expected: int
) -> None:
    assert fitted_batch_size(images, batch, processes, accumulate=1, min_updates=16) == expected


def test_the_planner_never_plans_one_update_an_epoch_when_the_data_allows_more() -> None:
    for images in range(9, 400):
        batch = fitted_batch_size(images, 32, 1, accumulate=1, min_updates=16)
        assert updates_per_epoch(images, batch, 1, 1) >= min(16, images // SMALLEST_FITTED_BATCH)
        assert updates_per_epoch(images, batch, 1, 1) > 1


def test_the_fitted_batch_and_lr_are_printed_and_recorded_in_config_yaml(tmp_path: Path, capsys) -> None:
    WRITERS[TASK](tmp_path / "data")
    overrides = [
        *task_overrides(tmp_path / "data", tmp_path / "outputs"),
        "train.batch_size=32",
        "train.lr=0.002",
        "train.max_steps_per_epoch=null",
        "train.epochs=1",
    ]
    config = load_config(overrides)
    make_folds(config)
    train(config)
    paths = RunPaths.from_config(config)
    training_images = int((pd.read_csv(paths.folds)["fold"] != 0).sum())
    batch = fitted_batch_size(training_images, 32, 1, 1, 16)
    assert batch < 32  # the test data is small
    output = capsys.readouterr().out
    assert f"fitted to the data: train.batch_size={batch} (from 32): {training_images} training images" in output
    recorded = load_config(base=paths.config).train
    assert recorded.batch_size == batch and recorded.lr == pytest.approx(0.002 * math.sqrt(batch / 32), rel=1e-3)
    cache = load_config(base=paths.config).data.cache  # data.cache=auto, settled from the memory free
    assert cache in ("ram", "none") and f"fitted to the data: data.cache={cache}: " in output
    history = pd.read_csv(paths.history(0))
    assert history["updates"].iloc[-1] == updates_per_epoch(training_images, batch, 1, 1)
    assert {"lr", "updates"} <= set(history.columns)


def test_the_batch_is_left_alone_when_the_rule_is_off_or_the_data_is_large() -> None:
    config = load_config(["train.min_updates_per_epoch=null"])
    assert batch_choice(config, 19, 1) is None
    assert batch_choice(load_config([]), 10_000, 1) is None
    choice = batch_choice(load_config(["train.lr_scaling=linear", "train.lr=0.004"]), 100, 1)
    assert choice is not None and choice.settings == {"train": {"batch_size": 8, "lr": 0.001}}

"""Training against the clock: the schedule follows elapsed time, training stops in time, resume continues."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from ..config import load_config
from ..core.budget import RunBudget, TimeBudget, create_run_budget, folds_affordable
from ..core.engine import create_optimizer, create_scheduler
from ..core.fold import FoldRun
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
    run_budget = RunBudget(120, 3, min_epochs=5, clock=lambda: now[0])
    assert run_budget.fold_seconds(0) == pytest.approx(40)  # the run's clock starts with the budget
    now[0] = 63.0
    assert run_budget.fold_seconds(1) == pytest.approx(30)  # 60 s left for the 2 folds left


def test_a_run_budget_keeps_the_folds_it_can_give_the_minimum_epochs() -> None:
    assert folds_affordable(100, epoch_seconds=4, min_epochs=5, folds_left=5) == 5
    assert folds_affordable(100, epoch_seconds=10, min_epochs=5, folds_left=5) == 2
    assert folds_affordable(100, epoch_seconds=60, min_epochs=5, folds_left=5) == 1  # one fold at least
    now = [0.0]
    run_budget = RunBudget(120, 5, min_epochs=5, clock=lambda: now[0])
    assert run_budget.fold_seconds(0) == pytest.approx(24)
    now[0] = 12.0  # fold 0's first epoch took 12 s: 120 s give 5 epochs to 2 folds, not 5
    assert run_budget.plan(0, epoch_seconds=12, fold_elapsed=12) == pytest.approx(60)
    assert run_budget.folds == 2
    assert run_budget.plan(0, epoch_seconds=1, fold_elapsed=12) is None  # enough time: the plan stands


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
        config, inputs.task, inputs.table, inputs.folds, 0, runtime=Runtime(torch.device("cpu")), paths=paths,
        resume=True, training_targets=None, budget_seconds=budget_minutes * 60,
    )  # fmt: skip
    assert run.budget is not None and run.budget.elapsed() >= spent  # continues, does not restart


def test_the_planner_is_asked_once_a_tenth_of_the_first_epoch_has_run() -> None:
    asked = []
    budget = TimeBudget(30, 10, planner=lambda epoch, spent: asked.append((epoch, spent)) or 90.0)
    budget.observe(9, total_steps=100, epoch_seconds=0.9)
    assert asked == [] and budget.seconds == 30
    budget.observe(10, total_steps=100, epoch_seconds=1.0)
    assert asked[0][0] == pytest.approx(10.0) and budget.seconds == 90  # 10 steps in 1 s: 10 s an epoch
    budget.observe(20, total_steps=100, epoch_seconds=2.0)
    assert len(asked) == 1


def test_a_short_run_budget_trains_the_folds_it_can_afford(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    WRITERS[TASK](tmp_path / "data")
    overrides = [
        *task_overrides(tmp_path / "data", tmp_path / "outputs"),
        "folds.n_splits=3",
        "folds.train_folds=null",
        "train.time_budget_minutes=0.05",
        "train.time_budget_scope=run",
        "train.time_budget_min_epochs=1000",
    ]
    config = load_config(overrides)
    make_folds(config)
    metrics = train(config)
    assert list(metrics["folds"]) == ["0"]  # 3 s cannot give 1000 epochs to more than one fold
    assert "time budget: folds [1, 2] left out" in capsys.readouterr().out
    paths = RunPaths.from_config(config)
    assert paths.fold_metrics(0).is_file() and not paths.fold_metrics(1).exists()


def test_plateau_cannot_follow_the_clock() -> None:
    from ..core.errors import ConfigError

    with pytest.raises(ConfigError, match="train.scheduler=plateau follows validation scores, not the clock"):
        load_config(["train.time_budget_minutes=1", "train.scheduler=plateau"])

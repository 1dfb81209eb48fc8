"""Training against the clock: `train.time_budget_minutes` (per fold, or for the whole run) drives the learning-rate
schedule by elapsed time and ends training so that the last evaluation and checkpoint fit inside the budget."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .checkpoints import FoldState

# The schedule is timm's, created with this many clock units per epoch; the budget maps elapsed time onto them.
CLOCK_UNITS_PER_EPOCH = 1000
PLAN_AFTER_EPOCH_SHARE = 0.1  # a run budget plans its folds once this share of the first epoch has been timed
# Steps of an epoch left untimed: the first compile the model, autotune cuDNN and wait for the loader's first
# batches, so timing them would plan on a step several times slower than a steady one.
WARMUP_STEPS = 3


@dataclass(frozen=True)
class Planner:
    """What a run budget's first fold asks, once a steady step is timed: plan(step seconds, seconds the fold has
    spent) -> the fold's new budget in seconds, or None when its share stands. Until then the fold may train for
    `until_planned` seconds (what the run has left), so a first step slower than the fold's even share cannot end the
    fold before the plan that would have given it the whole budget."""

    plan: Callable[[float, float], float | None]
    until_planned: float


@dataclass
class TimeBudget:
    """A fold's time budget. `spent_before` carries the time of an interrupted run, so --resume continues the
    budget; `reserve` is kept free for the final evaluation and checkpoint (the longest seen so far). A
    `planner` (a run budget's first fold) is asked once, early in the first epoch, how long this fold may train, with
    the time of a training step measured on steady steps."""

    seconds: float
    epochs: int  # train.epochs: the schedule's length in epochs, mapped onto the budget
    spent_before: float = 0.0
    reserve: float = 0.0
    clock: Callable[[], float] = time.perf_counter
    planner: Planner | None = None
    started: float = field(init=False)
    timed_from: tuple[int, float] | None = field(default=None, init=False)  # (steps, epoch seconds) after warm-up

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.spent_before + self.clock() - self.started

    def observe(self, steps: int, total_steps: int, epoch_seconds: float) -> None:
        """After `steps` of an epoch's `total_steps` took `epoch_seconds`: consult the planner once, with a step's
        time measured on steady steps only. Timing starts after the warm-up steps (a one-step epoch cannot leave
        any out) and the planner is asked once a share of the epoch has been timed; a step count, so that every DDP
        rank asks at the same step. An epoch that ends first starts the timing again in the next."""
        if self.planner is None:
            return
        warmup = min(WARMUP_STEPS, total_steps - 1)
        epoch_started = self.timed_from is None or steps <= self.timed_from[0]
        if steps <= warmup or (epoch_started and warmup > 0):
            self.timed_from = (steps, epoch_seconds)  # timing starts after this step
            return
        if epoch_started:
            self.timed_from = (0, 0.0)
        if steps - self.timed_from[0] < max(1, math.ceil(PLAN_AFTER_EPOCH_SHARE * total_steps)):
            return
        timed_steps, timed_seconds = steps - self.timed_from[0], epoch_seconds - self.timed_from[1]
        planner, self.planner = self.planner, None
        seconds = planner.plan(timed_seconds / timed_steps, self.elapsed())
        if seconds is not None:
            self.seconds = seconds

    def plan_at_end(self, step_seconds: float) -> None:
        """A fold whose budget ran out before its plan (within the warm-up steps) is planned when it ends, so that
        the folds after it get what the run has left, not an even share of it."""
        if self.planner is not None:
            planner, self.planner = self.planner, None
            planner.plan(step_seconds, self.elapsed())

    def spent(self) -> bool:
        """No time left for another training step before the final evaluation and checkpoint (before the fold is
        planned: the run's, not the fold's share of it)."""
        limit = self.seconds if self.planner is None else max(self.seconds, self.planner.until_planned)
        return self.elapsed() + self.reserve >= limit

    def fraction(self) -> float:
        """How far training is through its share of the budget (the reserve left out), 0 to 1."""
        return min(self.elapsed() / max(self.seconds - self.reserve, 1e-9), 1.0)

    def schedule_step(self) -> int:
        """The scheduler's position for the time spent: its end when the budget is."""
        return round(self.fraction() * self.epochs * CLOCK_UNITS_PER_EPOCH)

    def keep_for(self, seconds: float) -> None:
        """Reserve at least `seconds` (an evaluation plus checkpoint just took that long) for the last one."""
        self.reserve = max(self.reserve, seconds)


def fold_time_budget(
    seconds: float | None, epochs: int, state: FoldState, planner: Planner | None
) -> TimeBudget | None:
    """A fold's budget, continuing the time a resumed fold had spent; only a fresh fold plans the run."""
    if seconds is None:
        return None
    return TimeBudget(
        seconds, epochs, spent_before=state.elapsed_seconds, planner=planner if state.epoch == 0 else None
    )


def folds_affordable(seconds_left: float, update_seconds: float, min_steps: int, folds_left: int) -> int:
    """How many of the folds left a budget can train for `min_steps` optimizer updates each (at least one)."""
    if update_seconds <= 0:
        return folds_left
    return max(1, min(folds_left, int(seconds_left // (min_steps * update_seconds))))


@dataclass
class RunBudget:
    """train.time_budget_scope=run: one budget for the folds in order, what is left shared among the folds left.
    Five folds of a few updates each lose to one model trained five times as long, so early in the first epoch,
    from the measured time of a training step, `plan` keeps only the folds the budget can give `min_steps` optimizer
    updates each. Counted in updates, not epochs: an epoch of 20 images and one of 20,000 differ a thousandfold."""

    seconds: float
    folds: int  # folds that will be trained; `plan` may lower it
    min_steps: int
    accumulate: int = 1  # training steps (batches) per optimizer update
    clock: Callable[[], float] = time.perf_counter
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def left(self) -> float:
        return max(self.seconds - (self.clock() - self.started), 0.0)

    def fold_seconds(self, position: int) -> float:
        """The budget of the fold at `position` in the training order, when it starts."""
        return self.left() / max(self.folds - position, 1)

    def update_seconds(self, step_seconds: float) -> float:
        return step_seconds * self.accumulate

    def plan(self, position: int, step_seconds: float, fold_elapsed: float) -> float | None:
        """Once a training step is timed, early in the first epoch of the fold at `position`: lower `folds` when the
        budget cannot give each fold left `min_steps` updates; returns this fold's new budget in seconds then, else
        None."""
        seconds_left = self.left() + fold_elapsed
        update_seconds = self.update_seconds(step_seconds)
        affordable = folds_affordable(seconds_left, update_seconds, self.min_steps, self.folds - position)
        if affordable == self.folds - position:
            return None
        self.folds = position + affordable
        return seconds_left / affordable


def create_run_budget(
    minutes: float | None, scope: str, min_steps: int, folds: int, accumulate: int = 1
) -> RunBudget | None:
    return RunBudget(minutes * 60, folds, min_steps, accumulate) if minutes is not None and scope == "run" else None

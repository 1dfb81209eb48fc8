"""Training against the clock: `train.time_budget_minutes` (per fold, or for the whole run) drives the learning-rate
schedule by elapsed time and ends training so that the last evaluation and checkpoint fit inside the budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

# The schedule is timm's, created with this many clock units per epoch; the budget maps elapsed time onto them.
CLOCK_UNITS_PER_EPOCH = 1000


@dataclass
class TimeBudget:
    """A fold's time budget. `spent_before` carries the time of an interrupted run, so --resume continues the
    budget; `reserve` is kept free for the final evaluation and checkpoint (the longest seen so far)."""

    seconds: float
    epochs: int  # train.epochs: the schedule's length in epochs, mapped onto the budget
    spent_before: float = 0.0
    reserve: float = 0.0
    clock: Callable[[], float] = time.perf_counter
    started: float = field(init=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def elapsed(self) -> float:
        return self.spent_before + self.clock() - self.started

    def spent(self) -> bool:
        """No time left for another training step before the final evaluation and checkpoint."""
        return self.elapsed() + self.reserve >= self.seconds

    def fraction(self) -> float:
        """How far training is through its share of the budget (the reserve left out), 0 to 1."""
        return min(self.elapsed() / max(self.seconds - self.reserve, 1e-9), 1.0)

    def schedule_step(self) -> int:
        """The scheduler's position for the time spent: its end when the budget is."""
        return round(self.fraction() * self.epochs * CLOCK_UNITS_PER_EPOCH)

    def keep_for(self, seconds: float) -> None:
        """Reserve at least `seconds` (an evaluation plus checkpoint just took that long) for the last one."""
        self.reserve = max(self.reserve, seconds)


def fold_budget_seconds(minutes: float | None, scope: str, run_started: float, folds_left: int) -> float | None:
    """Seconds for the next fold: the per-fold budget, or what is left of the run's shared among the folds left."""
    if minutes is None:
        return None
    if scope == "fold":
        return minutes * 60
    remaining = minutes * 60 - (time.perf_counter() - run_started)
    return max(remaining, 0.0) / max(folds_left, 1)

"""What follows each epoch of a fold, as callbacks run in order (as Lightning's): the stopping rule (patience,
the clock), checkpoints, the time budget's reserve for validation and saving, and the report."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from .console import epoch_line, seconds_text
from .perf import EpochTimes, Eta, original_module
from .runs import save_torch, write_csv

if TYPE_CHECKING:
    import torch

    from ..config import Config
    from .budget import TimeBudget
    from .checkpoints import TrainingParts
    from .data import LabelledTable
    from .distributed import Runtime
    from .runs import RunPaths
    from .task import Task


class FoldLoop(Protocol):
    """What a callback reads of the fold being trained (core/fold.py's FoldRun)."""

    config: Config
    task: Task
    table: LabelledTable
    fold: int
    valid_index: np.ndarray
    runtime: Runtime
    paths: RunPaths
    parts: TrainingParts
    meta: dict[str, Any]
    tracker: Any
    budget: TimeBudget | None

    @property
    def epoch_limit(self) -> int: ...
    @property
    def eval_model(self) -> torch.nn.Module: ...


@dataclass
class Evaluation:
    """A validation's outcome; `evaluated` False (and NaN scores) on the epochs that skip it (train.eval_every)."""

    loss: float = math.nan
    score: float = math.nan
    improved: bool = False
    outputs: tuple[np.ndarray, np.ndarray] | None = None  # (per-image outputs, dataset indices)
    evaluated: bool = False


@dataclass
class EpochEnd:
    """What the callbacks see of an epoch: its history row (one dict, also in the training state's history), the
    validation, where its time went, and whether the clock ran out; a callback may decide to stop."""

    epoch: int  # from 0
    row: dict[str, Any]
    evaluation: Evaluation
    times: EpochTimes
    out_of_time: bool
    eta: Eta | None = None
    stopping: bool = False
    last: bool = False  # the fold's last epoch: last.pt is written whatever checkpoint_every says


class Callback(Protocol):
    def on_epoch_end(self, run: FoldLoop, end: EpochEnd) -> None: ...


class EarlyStopping:
    """Stop after train.early_stopping_patience validations without improvement, or when the time budget is spent."""

    def on_epoch_end(self, run: FoldLoop, end: EpochEnd) -> None:
        patience = run.config.train.early_stopping_patience
        end.stopping = (patience is not None and run.parts.state.stale_epochs >= patience) or end.out_of_time
        end.last = end.stopping or end.epoch + 1 == run.epoch_limit


@dataclass
class Checkpointing:
    """best.pt and the OOF on improvement; last.pt (with the optimizer) every checkpoint_every epochs (at most
    every checkpoint_gap_minutes) and at the end; a snapshot at the end of each cosine cycle. Rank 0 writes."""

    last_written: float = field(default_factory=time.perf_counter)

    def on_epoch_end(self, run: FoldLoop, end: EpochEnd) -> None:
        if not run.runtime.is_main:
            return
        started = time.perf_counter()
        train, paths, fold, epoch, score = run.config.train, run.paths, run.fold, end.epoch, end.evaluation.score
        weights = None
        if end.evaluation.improved and end.evaluation.outputs is not None:
            weights = original_module(run.eval_model).state_dict()
            best = {"model": weights, "meta": run.meta, "epoch": epoch + 1, "score": score}
            save_torch(paths.checkpoint(fold, "best"), best)
            probabilities, indices = end.evaluation.outputs
            ids = run.table.ids[run.valid_index][indices]
            run.task.write_predictions(paths.fold_oof(fold), ids, probabilities, fold)
        gap, due = train.checkpoint_gap_minutes, (epoch + 1) % train.checkpoint_every == 0
        if end.last or (due and (gap is None or time.perf_counter() - self.last_written >= gap * 60)):
            run.parts.save(paths.checkpoint(fold, "last"), run.meta)
            self.last_written = time.perf_counter()
        cycle_epochs = math.ceil(train.epochs / train.restarts)
        if train.snapshots and train.scheduler == "cosine_restarts" and (epoch + 1) % cycle_epochs == 0:
            weights = weights or original_module(run.eval_model).state_dict()
            snapshot = {"model": weights, "meta": run.meta, "epoch": epoch + 1, "score": score}
            save_torch(paths.checkpoint(fold, f"snapshot_{(epoch + 1) // cycle_epochs}"), snapshot)
        end.times.checkpoint = time.perf_counter() - started


class BudgetReserve:
    """Under a time budget, keep the time a validation and its checkpoint took for the last epoch's own."""

    def on_epoch_end(self, run: FoldLoop, end: EpochEnd) -> None:
        if run.budget is not None and end.evaluation.evaluated:
            run.budget.keep_for(end.times.valid + end.times.checkpoint)


class Reporting:
    """The epoch's times in its row (last.pt keeps the row as it was before the checkpoint write), the ETA, and on
    rank 0 history.csv, the tracker and the epoch line; the reason when training stops."""

    def on_epoch_end(self, run: FoldLoop, end: EpochEnd) -> None:
        end.row.update(end.times.columns())
        if end.eta is not None:
            end.eta.add(end.row["seconds"])
        if not run.runtime.is_main:
            return
        row, epoch = end.row, end.row["epoch"]
        write_csv(run.paths.history(run.fold), pd.DataFrame(run.parts.state.history))
        run.tracker.log({key: value for key, value in row.items() if not math.isnan(value)}, step=epoch)
        if run.budget is not None:  # the clock, not the epoch count, decides when training ends
            left = max(run.budget.seconds - run.budget.elapsed(), 0.0)
            tail = f", {seconds_text(left)} of the fold's time budget left"
        else:
            tail = f", ETA {end.eta.text()}" if end.eta is not None else ""
        evaluation = end.evaluation
        print(
            epoch_line(
                run.fold,
                row,
                run.config.metric,
                evaluated=evaluation.evaluated,
                improved=evaluation.improved,
                tail=tail,
            )
        )
        train = run.config.train
        if end.stopping and run.budget is not None and run.budget.spent():
            whole = f"the run's {train.time_budget_minutes:g} min" if train.time_budget_scope == "run" else "its budget"
            print(f"fold {run.fold}: its {seconds_text(run.budget.seconds)} of {whole} spent after {epoch} epochs")
        elif end.stopping:
            print(f"fold {run.fold}: early stop after {train.early_stopping_patience} epochs without improvement")


def default_callbacks() -> list[Callback]:
    """The order matters: EarlyStopping decides whether this epoch is the fold's last, which Checkpointing reads
    (last.pt is always written then); BudgetReserve and Reporting use the checkpoint's time."""
    return [EarlyStopping(), Checkpointing(), BudgetReserve(), Reporting()]

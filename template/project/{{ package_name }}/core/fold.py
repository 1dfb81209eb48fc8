"""One fold's training, in three steps: `FoldRun.build` (model, loaders, optimizer, schedule, resume),
`FoldRun.epoch` (train, validate, schedule, then the callbacks: stop, save, budget, report) and `FoldRun.finish`
(SWA, metrics.json). Task-agnostic."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from timm.utils import ModelEmaV3
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import SWALR, AveragedModel
from torch.utils.data import DataLoader

from ..config import Config
from .augment import InputNormaliser
from .budget import Planner, TimeBudget, fold_time_budget
from .callbacks import Callback, EpochEnd, Evaluation, default_callbacks
from .checkpoints import EpochResult, FoldResult, TrainingParts, checkpoint_meta
from .data import LabelledTable
from .distributed import Runtime, all_gather, barrier
from .engine import (
    TrainStep,
    autocast_dtype,
    create_grad_scaler,
    create_optimizer,
    create_scheduler,
    evaluate,
    seed_everything,
    train_one_epoch,
)
from .loaders import fold_loaders
from .perf import (
    EpochBatches,
    EpochTimes,
    Eta,
    GpuUtilisation,
    compile_model,
    configure_backends,
    enable_grad_checkpointing,
    original_module,
    peak_memory_mb,
    reset_peak_memory,
)
from .runs import RunPaths, save_torch, write_json
from .tracking import create_tracker

if TYPE_CHECKING:
    from .task import Task


@dataclass
class FoldRun:
    config: Config
    task: Task
    table: LabelledTable
    fold: int
    valid_index: np.ndarray
    runtime: Runtime
    paths: RunPaths
    model: torch.nn.Module
    parts: TrainingParts
    train_loader: DataLoader
    valid_loader: DataLoader
    normalise: InputNormaliser
    meta: dict[str, Any]
    amp_dtype: torch.dtype | None
    mixup: Any
    swa_scheduler: SWALR | None
    tracker: Any
    batches: EpochBatches
    utilisation: GpuUtilisation
    budget: TimeBudget | None = None
    last_evaluation: float = field(default_factory=time.perf_counter)
    first_update: dict[str, float] = field(default_factory=dict)
    callbacks: list[Callback] = field(default_factory=default_callbacks)

    @classmethod
    def build(
        cls,
        config: Config,
        task: Task,
        table: LabelledTable,
        folds: np.ndarray,
        fold: int,
        *,
        runtime: Runtime,
        paths: RunPaths,
        resume: bool,
        training_targets: np.ndarray | None,
        budget_seconds: float | None = None,
        budget_planner: Planner | None = None,
    ) -> FoldRun:
        """Model, loaders, optimizer, schedule, EMA and SWA of one fold; last.pt's state when resuming."""
        train = config.train
        seed_everything(config.seed + fold, train.deterministic)
        train_index, valid_index = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        model = task.create_model()
        mean, std = task.normalisation(model)
        device = runtime.device
        train_loader, valid_loader = fold_loaders(
            config,
            task,
            table,
            train_index,
            valid_index,
            runtime=runtime,
            training_targets=training_targets,
            seed=config.seed + fold,
        )
        configure_backends(
            device,
            tf32=train.tf32,
            deterministic=train.deterministic,
            fixed_shapes=not task.variable_input_size,
        )
        if config.model.grad_checkpointing and not enable_grad_checkpointing(model):
            print(f"warning: model.grad_checkpointing: {type(model).__name__} has no timm network to checkpoint")
        model.to(device)
        if train.channels_last and device.type == "cuda":
            model.to(memory_format=torch.channels_last)
        amp_dtype = autocast_dtype(train.amp, device)
        optimizer = create_optimizer(model, train)
        steps = (
            len(train_loader)
            if train.max_steps_per_epoch is None
            else min(len(train_loader), train.max_steps_per_epoch)
        )
        updates_per_epoch = max(math.ceil(steps / train.accumulate_steps), 1)
        parts = TrainingParts(
            model,
            optimizer,
            create_scheduler(optimizer, train, updates_per_epoch, task.metric.higher_is_better),
            create_grad_scaler(amp_dtype, device),
            ModelEmaV3(model, decay=train.ema_decay, use_warmup=train.ema_warmup) if train.ema else None,
            AveragedModel(model) if train.swa else None,
        )
        if train.class_weights == "balanced":
            task.balance_classes(table.targets[train_index], device)
        last_path = paths.checkpoint(fold, "last")
        if resume and last_path.is_file():
            parts.resume(last_path, device, config.model.backbone, paths.checkpoint(fold, "best"))
            if runtime.is_main:
                print(f"fold {fold}: resuming after epoch {parts.state.epoch}")
        if runtime.distributed:
            model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        compile_mode = train.compile
        if compile_mode != "off" and config.model.grad_checkpointing:
            # Dynamo replays batch-norm buffer updates inside timm's checkpointed blocks and autograd then fails.
            print("warning: train.compile is left off with model.grad_checkpointing (they do not combine here)")
            compile_mode = "off"
        model = compile_model(model, compile_mode, train.compile_backend)
        batches = EpochBatches(train_loader)
        # Workers decode the first batches while the tracker starts.
        if parts.state.epoch < train.epochs or budget_seconds is not None:
            batches.start(parts.state.epoch)
        return cls(
            config=config,
            task=task,
            table=table,
            fold=fold,
            valid_index=valid_index,
            runtime=runtime,
            paths=paths,
            model=model,
            parts=parts,
            train_loader=train_loader,
            valid_loader=valid_loader,
            normalise=InputNormaliser(mean, std, device),
            meta=checkpoint_meta(config, task, mean, std),
            amp_dtype=amp_dtype,
            mixup=task.create_mixup(),
            swa_scheduler=SWALR(optimizer, swa_lr=train.swa_lr) if train.swa else None,
            tracker=create_tracker(config, paths.root, f"fold{fold}", "train") if runtime.is_main else None,
            batches=batches,
            utilisation=GpuUtilisation(device),
            budget=fold_time_budget(budget_seconds, train.epochs, parts.state, budget_planner),
        )

    @property
    def epoch_limit(self) -> int:
        """train.epochs; under a time budget the clock ends training (train.epochs only shapes the schedule)."""
        return self.config.train.epochs if self.budget is None else sys.maxsize

    @property
    def eval_model(self) -> torch.nn.Module:
        return self.parts.ema.module if self.parts.ema is not None else self.model

    def epoch(self, epoch: int, eta: Eta | None = None) -> EpochResult:
        """Train one epoch, validate when due and step the schedule; the callbacks then decide whether to stop,
        save checkpoints, keep time for validation in the budget and report."""
        state, times = self.parts.state, EpochTimes()
        reset_peak_memory(self.runtime.device)
        self.utilisation.start()
        in_swa = self.parts.swa is not None and epoch >= self.config.train.swa_start_epoch
        train_loss = self._train(epoch, in_swa, times)
        out_of_time = self.budget is not None and self.budget.spent()
        if self.runtime.distributed:  # every rank stops with rank 0's clock
            out_of_time = bool(all_gather(self.runtime, out_of_time)[0])
        if epoch + 1 < self.epoch_limit and not out_of_time:
            self.batches.start(epoch + 1)  # the next epoch's first batches are decoded during validation and saving
        evaluation = self._evaluate(epoch, times) if self._evaluation_due(epoch, out_of_time) else Evaluation()
        self._step_schedule(epoch, in_swa, evaluation)
        state.epoch = epoch + 1
        if self.budget is not None:
            state.elapsed_seconds = self.budget.elapsed()
        row = {
            "epoch": epoch + 1,
            "updates": state.num_updates,  # optimizer updates so far
            "lr": self.parts.optimizer.param_groups[0]["lr"],
            "train_loss": train_loss,
            "valid_loss": evaluation.loss,
            self.config.metric: evaluation.score,
            "peak_mem_mb": peak_memory_mb(self.runtime.device),
            "gpu_util": self.utilisation.stop(),
            **times.columns(),
        }
        state.history.append(row)
        end = EpochEnd(epoch, row, evaluation, times, out_of_time, eta)
        for callback in self.callbacks:
            callback.on_epoch_end(self, end)
        return EpochResult(row, evaluation.score, evaluation.evaluated, evaluation.improved, end.stopping)

    def _train(self, epoch: int, in_swa: bool, times: EpochTimes) -> float:
        """One pass over the training loader (outside SWA on the schedule); returns the mean training loss."""
        train, parts = self.config.train, self.parts
        step = TrainStep(
            self.model,
            self.task,
            parts.optimizer,
            self.runtime,
            train,
            scheduler=None if in_swa else parts.scheduler,
            scaler=parts.scaler,
            ema=parts.ema,
            mixup=self.mixup,
            amp_dtype=self.amp_dtype,
            normalise=self.normalise,
        )
        trained = train_one_epoch(
            step,
            self.train_loader,
            num_updates=parts.state.num_updates,
            description=f"fold {self.fold} epoch {epoch + 1}" + (f"/{train.epochs}" if self.budget is None else ""),
            on_first_update=lambda: self.first_update.setdefault("unix", time.time()),
            batches=self.batches.take(epoch),
            budget=self.budget,
        )
        parts.state.num_updates, times.images, times.train = trained.updates, trained.images, trained.seconds
        return trained.loss

    def _evaluation_due(self, epoch: int, out_of_time: bool) -> bool:
        """Evaluation can cost as much as training (detection): every eval_every epochs (or eval_every_minutes)
        and always the last, also when the time budget ends training."""
        train = self.config.train
        minutes = train.eval_every_minutes
        return (
            (epoch + 1) % train.eval_every == 0
            or epoch + 1 == self.epoch_limit
            or out_of_time
            or (minutes is not None and time.perf_counter() - self.last_evaluation >= minutes * 60)
        )

    def _evaluate(self, epoch: int, times: EpochTimes) -> Evaluation:
        """Validate the evaluation model (EMA's when on) and track the best score and the epochs since it."""
        state, started = self.parts.state, time.perf_counter()
        loss, probabilities, indices = self._validate(self.eval_model, self.config.train.max_eval_batches)
        score = self.task.score(self.table.targets[self.valid_index][indices], probabilities)
        times.valid = time.perf_counter() - started
        self.last_evaluation = time.perf_counter()
        improved = self.task.metric.is_improvement(score, state.best_score)
        state.stale_epochs = 0 if improved else state.stale_epochs + 1
        if improved:
            state.best_score, state.best_epoch = score, epoch
        return Evaluation(loss, score, improved, (probabilities, indices), evaluated=True)

    def _step_schedule(self, epoch: int, in_swa: bool, evaluation: Evaluation) -> None:
        """SWA averages the epoch's weights on its own schedule; otherwise timm's scheduler steps at the epoch's
        end (plateau only on a validated epoch, with its score)."""
        parts = self.parts
        if in_swa:
            parts.swa.update_parameters(original_module(self.model))
            self.swa_scheduler.step()
        elif parts.scheduler is not None and (evaluation.evaluated or self.config.train.scheduler != "plateau"):
            parts.scheduler.step(epoch + 1, evaluation.score)

    def _validate(self, model: torch.nn.Module, max_batches: int | None) -> tuple[float, np.ndarray, np.ndarray]:
        channels_last = self.config.train.channels_last and self.runtime.device.type == "cuda"
        return evaluate(
            model,
            self.valid_loader,
            self.task,
            runtime=self.runtime,
            amp_dtype=self.amp_dtype,
            channels_last=channels_last,
            max_batches=max_batches,
            normalise=self.normalise,
        )

    def finish(self) -> FoldResult:
        """SWA's batch-norm update and score, then metrics.json: the fold's best score and epoch."""
        state, swa, metric = self.parts.state, self.parts.swa, self.config.metric
        result = FoldResult(
            self.fold, state.best_score, state.best_epoch + 1, state.epoch, self.first_update.get("unix")
        )
        if swa is not None and int(swa.n_averaged) > 0:
            self.task.update_batchnorm(swa.module, self.train_loader, self.normalise)
            _, probabilities, indices = self._validate(swa.module, None)
            result.swa_score = float(self.task.score(self.table.targets[self.valid_index][indices], probabilities))
            if self.runtime.is_main:
                swa_checkpoint = {"model": swa.module.state_dict(), "meta": self.meta, "score": result.swa_score}
                save_torch(self.paths.checkpoint(self.fold, "swa"), swa_checkpoint)
                print(f"fold {self.fold} SWA of {int(swa.n_averaged)} epochs: {metric} {result.swa_score:.4f}")
        if self.runtime.is_main:
            write_json(self.paths.fold_metrics(self.fold), result.to_json())
            self.tracker.summary({f"best_{metric}": state.best_score, "best_epoch": state.best_epoch + 1})
            self.tracker.finish()
        barrier(self.runtime)
        return result

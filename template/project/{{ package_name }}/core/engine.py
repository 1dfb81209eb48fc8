"""The training loop's primitives: seeding, optimizer and scheduler factories (timm), one training epoch
(accumulation, clipping, AMP, EMA, Mixup) and evaluation gathered over ranks. Task-agnostic."""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from ..config import TrainConfig
from .augment import InputNormaliser
from .budget import CLOCK_UNITS_PER_EPOCH, TimeBudget
from .distributed import Runtime, all_gather
from .errors import ConfigError

if TYPE_CHECKING:
    from .task import Task

# timm names of torch optimizers with a fused CUDA kernel (one launch for every parameter's update).
FUSED_OPTIMIZERS = {"adam", "adamw"}


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)


def native_bf16(device: torch.device) -> bool:
    """bf16 runs natively from compute capability 8.0 (A100, RTX 30xx, L4, H100). Older GPUs (T4, V100, P100)
    emulate it, which torch's default `is_bf16_supported()` counts as support, at a fraction of fp16's speed."""
    return torch.cuda.get_device_capability(device) >= (8, 0) and torch.cuda.is_bf16_supported(
        including_emulation=False
    )


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """bf16 or fp16 for autocast; `auto` turns AMP on for CUDA only: bf16 where it is native, else fp16 (with a
    GradScaler, see `create_grad_scaler`)."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def create_grad_scaler(amp_dtype: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none."""
    return torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None


def describe_precision(amp: str, device: torch.device) -> str:
    """The precision training runs in and why, as printed when training starts and kept in run.json."""
    dtype = autocast_dtype(amp, device)
    if dtype is None:
        return f"fp32 (train.amp={amp}{'' if amp == 'off' else f': no autocast on {device.type}'})"
    name = "bf16 autocast" if dtype == torch.bfloat16 else "fp16 autocast with GradScaler"
    if amp != "auto" and (dtype != torch.bfloat16 or device.type != "cuda" or native_bf16(device)):
        return f"{name} (train.amp={amp})"
    major, minor = torch.cuda.get_device_capability(device)
    if amp != "auto":
        return f"{name} (train.amp={amp}: emulated on compute capability {major}.{minor}, slower than fp16)"
    native = "native bf16" if dtype == torch.bfloat16 else "no native bf16"
    return f"{name} (train.amp=auto: compute capability {major}.{minor}, {native})"


def optimizer_kwargs(config: TrainConfig, on_cuda: bool) -> dict[str, Any]:
    """timm's create_optimizer_v2 arguments: on CUDA, Adam and AdamW fused (train.fused), others multi-tensor."""
    kwargs: dict[str, Any] = {
        "opt": config.optimizer,
        "lr": config.lr,
        "weight_decay": config.weight_decay,
        "momentum": config.momentum,
    }
    if on_cuda and config.fused and config.optimizer.lower() in FUSED_OPTIMIZERS:
        kwargs["fused"] = True
    elif on_cuda:
        kwargs["foreach"] = True
    return kwargs


def create_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    on_cuda = any(parameter.is_cuda for parameter in model.parameters())
    try:
        return create_optimizer_v2(model, **optimizer_kwargs(config, on_cuda))
    except (AssertionError, ValueError) as error:
        raise ConfigError(f"train.optimizer '{config.optimizer}': not a timm optimizer ({error})") from error


def create_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, updates_per_epoch: int, maximize: bool
) -> Scheduler | None:
    """A timm scheduler stepped per update (per epoch for plateau), or None."""
    if config.scheduler == "none":
        return None
    name, epochs, cycles = config.scheduler, config.epochs, 1
    if name == "cosine_restarts":
        name, cycles = "cosine", config.restarts
        epochs = math.ceil(config.epochs / cycles)
    per_epoch = name == "plateau"
    if config.time_budget_minutes is not None:  # the budget steps it by the clock, in these units
        updates_per_epoch = CLOCK_UNITS_PER_EPOCH
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=name,
        num_epochs=epochs,
        decay_epochs=config.decay_epochs,
        decay_milestones=config.decay_milestones,
        decay_rate=config.decay_rate,
        patience_epochs=config.patience_epochs,
        min_lr=config.min_lr,
        warmup_lr=config.warmup_lr,
        warmup_epochs=config.warmup_epochs,
        cycle_limit=cycles,
        plateau_mode="max" if maximize else "min",
        step_on_epochs=per_epoch,
        updates_per_epoch=updates_per_epoch,
    )
    return scheduler


PROGRESS_EVERY = 10  # steps between progress-bar refreshes


@dataclass
class TrainStep:
    """What every training step of a fold uses: the model and its task, the optimizer and (outside SWA) its
    schedule, and the optional AMP scaler, EMA, Mixup and on-device input normalisation."""

    model: torch.nn.Module
    task: Task
    optimizer: torch.optim.Optimizer
    runtime: Runtime
    config: TrainConfig
    scheduler: Any = None
    scaler: torch.amp.GradScaler | None = None
    ema: ModelEmaV3 | None = None
    mixup: Any = None
    amp_dtype: torch.dtype | None = None
    normalise: InputNormaliser | None = None

    def inputs(self, batch: Any) -> tuple[torch.Tensor, Any]:
        """A batch on the device, normalised, channels-last on CUDA when asked, mixed when Mixup/CutMix is on."""
        images, targets = self.task.to_device(batch, self.runtime.device)
        if self.normalise is not None:
            images = self.normalise(images)
        if self.config.channels_last and self.runtime.device.type == "cuda":
            images = images.contiguous(memory_format=torch.channels_last)
        if self.mixup is not None and len(images) % 2 == 0:  # timm mixes a batch with its reverse: even sizes only
            images, targets = self.mixup(images, targets)
        return images, targets

    def backward(self, images: torch.Tensor, targets: Any, update_now: bool) -> torch.Tensor:
        """The loss (autocast when AMP is on) and its gradient, scaled for accumulation; DDP all-reduces gradients
        only on the step that updates the weights."""
        device = self.runtime.device
        sync = nullcontext() if update_now or not self.runtime.distributed else self.model.no_sync()
        with sync:
            with torch.autocast(device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
                loss = self.task.training_loss(self.model, images, targets)
            scaled = loss / self.config.accumulate_steps
            (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return loss.detach()

    def update(self) -> None:
        """Clip (after unscaling), step the optimizer (through the scaler under fp16) and clear the gradients."""
        if self.config.grad_clip is not None:
            if self.scaler is not None:
                self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


class TrainedEpoch(NamedTuple):
    loss: float  # mean training loss
    updates: int  # optimizer updates so far
    images: int
    seconds: float  # from the first batch's arrival to the end: the steps' time, without the loader's start-up


def train_one_epoch(
    step: TrainStep,
    loader: DataLoader,
    *,
    num_updates: int = 0,
    description: str = "train",
    on_first_update: Callable[[], None] | None = None,
    batches: Iterator[Any] | None = None,
    budget: TimeBudget | None = None,
) -> TrainedEpoch:
    """One pass over `loader` (or `batches`, its epoch already started) with accumulation, clipping, AMP, EMA.
    With a time budget the schedule follows the clock, and the epoch ends early once the budget is spent (at
    least one step; under DDP only at epoch ends, where every rank agrees). The progress bar shows loss, learning
    rate and images/s, refreshed every few steps (reading the loss waits for the GPU, so not every step)."""
    step.model.train()
    config, runtime = step.config, step.runtime
    total_steps = len(loader) if config.max_steps_per_epoch is None else min(len(loader), config.max_steps_per_epoch)
    running_loss = torch.zeros((), device=runtime.device)
    step.optimizer.zero_grad(set_to_none=True)
    progress = tqdm(
        loader if batches is None else batches,
        total=total_steps,
        desc=description,
        leave=False,
        disable=True if not runtime.is_main else None,
    )
    index, seen, started = 0, 0, None
    for index, batch in enumerate(progress):
        if index >= total_steps or (index > 0 and budget is not None and not runtime.distributed and budget.spent()):
            break
        started = started or time.perf_counter()
        images, targets = step.inputs(batch)
        seen += len(images)
        update_now = (index + 1) % config.accumulate_steps == 0 or index + 1 == total_steps
        running_loss += step.backward(images, targets, update_now)
        if update_now:
            step.update()
            num_updates += 1
            if on_first_update is not None and num_updates == 1:
                on_first_update()
            if budget is not None:
                budget.observe(index + 1, total_steps, time.perf_counter() - started)
            if step.scheduler is not None:
                step.scheduler.step_update(num_updates=num_updates if budget is None else budget.schedule_step())
            if step.ema is not None:
                step.ema.update(step.model, step=num_updates)
        if (index + 1) % PROGRESS_EVERY == 0 and not progress.disable:
            rate, lr = seen / max(time.perf_counter() - started, 1e-9), step.optimizer.param_groups[0]["lr"]
            speed = f"{rate:.{1 if rate < 10 else 0}f}"  # 0.4 img/s, not 0
            progress.set_postfix(loss=f"{running_loss.item() / (index + 1):.4f}", lr=f"{lr:.2e}", img_s=speed)
    loss = float(running_loss.item()) / max(index + 1, 1)  # .item() waits for the GPU: the steps are done
    progress.close()
    return TrainedEpoch(loss, num_updates, seen, time.perf_counter() - started if started is not None else 0.0)


@torch.inference_mode()
def evaluate(
    model: torch.nn.Module,
    loader: DataLoader,
    task: Task,
    *,
    runtime: Runtime,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    max_batches: int | None = None,
    normalise: InputNormaliser | None = None,
    views: list[str] | None = None,
    description: str = "valid",
) -> tuple[float, np.ndarray, np.ndarray]:
    """(mean loss, per-image outputs, dataset indices), gathered from every rank; the loss is NaN for models
    that give none in evaluation mode (torchvision detectors) and under TTA `views` (merged as predict does)."""
    model.eval()
    device = runtime.device
    order = list(loader.sampler) if isinstance(loader.sampler, DistributedSampler) else None
    outputs, losses, seen = [], [], 0
    batches = loader if max_batches is None else (batch for i, batch in enumerate(loader) if i < max_batches)
    for batch in tqdm(batches, desc=description, leave=False, disable=True if not runtime.is_main else None):
        images, targets = task.to_device(batch, device)
        if normalise is not None:
            images = normalise(images)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            if views is None:
                loss, batch_outputs = task.evaluate_batch(model, images, targets)
            else:
                loss, batch_outputs = None, task.evaluate_views(model, images, targets, views)
        losses.append(math.nan if loss is None else loss * len(images))
        outputs.append(batch_outputs)
        seen += len(images)
    local_outputs = np.concatenate(outputs) if outputs else np.zeros((0, len(task.classes)))
    local_indices = np.asarray(order[:seen] if order is not None else range(seen))
    parts = all_gather(runtime, (local_indices, local_outputs, sum(losses), seen))
    indices = np.concatenate([part[0] for part in parts])
    gathered = np.concatenate([part[1] for part in parts])
    # DistributedSampler pads shards with repeated samples: keep each index once.
    indices, first = np.unique(indices, return_index=True)
    loss = float(sum(part[2] for part in parts)) / max(sum(part[3] for part in parts), 1)
    return loss, gathered[first], indices

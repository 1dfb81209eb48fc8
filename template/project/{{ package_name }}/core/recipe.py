"""Settings fitted to the data at train start: the batch size that leaves an epoch enough optimizer updates, with
the learning rate following it. Each choice comes with its reason; train prints it and keeps it in config.yaml."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import Config

# Below this, BatchNorm's batch statistics get noisy: the batch is never lowered past it (or past what was asked).
SMALLEST_FITTED_BATCH = 8
SMALLEST_BATCH = 4  # smaller batches leave BatchNorm and GroupNorm a single value on coarse feature maps


@dataclass(frozen=True)
class Choice:
    settings: dict[str, Any]  # nested, as with_overrides takes them
    reason: str


def fitted_batch_size(train_images: int, batch_size: int, processes: int, accumulate: int, min_updates: int) -> int:
    """`batch_size`, halved while an epoch of `train_images` gives fewer than `min_updates` optimizer updates,
    down to SMALLEST_FITTED_BATCH (or `batch_size` when that is smaller); below it only while an epoch would
    make a single update, down to SMALLEST_BATCH."""
    floor = min(SMALLEST_FITTED_BATCH, batch_size)
    batch = batch_size
    while (updates := updates_per_epoch(train_images, batch, processes, accumulate)) < min_updates:
        half = batch // 2
        if half < SMALLEST_BATCH or (half < floor and updates > 1):
            break
        batch = half
    return batch


def updates_per_epoch(train_images: int, batch_size: int, processes: int, accumulate: int) -> int:
    """Optimizer updates an epoch makes: the training loader drops a last partial batch (unless it is the only one)."""
    images_per_step = batch_size * processes
    batches = train_images // images_per_step if train_images > images_per_step else 1
    return max(math.ceil(batches / accumulate), 1)


def scaled_lr(lr: float, batch_size: int, fitted: int, rule: str) -> float:
    """The learning rate for `fitted` where `lr` was set for `batch_size`: by the square root of the ratio for
    adaptive optimizers (AdamW's update size barely grows with the batch), linearly for SGD (Goyal et al.)."""
    ratio = fitted / batch_size
    return lr * {"sqrt": math.sqrt(ratio), "linear": ratio, "none": 1.0}[rule]


def batch_choice(config: Config, train_images: int, processes: int) -> Choice | None:
    """train.min_updates_per_epoch: a smaller batch (and learning rate) for a small training set; None when the
    configured batch already leaves enough updates, or the rule is off."""
    train = config.train
    if train.min_updates_per_epoch is None:
        return None
    fitted = fitted_batch_size(
        train_images, train.batch_size, processes, train.accumulate_steps, train.min_updates_per_epoch
    )
    if fitted == train.batch_size:
        return None
    lr = scaled_lr(train.lr, train.batch_size, fitted, train.lr_scaling)
    before = updates_per_epoch(train_images, train.batch_size, processes, train.accumulate_steps)
    after = updates_per_epoch(train_images, fitted, processes, train.accumulate_steps)
    reason = (
        f"train.batch_size={fitted} (from {train.batch_size}): {train_images} training images give {after} updates an "
        f"epoch, {before} at {train.batch_size} (train.min_updates_per_epoch={train.min_updates_per_epoch}); "
        f"train.lr={lr:.3g} (from {train.lr:g}, train.lr_scaling={train.lr_scaling})"
    )
    return Choice({"train": {"batch_size": fitted, "lr": float(f"{lr:.4g}")}}, reason)

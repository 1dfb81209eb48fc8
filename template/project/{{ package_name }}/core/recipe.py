"""Settings fitted to the data at train start: the task's own (crops, resolution, anchors), the batch size that leaves
an epoch (and a time budget, core/probe.py) enough optimizer updates with the learning rate following it, and the
image cache. Each choice comes with its reason; check and train print it, and train keeps it in config.yaml."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..config import with_overrides
from .task import Choice

if TYPE_CHECKING:
    from ..config import Config
    from .data import LabelledTable
    from .task import Task

# Below this, BatchNorm's batch statistics get noisy: the batch is never lowered past it (or past what was asked).
SMALLEST_FITTED_BATCH = 8
SMALLEST_BATCH = 4  # smaller batches leave BatchNorm and GroupNorm a single value on coarse feature maps
# data.cache=auto keeps decoded images in RAM when all of them (every process's copy) take at most this share of the
# memory free at train start: the rest stays for the model, the loader's workers and the OS's file cache.
AUTO_CACHE_SHARE = 0.4
# A budget's batch is halved for more updates only while the half slows a training image by at most this much: a
# prior, not a fit. In a 1-minute budget on a 2-core CPU (benchmarks/vs_hand_loop.py, development suite, CV of 3
# seeds), 28-px MNIST images took 1.8x longer each at batch 8 than at 32, and batch 8 lost (0.71-0.79 against
# 0.89-0.91); at 224 px (digits 0-4) they took as long, and batch 8's 55-62 updates won (0.39-0.47 against
# 0.22-0.30 for 13-16 at batch 32).
HALVING_COST = 1.25


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


def image_seconds_at(times: dict[int, float], batch_size: int) -> float:
    """An image's training time at `batch_size`, from `times` measured at some batch sizes: geometric between two
    of them, the nearest one's outside."""
    sizes = sorted(times)
    low = max([size for size in sizes if size <= batch_size], default=sizes[0])
    high = min([size for size in sizes if size >= batch_size], default=sizes[-1])
    if low == high:
        return times[low]
    weight = math.log(batch_size / low) / math.log(high / low)
    return times[low] ** (1 - weight) * times[high] ** weight


def budget_batch_size(
    batch_size: int, times: dict[int, float], budget_seconds: float, min_steps: int, accumulate: int
) -> int:
    """`batch_size`, halved while `budget_seconds` buy fewer than `min_steps` optimizer updates at it and the half
    slows an image (`times`: seconds an image by batch size, one process's) by at most HALVING_COST, down to
    SMALLEST_FITTED_BATCH (or `batch_size` when that is smaller)."""
    floor = min(SMALLEST_FITTED_BATCH, batch_size)
    batch = batch_size
    while (
        batch // 2 >= floor
        and budget_updates(batch, image_seconds_at(times, batch), budget_seconds, accumulate) < min_steps
        and image_seconds_at(times, batch // 2) <= HALVING_COST * image_seconds_at(times, batch)
    ):
        batch //= 2
    return batch


def budget_can_halve(batch_size: int) -> bool:
    """Whether budget_batch_size could lower `batch_size` at all: a batch under twice SMALLEST_FITTED_BATCH is not
    timed (the timing would cost steps and change nothing)."""
    return batch_size // 2 >= min(SMALLEST_FITTED_BATCH, batch_size)


def budget_updates(batch_size: int, image_seconds: float, budget_seconds: float, accumulate: int) -> int:
    """Optimizer updates `budget_seconds` buy at `image_seconds` a training image."""
    return int(budget_seconds / max(batch_size * image_seconds * accumulate, 1e-9))


def budget_batch_choice(config: Config, times: dict[int, float]) -> Choice | None:
    """train.fit_batch_to_budget: under a time budget too short to give a fold train.time_budget_min_steps updates
    at the batch size, a smaller batch (and learning rate) where it costs few images seen (`times`: seconds a
    training image by batch size); None when the batch already gets them, or a smaller one would not pay."""
    train = config.train
    if train.time_budget_minutes is None or not train.fit_batch_to_budget:
        return None
    seconds, accumulate = train.time_budget_minutes * 60, train.accumulate_steps
    fitted = budget_batch_size(train.batch_size, times, seconds, train.time_budget_min_steps, accumulate)
    if fitted == train.batch_size:
        return None
    lr = scaled_lr(train.lr, train.batch_size, fitted, train.lr_scaling)
    before, after = (
        budget_updates(size, image_seconds_at(times, size), seconds, accumulate) for size in (train.batch_size, fitted)
    )
    timed = ", ".join(f"{times[size]:.3g} s at {size}" for size in sorted(times))
    reason = (
        f"train.batch_size={fitted} (from {train.batch_size}): a training step took {timed} an image, so "
        f"{train.time_budget_minutes:g} min buy about {after} updates at {fitted}, {before} at {train.batch_size} "
        f"(train.time_budget_min_steps={train.time_budget_min_steps}); train.lr={lr:.3g} (from {train.lr:g}, "
        f"train.lr_scaling={train.lr_scaling})"
    )
    return Choice({"train": {"batch_size": fitted, "lr": float(f"{lr:.4g}")}}, reason)


def cache_choice(config: Config, task: Task, image_paths: list[str], processes: int) -> Choice | None:
    """data.cache=auto: ram when the decoded images (at the size the cache keeps them) fit in AUTO_CACHE_SHARE of the
    free memory, so no epoch after the first decodes an image again; else none."""
    if config.data.cache != "auto":
        return None
    from .augment import cached_image_size
    from .parallel import available_memory, decoded_bytes

    size = cached_image_size(config, task)
    needed = decoded_bytes(image_paths, size, config.model.in_chans) * processes
    free = available_memory()
    kept = f"at {size} px" if size is not None else "as decoded"
    copies = f" x {processes} processes" if processes > 1 else ""
    if free is None:
        return Choice({"data": {"cache": "none"}}, "data.cache=none: the free memory cannot be read here")
    fits = needed <= AUTO_CACHE_SHARE * free
    return Choice(
        {"data": {"cache": "ram" if fits else "none"}},
        f"data.cache={'ram' if fits else 'none'}: {len(image_paths)} images {kept} take {needed / 2**30:.2f} GiB"
        f"{copies}, {'within' if fits else 'over'} {AUTO_CACHE_SHARE:.0%} of the {free / 2**30:.1f} GiB free",
    )


def fit_to_data(
    config: Config,
    table: LabelledTable,
    train_images: int,
    processes: int,
    task_for: Callable[[Config], Task],
    cache_copies: int = 1,
) -> tuple[Config, list[Choice]]:
    """Every setting left to the data: the task's (crops, resolution, anchors) first, as the batch and the cache
    depend on the image size; then the batch for `train_images` a fold trains on, split over `processes`; then the
    image cache, of which `cache_copies` processes on this machine each keep one."""
    choices = list(task_for(config).data_settings(table))
    for choice in choices:
        config = with_overrides(config, choice.settings)
    batch = batch_choice(config, train_images, processes)
    if batch is not None:
        choices.append(batch)
        config = with_overrides(config, batch.settings)
    cache = cache_choice(config, task_for(config), table.frame["path"].astype(str).tolist(), cache_copies)
    if cache is not None:
        choices.append(cache)
        config = with_overrides(config, cache.settings)
    return config, choices


def propose_image_size(median_side: float, image_size: int) -> tuple[int, str] | None:
    """model.image_size for small images: upsampling 28 px to 224 costs 64x the compute and adds no detail, so
    propose the multiple of 32 at or above their side when model.image_size is more than twice it."""
    if median_side <= 0 or image_size <= 2 * median_side:
        return None
    proposed = max(32, math.ceil(median_side / 32) * 32)
    if proposed >= image_size:  # 8 px digits at 32 px: nothing smaller to propose
        return None
    return proposed, (
        f"train images are about {median_side:.0f} px: model.image_size={image_size} upsamples them "
        f"{image_size / median_side:.0f}x for {(image_size / proposed) ** 2:.0f}x the compute of "
        f"model.image_size={proposed}"
    )

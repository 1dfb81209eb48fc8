"""A training step timed before a time-budgeted run starts, so that the batch size can be fitted to the updates
the budget buys (core/recipe.py budget_batch_choice)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..config import with_overrides
from .augment import InputNormaliser
from .distributed import Runtime, broadcast
from .engine import autocast_dtype, create_optimizer
from .loaders import training_loader
from .recipe import SMALLEST_FITTED_BATCH, Choice, budget_batch_choice

if TYPE_CHECKING:
    from ..config import Config
    from ..tasks import Task
    from .data import LabelledTable

TIMED_STEPS = 2  # after one untimed step (allocation, first kernels)


def time_training_image(
    config: Config,
    task_for: Callable[[Config], Task],
    table: LabelledTable,
    train_index: np.ndarray,
    device: torch.device,
) -> float:
    """Seconds a training step (forward, backward, optimizer update) takes per image, on a batch of
    SMALLEST_FITTED_BATCH training images as aug.train gives them, with a model of random weights (nothing to
    download). A small batch runs a device below its throughput: an upper bound of an image's time in a larger one."""
    count = min(SMALLEST_FITTED_BATCH, len(train_index))
    settings = with_overrides(
        config,
        {"model": {"pretrained": False, "weights": None}, "data": {"num_workers": 0}, "train": {"batch_size": count}},
    )
    task = task_for(settings)
    loader = training_loader(settings, task, table, train_index[:count], runtime=Runtime(device), seed=config.seed)
    images, targets = task.to_device(next(iter(loader)), device)
    model = task.create_model().to(device).train()
    normalise = InputNormaliser(*task.normalisation(model), device)
    optimizer = create_optimizer(model, config.train)
    amp_dtype = autocast_dtype(config.train.amp, device)
    seconds = 0.0
    for step in range(TIMED_STEPS + 1):
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = task.training_loss(model, normalise(images), targets)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds += (time.perf_counter() - started) if step > 0 else 0.0
    del model, optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return seconds / TIMED_STEPS / count


def fit_batch_to_budget(
    config: Config,
    task_for: Callable[[Config], Task],
    table: LabelledTable,
    train_index: np.ndarray,
    runtime: Runtime,
    recorded: Config | None = None,
) -> Choice | None:
    """train.fit_batch_to_budget under a time budget: a step timed on this machine (rank 0's for every rank), then
    the batch that gives a fold train.time_budget_min_steps updates; None when no budget or no change. A resumed
    run (`recorded`: its config.yaml) keeps the batch and learning rate it was fitted to, not a new timing's."""
    train = config.train
    if train.time_budget_minutes is None or not train.fit_batch_to_budget:
        return None
    if recorded is not None:
        kept = {"batch_size": recorded.train.batch_size, "lr": recorded.train.lr}
        if kept == {"batch_size": train.batch_size, "lr": train.lr}:
            return None
        reason = f"train.batch_size={kept['batch_size']}, train.lr={kept['lr']:.3g}: as the run fitted them (--resume)"
        return Choice({"train": kept}, reason)
    image_seconds = broadcast(runtime, time_training_image(config, task_for, table, train_index, runtime.device))
    return budget_batch_choice(config, image_seconds)

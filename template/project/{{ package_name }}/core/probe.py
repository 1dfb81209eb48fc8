"""A training step timed before a time-budgeted run starts, so that the batch size can be fitted to the updates
the budget buys (core/recipe.py budget_batch_choice)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import with_overrides
from .augment import InputNormaliser
from .distributed import Runtime, broadcast
from .engine import autocast_dtype, create_optimizer
from .loaders import training_loader
from .perf import enable_grad_checkpointing
from .recipe import SMALLEST_FITTED_BATCH, budget_batch_choice, budget_can_halve
from .task import Choice

if TYPE_CHECKING:
    from ..config import Config
    from .data import LabelledTable
    from .task import Task

TIMED_STEPS = 2  # at the small batch; one at the large (each after an untimed one)


def time_training_images(
    config: Config,
    task_for: Callable[[Config], Task],
    table: LabelledTable,
    train_index: np.ndarray,
    device: torch.device,
) -> dict[int, float]:
    """Seconds a training step (forward, backward, optimizer update) takes per image, by batch size: at
    SMALLEST_FITTED_BATCH and at train.batch_size, on training images as aug.train gives them, with a model of
    random weights (nothing to download)."""
    sizes = sorted({min(size, len(train_index)) for size in (SMALLEST_FITTED_BATCH, config.train.batch_size)})
    settings = with_overrides(
        config,
        {
            "model": {"pretrained": False, "weights": None},
            "data": {"num_workers": 0},
            "train": {"batch_size": sizes[-1]},
        },
    )
    task = task_for(settings)
    loader = training_loader(settings, task, table, train_index[: sizes[-1]], runtime=Runtime(device), seed=config.seed)
    images, targets = task.to_device(next(iter(loader)), device)
    model = task.create_model()
    if config.model.grad_checkpointing:  # as training runs it: a batch that fits only so must fit here too
        enable_grad_checkpointing(model)
    model.to(device).train()
    normalise = InputNormaliser(*task.normalisation(model), device)
    optimizer = create_optimizer(model, config.train)
    amp_dtype = autocast_dtype(config.train.amp, device)

    def step(count: int) -> float:
        started = time.perf_counter()
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            loss = task.training_loss(model, normalise(images[:count]), targets[:count])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - started

    step(sizes[-1])  # untimed: allocation at the largest shape, first kernels (cuDNN autotuning) at each size
    if sizes[-1] != sizes[0]:
        step(sizes[0])
    times = {sizes[0]: sum(step(sizes[0]) for _ in range(TIMED_STEPS)) / TIMED_STEPS / sizes[0]}
    if sizes[-1] != sizes[0]:
        times[sizes[-1]] = step(sizes[-1]) / sizes[-1]
    return times


def fit_batch_to_budget(
    config: Config,
    task_for: Callable[[Config], Task],
    table: LabelledTable,
    train_index: np.ndarray,
    runtime: Runtime,
    resume: bool = False,
    recorded: dict[str, Any] | None = None,
) -> Choice | None:
    """train.fit_batch_to_budget under a time budget: a step timed on this machine (rank 0's for every rank), then
    the batch that gives a fold train.time_budget_min_steps updates; None when no budget or no change. A resumed
    run keeps the batch and learning rate it was fitted to (`recorded`, from run.json), not a new timing's."""
    train = config.train
    if train.time_budget_minutes is None or not train.fit_batch_to_budget:
        return None
    if resume:
        if recorded is None:
            return None
        reason = f"train.batch_size={recorded['batch_size']}, train.lr={recorded['lr']:.3g}: as the run fitted them"
        return Choice({"train": recorded}, f"{reason} (--resume)")
    if not budget_can_halve(train.batch_size):
        return None
    try:
        times = time_training_images(config, task_for, table, train_index, runtime.device)
    except torch.OutOfMemoryError:
        times = None  # training at this batch will say so itself, with its own advice
    times = broadcast(runtime, times)
    if runtime.device.type == "cuda":
        torch.cuda.empty_cache()  # the timed model's blocks go back before the fold's model takes them
    return None if times is None else budget_batch_choice(config, times)

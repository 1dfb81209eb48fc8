"""The data loaders of training and validation: shuffled alike on one process or many, each worker with its own
augmentation stream."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ..config import Config
from .augment import load_augmentations, redirect_caches
from .data import LabelledTable
from .distributed import Runtime
from .runs import RunPaths

if TYPE_CHECKING:
    from .task import Task


def seed_worker(worker_id: int) -> None:
    """A loader worker's own augmentation stream. Every worker starts with a copy of the parent's albumentations
    and numpy generators, so without this they would repeat each other's random crops and flips; torch's
    per-worker seed comes from the loader's generator, so runs stay reproducible."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    transform = getattr(torch.utils.data.get_worker_info().dataset, "transform", None)
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def create_loader(
    dataset: Dataset, runtime: Runtime, batch_size: int, workers: int, shuffle: bool, seed: int, collate_fn: Any = None
) -> DataLoader:
    sampler = None
    if runtime.distributed or shuffle:
        # One process too shuffles as DistributedSampler does (seed + epoch): a run of N processes with batch B
        # then sees the batches one process sees with batch N*B, and a resumed epoch the order it had.
        sampler = DistributedSampler(
            dataset, num_replicas=runtime.world_size, rank=runtime.rank, shuffle=shuffle, seed=seed, drop_last=False
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=runtime.device.type == "cuda",
        drop_last=shuffle and len(dataset) > batch_size * runtime.world_size,
        persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=seed_worker,
        collate_fn=collate_fn,
    )


def training_loader(
    config: Config,
    task: Task,
    table: LabelledTable,
    train_index: np.ndarray,
    *,
    runtime: Runtime,
    training_targets: np.ndarray | None = None,
    seed: int = 0,
) -> DataLoader:
    """The rows `train_index` of `table` under aug.train, shuffled."""
    train_augmentations = load_augmentations(config.aug.train, "aug.train")
    redirect_caches(train_augmentations, RunPaths.from_config(config).root / "augraphy")
    train_transform = task.create_transform(train_augmentations, train=True)
    if hasattr(train_transform, "set_random_seed"):  # albumentations draws from its own generator, not numpy's
        train_transform.set_random_seed(seed)
    image_paths = table.frame["path"].to_numpy()
    targets = table.targets if training_targets is None else training_targets
    train_set = task.create_dataset(list(image_paths[train_index]), targets[train_index], train_transform, train=True)
    batch, workers = config.train.batch_size, config.data.num_workers
    return create_loader(train_set, runtime, batch, workers, True, seed, task.collate_fn)


def fold_loaders(
    config: Config,
    task: Task,
    table: LabelledTable,
    train_index: np.ndarray,
    valid_index: np.ndarray,
    *,
    runtime: Runtime,
    training_targets: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[DataLoader, DataLoader]:
    """The training loader (augmented, shuffled) and the validation loader of one fold."""
    train_loader = training_loader(
        config, task, table, train_index, runtime=runtime, training_targets=training_targets, seed=seed
    )
    return train_loader, validation_loader(config, task, table, valid_index, runtime=runtime)


def validation_loader(
    config: Config, task: Task, table: LabelledTable, valid_index: np.ndarray, *, runtime: Runtime
) -> DataLoader:
    """The rows `valid_index` of `table` with their targets, under aug.valid, in order."""
    valid_transform = task.create_transform(load_augmentations(config.aug.valid, "aug.valid"), train=False)
    paths = list(table.frame["path"].to_numpy()[valid_index])
    valid_set = task.create_dataset(paths, table.targets[valid_index], valid_transform)
    batch, workers = config.train.batch_size, config.data.num_workers
    return create_loader(valid_set, runtime, batch, workers, False, config.seed, task.collate_fn)

"""Tasks behind one registry: a task owns model, data, loss, metric, post-processing and prediction files;
the training loop, predict and submit only call the `Task` methods below."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch
    from torch.utils.data import Dataset

    from ..config import Config
    from ..metrics import Metric

# Task modules are rendered only for the project's task, so they are imported by name on demand.
TASK_MODULES = {
    "classification": ".classification",
    "detection": ".detection",
    "segmentation": ".segmentation",
}


class Task(Protocol):
    """What the training loop, predict and submit call. Outputs are per-image: an (N, C) float array for
    classification, an object array of per-image dicts (boxes) or probability maps for the other tasks."""

    name: str
    config: Config
    classes: list[str]
    metric: Metric

    def create_model(self, pretrained: bool | None = None) -> torch.nn.Module: ...
    def create_mixup(self) -> Any: ...
    def normalisation(self, model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]: ...
    # targets=None: a test set whose items are (image, meta), meta being what predict_batch maps back with.
    def create_dataset(
        self, paths: list[str], targets: np.ndarray | None, transform: Any, train: bool = False
    ) -> Dataset: ...
    def create_transform(self, augmentations: Any, train: bool) -> Any: ...

    collate_fn: Any  # DataLoader collate function, None for the default
    # Optional: variable_input_size = True where batches change shape (cuDNN autotuning is then left off);
    # resizes_first = True where every transform starts by resizing the image alone (the cache may pre-resize).

    def to_device(self, batch: Any, device: torch.device) -> tuple[Any, Any]: ...
    def training_loss(self, model: torch.nn.Module, images: Any, targets: Any) -> torch.Tensor: ...
    def evaluate_batch(self, model: torch.nn.Module, images: Any, targets: Any) -> tuple[float | None, np.ndarray]: ...
    def predict_batch(
        self, model: torch.nn.Module, images: torch.Tensor, meta: Any, views: list[str]
    ) -> np.ndarray: ...

    def merge_models(self, outputs: list[np.ndarray]) -> np.ndarray: ...
    def score(self, targets: np.ndarray, outputs: np.ndarray) -> float: ...
    def write_predictions(self, path: Path, ids: np.ndarray, outputs: np.ndarray, fold: Any = None) -> Path: ...
    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]: ...
    def submission(self, sample: pd.DataFrame, predictions: Path) -> pd.DataFrame: ...

    # Optional: tune_postprocessing(outputs, run_folder) -> dict of extra metrics, after the OOF is complete.


def require_task(config: Config, stage: str, supported: tuple[str, ...] = ("classification",)) -> None:
    """Stop a stage that does not handle this project's task with one clear line."""
    if config.task not in supported:
        from ..errors import ConfigError

        raise ConfigError(
            f"the {stage} command supports {' and '.join(supported)} only; this project's task is {config.task}"
        )


def create_task(config: Config, classes: list[str]) -> Task:
    """The task object for `config.task`; raises on a task this project was not rendered with."""
    module_name = TASK_MODULES.get(config.task)
    if module_name is None:
        raise ValueError(f"unknown task '{config.task}'; expected one of {', '.join(TASK_MODULES)}")
    try:
        module = importlib.import_module(module_name, __package__)
    except ModuleNotFoundError as error:
        if error.name and error.name.endswith(module_name.lstrip(".")):
            from ..errors import ConfigError

            raise ConfigError(f"task '{config.task}': this project was rendered for another task") from error
        raise
    return module.TASK(config, classes)

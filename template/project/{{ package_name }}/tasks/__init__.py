"""The Task contract and its registry: each task is a package here (only the project's own is rendered) that owns
model, data, labels, loss, metric, post-processing and prediction files; the stages only call `Task` methods."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from ..config import TASK_LAYOUTS
from ..core.errors import ConfigError, DataError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch
    from torch.utils.data import Dataset

    from ..config import Config, DataConfig
    from ..core.data import LabelledTable
    from ..core.metrics import Metric
    from ..core.recipe import Choice

# Only the project's task package is rendered, so packages are imported by name on demand.
TASKS = tuple(TASK_LAYOUTS)
# Which task reads each data layout (its package's labels.LAYOUTS holds the reader).
LAYOUT_TASKS = {layout: task for task, layouts in TASK_LAYOUTS.items() for layout in layouts}


class Task(Protocol):
    """What the training loop, predict and submit call. Outputs are per-image: an (N, C) float array for
    classification, an object array of per-image dicts (boxes) or probability maps for the other tasks.
    Task classes inherit `TaskHooks` for the optional hooks they leave out."""

    name: str
    config: Config
    classes: list[str]
    metric: Metric
    collate_fn: Any  # DataLoader collate function, None for the default
    variable_input_size: bool  # batches change shape: cuDNN autotuning is left off
    resizes_first: bool  # every transform starts by resizing the image alone: the image cache may pre-resize
    views_merge_as_models: bool  # merge_models of per-view outputs equals predict_batch's merge of those views

    def create_model(self, pretrained: bool | None = None) -> torch.nn.Module: ...
    def model_name(self) -> str: ...
    def normalisation(self, model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]: ...
    def create_transform(self, augmentations: Any, train: bool) -> Any: ...
    # targets=None: a test set whose items are (image, meta), meta being what predict_batch maps back with.
    def create_dataset(
        self, paths: list[str], targets: np.ndarray | None, transform: Any, train: bool = False
    ) -> Dataset: ...
    def create_mixup(self) -> Any: ...
    def balance_classes(self, targets: np.ndarray, device: torch.device) -> np.ndarray | None: ...

    def to_device(self, batch: Any, device: torch.device) -> tuple[Any, Any]: ...
    def training_loss(self, model: torch.nn.Module, images: Any, targets: Any) -> torch.Tensor: ...
    def evaluate_batch(self, model: torch.nn.Module, images: Any, targets: Any) -> tuple[float | None, np.ndarray]: ...
    def predict_batch(
        self, model: torch.nn.Module, images: torch.Tensor, meta: Any, views: list[str]
    ) -> np.ndarray: ...
    # evaluate_batch's outputs (scored by `score`) with the TTA views merged as predict_batch merges them.
    def evaluate_views(self, model: torch.nn.Module, images: Any, targets: Any, views: list[str]) -> np.ndarray: ...
    def update_batchnorm(self, model: torch.nn.Module, loader: Any, normalise: Any) -> None: ...
    def merge_models(self, outputs: list[np.ndarray]) -> np.ndarray: ...
    # targets: the table's targets of the rows outputs belong to (segmentation outputs carry the transformed masks).
    def score(self, targets: np.ndarray, outputs: np.ndarray) -> float: ...

    def tune_postprocessing(self, outputs: np.ndarray, run_folder: Path) -> dict[str, Any]: ...
    def load_postprocessing(self, run_folder: Path) -> None: ...
    def write_predictions(self, path: Path, ids: np.ndarray, outputs: np.ndarray, fold: Any = None) -> Path: ...
    def write_prediction_extras(self, path: Path, ids: np.ndarray, outputs: np.ndarray) -> list[Path]: ...
    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]: ...
    def submission(self, sample: pd.DataFrame, predictions: Path) -> pd.DataFrame: ...
    # What the submission will hold, checked against the sample's columns before training (SubmissionError if not).
    def check_sample(self, sample: pd.DataFrame) -> str: ...
    def data_settings(self, table: LabelledTable) -> list[Choice]: ...
    def write_submission_extras(self, predictions: Path, folder: Path) -> list[Path]: ...


class TaskHooks:
    """Do-nothing defaults of the optional Task hooks; each task class inherits them and overrides what it uses."""

    collate_fn: Any = None
    variable_input_size = False
    resizes_first = False
    views_merge_as_models = True

    def create_mixup(self) -> Any:
        return None

    def model_name(self) -> str:
        """The model as the run header names it: the backbone, unless the task builds more around it."""
        return self.config.model.backbone

    def balance_classes(self, targets: np.ndarray, device: torch.device) -> np.ndarray | None:
        return None

    def tune_postprocessing(self, outputs: np.ndarray, run_folder: Path) -> dict[str, Any]:
        """After the OOF is complete: post-processing tuned on it (saved in the run folder), extra metrics."""
        return {}

    def load_postprocessing(self, run_folder: Path) -> None:
        """Before predicting or submitting: what tune_postprocessing saved."""

    def write_prediction_extras(self, path: Path, ids: np.ndarray, outputs: np.ndarray) -> list[Path]:
        """Other formats of test predictions written beside `path` (COCO results JSON for boxes)."""
        return []

    def update_batchnorm(self, model: torch.nn.Module, loader: Any, normalise: Any) -> None:
        """SWA: BatchNorm statistics of the averaged weights recomputed on the training images (torch's update_bn)."""
        from torch.optim.swa_utils import update_bn

        update_bn((normalise(images) for images, _ in loader), model)

    def data_settings(self, table: LabelledTable) -> list[Choice]:
        """Settings the training data decides (detection.anchor_sizes=auto), in order, each with its reason."""
        return []

    def write_submission_extras(self, predictions: Path, folder: Path) -> list[Path]:
        """Files a competition takes besides the CSV (PNG masks), written into `folder`."""
        return []


def task_module(task: str, module: str) -> Any:
    """`tasks/<task>/<module>.py`; one line when the project was rendered for another task."""
    if task not in TASKS:
        raise ConfigError(f"task: unknown '{task}'; expected one of {', '.join(TASKS)}")
    try:
        return importlib.import_module(f".{task}.{module}", __package__)
    except ModuleNotFoundError as error:
        if error.name and error.name.endswith(f"tasks.{task}"):
            raise ConfigError(f"task '{task}': this project was rendered for another task") from error
        raise


def create_task(config: Config, classes: list[str]) -> Task:
    """The task object for `config.task`."""
    return task_module(config.task, "task").TASK(config, classes)


def read_train_table(config: DataConfig, check_images: bool = True) -> LabelledTable:
    """Read and check the training labels with the reader of `data.layout` (in its task's labels.py); every
    error names the file and row. EDA passes `check_images=False` to list missing images instead of stopping."""
    task = LAYOUT_TASKS.get(config.layout)
    if task is None:
        raise ConfigError(f"data.layout: unknown '{config.layout}'; expected one of {', '.join(LAYOUT_TASKS)}")
    table = task_module(task, "labels").LAYOUTS[config.layout](config, check_images)
    if len(table.frame) == 0:
        raise DataError(f"{table.source}: no training images")
    return table

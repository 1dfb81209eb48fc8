"""The task contract beside the loop: `Task` (what the stages call), `TaskHooks` (its optional hooks' defaults) and
`TaskSpec` (one task's face: its layouts, metrics, TTA views, blend methods and typed parts)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import torch
    from torch.utils.data import Dataset

    from ..config import Config, DataConfig, EnsembleConfig
    from .blend import Combiner
    from .data import LabelledTable
    from .metrics import Metric
    from .report.analysis import Analysis
    from .report.eda_context import EdaContext
    from .runs import RunPaths


@dataclass(frozen=True)
class Choice:
    """A setting the data decides (`Task.data_settings`), with the reason `train` prints for it."""

    settings: dict[str, Any]  # nested, as with_overrides takes them
    reason: str


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
    def weights_name(self) -> str: ...
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

    def weights_name(self) -> str:
        """What the `weights` command names the saved pretrained tensors after: the backbone by default."""
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


class LabelsPart(Protocol):
    """tasks/<task>/labels.py: a reader per `data.layout` (every error names the file and row)."""

    LAYOUTS: dict[str, Callable[[DataConfig, bool], LabelledTable]]


class BlendPart(Protocol):
    """tasks/<task>/blend.py: how `ensemble` reads, stacks and merges members' predictions."""

    OOF_FILE: str
    TEST_FILE: str
    FIT_EVALUATIONS_PER_MEMBER: int  # scorings the weight search may spend per member

    def parameter_grid(self, settings: EnsembleConfig, method: str) -> list[dict[str, Any]]: ...
    def create_combiner(self, task: Any, method: str, params: dict[str, Any]) -> Combiner: ...
    def read_member(self, task: Any, path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]: ...
    def stack(self, outputs: list[np.ndarray], names: list[str], kind: str) -> np.ndarray: ...
    def diversity(self, members: np.ndarray) -> list[list[float]] | None: ...


class PseudoPart(Protocol):
    """tasks/<task>/pseudo.py: which test predictions become labels, and how training reads them back."""

    def write_pseudo_labels(
        self, task: Any, config: Config, source: Path, image_paths: dict[str, str], folder: Path
    ) -> dict[str, Any]: ...
    def round_overrides(self, config: Config) -> dict[str, Any]: ...
    def with_pseudo_labels(
        self, table: LabelledTable, folds: np.ndarray, path: Path, config: Config
    ) -> tuple[LabelledTable, np.ndarray, np.ndarray | None]: ...


class EdaPart(Protocol):
    """tasks/<task>/eda.py: the labels' statistics, findings and proposals (see core/report/eda_context.py)."""

    def explore(self, context: EdaContext) -> dict[str, Any]: ...


class AnalysisPart(Protocol):
    """tasks/<task>/analysis.py: the task's sections of the `analyze` report, read from the run's OOF file."""

    OOF_FILE: str

    def analyze_run(self, analysis: Analysis) -> None: ...


class PlotsPart(Protocol):
    """tasks/<task>/plots.py: the figures and tables every `run` leaves in plots/."""

    def run_figures(
        self, config: Config, task: Any, table: LabelledTable, paths: RunPaths
    ) -> dict[str, bytes | pd.DataFrame]: ...


@dataclass(frozen=True)
class TaskParts:
    """Each tool's task-specific part, loaded on first use (plots and reports import matplotlib)."""

    labels: Callable[[], LabelsPart]
    blend: Callable[[], BlendPart]
    pseudo: Callable[[], PseudoPart]
    eda: Callable[[], EdaPart]
    analysis: Callable[[], AnalysisPart]
    plots: Callable[[], PlotsPart]


@dataclass(frozen=True)
class TaskSpec:
    """One task's face: what it reads, scores, inverts and blends, its task object and its parts. Cross-key checks
    of a config against the task are `check`, called wherever a command's settings are loaded."""

    name: str
    layouts: tuple[str, ...]
    metrics: tuple[str, ...]
    blend_methods: tuple[str, ...]  # ensemble.method=auto takes the first
    create_task: Callable[[Config, list[str]], Task]
    parts: TaskParts
    views: tuple[str, ...] | None = None  # TTA views the task maps back (scale_<factor> always); None: every view
    sample_rows_per_class: bool = False  # the sample submission has a row per image and class
    exports_onnx: bool = True
    # Settings the model is built with to check a config before the data has decided them (anchors from boxes).
    placeholder_settings: Callable[[Config], dict[str, Any]] = field(default=lambda config: {})
    extra_checks: tuple[Callable[[Config], None], ...] = ()  # the task's own cross-key checks (ConfigError)
    # `check`'s advice from the train images' median side (crops for large images)
    image_advice: Callable[[Config, float], list[str]] = field(default=lambda config, median_side: [])

    def blend_method(self, method: str) -> str:
        """ensemble.method as `ensemble` runs it: auto (and `mean`, every task's default before boxes and masks
        could blend) is the task's first method."""
        return self.blend_methods[0] if method == "auto" or method not in self.blend_methods else method

    def check_layout(self, layout: str) -> None:
        if layout not in self.layouts:
            raise ConfigError(
                f"data.layout={layout} is not a {self.name} layout; expected one of {', '.join(self.layouts)}"
            )

    def check_views(self, views: list[str]) -> None:
        """ConfigError naming the first TTA view the task has no inverse for."""
        unmappable = [v for v in views if self.views and v not in self.views and not v.startswith("scale_")]
        if unmappable:
            raise ConfigError(
                f"predict.tta view '{unmappable[0]}' has no inverse for {self.name}; "
                f"expected {', '.join(self.views or ())} or scale_<factor>"
            )

    def check(self, config: Config) -> None:
        """ConfigError naming the first setting this task cannot use: metric, layout, TTA view, blend method and
        the task's own checks, when the config loads, not after training."""
        if config.task != self.name:
            raise ConfigError(f"task '{config.task}': this project was rendered for {self.name}")
        if config.metric not in self.metrics:
            raise ConfigError(
                f"metric={config.metric} is not a {self.name} metric; expected one of {', '.join(self.metrics)}"
            )
        self.check_layout(config.data.layout)
        self.check_views(config.predict.tta)
        method = config.ensemble.method
        if method not in ("auto", "mean", *self.blend_methods):
            raise ConfigError(f"ensemble.method={method}: {self.name} blends with {' | '.join(self.blend_methods)}")
        for extra_check in self.extra_checks:
            extra_check(config)

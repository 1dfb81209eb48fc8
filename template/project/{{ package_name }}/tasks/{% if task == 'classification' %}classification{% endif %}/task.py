"""The classification task object: what the training loop, predict and submit call (single- or multi-label)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from timm.data import Mixup

from ...config import Config
from ...core.augment import create_transform
from ...core.data import ImageDataset
from ...core.errors import ConfigError
from ...core.runs import write_csv
from ...core.task import TaskHooks
from ...core.tta import tta_probabilities
from .loss import balanced_weights, create_loss, soft_target_loss
from .metric import create_metric
from .model import create_model, normalisation
from .submission import build_submission, describe_format, submission_format, validate_submission


class ClassificationTask(TaskHooks):
    """Everything the training loop, predict and submit need to know about classification."""

    name = "classification"
    resizes_first = True  # every transform starts with a Resize to model.image_size: the image cache may pre-resize

    def __init__(self, config: Config, classes: list[str]) -> None:
        self.config = config
        self.classes = list(classes)
        self.multi_label = config.data.multi_label
        self.metric = create_metric(config.metric)
        self.loss = create_loss(self.multi_label, config.train.label_smoothing)
        self.soft_loss = soft_target_loss()

    def balance_classes(self, targets: np.ndarray, device: torch.device) -> np.ndarray:
        """Weight the loss against class imbalance from a fold's training targets (sklearn's "balanced" rule;
        positive weights neg/pos per class for multi-label); returns the weights."""
        weights = balanced_weights(targets, self.num_outputs, self.multi_label)
        self.loss = create_loss(self.multi_label, self.config.train.label_smoothing, weights).to(device)
        return weights

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def create_model(self, pretrained: bool | None = None) -> torch.nn.Module:
        return create_model(self.config.model, self.num_outputs, pretrained=pretrained)

    def normalisation(self, model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return normalisation(model)

    def create_transform(self, augmentations: Any, train: bool) -> Any:
        return create_transform(augmentations, image_size=self.config.model.image_size)

    def create_dataset(
        self, paths: list[str], targets: np.ndarray | None, transform: Any, train: bool = False
    ) -> ImageDataset:
        return ImageDataset(paths, targets, transform, self.config.model.in_chans)

    def to_device(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = batch
        return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)

    def training_loss(self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.compute_loss(model(images), targets)

    def evaluate_batch(
        self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[float, np.ndarray]:
        logits = model(images)
        return float(self.compute_loss(logits, targets)), self.probabilities(logits).cpu().numpy()

    def predict_batch(self, model: torch.nn.Module, images: torch.Tensor, meta: Any, views: list[str]) -> np.ndarray:
        return tta_probabilities(lambda x: self.probabilities(model(x)), images, views).cpu().numpy()

    def evaluate_views(
        self, model: torch.nn.Module, images: torch.Tensor, targets: torch.Tensor, views: list[str]
    ) -> np.ndarray:
        return self.predict_batch(model, images, None, views)

    def merge_models(self, outputs: list[np.ndarray]) -> np.ndarray:
        return np.mean(outputs, axis=0)

    def compute_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.multi_label:
            return self.loss(logits.float(), targets.float())
        if targets.is_floating_point():  # class probabilities: Mixup/CutMix or soft pseudo-labels
            return self.soft_loss(logits.float(), targets)
        return self.loss(logits.float(), targets)

    def create_mixup(self) -> Mixup | None:
        """timm's batch Mixup/CutMix with label smoothing folded into the mixed targets, or None when off."""
        train = self.config.train
        if train.mixup_alpha == 0 and train.cutmix_alpha == 0:
            return None
        if self.multi_label:
            raise ConfigError("train.mixup_alpha / train.cutmix_alpha: Mixup and CutMix need single-label targets")
        if self.config.data.pseudo_labels is not None and self.config.pseudo.soft:
            raise ConfigError("train.mixup_alpha / train.cutmix_alpha: not with soft pseudo-labels (pseudo.soft=true)")
        return Mixup(
            mixup_alpha=train.mixup_alpha,
            cutmix_alpha=train.cutmix_alpha,
            prob=train.mixup_prob,
            switch_prob=train.mixup_switch_prob,
            label_smoothing=train.label_smoothing,
            num_classes=self.num_outputs,
        )

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return logits.sigmoid() if self.multi_label else logits.softmax(dim=1)

    def score(self, targets: np.ndarray, probabilities: np.ndarray) -> float:
        return self.metric.score(targets, probabilities, self.config.submit.threshold)

    def prediction_frame(self, ids: np.ndarray, probabilities: np.ndarray) -> pd.DataFrame:
        """The prediction file contract: an `id` column, then one probability column per class."""
        frame = pd.DataFrame(probabilities, columns=self.classes)
        frame.insert(0, "id", ids)
        return frame

    def write_predictions(
        self, path: Path, ids: np.ndarray, outputs: np.ndarray, fold: int | np.ndarray | None = None
    ) -> Path:
        """`id`, optionally `fold` (one number or one per row), then one probability column per class."""
        frame = self.prediction_frame(ids, outputs)
        if fold is not None:
            frame.insert(1, "fold", fold)
        return write_csv(path, frame)

    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        frame = pd.read_csv(path, dtype={"id": str})
        return frame["id"].to_numpy(), self.read_prediction_frame(frame)

    def submission_format(self, sample: pd.DataFrame) -> str:
        config = self.config
        return submission_format(
            sample, config.data.id_column, self.classes, config.submit.format, config.metric, config.data.multi_label
        )

    def check_sample(self, sample: pd.DataFrame) -> str:
        """Labels or probabilities, as the sample's columns and the metric ask (submit.format=auto)."""
        fmt = self.submission_format(sample)
        return describe_format(fmt, sample, self.config.data.id_column, self.classes, self.config.metric)

    def submission(self, sample: pd.DataFrame, predictions: Path) -> pd.DataFrame:
        """The sample's ids and columns: a label column or one probability column per class."""
        data = self.config.data
        frame = pd.read_csv(predictions, dtype={"id": str})
        fmt = self.submission_format(sample)
        submission = build_submission(
            sample,
            frame,
            self.classes,
            id_column=data.id_column,
            fmt=fmt,
            multi_label=data.multi_label,
            threshold=self.config.submit.threshold,
        )
        validate_submission(submission, sample, id_column=data.id_column, fmt=fmt)
        return submission

    def read_prediction_frame(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [name for name in self.classes if name not in frame.columns]
        if missing:
            raise ValueError(f"prediction file lacks class columns {missing[:5]}")
        return frame[self.classes].to_numpy(dtype=np.float64)


TASK = ClassificationTask

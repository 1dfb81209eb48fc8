"""Semantic segmentation: segmentation-models-pytorch on timm encoders, smp losses and metrics, TTA with exact
inverse mapping, per-class thresholds and minimum areas tuned on OOF, RLE or PNG submissions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torch import nn

from ...config import Config
from ...core.data import LabelledTable, id_stem, object_array
from ...core.errors import ConfigError, SubmissionError
from ...core.metrics import Metric
from ...core.runs import atomic_path, write_json
from ...core.task import Choice, TaskHooks
from ...core.tta import map_probabilities
from .data import MaskSamples, SegmentationDataset
from .labels import decode_target, write_mask_png
from .loss import create_loss
from .metric import per_image_scores, target_channels
from .model import create_segmenter, encoder_normalisation
from .postprocess import binarise, quantise
from .recipe import crop_choice
from .submission import build_submission, check_sample, validate_submission


class SegmentationTask(TaskHooks):
    """Everything the training loop, predict and submit need to know about semantic segmentation."""

    name = "segmentation"

    def __init__(self, config: Config, classes: list[str]) -> None:
        if config.metric not in ("dice", "iou"):
            raise ConfigError(f"metric '{config.metric}': segmentation scores with dice or iou")
        if config.train.mixup_alpha or config.train.cutmix_alpha or config.train.class_weights != "none":
            raise ConfigError("train.mixup_alpha / cutmix_alpha / class_weights are for classification")
        self.config = config
        self.classes = list(classes)
        self.multilabel = config.segmentation.mode == "multilabel"
        self.loss = create_loss(config)
        self.metric = Metric(lambda t, o, _: self._score(o), higher_is_better=True)
        self.post = self.default_postprocessing()

    @property
    def views_merge_as_models(self) -> bool:
        return self.config.segmentation.tta_merge == "soft"  # hard voting counts each view's argmax instead

    @property
    def num_outputs(self) -> int:
        return len(self.classes) if self.multilabel else len(self.classes) + 1

    def default_postprocessing(self) -> dict[str, list]:
        seg = self.config.segmentation
        return {"thresholds": [seg.threshold] * len(self.classes), "min_areas": [seg.min_area] * len(self.classes)}

    def load_postprocessing(self, run_folder: Path) -> None:
        """The thresholds and minimum areas tune_postprocessing saved in the run folder (when tuning is on)."""
        path = run_folder / "postprocess.json"
        if self.config.segmentation.tune and path.is_file():
            self.post = json.loads(path.read_text())

    def create_model(self, pretrained: bool | None = None) -> nn.Module:
        return create_segmenter(self.config.model, self.config.segmentation, self.num_outputs, pretrained)

    def model_name(self) -> str:
        return f"smp {self.config.segmentation.architecture} on {self.config.model.backbone}"

    def normalisation(self, model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return encoder_normalisation(self.config.model.backbone)

    def target_mask(self, target: dict[str, Any], height: int, width: int) -> np.ndarray:
        """An image's mask at its own size: (H, W) indices, or (K, H, W) 0/1 channels for multilabel."""
        mask = decode_target(target, height, width, len(self.classes), self.multilabel)
        return mask.transpose(2, 0, 1) if mask.ndim == 3 else mask

    def create_transform(self, augmentations: Any, train: bool) -> A.Compose:
        if augmentations is not None and not isinstance(augmentations, A.BasicTransform | A.BaseCompose):
            raise ConfigError("segmentation augmentations must be albumentations transforms (no torchvision backend)")
        size, crop = self.config.model.image_size, self.config.segmentation.train_crop
        steps: list[Any] = [A.Resize(size, size)]
        if train and isinstance(crop, int) and crop < size:  # crops that keep objects in view, whole images at test
            steps.append(A.CropNonEmptyMaskIfExists(crop, crop))
        if augmentations is not None:
            steps.append(augmentations)
        return A.Compose([*steps, ToTensorV2(transpose_mask=True)])

    def data_settings(self, table: LabelledTable) -> list[Choice]:
        """segmentation.train_crop=auto: large images train on crops (core/recipe.py)."""
        crop = crop_choice(self.config)
        return [] if crop is None else [crop]

    def create_dataset(
        self, paths: list[str], targets: np.ndarray | None, transform: Any, train: bool = False
    ) -> SegmentationDataset:
        samples = MaskSamples(
            self.config.model.in_chans, len(self.classes), self.multilabel, self.config.segmentation.copy_paste_p
        )
        return SegmentationDataset(paths, targets, transform, samples, train)

    def to_device(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        images, targets = batch
        return images.to(device, non_blocking=True), targets.to(device, non_blocking=True)

    def training_loss(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.loss(model(images), targets)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return logits.sigmoid() if self.multilabel else logits.softmax(dim=1)

    def evaluate_batch(self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor) -> tuple[float, np.ndarray]:
        logits = model(images)
        loss = float(self.loss(logits, targets))
        probabilities = quantise(self.probabilities(logits))
        masks = targets.to(torch.uint8).cpu().numpy()
        items = [{"probs": p, "target": t} for p, t in zip(probabilities, masks, strict=True)]
        return loss, object_array(items)

    def _view_probabilities(self, model: nn.Module, images: torch.Tensor, views: list[str]) -> np.ndarray:
        hard = self.config.segmentation.tta_merge == "hard"
        return quantise(map_probabilities(lambda x: self.probabilities(model(x)), images, views, hard, self.multilabel))

    def evaluate_views(
        self, model: nn.Module, images: torch.Tensor, targets: torch.Tensor, views: list[str]
    ) -> np.ndarray:
        masks = targets.to(torch.uint8).cpu().numpy()
        merged = self._view_probabilities(model, images, views)
        return object_array([{"probs": p, "target": t} for p, t in zip(merged, masks, strict=True)])

    def predict_batch(self, model: nn.Module, images: torch.Tensor, meta: torch.Tensor, views: list[str]) -> np.ndarray:
        merged = self._view_probabilities(model, images, views)
        sizes = [tuple(float(v) for v in row) for row in meta.tolist()]
        return object_array([{"probs": p, "size": s} for p, s in zip(merged, sizes, strict=True)])

    def merge_models(self, outputs: list[np.ndarray]) -> np.ndarray:
        merged = []
        for parts in zip(*outputs, strict=True):
            mean = np.mean([part["probs"].astype(np.float32) for part in parts], axis=0)
            merged.append({**parts[0], "probs": mean.round().astype(np.uint8)})
        return object_array(merged)

    def _masks(self, outputs: np.ndarray, post: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
        """(predicted, target) (N, K, H, W) 0/1 masks; pixels of the ignore index are blanked in both, so they
        count in neither Dice nor IoU."""
        predicted = np.stack(
            [
                binarise(o["probs"].astype(np.float32) / 255, self.multilabel, post["thresholds"], post["min_areas"])
                for o in outputs
            ]
        )
        targets = np.stack([target_channels(o["target"], len(self.classes), self.multilabel) for o in outputs])
        ignore = self.config.segmentation.ignore_index
        if ignore is not None and not self.multilabel:
            ignored = np.stack([o["target"] == ignore for o in outputs])[:, None]
            predicted = np.where(ignored, 0, predicted).astype(np.uint8)
        return predicted, targets

    def _score(self, outputs: np.ndarray, post: dict[str, list] | None = None) -> float:
        predicted, targets = self._masks(outputs, post or self.post)
        dice, iou, _ = per_image_scores(predicted, targets)
        return float((dice if self.config.metric == "dice" else iou).mean())

    def score(self, targets: np.ndarray, outputs: np.ndarray) -> float:
        """The metric against the masks as the validation transform made them from `targets` (each output
        carries its mask at model resolution: the table's targets are files at the original size, and aug.valid
        may crop or pad); `targets` must be the same rows."""
        if len(targets) != len(outputs):
            raise ValueError(f"score: {len(targets)} targets for {len(outputs)} outputs")
        return self._score(outputs)

    def class_scores(self, outputs: np.ndarray) -> dict[str, dict[str, float]]:
        """Per class: Dice and IoU over all images and over images where the class is present."""
        predicted, targets = self._masks(outputs, self.post)
        dice, iou, present = per_image_scores(predicted, targets)
        report = {}
        for k, name in enumerate(self.classes):
            rows = present[:, k]
            report[name] = {
                "dice": float(dice[:, k].mean()),
                "iou": float(iou[:, k].mean()),
                "dice_non_empty": float(dice[rows, k].mean()) if rows.any() else float("nan"),
            }
        return report

    def tune_postprocessing(self, outputs: np.ndarray, run_folder: Path) -> dict[str, Any]:
        """Per class, the probability threshold (multilabel) and the minimum area that maximise the OOF metric;
        classes do not interact, so each is tuned on its own. Saved as postprocess.json for predict and submit."""
        if not self.config.segmentation.tune:
            return {}
        post = self.default_postprocessing()
        before = self._score(outputs, post)
        probabilities = np.stack([o["probs"] for o in outputs]).astype(np.float32) / 255
        targets = self._masks(outputs, post)[1]
        winner = None if self.multilabel else probabilities.argmax(axis=1)
        height, width = probabilities.shape[-2:]
        areas = [0, *(int(height * width * share) for share in (0.001, 0.0025, 0.005, 0.01, 0.02))]
        thresholds = [0.3, 0.4, 0.5, 0.6, 0.7] if self.multilabel else [post["thresholds"][0]]
        chosen = []
        for k in range(len(self.classes)):
            target_empty = targets[:, k].reshape(len(targets), -1).max(axis=1) == 0
            best: tuple | None = None
            for threshold in thresholds:
                predicted = probabilities[:, k] >= threshold if winner is None else winner == k + 1
                dice, iou, _ = per_image_scores(predicted[:, None].astype(np.uint8), targets[:, k : k + 1])
                values = (dice if self.config.metric == "dice" else iou)[:, 0]
                area = predicted.reshape(len(predicted), -1).sum(axis=1)
                for minimum in areas:
                    # Emptying a mask scores 1 on an empty target and 0 otherwise.
                    trial = np.where((area > 0) & (area < minimum), target_empty.astype(np.float64), values)
                    if best is None or trial.mean() > best[0] + 1e-9:
                        best = (trial.mean(), threshold, minimum, trial)
            post["thresholds"][k], post["min_areas"][k] = best[1], best[2]
            chosen.append(best[3])
        after = float(np.mean(chosen))
        self.post = post
        write_json(run_folder / "postprocess.json", {**post, "oof_before": before, "oof_after": after})
        return {"oof_score_tuned": after, "class_scores": self.class_scores(outputs)}

    # --- prediction files: bytes of probabilities in one compressed npz -----------------------------------

    def write_predictions(self, path: Path, ids: np.ndarray, outputs: np.ndarray, fold: Any = None) -> Path:
        """`<name>.npz`: ids, fold, probs (N, C, h, w) uint8 at model resolution, original sizes, and the
        validation masks when the outputs carry them (OOF)."""
        path = path.with_suffix(".npz")
        arrays: dict[str, Any] = {"ids": np.asarray(ids, dtype=str), "probs": np.stack([o["probs"] for o in outputs])}
        if "target" in outputs[0]:
            arrays["targets"] = np.stack([o["target"] for o in outputs])
        if "size" in outputs[0]:
            arrays["sizes"] = np.array([o["size"] for o in outputs], dtype=np.float64)
        if fold is not None:
            arrays["fold"] = np.broadcast_to(np.asarray(fold), (len(ids),))
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as temporary, open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        return path

    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        path = path.with_suffix(".npz")
        if not path.is_file():
            raise SubmissionError(f"{path}: predictions not found")
        with np.load(path) as data:  # each data[key] decompresses the whole array: read every key once
            arrays = {key: data[key] for key in data.files}
        items = []
        for i in range(len(arrays["ids"])):
            item: dict[str, Any] = {"probs": arrays["probs"][i]}
            if "targets" in arrays:
                item["target"] = arrays["targets"][i]
            if "sizes" in arrays:
                item["size"] = tuple(arrays["sizes"][i])
            items.append(item)
        return arrays["ids"].astype(str), object_array(items)

    def original_masks(self, output: dict[str, Any]) -> np.ndarray:
        """(K, H, W) 0/1 masks at the image's own size, post-processed."""
        width, height = (int(v) for v in output["size"])
        probabilities = output["probs"].astype(np.float32) / 255
        resized = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probabilities])
        scale = (width * height) / float(probabilities.shape[-1] * probabilities.shape[-2])
        areas = [int(a * scale) for a in self.post["min_areas"]]
        return binarise(resized, self.multilabel, self.post["thresholds"], areas)

    def submission(self, sample: pd.DataFrame, predictions: Path) -> pd.DataFrame:
        """The sample's rows with the RLE of each image's (or image and class's) post-processed mask, checked."""
        data = self.config.data
        check_sample(sample, data)
        ids, outputs = self.read_predictions(predictions)
        by_id = {id_stem(image_id): output for image_id, output in zip(ids, outputs, strict=True)}
        sizes = {image_id: (int(o["size"][1]), int(o["size"][0])) for image_id, o in by_id.items()}  # (h, w)

        def masks_of(image_id: str) -> np.ndarray | None:
            return self.original_masks(by_id[image_id]) if image_id in by_id else None

        submission = build_submission(sample, data, self.classes, masks_of, predictions.with_suffix(".npz"))
        validate_submission(submission, sample, data, sizes)
        return submission

    def check_sample(self, sample: pd.DataFrame) -> str:
        return check_sample(sample, self.config.data)

    def write_submission_extras(self, predictions: Path, folder: Path) -> list[Path]:
        """segmentation.submission=png: index PNGs of the masks in `folder`/masks."""
        if self.config.segmentation.submission != "png":
            return []
        ids, outputs = self.read_predictions(predictions)
        return [self.write_pngs(folder / "masks", ids, outputs)]

    def write_pngs(self, folder: Path, ids: np.ndarray, outputs: np.ndarray) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        for image_id, output in zip(ids, outputs, strict=True):
            masks = self.original_masks(output)
            index = np.zeros(masks.shape[1:], dtype=np.uint8)
            for k in range(len(masks)):
                index[masks[k] > 0] = k + 1
            write_mask_png(folder / f"{image_id}.png", index)
        return folder


TASK = SegmentationTask

"""Object detection: torchvision detectors (COCO weights, or a timm FPN backbone), box-aware albumentations with
Mosaic and Copy-Paste, COCO mAP through pycocotools, TTA and fold merging with ensemble-boxes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pandas as pd
import torch
from albumentations.pytorch import ToTensorV2
from torch import nn

from ...config import Config
from ...core.data import LabelledTable, id_stem, object_array
from ...core.errors import ConfigError, SubmissionError
from ...core.metrics import Metric
from ...core.registry import lookup
from ...core.runs import write_csv
from ...core.task import Choice, TaskHooks
from ...core.tta import deaugment_boxes, get_view
from .data import DetectionDataset, collate, flatten_transforms
from .metric import METRICS
from .model import ANCHOR_LEVELS, anchor_sizes_for, box_sides, create_detector, detector_name
from .postprocess import (
    autocast_backbone_only,
    detect,
    detection_record,
    detector_input_size,
    merge_boxes,
    output_objects,
)
from .recipe import image_size_choice
from .submission import INTERNAL_TOKENS, check_prediction_strings, parse_prediction_string, prediction_string


class TrainingForward(nn.Module):
    """A detector's training forward on {"images", "targets"} batches (what update_bn passes along)."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        targets = [{key: t[key] for key in ("boxes", "labels")} for t in batch["targets"]]
        return self.detector(batch["images"], targets)


class DetectionTask(TaskHooks):
    """Everything the training loop, predict and submit need to know about object detection."""

    name = "detection"
    collate_fn = staticmethod(collate)
    variable_input_size = True  # torchvision detectors resize each image on its own: no cuDNN autotuning

    def __init__(self, config: Config, classes: list[str]) -> None:
        lookup(METRICS, config.metric, "metric")
        if config.train.mixup_alpha or config.train.cutmix_alpha:
            raise ConfigError("train.mixup_alpha / train.cutmix_alpha: for classification; use detection.mosaic_p")
        if config.train.class_weights != "none":
            raise ConfigError("train.class_weights: for classification; detection losses weigh boxes, not images")
        self.config = config
        self.classes = list(classes)
        self.metric = Metric(lambda t, o, _: METRICS[config.metric](self, t, o), higher_is_better=True)

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def create_model(self, pretrained: bool | None = None) -> nn.Module:
        use_pretrained = self.config.model.pretrained if pretrained is None else pretrained
        return create_detector(self.config, len(self.classes), use_pretrained)

    def model_name(self) -> str:
        return detector_name(self.config)

    def weights_name(self) -> str:
        return self.config.detection.architecture

    def data_settings(self, table: LabelledTable) -> list[Choice]:
        """Under a time budget, the resolution the small boxes allow (detection.fit_image_size); then
        detection.anchor_sizes=auto from the training boxes at that size, for the detectors that take them
        (torchvision's COCO models keep the anchors their weights were trained with)."""
        config, det = self.config, self.config.detection
        boxes = [target["boxes"] for target in table.targets]
        widths, heights = table.frame["width"].to_numpy(), table.frame["height"].to_numpy()
        resolution = image_size_choice(config, box_sides(boxes, widths, heights, config.model.image_size))
        choices = [] if resolution is None else [resolution]
        if det.anchor_sizes == "auto" and det.architecture in ANCHOR_LEVELS:
            size = config.model.image_size if resolution is None else resolution.settings["model"]["image_size"]
            sizes, reason = anchor_sizes_for(box_sides(boxes, widths, heights, size), size, det.architecture)
            choices.append(Choice({"detection": {"anchor_sizes": sizes}}, f"detection.anchor_sizes={sizes}: {reason}"))
        return choices

    def normalisation(self, model: nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
        return (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)  # 0-1 floats: torchvision detectors normalise inside (model.transform)

    def create_transform(self, augmentations: Any, train: bool) -> A.Compose:
        size, det = self.config.model.image_size, self.config.detection
        steps: list[Any] = []
        if train and det.mosaic_p > 0:
            steps.append(A.Mosaic(target_size=(size, size), cell_shape=(size, size), p=det.mosaic_p))
        steps += [A.Resize(size, size), *flatten_transforms(augmentations), ToTensorV2()]
        bbox_params = A.BboxParams(
            format="pascal_voc",
            label_fields=["labels"],
            min_visibility=det.min_visibility,
            min_area=det.min_area,
            clip=True,
        )
        return A.Compose(steps, bbox_params=bbox_params)

    def create_dataset(
        self, paths: list[str], targets: np.ndarray | None, transform: Any, train: bool = False
    ) -> DetectionDataset:
        return DetectionDataset(paths, targets, transform, self.config, train)

    def to_device(self, batch: Any, device: torch.device) -> tuple[torch.Tensor, Any]:
        images, targets = batch
        moved = [{key: value.to(device) for key, value in target.items()} for target in targets]
        return images.to(device, non_blocking=True), moved

    def training_loss(self, model: nn.Module, images: torch.Tensor, targets: list[dict]) -> torch.Tensor:
        inputs = [{key: t[key] for key in ("boxes", "labels")} for t in targets]
        return sum(model(list(images), inputs).values())

    def update_batchnorm(self, model: nn.Module, loader: Any, normalise: Any) -> None:
        """SWA for detectors: torchvision detectors run their heads only in the training forward, which needs the
        targets, so the statistics are gathered through that forward. update_bn resets nn.BatchNorm layers only:
        FrozenBatchNorm2d (torchvision's pretrained ResNet backbones) keeps its fixed ImageNet statistics, which
        every SWA and soup ingredient shares, so averaging leaves it as it was."""
        from torch.optim.swa_utils import update_bn

        device = next(model.parameters()).device
        batches = (
            {"images": list(normalise(images)), "targets": self.to_device((images, targets), device)[1]}
            for images, targets in loader
        )
        update_bn(batches, TrainingForward(model))  # device None: dict batches are moved above, not by update_bn

    def _to_original(self, output: dict[str, torch.Tensor], size: tuple[float, float], view_size: float) -> dict:
        scale = np.array([size[0], size[1], size[0], size[1]]) / view_size
        found = output_objects(output)
        return detection_record(found["boxes"] * scale, found["scores"], found["labels"], size)

    def evaluate_batch(self, model: nn.Module, images: torch.Tensor, targets: list[dict]) -> tuple[None, np.ndarray]:
        with autocast_backbone_only(model):
            outputs = detect(model, list(images))
        size = self.config.model.image_size
        return None, object_array(
            [self._to_original(o, tuple(t["size"].tolist()), size) for o, t in zip(outputs, targets, strict=True)]
        )

    def predict_batch(self, model: nn.Module, images: torch.Tensor, meta: torch.Tensor, views: list[str]) -> np.ndarray:
        size = float(self.config.model.image_size)
        per_view = []
        for view in views:
            factor = float(view.removeprefix("scale_")) if view.startswith("scale_") else 1.0
            with detector_input_size(model, factor), autocast_backbone_only(model):
                outputs = detect(model, list(get_view(view)(images)))
            view_size = size * factor
            detections = []
            for output in outputs:
                found = output_objects(output)
                boxes = deaugment_boxes(view, found["boxes"], view_size, view_size)
                detections.append({"boxes": boxes / factor, "scores": found["scores"], "labels": found["labels"]})
            per_view.append(detections)
        det = self.config.detection
        merged = []
        for index, original in enumerate(meta.tolist()):
            parts = [view_detections[index] for view_detections in per_view]
            if len(parts) == 1:
                result = detection_record(parts[0]["boxes"], parts[0]["scores"], parts[0]["labels"], (size, size))
            else:
                result = merge_boxes(parts, (size, size), det.merge, det.merge_iou, det.merge_skip)
            scale = np.array([original[0], original[1], original[0], original[1]]) / size
            merged.append(
                detection_record(result["boxes"] * scale, result["scores"], result["labels"], tuple(original))
            )
        return object_array(merged)

    def evaluate_views(
        self, model: nn.Module, images: torch.Tensor, targets: list[dict], views: list[str]
    ) -> np.ndarray:
        return self.predict_batch(model, images, torch.stack([t["size"] for t in targets]), views)

    def merge_models(self, outputs: list[np.ndarray]) -> np.ndarray:
        if len(outputs) == 1:
            return outputs[0]
        det = self.config.detection
        return object_array(
            [
                merge_boxes(list(parts), parts[0]["size"], det.merge, det.merge_iou, det.merge_skip)
                for parts in zip(*outputs, strict=True)
            ]
        )

    def score(self, targets: np.ndarray, outputs: np.ndarray) -> float:
        return float(self.metric.score(targets, outputs, 0.0))

    def write_predictions(self, path: Path, ids: np.ndarray, outputs: np.ndarray, fold: Any = None) -> Path:
        """`id`, optional `fold`, `width`, `height`, `prediction`: 'class_index score x1 y1 x2 y2 ...' in pixels."""
        frame = pd.DataFrame(
            {
                "id": ids,
                "width": [o["size"][0] for o in outputs],
                "height": [o["size"][1] for o in outputs],
                "prediction": [
                    prediction_string(o["boxes"], o["scores"], [str(x) for x in o["labels"]], INTERNAL_TOKENS)
                    for o in outputs
                ],
            }
        )
        if fold is not None:
            frame.insert(1, "fold", fold)
        return write_csv(path, frame)

    def write_prediction_extras(self, path: Path, ids: np.ndarray, outputs: np.ndarray) -> list[Path]:
        """Test predictions as COCO results JSON too (`<name>_coco.json`), for COCO tooling and other frameworks."""
        return [self.write_coco_results(path.with_name(f"{path.stem}_coco.json"), ids, outputs)]

    def read_predictions(self, path: Path) -> tuple[np.ndarray, np.ndarray]:
        try:
            frame = pd.read_csv(path, dtype={"id": str, "prediction": str}, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise SubmissionError(f"{path}: empty file; expected id, width, height, prediction") from None
        missing = [c for c in ("id", "width", "height", "prediction") if c not in frame.columns]
        if missing:
            raise SubmissionError(f"{path}: missing columns {missing} (expected id, width, height, prediction)")
        outputs = []
        for row, item in enumerate(frame.itertuples(index=False)):
            try:
                boxes, scores, labels = parse_prediction_string(item.prediction, INTERNAL_TOKENS)
                label_index = np.array([int(label) for label in labels], dtype=np.int64)
            except ValueError as error:
                raise SubmissionError(f"{path}: row {row + 2}: {error}") from error
            outputs.append(detection_record(boxes, scores, label_index, (float(item.width), float(item.height))))
        return frame["id"].to_numpy(), object_array(outputs)

    def submission(self, sample: pd.DataFrame, predictions: Path) -> pd.DataFrame:
        """The sample's ids (its order) and its prediction column as PredictionStrings in the configured token
        order; an image without boxes gets an empty string."""
        det, id_column = self.config.detection, self.config.data.id_column
        self.check_sample(sample)
        targets = [column for column in sample.columns if column != id_column]
        ids, outputs = self.read_predictions(predictions)
        by_id = {id_stem(image_id): output for image_id, output in zip(ids, outputs, strict=True)}
        tokens = self.label_tokens()
        strings = []
        for sample_id in sample[id_column].astype(str):
            key = id_stem(sample_id)  # sample ids may carry the image extension
            if key not in by_id:
                raise SubmissionError(f"{predictions}: no prediction for sample id '{sample_id}'")
            output = by_id[key]
            names = [tokens[i] for i in output["labels"]]
            size = output["size"] if det.submission_normalized else None
            strings.append(prediction_string(output["boxes"], output["scores"], names, det.submission_tokens, size))
        submission = pd.DataFrame({id_column: sample[id_column].to_numpy(), targets[0]: strings})
        check_prediction_strings(submission[targets[0]], det.submission_tokens, tokens)
        return submission

    def check_sample(self, sample: pd.DataFrame) -> str:
        """One PredictionString column besides the id, and class tokens a PredictionString can carry."""
        id_column = self.config.data.id_column
        targets = [column for column in sample.columns if column != id_column]
        if len(targets) != 1:
            raise SubmissionError(f"sample submission needs one prediction column besides '{id_column}', has {targets}")
        tokens = self.label_tokens()
        kind = "class indices" if tokens != list(self.classes) else "class names"
        det = self.config.detection
        scale = "fractions of the image" if det.submission_normalized else "pixels"
        return f"PredictionString in column '{targets[0]}': '{det.submission_tokens}' per box, {kind}, {scale}"

    def label_tokens(self) -> list[str]:
        """The class token of each class in a PredictionString: names unless one holds a separator."""
        choice = self.config.detection.submission_label
        unsafe = [name for name in self.classes if not name or any(char in name for char in " ,\t")]
        if choice == "index" or (choice == "auto" and unsafe):
            return [str(index) for index in range(len(self.classes))]
        if unsafe:
            raise SubmissionError(
                f"class name {unsafe[0]!r} holds a space or comma, which a space-separated PredictionString cannot "
                "carry; use detection.submission_label=index (or auto)"
            )
        return list(self.classes)

    def coco_results(self, ids: np.ndarray, outputs: np.ndarray, category_ids: dict[str, int] | None = None) -> list:
        """COCO results JSON entries (image_id = image id, bbox xywh pixels); category ids from the training COCO
        file when there is one, else class index + 1."""
        results = []
        for image_id, output in zip(ids, outputs, strict=True):
            for box, score, label in zip(output["boxes"], output["scores"], output["labels"], strict=True):
                name = self.classes[int(label)]
                category = category_ids[name] if category_ids else int(label) + 1
                results.append(
                    {
                        "image_id": str(image_id),
                        "category_id": category,
                        "bbox": [
                            round(float(box[0]), 2),
                            round(float(box[1]), 2),
                            round(float(box[2] - box[0]), 2),
                            round(float(box[3] - box[1]), 2),
                        ],
                        "score": round(float(score), 5),
                    }
                )
        return results

    def write_coco_results(self, path: Path, ids: np.ndarray, outputs: np.ndarray) -> Path:
        from ...core.runs import write_json

        category_ids = None
        data = self.config.data
        if data.layout == "coco":
            coco = json.loads((data.root / data.annotations).read_text())
            category_ids = {str(c["name"]): int(c["id"]) for c in coco["categories"]}
        return write_json(path, self.coco_results(ids, outputs, category_ids))


TASK = DetectionTask

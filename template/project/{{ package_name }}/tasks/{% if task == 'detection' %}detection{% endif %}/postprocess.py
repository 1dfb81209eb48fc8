"""Boxes after the model: views and folds merged with ensemble-boxes (WBF, NMS, soft-NMS, NMW), per-image
detection records."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn


@contextlib.contextmanager
def detector_input_size(model: nn.Module, factor: float) -> Iterator[None]:
    """Scale views: let torchvision's internal resize keep the scaled size instead of undoing it."""
    transform = model.transform
    saved = transform.min_size, transform.max_size
    if factor != 1.0 and getattr(transform, "fixed_size", None) is None:
        transform.min_size = (round(saved[0][-1] * factor),)
        transform.max_size = round(saved[1] * factor)
    try:
        yield
    finally:
        transform.min_size, transform.max_size = saved


def _as_fp32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float()
    if isinstance(value, dict):
        return type(value)((key, _as_fp32(item)) for key, item in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_as_fp32(item) for item in value)
    return value


@contextlib.contextmanager
def autocast_backbone_only(model: nn.Module) -> Iterator[None]:
    """Under an active autocast, the detector's backbone runs in it and everything after it in fp32: box
    regression decoding and NMS in bf16 (8 significant bits) would move a box edge near 300 px in 2-px steps."""
    parameter = next(model.parameters(), None)
    device_type = parameter.device.type if parameter is not None else "cpu"
    if parameter is None or not torch.is_autocast_enabled(device_type):
        yield
        return
    dtype = torch.get_autocast_dtype(device_type)
    backbone = model.backbone
    backbone_forward = backbone.forward

    def mixed_precision_forward(*args: Any, **kwargs: Any) -> Any:
        with torch.autocast(device_type, dtype=dtype):
            return _as_fp32(backbone_forward(*args, **kwargs))

    backbone.forward = mixed_precision_forward  # this instance only, for the duration of the call
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        del backbone.forward


def merge_boxes(
    parts: list[dict[str, np.ndarray]],
    size: tuple[float, float],
    method: str,
    iou: float,
    skip: float,
    weights: list[float] | None = None,
) -> dict[str, np.ndarray]:
    """One image's detections from several views or models merged with ensemble-boxes (WBF, NMS, ...), each
    part's scores weighted by its weight (equal when None)."""
    from ensemble_boxes import nms, non_maximum_weighted, soft_nms, weighted_boxes_fusion

    width, height = size
    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes, scores, labels = [], [], []
    for part in parts:
        normalised = np.clip(np.asarray(part["boxes"], dtype=np.float64).reshape(-1, 4) / scale, 0, 1)
        keep = (normalised[:, 2] > normalised[:, 0]) & (normalised[:, 3] > normalised[:, 1])  # ensemble-boxes warns
        boxes.append(normalised[keep])
        scores.append(np.asarray(part["scores"])[keep])
        labels.append(np.asarray(part["labels"])[keep])
    if sum(len(b) for b in boxes) == 0:
        return detection_record(np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=np.int64), size)
    mergers = {
        "wbf": lambda: weighted_boxes_fusion(boxes, scores, labels, weights, iou_thr=iou, skip_box_thr=skip),
        "nms": lambda: nms(boxes, scores, labels, iou_thr=iou, weights=weights),
        "soft_nms": lambda: soft_nms(boxes, scores, labels, iou_thr=iou, thresh=max(skip, 1e-3), weights=weights),
        "nmw": lambda: non_maximum_weighted(boxes, scores, labels, weights, iou_thr=iou, skip_box_thr=skip),
    }
    merged_boxes, merged_scores, merged_labels = mergers[method]()
    return detection_record(merged_boxes * scale, merged_scores, merged_labels.astype(np.int64), size)


def box_iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(n, m) IoU of xyxy boxes (torchvision's box_iou; pairs of zero-area boxes score 0)."""
    from torchvision.ops import box_iou as pairwise_iou

    pairs = pairwise_iou(
        torch.as_tensor(first, dtype=torch.float64).reshape(-1, 4),
        torch.as_tensor(second, dtype=torch.float64).reshape(-1, 4),
    )
    return torch.nan_to_num(pairs, nan=0.0).numpy()


def detection_record(boxes: Any, scores: Any, labels: Any, size: tuple[float, float]) -> dict[str, Any]:
    return {
        "boxes": np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
        "scores": np.asarray(scores, dtype=np.float64).reshape(-1),
        "labels": np.asarray(labels, dtype=np.int64).reshape(-1),
        "size": (float(size[0]), float(size[1])),
    }


def output_objects(output: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """A torchvision detector's output as numpy with 0-based class labels; background (label 0), which
    sigmoid-based heads (FCOS, RetinaNet) can still emit, is dropped."""
    labels = output["labels"].cpu().numpy()
    keep = labels > 0
    return {
        "boxes": output["boxes"].float().cpu().numpy().reshape(-1, 4)[keep],
        "scores": output["scores"].float().cpu().numpy()[keep],
        "labels": labels[keep] - 1,
    }


def detect(model: torch.nn.Module, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """The detector's outputs for `images`. GroupNorm (the FCOS and RetinaNet heads) needs more than one value per
    channel, and the coarsest feature map of a small image is 1x1 (128 px and below): a lone image, the last batch
    of a split, runs beside a copy of itself."""
    if len(images) == 1:
        return model([images[0], images[0]])[:1]
    return model(images)

"""Dice and IoU per image and class (smp's confusion statistics), empty masks scored as the competition does."""

from __future__ import annotations

import numpy as np
import segmentation_models_pytorch as smp
import torch


def per_image_scores(predicted: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dice, iou, target non-empty) per image and class for (N, K, H, W) 0/1 masks, from smp's statistics;
    an empty prediction of an empty mask scores 1, as Kaggle scores it."""
    tp, fp, fn, tn = smp.metrics.get_stats(  # smp views the tensors flat: they must be contiguous
        torch.as_tensor(np.ascontiguousarray(predicted), dtype=torch.long),
        torch.as_tensor(np.ascontiguousarray(target), dtype=torch.long),
        mode="multilabel",
    )
    dice = smp.metrics.f1_score(tp, fp, fn, tn, reduction="none", zero_division=1.0).numpy()
    iou = smp.metrics.iou_score(tp, fp, fn, tn, reduction="none", zero_division=1.0).numpy()
    return dice, iou, (tp + fn).numpy() > 0


def target_channels(target: np.ndarray, num_classes: int, multilabel: bool) -> np.ndarray:
    if multilabel:
        return target.astype(np.uint8)
    return np.stack([(target == k + 1) for k in range(num_classes)]).astype(np.uint8)

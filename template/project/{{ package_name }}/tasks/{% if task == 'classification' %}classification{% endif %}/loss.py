"""Classification losses: cross-entropy (single-label) or binary cross-entropy (multi-label) with label smoothing
and optional class weights, and the soft-target loss for Mixup/CutMix and soft pseudo-labels."""

from __future__ import annotations

import numpy as np
import torch
from timm.loss import BinaryCrossEntropy, SoftTargetCrossEntropy


def create_loss(multi_label: bool, smoothing: float, weights: np.ndarray | None = None) -> torch.nn.Module:
    """weights: per class (single-label) or positive weights per class (multi-label)."""
    weight = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    if multi_label:
        return BinaryCrossEntropy(smoothing=smoothing, pos_weight=weight)
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=smoothing)


def soft_target_loss() -> torch.nn.Module:
    # Soft targets (Mixup/CutMix, soft pseudo-labels) already carry any smoothing: no second smoothing.
    return SoftTargetCrossEntropy()


def balanced_weights(targets: np.ndarray, num_classes: int, multi_label: bool) -> np.ndarray:
    """sklearn's "balanced" class weights from a fold's training targets; neg/pos per class for multi-label."""
    from sklearn.utils.class_weight import compute_class_weight

    if multi_label:
        positives = targets.sum(axis=0)
        return (len(targets) - positives) / np.clip(positives, 1, None)
    present = np.unique(targets)
    weights = np.ones(num_classes)
    weights[present] = compute_class_weight("balanced", classes=present, y=targets)
    return weights

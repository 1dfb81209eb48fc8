"""Probability maps to masks: per-class thresholds (multilabel) or argmax, minimum areas, and the uint8
quantisation stored in prediction files."""

from __future__ import annotations

import numpy as np
import torch


def binarise(probabilities: np.ndarray, multilabel: bool, thresholds: list[float], min_areas: list[int]) -> np.ndarray:
    """(K, H, W) 0/1 masks of the K classes from probabilities ((K, H, W) multilabel, (K+1, H, W) multiclass):
    argmax or per-class thresholds, then a class mask smaller than its minimum area is emptied."""
    if multilabel:
        masks = (probabilities >= np.asarray(thresholds, dtype=np.float32)[:, None, None]).astype(np.uint8)
    else:
        winner = probabilities.argmax(axis=0)
        masks = np.stack([(winner == k + 1) for k in range(probabilities.shape[0] - 1)]).astype(np.uint8)
    for k, area in enumerate(min_areas):
        if 0 < masks[k].sum() < area:
            masks[k] = 0
    return masks


def quantise(probabilities: torch.Tensor) -> np.ndarray:
    # Probabilities are kept as bytes: OOF maps of a whole competition fit in memory and on disk.
    return (probabilities.float().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

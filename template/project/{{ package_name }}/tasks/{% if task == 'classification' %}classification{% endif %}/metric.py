"""Classification metrics over targets and probabilities (threshold for multi-label), by config name."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, log_loss, roc_auc_score

from ...core.metrics import Metric
from ...core.registry import lookup


def _hard(probabilities: np.ndarray, multi_label: bool, threshold: float) -> np.ndarray:
    return (probabilities >= threshold).astype(int) if multi_label else probabilities.argmax(axis=1)


def _accuracy(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    multi = targets.ndim == 2
    # Multi-label: exact-match (subset) accuracy.
    return float(accuracy_score(targets.astype(int) if multi else targets, _hard(probabilities, multi, threshold)))


def _f1_macro(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    multi = targets.ndim == 2
    predicted = _hard(probabilities, multi, threshold)
    labels = None if multi else np.arange(probabilities.shape[1])
    return float(
        f1_score(targets.astype(int) if multi else targets, predicted, average="macro", labels=labels, zero_division=0)
    )


def _log_loss(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    clipped = np.clip(probabilities, 1e-7, 1 - 1e-7)
    if targets.ndim == 2:  # mean binary cross-entropy over classes
        return float(-np.mean(targets * np.log(clipped) + (1 - targets) * np.log(1 - clipped)))
    clipped = clipped / clipped.sum(axis=1, keepdims=True)
    return float(log_loss(targets, clipped, labels=np.arange(probabilities.shape[1])))


def _roc_auc(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    if targets.ndim == 2:
        present = targets.min(axis=0) != targets.max(axis=0)  # AUC is undefined for a constant column
        return float(roc_auc_score(targets[:, present], probabilities[:, present], average="macro"))
    if probabilities.shape[1] == 2:
        return float(roc_auc_score(targets, probabilities[:, 1]))
    present = np.unique(targets)
    restricted = probabilities[:, present]
    restricted = restricted / np.clip(restricted.sum(axis=1, keepdims=True), 1e-12, None)
    if len(present) == 2:
        return float(roc_auc_score(targets == present[1], restricted[:, 1]))
    return float(roc_auc_score(targets, restricted, multi_class="ovr", labels=present))


def _qwk(targets: np.ndarray, probabilities: np.ndarray, threshold: float) -> float:
    return float(cohen_kappa_score(targets, probabilities.argmax(axis=1), weights="quadratic"))


METRICS: dict[str, Metric] = {
    "accuracy": Metric(_accuracy, higher_is_better=True),
    "f1_macro": Metric(_f1_macro, higher_is_better=True),
    "log_loss": Metric(_log_loss, higher_is_better=False),
    "roc_auc": Metric(_roc_auc, higher_is_better=True),
    "qwk": Metric(_qwk, higher_is_better=True),
}


def create_metric(name: str) -> Metric:
    return lookup(METRICS, name, "metric")

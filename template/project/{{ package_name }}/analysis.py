"""Analysis of predictions as small pure functions over arrays: per-class report, error ranking, attribute
bins, distribution shift, label-noise candidates, CV-versus-leaderboard correlation."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from .data import read_image


def per_class_report(targets: np.ndarray, predicted: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class (single-label)."""
    labels = np.arange(len(classes))
    precision, recall, f1, support = precision_recall_fscore_support(targets, predicted, labels=labels, zero_division=0)
    return pd.DataFrame({"class": classes, "precision": precision, "recall": recall, "f1": f1, "support": support})


def confusion(targets: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows are true classes, columns predicted classes."""
    return confusion_matrix(targets, predicted, labels=np.arange(num_classes))


def rank_errors(targets: np.ndarray, probabilities: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(most confident wrong, least confident right): row indices, at most `count` each."""
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != targets)
    right = np.flatnonzero(predicted == targets)
    confident_wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")][:count]
    unsure_right = right[np.argsort(probabilities[right, targets[right]], kind="stable")][:count]
    return confident_wrong, unsure_right


def distribution_shift(first: np.ndarray, second: np.ndarray) -> float:
    """Total variation distance between two class-count vectors (0: same shares, 1: disjoint)."""
    p, q = first / max(first.sum(), 1), second / max(second.sum(), 1)
    return float(0.5 * np.abs(p - q).sum())


def image_attributes(path: str) -> dict[str, float]:
    """Cheap per-image attributes for error analysis: size, aspect, brightness, contrast, blur."""
    image = read_image(path)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height, width = gray.shape
    return {
        "area": float(height * width),
        "aspect": float(width / height),
        "brightness": float(gray.mean()),
        "contrast": float(gray.std()),
        "sharpness": float(cv2.Laplacian(gray, cv2.CV_64F).var()),  # low values: blurred
    }


def error_rate_by_bins(values: np.ndarray, errors: np.ndarray, bins: int = 4) -> pd.DataFrame:
    """Error rate per quantile bin of an attribute (bins collapse when values repeat)."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([values.min(), values.max() + 1e-9])
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 2)
    rows = []
    for b in range(len(edges) - 1):
        members = index == b
        if members.any():
            rows.append(
                {
                    "low": edges[b],
                    "high": edges[b + 1],
                    "count": int(members.sum()),
                    "error_rate": float(errors[members].mean()),
                }
            )
    return pd.DataFrame(rows)


def label_issue_candidates(targets: np.ndarray, probabilities: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """Rows whose OOF probability of their own label is below `threshold` while another class wins,
    most suspicious first (self-confidence ranking, as cleanlab's simplest rule)."""
    own = probabilities[np.arange(len(targets)), targets]
    suspicious = np.flatnonzero((own < threshold) & (probabilities.argmax(axis=1) != targets))
    return suspicious[np.argsort(own[suspicious], kind="stable")]


def cv_lb_correlation(ledger: pd.DataFrame) -> float | None:
    """Pearson correlation of CV and public LB over submissions that have both (None below 3 points)."""
    scored = ledger.dropna(subset=["cv", "public_lb"])
    if len(scored) < 3 or scored["cv"].nunique() < 2 or scored["public_lb"].nunique() < 2:
        return None
    return float(np.corrcoef(scored["cv"], scored["public_lb"])[0, 1])

"""Classification ensembles: soft, geometric, rank and hard voting over members' class probabilities (id + one
column per class), as small pure functions over (M, N, C) arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from ...config import EnsembleConfig
from ...core.blend import Combiner, correlation_matrix, normalised_weights
from ...core.errors import DataError
from ...core.registry import lookup

OOF_FILE, TEST_FILE = "oof.csv", "predictions/test.csv"
FIT_EVALUATIONS_PER_MEMBER = 200


def mean_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Soft voting: the weighted mean of probabilities."""
    return np.tensordot(normalised_weights(weights, len(members)), members, axes=1)


def geometric_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The weighted geometric mean of probabilities, renormalised per row (single-label)."""
    logs = np.tensordot(normalised_weights(weights, len(members)), np.log(np.clip(members, 1e-12, None)), axes=1)
    combined = np.exp(logs)
    return combined / combined.sum(axis=-1, keepdims=True)


def rank_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rank averaging per class column (for ranking metrics such as ROC AUC), scaled to [0, 1]."""
    ranks = np.stack([rankdata(member, axis=0) / len(member) for member in members])
    return mean_vote(ranks, weights)


def majority_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Hard voting: each member votes for its argmax class with its weight; the result is the vote share.

    Ties go to the class with the higher mean probability (the share gets a tie-break far below one vote).
    """
    weights = normalised_weights(weights, len(members))
    classes = members.shape[-1]
    votes = np.tensordot(weights, np.eye(classes)[members.argmax(axis=-1)], axes=1)
    tie_break = mean_vote(members, weights) * 1e-6
    shares = votes + tie_break
    return shares / shares.sum(axis=-1, keepdims=True)


VOTES: dict[str, Combiner] = {
    "mean": mean_vote,
    "geometric": geometric_vote,
    "rank": rank_vote,
    "majority": majority_vote,
}


def parameter_grid(settings: EnsembleConfig, method: str) -> list[dict[str, Any]]:
    return [{}]  # voting has no parameters besides the weights


def create_combiner(task: Any, method: str, params: dict[str, Any]) -> Combiner:
    return lookup(VOTES, method, "ensemble.method")


def read_member(task: Any, path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, (N, C) probabilities) of a prediction file; every problem is one line naming the file."""
    classes = task.classes
    if not path.is_file():
        raise DataError(f"{path}: {kind} predictions not found (expected id + one column per class)")
    try:
        frame = pd.read_csv(path, dtype={"id": str})
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file; expected id + one column per class") from None
    if "id" not in frame.columns:
        raise DataError(f"{path}: missing column 'id'")
    if frame.empty:
        raise DataError(f"{path}: no {kind} predictions in it (a header only)")
    found = [column for column in frame.columns if column not in ("id", "fold")]
    if sorted(found) != sorted(classes):
        raise DataError(f"{path}: class columns {found} differ from {classes}")
    if frame["id"].duplicated().any():
        raise DataError(f"{path}: duplicate id '{frame['id'][frame['id'].duplicated()].iloc[0]}'")
    values = frame[classes].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataError(f"{path}: probabilities must be finite numbers in [0, 1]")
    return frame["id"].to_numpy(), values  # class order follows the ensemble's, whatever the file's


def stack(outputs: list[np.ndarray], names: list[str], kind: str) -> np.ndarray:
    return np.stack(outputs)


def diversity(members: np.ndarray) -> list[list[float]]:
    return correlation_matrix(members).round(6).tolist()

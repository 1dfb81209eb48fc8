"""Segmentation ensembles: per-pixel soft voting (weighted mean of probabilities) or hard voting (weighted vote
of each member's mask) over uint8 probability maps, one image at a time so large blends stay small in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ...config import EnsembleConfig
from ...core.blend import Combiner, correlation_matrix, normalised_weights
from ...core.data import object_array
from ...core.errors import DataError, SubmissionError
from ...core.registry import lookup

OOF_FILE, TEST_FILE = "oof.npz", "predictions/test.npz"
FIT_EVALUATIONS_PER_MEMBER = 25
DIVERSITY_IMAGES = 32  # images the members' correlation is measured on


def soft_vote(maps: list[np.ndarray], weights: np.ndarray, multilabel: bool) -> np.ndarray:
    """The weighted mean of (C, H, W) uint8 probability maps, as uint8."""
    mean = sum(w * m.astype(np.float32) for w, m in zip(weights, maps, strict=True))
    return np.clip(np.rint(mean), 0, 255).astype(np.uint8)


def hard_vote(maps: list[np.ndarray], weights: np.ndarray, multilabel: bool) -> np.ndarray:
    """Per pixel, the weighted share of members whose mask has the class (argmax, or p >= 0.5 multilabel), as
    uint8; ties (and near-ties within 1%) go to the higher mean probability."""
    if multilabel:
        votes = [(m >= 128).astype(np.float32) for m in maps]
    else:
        votes = [(m.argmax(axis=0) == np.arange(len(m))[:, None, None]).astype(np.float32) for m in maps]
    share = sum(w * v for w, v in zip(weights, votes, strict=True))
    mean = soft_vote(maps, weights, multilabel).astype(np.float32) / 255
    return np.clip(np.rint((0.99 * share + 0.01 * mean) * 255), 0, 255).astype(np.uint8)


VOTES = {"soft": soft_vote, "hard": hard_vote}


def vote(members: np.ndarray, weights: np.ndarray, method: str, multilabel: bool) -> np.ndarray:
    """(N,) outputs from (M, N) members' outputs: each image's maps voted, the rest (target, size) from the first."""
    rule, weights = VOTES[method], normalised_weights(weights, len(members))
    blended = []
    for image in range(members.shape[1]):
        maps = [members[index, image]["probs"] for index in range(len(members))]
        blended.append({**members[0, image], "probs": rule(maps, weights, multilabel)})
    return object_array(blended)


def parameter_grid(settings: EnsembleConfig, method: str) -> list[dict[str, Any]]:
    return [{}]  # thresholds and minimum areas are re-tuned on the blended OOF afterwards


def create_combiner(task: Any, method: str, params: dict[str, Any]) -> Combiner:
    lookup(VOTES, method, "ensemble.method")
    return lambda members, weights: vote(members, weights, method, task.multilabel)


def read_member(task: Any, path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, outputs) of a probability-map file (README: prediction files), checked; float maps in [0, 1] are
    stored as uint8 like podium's own."""
    if not path.is_file():
        raise DataError(f"{path}: {kind} predictions not found (expected ids and probs (N, C, H, W) in an .npz)")
    try:
        ids, outputs = task.read_predictions(path)
    except (KeyError, ValueError, EOFError, OSError, SubmissionError) as error:
        raise DataError(f"{path}: not a prediction file with 'ids' and 'probs' ({error})") from error
    if len(ids) == 0:
        raise DataError(f"{path}: no {kind} predictions in it")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise DataError(f"{path}: duplicate id '{unique[counts > 1][0]}'")
    channels = task.num_outputs
    for image_id, output in zip(ids, outputs, strict=True):
        probs = output["probs"]
        if probs.ndim != 3 or probs.shape[0] != channels:
            raise DataError(
                f"{path}: id '{image_id}' has probability maps of shape {probs.shape}; this project expects "
                f"({channels}, H, W) ({task.config.segmentation.mode} over {len(task.classes)} classes)"
            )
        if probs.dtype != np.uint8:
            if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1:
                raise DataError(f"{path}: id '{image_id}': probabilities must be uint8 or floats in [0, 1]")
            output["probs"] = np.rint(probs * 255).astype(np.uint8)
    return ids, outputs


def stack(outputs: list[np.ndarray], names: list[str], kind: str) -> np.ndarray:
    """(M, N) outputs; maps of members trained at another model.image_size are resized to the first member's,
    whose validation masks (and sizes) every member is scored with."""
    stacked = np.empty((len(outputs), len(outputs[0])), dtype=object)
    stacked[0] = outputs[0]
    for index, member in enumerate(outputs[1:], start=1):
        resized = []
        for reference, output in zip(outputs[0], member, strict=True):
            height, width = reference["probs"].shape[1:]
            probs = output["probs"]
            if probs.shape[1:] != (height, width):
                probs = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probs])
            resized.append({**reference, "probs": probs})  # scored against the first member's masks
        stacked[index] = object_array(resized)
    if kind == "OOF" and "target" not in outputs[0][0]:
        raise DataError(f"ensemble member {names[0]}: its OOF file has no 'targets' (validation masks) to score on")
    return stacked


def diversity(members: np.ndarray) -> list[list[float]]:
    sample = min(DIVERSITY_IMAGES, members.shape[1])
    maps = np.stack([np.stack([members[m, i]["probs"] for i in range(sample)]) for m in range(len(members))])
    return correlation_matrix(maps).round(6).tolist()

"""PredictionStrings: boxes written and parsed in the competition's token order, and the submission check."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ...core.errors import SubmissionError
from .boxes import from_xyxy, to_xyxy

INTERNAL_TOKENS = "label score x1 y1 x2 y2"  # prediction files: class index, score, pixel corners


def check_prediction_strings(strings: pd.Series, tokens: str, labels: list[str]) -> None:
    """Parse every PredictionString back as the competition would: whole boxes, known labels, numbers."""
    known = set(labels)
    for row, text in enumerate(strings):
        try:
            _, scores, found = parse_prediction_string(text, tokens)
        except ValueError as error:
            raise SubmissionError(f"submission row {row + 2}: {error}") from error
        unknown = sorted(set(found) - known)
        if unknown or not np.isfinite(scores).all():
            raise SubmissionError(f"submission row {row + 2}: PredictionString does not parse back ({text[:60]!r})")


def prediction_string(
    boxes: np.ndarray, scores: np.ndarray, labels: list[str], tokens: str, size: tuple[int, int] | None = None
) -> str:
    """Kaggle's PredictionString: per box, the tokens of `tokens` (label score x1 y1 x2 y2 | x y w h) joined by
    spaces; `size` (width, height) makes coordinates fractions of the image. No boxes: an empty string."""
    order = tokens.split()
    unknown = set(order) - {"label", "score", "x1", "y1", "x2", "y2", "x", "y", "w", "h"}
    if unknown:
        raise ValueError(f"detection.submission_tokens: unknown tokens {sorted(unknown)}")
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if size is not None:
        boxes = boxes / np.array([size[0], size[1], size[0], size[1]], dtype=np.float64)
    xywh = from_xyxy(boxes, "xywh")
    parts = []
    for box, wh, score, label in zip(boxes, xywh, scores, labels, strict=True):
        values = {"label": label, "score": f"{score:.4f}", "x1": box[0], "y1": box[1], "x2": box[2], "y2": box[3]}
        values.update({"x": wh[0], "y": wh[1], "w": wh[2], "h": wh[3]})
        parts.extend(
            value if isinstance(value, str) else f"{value:.{6 if size else 1}f}" for value in (values[t] for t in order)
        )
    return " ".join(parts)


def parse_prediction_string(text: str, tokens: str, size: tuple[int, int] | None = None) -> tuple:
    """Inverse of `prediction_string`: (xyxy boxes, scores, labels)."""
    order = tokens.split()
    values = str(text).split() if isinstance(text, str) else []
    if len(values) % len(order):
        raise ValueError(f"prediction string has {len(values)} tokens, not a multiple of {len(order)} ({tokens})")
    boxes, scores, labels = [], [], []
    for start in range(0, len(values), len(order)):
        item = dict(zip(order, values[start : start + len(order)], strict=True))
        if "x1" in item:
            box = [float(item[k]) for k in ("x1", "y1", "x2", "y2")]
        else:
            box = to_xyxy(np.array([float(item[k]) for k in ("x", "y", "w", "h")]), "xywh")[0].tolist()
        boxes.append(box)
        scores.append(float(item.get("score", 1.0)))
        labels.append(item.get("label", "0"))
    boxes_array = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if size is not None:
        boxes_array = boxes_array * np.array([size[0], size[1], size[0], size[1]])
    return boxes_array, np.asarray(scores, dtype=np.float64), labels

"""Detection ensembles: members' boxes fused per image with ensemble-boxes (WBF, NMS, soft-NMS, NMW) under
per-member weights; the IoU and skip thresholds come from a grid scored on the blended OOF."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from ...config import EnsembleConfig
from ...core.blend import Combiner
from ...core.data import object_array
from ...core.errors import DataError, SubmissionError
from .postprocess import merge_boxes

OOF_FILE, TEST_FILE = "oof.csv", "predictions/test.csv"
FIT_EVALUATIONS_PER_MEMBER = 25  # each evaluation fuses every OOF image and runs COCO evaluation
IOU_GRID = (0.4, 0.5, 0.55, 0.6, 0.7)
SKIP_GRID = (0.0, 0.01, 0.05, 0.1)


def parameter_grid(settings: EnsembleConfig, method: str) -> list[dict[str, Any]]:
    """Every (iou_thr, skip_box_thr) to score, fixed values taken as given; NMS has no score threshold."""
    ious = IOU_GRID if settings.iou_thr == "fit" else (settings.iou_thr,)
    skips = SKIP_GRID if settings.skip_box_thr == "fit" else (settings.skip_box_thr,)
    if method == "nms":
        skips = skips[:1]
    return [{"iou_thr": iou, "skip_box_thr": skip} for iou, skip in itertools.product(ious, skips)]


def fuse(members: np.ndarray, weights: np.ndarray, method: str, iou_thr: float, skip_box_thr: float) -> np.ndarray:
    """(N,) detection records from (M, N) members' records; members of weight 0 are left out."""
    used = [index for index, weight in enumerate(weights) if weight > 0]
    kept = [float(weights[index]) for index in used]
    fused = []
    for image in range(members.shape[1]):
        parts = [members[index, image] for index in used]
        fused.append(merge_boxes(parts, parts[0]["size"], method, iou_thr, skip_box_thr, kept))
    return object_array(fused)


def create_combiner(task: Any, method: str, params: dict[str, Any]) -> Combiner:
    return lambda members, weights: fuse(members, weights, method, params["iou_thr"], params["skip_box_thr"])


def check_boxes(path: Path, ids: np.ndarray, outputs: np.ndarray, num_classes: int) -> None:
    """Boxes must be pixel x1 y1 x2 y2 inside their image and labels class indices: one line for the first
    row that is not (boxes from another framework are often normalised or x y w h)."""
    every = [o["boxes"] for o in outputs if len(o["boxes"])]
    if every and np.concatenate(every).max() <= 1.0 and max(o["size"][0] for o in outputs) > 2:
        raise DataError(f"{path}: every box coordinate is <= 1; boxes must be pixels (x1 y1 x2 y2), not normalised")
    for row, (image_id, output) in enumerate(zip(ids, outputs, strict=True)):
        boxes, width, height = output["boxes"], *output["size"]
        where = f"{path}: row {row + 2} (id '{image_id}')"
        # Zero-width boxes at the border are legitimate (clipped detections); a negative width is another format.
        if len(boxes) and ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])).any():
            raise DataError(f"{where}: a box has x2 < x1 or y2 < y1; boxes must be pixel x1 y1 x2 y2 (not x y w h)")
        tolerance = 0.01 * max(width, height) + 1
        outside = (boxes[:, :2] < -tolerance).any() or (boxes[:, 2] > width + tolerance).any()
        if len(boxes) and (outside or (boxes[:, 3] > height + tolerance).any()):
            raise DataError(f"{where}: a box lies outside the {width:g}x{height:g} image; boxes must be pixels")
        labels = output["labels"]
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise DataError(f"{where}: class index {int(labels.max())} is not one of the {num_classes} classes")


def read_member(task: Any, path: Path, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, detection records) of a box prediction file (README: prediction files), checked."""
    if not path.is_file():
        raise DataError(f"{path}: {kind} predictions not found (expected id, width, height, prediction)")
    try:
        ids, outputs = task.read_predictions(path)
    except SubmissionError as error:
        raise DataError(str(error)) from error
    if len(ids) == 0:
        raise DataError(f"{path}: no {kind} predictions in it (a header only)")
    ids = ids.astype(str)
    duplicated = [image_id for image_id, count in zip(*np.unique(ids, return_counts=True), strict=True) if count > 1]
    if duplicated:
        raise DataError(f"{path}: duplicate id '{duplicated[0]}'")
    check_boxes(path, ids, outputs, len(task.classes))
    return ids, outputs


def stack(outputs: list[np.ndarray], names: list[str], kind: str) -> np.ndarray:
    stacked = np.empty((len(outputs), len(outputs[0])), dtype=object)
    for index, member in enumerate(outputs):
        stacked[index] = member
    return stacked


def diversity(members: np.ndarray) -> None:
    return None  # box sets have no correlation; the members' and the blend's OOF scores tell the story

"""Detection metrics through pycocotools: COCO mAP@[.5:.95], mAP@.5, and Kaggle's mAP over IoU thresholds."""

from __future__ import annotations

import contextlib
import io
from typing import Any

import numpy as np


def coco_evaluation(targets: np.ndarray, outputs: np.ndarray, iou_thresholds: list[float] | None = None) -> Any:
    """pycocotools' COCOeval after evaluate() and accumulate() (None without boxes on either side); targets and
    outputs are per-image dicts of xyxy pixel boxes and 0-based labels (category id = label + 1). Thresholds
    default to COCO's .50:.05:.95; eval["precision"] is [thresholds, recall, classes, areas, max dets]."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, results = [], [], []
    labels_seen: set[int] = set()
    for image_id, (target, output) in enumerate(zip(targets, outputs, strict=True)):
        images.append({"id": image_id})
        for box, label in zip(target["boxes"], target["labels"], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
            labels_seen.add(int(label))
        for box, score, label in zip(output["boxes"], output["scores"], output["labels"], strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "score": float(score),
                }
            )
    if not annotations:
        return None
    categories = sorted(labels_seen | {int(r["category_id"]) - 1 for r in results})
    ground_truth = COCO()
    ground_truth.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": label + 1} for label in categories],
    }
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress and its summary table
        ground_truth.createIndex()
        if not results:
            return None
        evaluation = COCOeval(ground_truth, ground_truth.loadRes(results), "bbox")
        if iou_thresholds is not None:
            evaluation.params.iouThrs = np.asarray(sorted(iou_thresholds), dtype=np.float64)
        evaluation.params.maxDets = [1, 10, max(100, max(len(o["boxes"]) for o in outputs))]
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return evaluation


def coco_map(
    targets: np.ndarray, outputs: np.ndarray, iou_thresholds: list[float] | None = None
) -> tuple[float, float]:
    """(mAP averaged over the IoU thresholds, mAP@.5) by pycocotools' COCOeval (coco_evaluation)."""
    evaluation = coco_evaluation(targets, outputs, iou_thresholds)
    if evaluation is None:
        return 0.0, 0.0
    precision = evaluation.eval["precision"]  # [thresholds, recall, classes, areas, max dets]
    overall = precision[:, :, :, 0, -1]
    mean_ap = float(np.mean(overall[overall > -1])) if (overall > -1).any() else 0.0
    at_half = np.flatnonzero(np.isclose(evaluation.params.iouThrs, 0.5))
    half = precision[at_half[0], :, :, 0, -1] if len(at_half) else np.array([-1.0])
    return mean_ap, float(np.mean(half[half > -1])) if (half > -1).any() else 0.0


METRICS = {
    "map": lambda task, t, o: coco_map(t, o)[0],
    "map50": lambda task, t, o: coco_map(t, o)[1],
    "kaggle_map": lambda task, t, o: coco_map(t, o, task.config.detection.iou_thresholds)[0],
}

"""Detection's part of `analyze`: AP by class and IoU threshold and precision-recall curves (pycocotools' COCOeval),
misses and false positives by object size and image attribute, class confusion, the worst images with boxes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from ...core.data import read_image
from ...core.report.analysis import Analysis, errors_by_attributes, image_attributes, table_rows, worst_attribute
from ...core.report.page import figure_png, heatmap, plt
from ...core.report.plots import class_colours, draw_boxes, legend_outside
from .metric import coco_evaluation
from .postprocess import box_iou

OOF_FILE = "oof.csv"  # id, fold, width, height, prediction: 'class_index score x1 y1 x2 y2 ...'
# COCO's object sizes by box area in pixels of the original image.
SIZES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, np.inf)}


def match_boxes(true_boxes: np.ndarray, predicted: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """For each predicted box (in the order given: highest score first) the true box it takes, or -1: the unmatched
    true box of highest IoU at or above the threshold, as COCO matches."""
    iou = box_iou(predicted, true_boxes)
    taken = np.zeros(len(true_boxes), dtype=bool)
    matched = np.full(len(predicted), -1, dtype=np.int64)
    for p in range(len(predicted)):
        candidates = np.where(taken, -1.0, iou[p]) if len(true_boxes) else np.zeros(0)
        if len(candidates) and candidates.max() >= iou_threshold:
            matched[p] = int(candidates.argmax())
            taken[matched[p]] = True
    return matched


def kept(output: dict[str, Any], score_threshold: float) -> dict[str, np.ndarray]:
    """The predicted boxes at or above the score threshold, highest score first."""
    order = np.argsort(-output["scores"], kind="stable")
    order = order[output["scores"][order] >= score_threshold]
    return {key: np.asarray(output[key])[order] for key in ("boxes", "scores", "labels")}


def image_errors(target: dict, output: dict, score_threshold: float, iou: float = 0.5) -> dict[str, np.ndarray]:
    """Per true box: missed (no kept box of its class matches it); per kept box: false positive."""
    found = kept(output, score_threshold)
    missed = np.ones(len(target["boxes"]), dtype=bool)
    false_positive = np.ones(len(found["boxes"]), dtype=bool)
    for label in np.union1d(target["labels"], found["labels"]):
        truth, guess = np.flatnonzero(target["labels"] == label), np.flatnonzero(found["labels"] == label)
        matched = match_boxes(np.asarray(target["boxes"])[truth], found["boxes"][guess], iou)
        false_positive[guess[matched >= 0]] = False
        missed[truth[matched[matched >= 0]]] = False
    return {"missed": missed, "false_positive": false_positive, "boxes": found["boxes"]}


def size_names(boxes: np.ndarray) -> np.ndarray:
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) if len(boxes) else np.zeros(0)
    return np.array([next(n for n, (lo, hi) in SIZES.items() if lo <= a < hi) for a in areas], dtype=object)


def errors_by_size(targets: np.ndarray, errors: list[dict]) -> pd.DataFrame:
    """Per COCO size: true boxes, missed, miss rate, predicted boxes, false positives, false-positive rate."""
    truth = np.concatenate([size_names(np.asarray(t["boxes"]).reshape(-1, 4)) for t in targets] or [np.zeros(0)])
    missed = np.concatenate([e["missed"] for e in errors] or [np.zeros(0, bool)])
    guessed = np.concatenate([size_names(e["boxes"]) for e in errors] or [np.zeros(0)])
    false = np.concatenate([e["false_positive"] for e in errors] or [np.zeros(0, bool)])
    rows = []
    for name in SIZES:
        t, g = truth == name, guessed == name
        rows.append(
            {
                "size": name,
                "true_boxes": int(t.sum()),
                "missed": int(missed[t].sum()),
                "miss_rate": float(missed[t].mean()) if t.any() else np.nan,
                "predicted": int(g.sum()),
                "false_positives": int(false[g].sum()),
                "fp_rate": float(false[g].mean()) if g.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


def detection_confusion(
    targets: np.ndarray, outputs: np.ndarray, num_classes: int, score_threshold: float, iou: float = 0.5
) -> np.ndarray:
    """(C+1, C+1) counts of boxes matched regardless of class: rows true class (last: no true box, a false
    positive), columns predicted class (last: nothing predicted, a miss)."""
    matrix = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for target, output in zip(targets, outputs, strict=True):
        found = kept(output, score_threshold)
        matched = match_boxes(np.asarray(target["boxes"]).reshape(-1, 4), found["boxes"], iou)
        for p, t in enumerate(matched):
            matrix[target["labels"][t] if t >= 0 else num_classes, found["labels"][p]] += 1
        for t in np.setdiff1d(np.arange(len(target["boxes"])), matched[matched >= 0]):
            matrix[target["labels"][t], num_classes] += 1
    return matrix


def ap_tables(evaluation: Any, classes: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(AP by IoU threshold, AP by class at .5 and .5:.95) from COCOeval's precision array; classes without
    true boxes are left out (COCO marks them -1)."""
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # [thresholds, recall, classes], all areas
    mean = lambda a: float(a[a > -1].mean()) if (a > -1).any() else np.nan  # noqa: E731
    thresholds = evaluation.params.iouThrs
    by_iou = pd.DataFrame({"iou": thresholds.round(2), "AP": [mean(precision[t]) for t in range(len(thresholds))]})
    half = int(np.flatnonzero(np.isclose(thresholds, 0.5))[0]) if np.isclose(thresholds, 0.5).any() else 0
    rows = [
        {"class": classes[cat - 1], "AP@.5": mean(precision[half, :, k]), "AP@.5:.95": mean(precision[:, :, k])}
        for k, cat in enumerate(evaluation.params.catIds)
    ]
    return by_iou, pd.DataFrame(rows).dropna(subset=["AP@.5"])


def pr_curves(evaluation: Any, classes: list[str]) -> bytes:
    """Precision against recall per class at IoU .5 (COCO's 101 recall points)."""
    precision, colours = evaluation.eval["precision"][0, :, :, 0, -1], class_colours(len(classes))
    figure, axis = plt.subplots(figsize=(5, 3.5))
    for k, cat in enumerate(evaluation.params.catIds):
        if (precision[:, k] > -1).all():
            axis.plot(evaluation.params.recThrs, precision[:, k], color=colours[cat - 1], label=classes[cat - 1])
    axis.set(xlabel="recall", ylabel="precision", title=f"IoU {evaluation.params.iouThrs[0]:.2f}", ylim=(0, 1.05))
    legend_outside(axis, title="class", ncol=1 + len(classes) // 16)
    return figure_png(figure)


def boxes_grid(paths: list[str], targets: list, outputs: list, titles: list[str], classes: list[str]) -> bytes:
    """Images with true boxes (solid) and predicted boxes (dashed, with their score), each in its class's colour."""
    columns = min(len(paths), 4) or 1
    rows = -(-len(paths) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.2 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, path, target, output, title in zip(axes.flat, paths, targets, outputs, titles, strict=False):
        axis.imshow(read_image(path))
        draw_boxes(axis, np.asarray(target["boxes"]).reshape(-1, 4), target["labels"], classes)
        draw_boxes(axis, output["boxes"], output["labels"], classes, scores=output["scores"], linestyle="--")
        axis.set_title(title, fontsize=7)
    handles = [
        Line2D([], [], color="gray", ls=style, label=name) for style, name in (("-", "true"), ("--", "predicted"))
    ]
    figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    return figure_png(figure)


def _findings(
    analysis: Analysis, by_iou: pd.DataFrame, by_class: pd.DataFrame, by_size: pd.DataFrame, matrix: np.ndarray
) -> None:
    classes, threshold = analysis.task.classes, analysis.config.analyze.score_threshold
    ap = dict(zip(by_iou["iou"], by_iou["AP"], strict=True))
    if 0.5 in ap and 0.75 in ap and ap[0.5] - ap[0.75] > 0.15:
        analysis.findings.append(
            f"boxes are found but loosely placed: AP {ap[0.5]:.3f} at IoU .5, {ap[0.75]:.3f} at .75"
        )
        analysis.advice.append("tighten the boxes: train longer or at a larger model.image_size")
    if len(by_class):
        worst = by_class.sort_values("AP@.5").iloc[0]
        analysis.findings.append(f"weakest class: {worst['class']} (AP@.5 {worst['AP@.5']:.3f})")
    # sizes holding at least 5% of the objects: a 100% miss rate of 4 objects in 2,000 says little
    sized = by_size[by_size["true_boxes"] >= max(1, 0.05 * by_size["true_boxes"].sum())]
    if len(sized) and sized["miss_rate"].max() > 0.2:
        row = sized.loc[sized["miss_rate"].idxmax()]
        analysis.findings.append(
            f"{row['miss_rate']:.0%} of {row['size']} objects missed ({row['missed']} of "
            f"{row['true_boxes']}, score >= {threshold})"
        )
        if row["size"] == "small":
            analysis.advice.append(
                "small objects are missed: raise model.image_size or start the anchors smaller (detection.anchor_sizes)"
            )
    predicted, false = by_size["predicted"].sum(), by_size["false_positives"].sum()
    if predicted and false / predicted > 0.2:
        analysis.findings.append(
            f"{false / predicted:.0%} of the boxes scored >= {threshold} match no true box of their class "
            f"({false} of {predicted}): see the confusion matrix's last row and the worst images"
        )
    off = matrix[:-1, :-1] - np.diag(np.diag(matrix[:-1, :-1]))
    if off.size and off.max() > 0:
        t, p = np.unravel_index(off.argmax(), off.shape)
        analysis.findings.append(f"most frequent confusion: {classes[t]} boxes predicted as {classes[p]} ({off[t, p]})")


def analyze_run(analysis: Analysis) -> None:
    """Every detection section of the report, in reading order."""
    config, report, task, table = analysis.config, analysis.report, analysis.task, analysis.table
    classes, threshold = task.classes, config.analyze.score_threshold
    ids, outputs = task.read_predictions(analysis.paths.oof)
    rows = table_rows(ids, table, analysis.paths.oof)
    targets = table.targets[rows]
    analysis.numbers["oof_score"] = task.score(targets, outputs)
    evaluation = coco_evaluation(targets, outputs)
    if evaluation is None:
        report.section("Average precision", "none: no true or no predicted boxes in the OOF predictions")
        by_iou, by_class = pd.DataFrame({"iou": [], "AP": []}), pd.DataFrame()
    else:
        by_iou, by_class = ap_tables(evaluation, classes)
        analysis.numbers.update(ap_by_iou=by_iou.to_dict("records"), ap_by_class=by_class.to_dict("records"))
        report.section("Average precision by IoU threshold (COCOeval, all sizes)")
        report.table("ap_by_iou", by_iou)
        report.section("Average precision by class, and precision-recall curves at IoU .5")
        report.table("ap_by_class", by_class)
        report.image("pr_curves", pr_curves(evaluation, classes))

    errors = [image_errors(t, o, threshold) for t, o in zip(targets, outputs, strict=True)]
    by_size = errors_by_size(targets, errors)
    analysis.numbers["errors_by_size"] = by_size.to_dict("records")
    report.section(f"Misses and false positives by object size (COCO areas; boxes with score >= {threshold}, IoU .5)")
    report.table("errors_by_size", by_size)

    matrix = detection_confusion(targets, outputs, len(classes), threshold)
    analysis.numbers["confusion_matrix"] = matrix.tolist()
    report.section(
        "Class confusion: true boxes (rows) against the predicted box matching them at IoU .5 (columns)",
        "last row: predicted boxes matching no true box; last column: true boxes nothing matched",
    )
    report.image(
        "confusion_matrix", heatmap(matrix, [*classes, "none"], "boxes", "{:.0f}", 0, None, ("true", "predicted"))
    )
    _findings(analysis, by_iou, by_class, by_size, matrix)

    counts = np.array([e["missed"].sum() + e["false_positive"].sum() for e in errors])
    sample = np.arange(len(rows))[: config.analyze.max_images]
    paths = table.frame["path"].to_numpy()[rows]
    attributes = pd.DataFrame([image_attributes(paths[i]) for i in sample]).drop(columns=["area", "aspect"])
    attributes["boxes_per_image"] = [len(targets[i]["boxes"]) for i in sample]
    by_attribute = errors_by_attributes(attributes, counts[sample] > 0)
    analysis.numbers["error_rate_by_attribute"] = by_attribute.to_dict("records")
    if finding := worst_attribute(by_attribute, float((counts[sample] > 0).mean())):
        analysis.findings.append(finding)
    report.section("Share of images with a miss or a false positive, by image attribute (quantile bins)")
    report.table("error_rate_by_attribute", by_attribute)

    worst = [i for i in np.argsort(-counts, kind="stable")[: config.analyze.examples] if counts[i] > 0]
    analysis.numbers["worst_images"] = [str(ids[i]) for i in worst]
    report.section("Worst images: true boxes solid, predicted dashed with their score (>= threshold), class colours")
    if not worst:
        report.parts.append("<p><em>none: no misses and no false positives</em></p>")
        return
    titles = [f"{ids[i]}: {errors[i]['missed'].sum()} missed, {errors[i]['false_positive'].sum()} FP" for i in worst]
    shown = [kept(outputs[i], threshold) for i in worst]
    report.image(
        "worst_images", boxes_grid([paths[i] for i in worst], [targets[i] for i in worst], shown, titles, classes)
    )

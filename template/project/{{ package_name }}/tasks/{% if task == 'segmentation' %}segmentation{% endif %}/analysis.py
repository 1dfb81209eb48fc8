"""Segmentation's part of `analyze`: per-class IoU and Dice, boundary versus interior errors, missed and false
objects by size (connected components), the worst images with masks overlaid, and Grad-CAM per class mask."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import torch
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget

from ...core.augment import InputNormaliser
from ...core.checkpoints import load_checkpoint
from ...core.data import read_image
from ...core.distributed import resolve_device
from ...core.errors import DataError
from ...core.report.analysis import Analysis, table_rows
from ...core.report.explain import MIN_CAM_SIDE, cam_heatmaps, cam_layer
from ...core.report.page import figure_png, plt
from ...core.report.plots import class_colours, class_legend, heat_overlay, overlay_mask
from .metric import per_image_scores

OOF_FILE = "oof.npz"  # ids, fold, probs (N, C, h, w) uint8 and targets at model resolution
# Object sizes as shares of the image (masks are compared at model resolution).
SIZES = {"small": (0.0, 0.01), "medium": (0.01, 0.1), "large": (0.1, 1.01)}


def class_table(predicted: np.ndarray, targets: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per class: Dice and IoU averaged over images (an empty pair scores 1), Dice over images where the class is
    present, and Dice and IoU pooled over every pixel; (N, K, H, W) 0/1 masks."""
    dice, iou, present = per_image_scores(predicted, targets)
    inter = (predicted & targets).sum(axis=(0, 2, 3)).astype(np.float64)
    truth, guess = targets.sum(axis=(0, 2, 3)).astype(np.float64), predicted.sum(axis=(0, 2, 3)).astype(np.float64)
    return pd.DataFrame(
        {
            "class": classes,
            "dice": dice.mean(axis=0),
            "iou": iou.mean(axis=0),
            "dice_present": [
                dice[present[:, k], k].mean() if present[:, k].any() else np.nan for k in range(len(classes))
            ],
            "images_present": present.sum(axis=0),
            "pooled_dice": np.where(truth + guess > 0, 2 * inter / np.maximum(truth + guess, 1), np.nan),
            "pooled_iou": np.where(truth + guess > 0, inter / np.maximum(truth + guess - inter, 1), np.nan),
        }
    )


def boundary_band(target: np.ndarray, width: int) -> np.ndarray:
    """(H, W) pixels within `width` pixels (chessboard distance) of a true edge of any class: dilated minus eroded."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    band = np.zeros(target.shape[-2:], dtype=bool)
    for channel in target.astype(np.uint8):
        band |= cv2.dilate(channel, kernel).astype(bool) & ~cv2.erode(channel, kernel, borderValue=1).astype(bool)
    return band


def boundary_errors(predicted: np.ndarray, targets: np.ndarray, width: int) -> dict[str, int]:
    """Error pixels (wrong in any class) near a true edge and elsewhere, with the pixel counts of both regions."""
    counts = dict.fromkeys(("boundary_errors", "interior_errors", "boundary_pixels", "interior_pixels"), 0)
    for guess, truth in zip(predicted, targets, strict=True):
        band, wrong = boundary_band(truth, width), (guess != truth).any(axis=0)
        counts["boundary_errors"] += int((wrong & band).sum())
        counts["interior_errors"] += int((wrong & ~band).sum())
        counts["boundary_pixels"] += int(band.sum())
        counts["interior_pixels"] += int((~band).sum())
    return counts


def size_name(share: float) -> str:
    return next(name for name, (low, high) in SIZES.items() if low <= share < high)


def components(mask: np.ndarray, other: np.ndarray) -> list[tuple[str, bool]]:
    """(size, found) per connected component of `mask`: found when `other` covers at least half of it."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    found = []
    for index in range(1, count):
        pixels = labels == index
        found.append((size_name(pixels.sum() / mask.size), bool(other[pixels].mean() >= 0.5)))
    return found


def errors_by_size(predicted: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
    """Per size: true objects and those missed (under half covered by the prediction of their class), predicted
    objects and the false ones (under half on a true object of their class)."""
    truth = [c for p, t in zip(predicted, targets, strict=True) for k in range(len(t)) for c in components(t[k], p[k])]
    guess = [c for p, t in zip(predicted, targets, strict=True) for k in range(len(t)) for c in components(p[k], t[k])]
    rows = []
    for name in SIZES:
        true_found = [found for size, found in truth if size == name]
        guess_found = [found for size, found in guess if size == name]
        rows.append(
            {
                "size": f"{name} ({SIZES[name][0]:.0%}-{min(SIZES[name][1], 1):.0%} of the image)",
                "true_objects": len(true_found),
                "missed": true_found.count(False),
                "miss_rate": true_found.count(False) / len(true_found) if true_found else np.nan,
                "predicted_objects": len(guess_found),
                "false_objects": guess_found.count(False),
            }
        )
    return pd.DataFrame(rows)


def mask_rows(
    images: list[np.ndarray], predicted: np.ndarray, targets: np.ndarray, titles: list[str], classes: list[str]
) -> bytes:
    """Per image: truth, prediction (translucent, a colour per class, named in the legend) and errors (false
    positive red, missed blue, another class yellow)."""
    colours = class_colours(len(classes))
    error_colours = np.array([[230, 40, 40], [40, 90, 240], [250, 210, 30]]) / 255
    figure, axes = plt.subplots(len(images), 3, figsize=(7.5, 2.6 * len(images)), squeeze=False)
    for row, (image, guess, truth, title) in enumerate(zip(images, predicted, targets, titles, strict=True)):
        errors = np.zeros(truth.shape[1:], np.int64)
        invented, missed = (guess & ~truth).any(axis=0), (truth & ~guess).any(axis=0)
        errors[invented], errors[missed], errors[invented & missed] = 1, 2, 3  # 3: another class's pixel
        overlay_mask(axes[row, 0], image, truth, classes, colours)
        overlay_mask(axes[row, 1], image, guess, classes, colours)
        overlay_mask(axes[row, 2], image, errors, ["false positive", "missed", "wrong class"], error_colours)
        for column, name in enumerate(("truth", "prediction", "errors: FP red, missed blue, wrong class yellow")):
            axes[row, column].set_title(f"{title}: {name}" if column == 0 else name, fontsize=7)
            axes[row, column].axis("off")
    figure.tight_layout()
    class_legend(figure, classes, colours, title="class")
    return figure_png(figure)


def predicted_over(guess: np.ndarray, truth: np.ndarray, classes: list[str]) -> str:
    """What the prediction calls most of the pixels of a true mask: a class (or background) and its share."""
    pixels = max(int(truth.sum()), 1)
    counts = guess[:, truth].sum(axis=1)
    background = int((~guess[:, truth].any(axis=0)).sum())
    if not len(counts) or background >= counts.max():
        return f"background ({background / pixels:.0%})"
    return f"{classes[int(counts.argmax())]} ({counts.max() / pixels:.0%})"


def _grad_cam(
    analysis: Analysis,
    folds: np.ndarray,
    picked: list[int],
    images: list[np.ndarray],
    predicted: np.ndarray,
    targets: np.ndarray,
    ids: np.ndarray,
) -> None:
    """Grad-CAM of the largest true class in each picked image, over its true mask (SemanticSegmentationTarget), on
    the decoder's output (the segmentation head's input), for the model of the image's own fold."""
    config, task, device = analysis.config, analysis.task, resolve_device(analysis.config.train.device)
    maps, titles, layer, side, models = [], [], "", 0, {}
    for i, image in zip(picked, images, strict=True):
        fold = int(folds[i])
        if fold not in models:
            models[fold] = load_checkpoint(task, analysis.paths.checkpoint(fold, "best"), device)
        model, meta = models[fold]
        tensor = torch.from_numpy(image).permute(2, 0, 1)[None]
        tensor = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), device)(tensor)
        k = int(targets[i].sum(axis=(1, 2)).argmax())
        target = SemanticSegmentationTarget(k if task.multilabel else k + 1, targets[i, k].astype(np.float32))
        layer, side = cam_layer(model, tensor, config.analyze.cam_layer)
        with torch.enable_grad():
            maps.append(cam_heatmaps(model, tensor, [target], config.analyze.cam_method, layer)[0])
        titles.append(
            f"{ids[i]}\ntrue {task.classes[k]}, predicted {predicted_over(predicted[i], targets[i, k], task.classes)}"
        )
    note = (
        f"target layer {layer}, a {side}x{side} map; the class explained is the image's largest true class, over its "
        "true pixels (outlined white); predicted: what the model calls most of those pixels"
    )
    if side < MIN_CAM_SIDE:
        note += ": too coarse to say where the model looks, ignore the maps"
    figure, axes = plt.subplots(1, len(maps), figsize=(2.6 * len(maps), 2.9), squeeze=False)
    for axis, image, heat, title, i in zip(axes.flat, images, maps, titles, picked, strict=True):
        heat_overlay(axis, image, heat)
        truth = targets[i, int(targets[i].sum(axis=(1, 2)).argmax())]
        axis.contour(truth, levels=[0.5], colors="white", linewidths=0.8)
        axis.set_title(title, fontsize=7)
        axis.axis("off")
    analysis.report.section(
        f"{config.analyze.cam_method} on the worst images (pytorch-grad-cam SemanticSegmentationTarget)", note
    )
    analysis.report.image("gradcam", figure_png(figure))
    analysis.numbers.update(cam_images=len(maps), cam_layer=layer, cam_side=side)


def _read_oof(analysis: Analysis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    path = analysis.paths.root / OOF_FILE
    try:
        ids, outputs = analysis.task.read_predictions(path)
        with np.load(path) as data:
            folds = data["fold"] if "fold" in data.files else np.zeros(len(ids), np.int64)
    except (KeyError, ValueError, OSError) as error:
        raise DataError(f"{path}: not a segmentation prediction file ({error})") from error
    if len(outputs) and "target" not in outputs[0]:
        raise DataError(f"{path}: no 'targets' array: OOF files carry the validation masks (re-run train)")
    return ids, outputs, folds


def _boundary_section(analysis: Analysis, predicted: np.ndarray, targets: np.ndarray) -> None:
    """Wrong pixels near true edges against those away from them, and what each points to."""
    report, width = analysis.report, analysis.config.analyze.boundary_width
    edges = boundary_errors(predicted, targets, width)
    analysis.numbers["boundary_errors"] = edges
    errors = edges["boundary_errors"] + edges["interior_errors"]
    share = edges["boundary_errors"] / max(errors, 1)
    report.section(
        f"Boundary versus interior errors (within {width} px of a true edge, analyze.boundary_width)",
        f"{share:.0%} of the {errors} wrong pixels lie in the boundary band, which is "
        f"{edges['boundary_pixels'] / max(edges['boundary_pixels'] + edges['interior_pixels'], 1):.0%} "
        "of all pixels",
    )
    report.table("boundary_errors", pd.DataFrame([edges]))
    if errors and share > 0.6:
        analysis.findings.append(f"{share:.0%} of wrong pixels are within {width} px of a true edge")
        analysis.advice.append(
            "edges are the error: a boundary-aware loss (segmentation.losses.lovasz) or a larger model.image_size"
        )
    elif errors:
        analysis.findings.append(
            f"{1 - share:.0%} of wrong pixels are away from true edges: whole objects are missed "
            "or invented (see errors by size)"
        )


def analyze_run(analysis: Analysis) -> None:
    """Every segmentation section of the report, in reading order."""
    config, report, task = analysis.config, analysis.report, analysis.task
    task.load_postprocessing(analysis.paths.root)
    ids, outputs, folds = _read_oof(analysis)
    rows = table_rows(ids, analysis.table, analysis.paths.root / OOF_FILE)
    analysis.numbers["oof_score"] = task.score(analysis.table.targets[rows], outputs)
    predicted, targets = task._masks(outputs, task.post)
    predicted, targets = predicted.astype(bool), targets.astype(bool)

    by_class = class_table(predicted, targets, task.classes)
    analysis.numbers["per_class"] = by_class.to_dict("records")
    worst_class = by_class.sort_values("dice_present").iloc[0]
    analysis.findings.append(
        f"weakest class: {worst_class['class']} (Dice {worst_class['dice_present']:.3f} on the "
        f"{worst_class['images_present']} images that have it)"
    )
    report.section(
        "Per-class Dice and IoU (OOF, after post-processing)",
        "dice/iou: mean over images (an empty prediction of an empty mask scores 1); dice_present: over "
        "images that have the class; pooled: over all pixels",
    )
    report.table("per_class", by_class)

    _boundary_section(analysis, predicted, targets)

    by_size = errors_by_size(predicted, targets)
    analysis.numbers["errors_by_size"] = by_size.to_dict("records")
    report.section("Objects missed and invented, by size (connected components at model resolution)")
    report.table("errors_by_size", by_size)
    # sizes holding at least 5% of the objects: a 100% miss rate of 4 objects in 2,000 says little
    sized = by_size[by_size["true_objects"] >= max(1, 0.05 * by_size["true_objects"].sum())]
    if len(sized) and sized["miss_rate"].max() > 0.2:
        row = sized.loc[sized["miss_rate"].idxmax()]
        analysis.findings.append(f"{row['miss_rate']:.0%} of {row['size'].split()[0]} objects missed")
        if row["size"].startswith("small"):
            analysis.advice.append("small objects are missed: lower segmentation.min_area or raise model.image_size")

    dice = per_image_scores(predicted.astype(np.uint8), targets.astype(np.uint8))[0].mean(axis=1)
    worst = [int(i) for i in np.argsort(dice, kind="stable")[: config.analyze.examples] if dice[i] < 1]
    analysis.numbers["worst_images"] = [str(ids[i]) for i in worst]
    report.section("Worst images by mean Dice over classes")
    if not worst:
        report.parts.append("<p><em>none: every image is segmented exactly</em></p>")
        return
    paths = analysis.table.frame["path"].to_numpy()[rows]
    height, width = targets.shape[-2:]
    images = [cv2.resize(read_image(paths[i]), (width, height), interpolation=cv2.INTER_LINEAR) for i in worst]
    titles = [f"{ids[i]} Dice {dice[i]:.2f}" for i in worst]
    report.image("worst_images", mask_rows(images, predicted[worst], targets[worst], titles, task.classes))
    if analysis.has_checkpoints:
        picked = worst[: min(4, len(worst))]
        _grad_cam(analysis, folds, picked, images[: len(picked)], predicted, targets, ids)
    else:
        report.section("Grad-CAM", "skipped: this run has no fold checkpoints")

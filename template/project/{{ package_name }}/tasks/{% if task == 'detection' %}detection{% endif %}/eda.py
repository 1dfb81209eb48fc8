"""Detection's part of `eda`: boxes per image, box sizes and shapes, classes and their co-occurrence, boxes on the
border, overlaps, empty images, train/test sizes; proposed anchors, image size, Mosaic, Copy-Paste and NMS IoU."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ...core.report.eda_figures import samples_per_class
from .model import ANCHOR_LEVELS, anchor_sizes_for, box_sides
from .postprocess import box_iou

if TYPE_CHECKING:
    from ...config import Config
    from ...core.data import LabelledTable
    from ...core.report.eda_context import EdaContext

BORDER_PX = 1.0  # a box edge this close to the image edge (pixels) touches the border: the object may be cut
MIN_SIDE = 8  # px at model.image_size: the finest feature stride of these detectors; smaller boxes are hard to find
SPARSE_BOXES = 3  # median boxes per image at or below which Mosaic and Copy-Paste are proposed
LARGE_OBJECT = 0.5  # median box side over image side above which Mosaic cuts most objects
SMALL_OBJECT = 0.25  # median box side over image side below which pasted objects find free room
OCCLUDED_IOU = 0.5  # a box overlapping another this much is partly hidden (and NMS at 0.5 would drop one)


def box_frame(table: LabelledTable) -> pd.DataFrame:
    """One row per box: its image row, class (name and index), size in pixels and relative to its image, centre
    relative to the image, aspect, border contact."""
    parts = []
    for row, (target, width, height) in enumerate(
        zip(table.targets, table.frame["width"].astype(float), table.frame["height"].astype(float), strict=True)
    ):
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        labels = np.asarray(target["labels"], dtype=int)
        parts.append(
            pd.DataFrame(
                {
                    "image": row,
                    "class": np.asarray(table.classes, dtype=object)[labels],
                    "label": labels,
                    "x_centre": (boxes[:, 0] + boxes[:, 2]) / 2 / width,
                    "y_centre": (boxes[:, 1] + boxes[:, 3]) / 2 / height,
                    "relative_width": w / width,
                    "relative_height": h / height,
                    "width": w,
                    "height": h,
                    "side": np.sqrt(w * h),
                    "relative_side": np.sqrt(w * h / (width * height)),
                    "aspect": w / h,
                    "border": touches_border(boxes, width, height),
                    "max_iou": max_overlaps(boxes),
                }
            )
        )
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def touches_border(boxes: np.ndarray, width: float, height: float, tolerance: float = BORDER_PX) -> np.ndarray:
    """Whether each xyxy box reaches within `tolerance` pixels of an image edge."""
    return (
        (boxes[:, 0] <= tolerance)
        | (boxes[:, 1] <= tolerance)
        | (boxes[:, 2] >= width - tolerance)
        | (boxes[:, 3] >= height - tolerance)
    )


def max_overlaps(boxes: np.ndarray) -> np.ndarray:
    """Each xyxy box's largest IoU with another box of the same image (0 when alone)."""
    if len(boxes) < 2:
        return np.zeros(len(boxes))
    iou = box_iou(boxes, boxes)
    np.fill_diagonal(iou, 0)
    return iou.max(axis=1)


def class_presence(table: LabelledTable) -> np.ndarray:
    """(images, C) 1 where the image holds a box of the class."""
    presence = np.zeros((len(table.targets), len(table.classes)), dtype=int)
    for row, target in enumerate(table.targets):
        presence[row, np.asarray(target["labels"], dtype=int)] = 1
    return presence


def co_occurrence(table: LabelledTable) -> np.ndarray:
    """(C, C) images holding both classes (the diagonal: images holding the class)."""
    presence = class_presence(table)
    return presence.T @ presence


def label_figures(context: EdaContext, boxes: pd.DataFrame) -> list[dict[str, Any]]:
    """Sample images of each class with every box drawn, and the box centre and size scatters."""
    table = context.table
    paths = table.frame["path"].astype(str).to_numpy()
    rows = [
        (
            table.classes[k],
            [
                {"path": paths[i], "boxes": table.targets[i]["boxes"], "labels": table.targets[i]["labels"]}
                for i in picked
            ],
        )
        for k, picked in samples_per_class(class_presence(table), context.readable, seed=context.config.seed)
    ]
    figures = [{"kind": "labelled", "name": "label_samples", "rows": rows, "names": table.classes}] if rows else []
    return [*figures, {"kind": "box_positions", "name": "box_positions", "boxes": boxes, "names": table.classes}]


def image_size_for_boxes(
    relative: np.ndarray, image_size: int, image_side: float, shared: tuple[int, str] | None
) -> tuple[int, str] | None:
    """model.image_size that keeps a tenth of the boxes at MIN_SIDE px or more (growing it at most to twice the
    images' own side), or the shared small-image proposal when the boxes stay large enough at it."""
    if len(relative) == 0:
        return shared
    small = float(np.percentile(relative, 10))
    if small * image_size < MIN_SIDE:
        proposed = min(math.ceil(MIN_SIDE / small / 32) * 32, max(math.ceil(2 * image_side / 32) * 32, 32), 2048)
        if proposed <= image_size:
            return None
        return proposed, (
            f"a tenth of the boxes are under {small * image_size:.1f} px at model.image_size={image_size}, below "
            f"the detectors' finest stride ({MIN_SIDE} px); at {proposed} they are {small * proposed:.0f} px"
        )
    if shared is not None and small * shared[0] >= MIN_SIDE:
        return shared[0], f"{shared[1]}; a tenth of the boxes stay {small * shared[0]:.0f} px or more"
    return None


def augmentation_proposals(config: Config, boxes: pd.DataFrame, counts: np.ndarray, has_masks: bool) -> list:
    """Mosaic, Copy-Paste and the NMS IoU, each with the finding behind it."""
    det, proposals = config.detection, []
    median_count, empty = float(np.median(counts)), float((counts == 0).mean())
    relative = float(boxes["relative_side"].median())
    sparse = f"a median of {median_count:.0f} box(es) per image, {empty:.0%} of images without boxes"
    if det.mosaic_p == 0 and (median_count <= SPARSE_BOXES or empty >= 0.2) and relative <= LARGE_OBJECT:
        proposals.append(
            (
                "detection.mosaic_p=0.5",
                f"{sparse}: Mosaic joins parts of four images into one sample, more objects and backgrounds per step",
            )
        )
    crowded = float((boxes["max_iou"] > 0).mean())
    if det.copy_paste_p == 0 and median_count <= SPARSE_BOXES and relative <= SMALL_OBJECT and crowded < 0.5:
        per_class = boxes["class"].value_counts()
        rare = (
            f"; more of the rarest class '{per_class.index[-1]}' ({per_class.iloc[-1]} boxes, "
            f"'{per_class.index[0]}' has {per_class.iloc[0]})"
            if per_class.iloc[0] > 3 * per_class.iloc[-1]
            else ""
        )
        cut = "cut along their COCO masks" if has_masks else "whole boxes with their background: no masks"
        reason = (
            f"{sparse}, objects a median {relative:.0%} of the image side: Copy-Paste adds objects of other images "
            f"where they overlap nothing ({cut}){rare}"
        )
        proposals.append(("detection.copy_paste_p=0.3", reason))
    above = float((boxes["max_iou"] > det.nms_threshold).mean())
    if above >= 0.05:
        proposed = next((t for t in (0.6, 0.7, 0.8) if (boxes["max_iou"] > t).mean() < 0.02), 0.9)
        if proposed > det.nms_threshold:
            reason = (
                f"{above:.0%} of the boxes overlap another of their image with IoU above detection.nms_threshold="
                f"{det.nms_threshold}: NMS would delete true objects"
            )
            proposals.append((f"detection.nms_threshold={proposed}", reason))
    return proposals


def anchor_proposal(config: Config, sides: np.ndarray, size: int) -> tuple[list[int], tuple[str | None, str]]:
    """The sizes detection.anchor_sizes=auto computes from the boxes' `sides` at model.image_size=`size`; an
    override when others are set. torchvision's COCO detectors keep their own anchors: nothing to propose."""
    architecture = config.detection.architecture
    if architecture not in ANCHOR_LEVELS:
        return [], (None, f"detection.architecture={architecture} keeps the anchors its COCO weights were trained with")
    proposed, reason = anchor_sizes_for(sides, size, architecture)
    current = config.detection.anchor_sizes
    if current == "auto":
        return proposed, (None, f"detection.anchor_sizes=auto gives {proposed} from these boxes: {reason}")
    if list(current[: len(proposed)]) == proposed:
        return proposed, (None, f"detection.anchor_sizes={list(current)} fits the boxes: {reason}")
    return proposed, (f"detection.anchor_sizes=[{','.join(map(str, proposed))}]", reason)


def size_shift(table: LabelledTable, test: pd.DataFrame) -> pd.DataFrame:
    """Median width, height and side of train (from the labels) and test (decoded) images."""
    rows = [("train", table.frame["width"].astype(float), table.frame["height"].astype(float))]
    if len(test):
        rows.append(("test", test["width"].astype(float), test["height"].astype(float)))
    return pd.DataFrame(
        [
            {
                "split": split,
                "images": len(w),
                "median_width": w.median(),
                "median_height": h.median(),
                "median_side": float(np.sqrt(w * h).median()),
            }
            for split, w, h in rows
        ]
    )


def explore(context: EdaContext) -> dict[str, Any]:
    """Box statistics, findings and proposals; see core/report/eda_context.py for the contract."""
    config, table = context.config, context.table
    boxes = box_frame(table)
    counts = np.array([len(target["labels"]) for target in table.targets])
    frame = table.frame
    co = co_occurrence(table)
    per_class = (
        boxes.groupby("class")
        .agg(
            boxes=("side", "size"),
            median_side_px=("side", "median"),
            median_aspect=("aspect", "median"),
            on_border=("border", "sum"),
            occluded=("max_iou", lambda v: int((v > OCCLUDED_IOU).sum())),
        )
        .reindex(table.classes)
        .fillna(0)
        .reset_index()
    )
    per_class.insert(2, "images", np.diag(co))
    shift = size_shift(table, context.test)
    stats = {
        "boxes": len(boxes),
        "boxes_per_image": {"mean": float(counts.mean()), "median": float(np.median(counts)), "max": int(counts.max())},
        "boxes_per_image_counts": {int(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True), strict=True)},
        "images_without_boxes": int((counts == 0).sum()),
        "class_boxes": dict(zip(table.classes, per_class["boxes"].astype(int).tolist(), strict=True)),
        "class_images": dict(zip(table.classes, np.diag(co).astype(int).tolist(), strict=True)),
        "class_co_occurrence": co.astype(int).tolist(),
        "border_boxes": int(boxes["border"].sum()),
        "occluded_boxes": int((boxes["max_iou"] > OCCLUDED_IOU).sum()),
        "overlapping_boxes": int((boxes["max_iou"] > 0).sum()),
        "box_side_px": {q: float(np.percentile(boxes["side"], q)) for q in (10, 50, 90)},
        "relative_side": {q: float(np.percentile(boxes["relative_side"], q)) for q in (10, 50, 90)},
        "aspect": {q: float(np.percentile(boxes["aspect"], q)) for q in (10, 50, 90)},
        "size_shift": shift.to_dict("records"),
    }
    image_side = float(np.sqrt(frame["width"].astype(float) * frame["height"].astype(float)).median())
    size = image_size_for_boxes(
        boxes["relative_side"].to_numpy(), config.model.image_size, image_side, context.stats["image_size_proposal"]
    )
    # Anchors at the image size the proposals end with: the boxes grow or shrink with it.
    model_size = config.model.image_size if size is None else size[0]
    sides = box_sides(
        [t["boxes"] for t in table.targets], frame["width"].to_numpy(), frame["height"].to_numpy(), model_size
    )
    anchors, anchor_advice = anchor_proposal(config, sides, model_size)
    stats["anchor_sizes"] = anchors
    proposals = [anchor_advice]
    if size is not None:
        proposals.insert(0, (f"model.image_size={size[0]}", size[1]))
    has_masks = any("segmentations" in target for target in table.targets)
    proposals += augmentation_proposals(config, boxes, counts, has_masks)
    findings = [
        f"{len(boxes)} boxes in {len(counts)} images: {stats['boxes_per_image']['mean']:.1f} per image "
        f"(median {np.median(counts):.0f}, max {counts.max()}); {stats['images_without_boxes']} image(s) without boxes",
        f"box side {stats['box_side_px'][50]:.0f} px median ({stats['box_side_px'][10]:.0f}-"
        f"{stats['box_side_px'][90]:.0f} px, 10th-90th percentile), {stats['relative_side'][50]:.0%} of the image "
        f"side; aspect w/h {stats['aspect'][10]:.2f}-{stats['aspect'][90]:.2f}",
        f"{stats['border_boxes']} box(es) touch the image border ({boxes['border'].mean():.0%}); "
        f"{stats['occluded_boxes']} overlap another with IoU above {OCCLUDED_IOU}",
    ]
    if len(shift) == 2 and abs(math.log(shift["median_side"].iloc[1] / shift["median_side"].iloc[0])) > math.log(1.25):
        ratio = shift["median_side"].iloc[1] / shift["median_side"].iloc[0]
        findings.append(f"test images are {ratio:.2f}x the train images' side: objects change scale by as much")
    co_table = pd.DataFrame(co, columns=table.classes).assign(images_with=table.classes)
    panels = [
        {"title": "boxes per image", "values": {"train": counts}, "integer": True},
        {"title": "box side (px, original image)", "values": {"train": boxes["side"]}, "log": True},
        {"title": "box side / image side", "values": {"train": boxes["relative_side"]}, "log": True},
        {"title": "aspect ratio w/h", "values": {"train": boxes["aspect"]}, "log": True},
    ]
    overlapping = boxes["max_iou"][boxes["max_iou"] > 0]
    sections = [
        {
            "heading": "Labels drawn: sample images per class, and where the boxes are",
            "text": "each row: images holding the class, every box in its class's colour; then box centres and "
            "sizes over the image's width and height",
            "figures": label_figures(context, boxes) if len(boxes) else [],
        },
        {
            "heading": "Boxes",
            "text": findings[0],
            "figures": [{"kind": "histograms", "name": "boxes", "panels": panels}],
            "name": "classes",
            "table": per_class,
        },
        {
            "heading": "Class co-occurrence (images holding both)",
            "name": "class_co_occurrence",
            "table": co_table[["images_with", *table.classes]],
        },
        {
            "heading": "Overlap between boxes of an image",
            "text": f"{len(overlapping)} box(es) overlap another; the largest IoU of each (an occlusion proxy)",
            "figures": [
                {
                    "kind": "histograms",
                    "name": "overlap",
                    "panels": [{"title": "largest IoU with another box", "values": {"train": overlapping}}],
                }
            ]
            if len(overlapping)
            else [],
        },
        {"heading": "Image sizes, train and test", "name": "size_shift", "table": shift},
    ]
    return {"stats": stats, "findings": findings, "proposals": proposals, "sections": sections}

"""Segmentation's part of `eda`: mask coverage per class, empty masks, connected components per image and their
sizes against the image, thin structures at model resolution; proposed crops, losses and minimum areas."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pandas as pd

from ...core.errors import DataError
from ...core.report.eda_figures import samples_per_class
from .labels import decode_target

if TYPE_CHECKING:
    from ...config import Config
    from ...core.report.eda_context import EdaContext

RARE_SHARE = 0.1  # a class in fewer than this share of the images is rare: focal loss weighs its pixels up
THIN_INTERIOR = 0.5  # a class whose pixels mostly lie on a boundary at model resolution is thin: Lovasz loss
SMALL_PERCENTILE = 5  # the small end of a class's per-image mask areas, for the minimum area
MAX_CLASS_LINES = 10  # key findings name the rarest classes only (the table has them all)
SAMPLE_SIDE = 384  # px: sample masks are kept at most this large for drawing


def mask_record(item: tuple[dict[str, Any], int, int, int, int]) -> dict[str, Any]:
    """One image's mask: per class pixels, connected components (8-connected, cv2) and their areas, and the share
    of its pixels that survive a 3x3 erosion at model resolution (low: thin structures)."""
    spec, height, width, classes, image_size = item
    try:
        channels = decode_target(spec, height, width, classes, multilabel=True)
    except (DataError, ValueError, OSError) as error:
        return {"error": str(error).splitlines()[0]}
    record: dict[str, Any] = {"pixels": [], "components": [], "areas": [], "interior": []}
    kernel = np.ones((3, 3), np.uint8)
    for k in range(classes):
        channel = np.ascontiguousarray(channels[:, :, k])
        count, _, component_stats, _ = cv2.connectedComponentsWithStats(channel, connectivity=8)
        areas = component_stats[1:, cv2.CC_STAT_AREA]
        small = cv2.resize(channel, (image_size, image_size), interpolation=cv2.INTER_NEAREST)
        kept = int(small.sum())
        record["pixels"].append(int(channel.sum()))
        record["components"].append(int(count - 1))
        record["areas"].append(areas.astype(int).tolist())
        record["interior"].append([int(cv2.erode(small, kernel).sum()), kept])
    return record


def sample_mask(spec: dict[str, Any], height: int, width: int, classes: int) -> np.ndarray:
    """The (H, W) index mask of one image (0 background, k + 1 class k), shrunk to SAMPLE_SIDE for drawing."""
    index = decode_target(spec, height, width, classes, multilabel=False)
    scale = SAMPLE_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        index = cv2.resize(index, size, interpolation=cv2.INTER_NEAREST)
    return index


def label_figure(context: EdaContext, records: list[dict], keep: np.ndarray) -> list[dict[str, Any]]:
    """Sample images of each class with their whole mask drawn in the class colours."""
    table = context.table
    frame, names = table.frame, table.classes
    presence = np.zeros((len(frame), len(names)), dtype=bool)
    presence[keep] = np.array([r["pixels"] for r in records]) > 0
    rows = []
    for k, picked in samples_per_class(presence, context.readable & keep, seed=context.config.seed):
        items = [
            {
                "path": str(frame["path"].iloc[i]),
                "mask": sample_mask(
                    table.targets[i], int(frame["height"].iloc[i]), int(frame["width"].iloc[i]), len(names)
                ),
            }
            for i in picked
        ]
        rows.append((names[k], items))
    return [{"kind": "labelled", "name": "label_samples", "rows": rows, "names": names}] if rows else []


def class_table(records: list[dict], classes: list[str], image_areas: np.ndarray) -> pd.DataFrame:
    """Per class: images holding it, coverage where present, components per image holding it, component area
    (pixels and share of the image), interior share at model resolution."""
    rows = []
    for k, name in enumerate(classes):
        pixels = np.array([r["pixels"][k] for r in records])
        present = pixels > 0
        components = np.array([r["components"][k] for r in records])
        areas = np.concatenate([np.asarray(r["areas"][k], dtype=float) for r in records])
        shares = np.concatenate(
            [np.asarray(r["areas"][k], dtype=float) / a for r, a in zip(records, image_areas, strict=True)]
        )
        interior = np.array([r["interior"][k] for r in records]).sum(axis=0)
        rows.append(
            {
                "class": name,
                "images": int(present.sum()),
                "image_share": float(present.mean()),
                "coverage_where_present": float((pixels / image_areas)[present].mean()) if present.any() else 0.0,
                "pixel_share": float(pixels.sum() / image_areas.sum()),
                "components_per_image": float(components[present].mean()) if present.any() else 0.0,
                "median_component_px": float(np.median(areas)) if len(areas) else 0.0,
                "median_component_share": float(np.median(shares)) if len(shares) else 0.0,
                "interior_share": float(interior[0] / interior[1]) if interior[1] else 0.0,
            }
        )
    return pd.DataFrame(rows)


def crop_proposal(config: Config, image_side: float, extent: float) -> tuple[str, str] | None:
    """Train at full size on crops (as `check` advises for images over twice model.image_size), the crop large
    enough for nine in ten objects (their bounding side, 1.25x)."""
    size = config.model.image_size
    if isinstance(config.segmentation.train_crop, int) or image_side < 2 * size:
        return None
    full = math.ceil(image_side / 32) * 32
    crop = min(max(size, math.ceil(1.25 * extent / 32) * 32), full - 32)
    reason = (
        f"train images are about {image_side:.0f} px: model.image_size={size} shrinks them {image_side / size:.0f}x "
        f"and thin structures vanish; {crop}-px crops at full size hold nine in ten objects whole (their side "
        f"{extent:.0f} px or less), predictions still see whole images"
    )
    return f"model.image_size={full} segmentation.train_crop={crop}", reason


def loss_proposal(config: Config, classes: pd.DataFrame) -> tuple[str, str] | None:
    """Focal loss for rare classes, Lovasz for thin ones, added to segmentation.losses when missing."""
    losses, reasons = dict(config.segmentation.losses), []
    rare = classes[classes["image_share"] < RARE_SHARE]["class"].tolist()
    thin = classes[(classes["images"] > 0) & (classes["interior_share"] < THIN_INTERIOR)]["class"].tolist()
    if rare and not losses.get("focal"):
        losses["focal"] = 1.0
        reasons.append(
            f"class(es) {', '.join(rare)} in under {RARE_SHARE:.0%} of the images: focal loss weighs hard pixels up"
        )
    if thin and not losses.get("lovasz"):
        losses["lovasz"] = 1.0
        reasons.append(
            f"class(es) {', '.join(thin)} are thin (most pixels on a boundary at model.image_size="
            f"{config.model.image_size}): Lovasz optimises IoU directly, boundaries included"
        )
    if not reasons:
        return None
    added = " ".join(f"segmentation.losses.{name}=1" for name in losses if not config.segmentation.losses.get(name))
    return added, "; ".join(reasons)


def min_area_proposal(config: Config, records: list[dict], scales: np.ndarray) -> tuple[str | None, str] | None:
    """Half the small end of the true per-image class areas at model resolution: smaller predicted masks are
    noise (postprocess empties them; segmentation.tune still searches per class on OOF)."""
    smallest = []
    for k in range(len(records[0]["pixels"])):
        areas = np.array([r["pixels"][k] * s for r, s in zip(records, scales, strict=True) if r["pixels"][k]])
        if len(areas):
            smallest.append(float(np.percentile(areas, SMALL_PERCENTILE)))
    proposed = int(min(smallest) / 2) if smallest else 0
    if proposed < 4 or config.segmentation.min_area >= proposed:
        return None
    reason = (
        f"the smallest true masks are {min(smallest):.0f} px at model resolution ({SMALL_PERCENTILE}th percentile "
        f"per class): predicted masks under half that are noise"
    )
    if config.segmentation.tune:  # OOF tuning replaces segmentation.min_area with its own per-class choice
        return None, f"{reason}; segmentation.tune picks per-class areas on OOF (with tune=false: min_area={proposed})"
    return f"segmentation.min_area={proposed}", reason


def explore(context: EdaContext) -> dict[str, Any]:
    """Mask statistics, findings and proposals; see core/report/eda_context.py for the contract."""
    config, table = context.config, context.table
    frame, size, names = table.frame, config.model.image_size, table.classes
    items = [
        (spec, int(h), int(w), len(names), size)
        for spec, w, h in zip(table.targets, frame["width"], frame["height"], strict=True)
    ]
    records = context.map(mask_record, items, "eda masks")
    errors = pd.DataFrame(
        [{"path": p, "error": r["error"]} for p, r in zip(frame["path"], records, strict=True) if "error" in r],
        columns=["path", "error"],
    )
    keep = np.array(["error" not in r for r in records])
    records = [r for r in records if "error" not in r]
    areas = (frame["width"].astype(float) * frame["height"].astype(float)).to_numpy()[keep]
    if not records:
        return {
            "findings": ["no mask could be decoded"],
            "sections": [{"heading": "Masks", "name": "mask_errors", "table": errors}],
        }
    classes = class_table(records, names, areas)
    empty = np.array([sum(r["pixels"]) == 0 for r in records])
    components = np.array([sum(r["components"]) for r in records])
    all_areas = np.concatenate([np.asarray(a, dtype=float) for r in records for a in r["areas"]])
    shares = np.concatenate(
        [np.asarray(a, dtype=float) / area for r, area in zip(records, areas, strict=True) for a in r["areas"]]
    )
    model_areas = np.concatenate(
        [
            np.asarray(a, dtype=float) * size * size / area
            for r, area in zip(records, areas, strict=True)
            for a in r["areas"]
        ]
    )
    extents = np.sqrt(all_areas)  # a component's side were it square, in original pixels
    image_side = float(np.median(np.sqrt(areas)))
    stats = {
        "mask_errors": errors.to_dict("records"),
        "empty_masks": int(empty.sum()),
        "empty_share": float(empty.mean()),
        "classes": classes.to_dict("records"),
        "components_per_image": {
            int(k): int(v) for k, v in zip(*np.unique(components, return_counts=True), strict=True)
        },
        "component_px": {q: float(np.percentile(all_areas, q)) for q in (10, 50, 90)} if len(all_areas) else {},
    }
    proposals = []
    shared = context.stats["image_size_proposal"]
    crop = crop_proposal(config, image_side, float(np.percentile(extents, 90)) if len(extents) else 0.0)
    if crop is not None:
        proposals.append(crop)
    elif shared is not None:
        proposals.append((f"model.image_size={shared[0]}", shared[1]))
    scales = size * size / areas
    for proposal in (loss_proposal(config, classes), min_area_proposal(config, records, scales)):
        if proposal is not None:
            proposals.append(proposal)
    summary = (
        f"{len(records)} masks, {stats['empty_masks']} empty ({stats['empty_share']:.0%}); "
        f"{components.sum()} connected components, {np.median(components[~empty]) if (~empty).any() else 0:.0f} "
        "per non-empty image (median)"
    )
    findings = [
        summary,
        *(
            f"class {row['class']}: in {row['images']} images ({row['image_share']:.0%}), covering "
            f"{row['coverage_where_present']:.1%} of them; components of {row['median_component_px']:.0f} px median "
            f"({row['median_component_share']:.2%} of the image)"
            for row in sorted(stats["classes"], key=lambda row: row["images"])[:MAX_CLASS_LINES]
        ),
    ]
    vanishing = float((model_areas < 4).mean()) if len(model_areas) else 0.0
    if vanishing:
        findings.append(f"{vanishing:.0%} of the components are under 4 px at model.image_size={size}")
    if len(errors):
        findings.insert(0, f"{len(errors)} mask(s) cannot be decoded: see Masks that cannot be decoded")
    panels = [
        {"title": "components per image", "values": {"train": components}, "integer": True},
        {"title": "component area (px)", "values": {"train": all_areas}, "log": True},
        {"title": "component area / image area", "values": {"train": shares}, "log": True},
        {
            "title": "mask coverage where present",
            "values": {
                n: [r["pixels"][k] / a for r, a in zip(records, areas, strict=True) if r["pixels"][k]]
                for k, n in enumerate(names)
            },
        },
    ]
    sections = [
        {
            "heading": "Labels drawn: sample images per class",
            "text": "each row: images holding the class, their whole mask translucent in the class colours",
            "figures": label_figure(context, records, keep),
        },
        {
            "heading": "Masks",
            "text": summary,
            "name": "mask_classes",
            "table": classes,
            "figures": [{"kind": "histograms", "name": "masks", "panels": panels}],
        },
        {"heading": "Masks that cannot be decoded", "name": "mask_errors", "table": errors},
    ]
    return {"stats": stats, "findings": findings, "proposals": proposals, "sections": sections}

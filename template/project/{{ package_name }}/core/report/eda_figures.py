"""EDA figures of the labels themselves: sample images per class with their boxes or masks drawn in the class
colours, and where boxes sit and how large they are relative to their image (Ultralytics' labels.jpg)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data import read_image
from .page import figure_png, plt
from .plots import class_colours, class_legend, draw_boxes, legend_outside, overlay_mask

SAMPLES_PER_CLASS = 4  # images drawn for each class
SAMPLE_CLASSES = 12  # classes given a row of samples, in class order (the tables list every class)
SCATTER_POINTS = 20000  # boxes drawn in the position scatters (a sample, beyond)


def samples_per_class(
    presence: np.ndarray, usable: np.ndarray, per_class: int = SAMPLES_PER_CLASS, seed: int = 0
) -> list[tuple[int, np.ndarray]]:
    """(class, rows) for the first SAMPLE_CLASSES classes that have a usable image: up to `per_class` usable rows
    holding the class, drawn at random with `seed`. `presence` is (images, classes) 0/1."""
    presence = np.asarray(presence, dtype=bool)
    rng = np.random.default_rng(seed)
    picked: list[tuple[int, np.ndarray]] = []
    for k in range(presence.shape[1]):
        if len(picked) == SAMPLE_CLASSES:
            break
        rows = np.flatnonzero(presence[:, k] & usable)
        if len(rows):
            picked.append((int(k), np.sort(rng.choice(rows, min(per_class, len(rows)), replace=False))))
    return picked


def draw_labels(axis: Any, item: dict[str, Any], names: list[str], colours: np.ndarray) -> None:
    """One sample: its image with every box (`boxes` xyxy and `labels`) or its mask (`mask`, 0 background and
    k + 1 class k) in the class colours."""
    image = item["image"] if "image" in item else read_image(item["path"])
    if "mask" in item:
        overlay_mask(axis, image, item["mask"], names, colours)
    else:
        axis.imshow(image)
        draw_boxes(axis, item["boxes"], item["labels"], names, colours=colours)
    axis.set_xlim(-0.5, image.shape[1] - 0.5)
    axis.set_ylim(image.shape[0] - 0.5, -0.5)


def labelled_samples(rows: list[tuple[str, list[dict[str, Any]]]], names: list[str], size: float = 2.2) -> bytes:
    """A row of samples per class (captioned with the class and the image's file name), every label of each image
    drawn; one legend of the class colours beside the grid."""
    colours = class_colours(len(names))
    columns = max(len(items) for _, items in rows)
    figure, axes = plt.subplots(len(rows), columns, figsize=(size * columns, size * 1.1 * len(rows)), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for r, (title, items) in enumerate(rows):
        for c, item in enumerate(items):
            draw_labels(axes[r, c], item, names, colours)
            axes[r, c].set_title(f"{title}: {Path(item['path']).stem}", fontsize=7)
    figure.tight_layout()
    shown = sorted({k for _, items in rows for item in items for k in item_classes(item)})
    class_legend(figure, [names[k] for k in shown], colours[shown], title="class")
    return figure_png(figure)


def item_classes(item: dict[str, Any]) -> set[int]:
    if "mask" in item:
        return {int(v) - 1 for v in np.unique(item["mask"]) if v > 0}
    return {int(label) for label in item["labels"]}


def box_positions(boxes: pd.DataFrame, names: list[str], seed: int = 0) -> bytes:
    """Box centres (x, y) and sizes (width, height), each over its image's side, one colour per class: where objects
    sit (a centre bias, edges) and their shapes (aspect lines, a size floor). `boxes` holds x_centre, y_centre,
    relative_width, relative_height and label (class index)."""
    if len(boxes) > SCATTER_POINTS:
        boxes = boxes.sample(SCATTER_POINTS, random_state=seed)
    colours = class_colours(len(names))
    figure, (centres, sizes) = plt.subplots(1, 2, figsize=(8.4, 3.8))
    size = 3 if len(boxes) > 5000 else 8 if len(boxes) > 500 else 18
    for k, name in enumerate(names):
        own = boxes[boxes["label"] == k]
        if len(own):
            style = {"s": size, "color": colours[k], "alpha": 0.5, "linewidths": 0, "label": f"{name} ({len(own)})"}
            centres.scatter(own["x_centre"], own["y_centre"], **style)
            sizes.scatter(own["relative_width"], own["relative_height"], **style)
    centres.set(xlim=(0, 1), ylim=(1, 0), xlabel="x centre / image width", ylabel="y centre / image height")
    centres.set_title("box centres (image orientation: top at the top)")
    sizes.set(xlim=(0, 1), ylim=(0, 1), xlabel="width / image width", ylabel="height / image height")
    sizes.set_title("box sizes")
    for axis in (centres, sizes):
        axis.set_aspect("equal")
    legend_outside(sizes, title="class (boxes)", markerscale=2, ncol=1 + len(names) // 20)
    return figure_png(figure)

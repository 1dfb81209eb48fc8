"""`augment-preview`: a PNG grid of augmented training images, to see what a pipeline really does."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Rectangle

from ..config import Config
from ..core.augment import load_augmentations, redirect_caches
from ..core.data import read_image
from ..core.runs import RunPaths, atomic_path
from ..tasks import create_task, read_train_table


def _draw_boxes(axis: plt.Axes, boxes: np.ndarray, labels: list[str]) -> None:
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        axis.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor="yellow", linewidth=1))
        axis.text(x1, y1, label, color="black", backgroundcolor="yellow", fontsize=5)


def pipeline_name(pipeline: str | dict | None) -> str:
    """How the image names the pipeline it draws: its file, or the transforms of an inline one."""
    if pipeline is None:
        return "none (resize only)"
    if isinstance(pipeline, str):
        return pipeline
    transforms = pipeline.get("transform", pipeline).get("transforms", [])
    names = [str(item.get("__class_fullname__", "?")).rsplit(".", 1)[-1] for item in transforms]
    return f"inline: {', '.join(names) or 'no transforms'}"


def preview_augmentations(config: Config, count: int = 16, output: Path | None = None) -> Path:
    """Apply `aug.train` to `count` training images (original first in each pair), as the model sees them
    (resized, with Mosaic and Copy-Paste for detection, boxes drawn); return the PNG path."""
    table = read_train_table(config.data)
    augmentations = load_augmentations(config.aug.train, "aug.train")
    redirect_caches(augmentations, RunPaths.from_config(config).root / "augraphy")
    task = create_task(config, table.classes)
    transform = task.create_transform(augmentations, train=True)
    paths = table.frame["path"].tolist()
    dataset = task.create_dataset(paths, table.targets, transform, train=True)
    rng = np.random.default_rng(config.seed)
    rows = rng.choice(len(table.frame), size=min(count, len(table.frame)), replace=False)
    columns = 8
    grid_rows = -(-2 * len(rows) // columns)
    figure, axes = plt.subplots(grid_rows, columns, figsize=(1.6 * columns, 1.8 * grid_rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, row in enumerate(rows):
        image = read_image(table.frame["path"].iloc[row], config.model.in_chans)
        tensor, target = dataset[int(row)]
        augmented = tensor.permute(1, 2, 0).numpy()
        label = table.frame["id"].iloc[row]
        for offset, (picture, title) in enumerate(((image, f"{label}"), (augmented, "augmented"))):
            axis = axes.flat[2 * index + offset]
            axis.imshow(picture.squeeze(), cmap="gray" if picture.shape[-1] == 1 else None)
            axis.set_title(title, fontsize=7)
            if isinstance(target, torch.Tensor) and target.ndim >= 2:  # segmentation: the mask over the image
                mask = target.numpy() if offset else task.target_mask(table.targets[int(row)], *picture.shape[:2])
                if mask.ndim == 3:  # multilabel channels (C, H, W): show their union coloured by first class
                    mask = (mask.argmax(axis=0) + 1) * (mask.max(axis=0) > 0)
                axis.imshow(np.ma.masked_equal(mask, 0), alpha=0.45, cmap="tab10", vmin=0, vmax=10)
            if isinstance(target, dict):  # detection: the original boxes, then the augmented ones
                boxes = table.targets[row]["boxes"] if offset == 0 else target["boxes"].numpy()
                names = table.targets[row]["labels"] if offset == 0 else target["labels"].numpy() - 1
                _draw_boxes(axis, boxes, [table.classes[int(i)] for i in names])
    figure.suptitle(f"{config.experiment}: aug.train = {pipeline_name(config.aug.train)}", fontsize=9)
    output = output or RunPaths.from_config(config).root / "reports" / "augment_preview.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as temporary:
        figure.savefig(temporary, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return output

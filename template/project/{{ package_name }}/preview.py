"""`augment-preview`: a PNG grid of augmented training images, to see what a pipeline really does."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .augment import load_augmentations, redirect_caches
from .config import Config
from .data import read_image, read_train_table
from .runs import RunPaths, atomic_path


def preview_augmentations(config: Config, count: int = 16, output: Path | None = None) -> Path:
    """Apply `aug.train` to `count` training images (original first in each pair); return the PNG path."""
    table = read_train_table(config.data)
    augmentations = load_augmentations(config.aug.train, "aug.train")
    redirect_caches(augmentations, RunPaths.from_config(config).root / "augraphy")
    rng = np.random.default_rng(config.seed)
    rows = rng.choice(len(table.frame), size=min(count, len(table.frame)), replace=False)
    columns = 8
    grid_rows = -(-2 * len(rows) // columns)
    figure, axes = plt.subplots(grid_rows, columns, figsize=(1.6 * columns, 1.8 * grid_rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for index, row in enumerate(rows):
        image = read_image(table.frame["path"].iloc[row], config.model.in_chans)
        augmented = augmentations(image=image)["image"] if augmentations is not None else image
        label = table.frame["id"].iloc[row]
        for offset, (picture, title) in enumerate(((image, f"{label}"), (augmented, "augmented"))):
            axis = axes.flat[2 * index + offset]
            axis.imshow(picture.squeeze(), cmap="gray" if picture.shape[-1] == 1 else None)
            axis.set_title(title, fontsize=7)
    output = output or RunPaths.from_config(config).root / "reports" / "augment_preview.png"
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as temporary:
        figure.savefig(temporary, format="png", dpi=80, bbox_inches="tight")
    plt.close(figure)
    return output

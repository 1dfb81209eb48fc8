"""Segmentation pseudo-labels: each test image's predicted mask at its own size, where pixels whose winning
probability is below pseudo.threshold become the ignore index (left out of the loss); multiclass models only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from ...config import Config
from ...core.data import LabelledTable, check_unique_ids, read_csv, require_columns, with_pseudo_rows
from ...core.errors import ConfigError, DataError
from ...core.runs import write_csv
from .blend import read_member
from .labels import write_mask_png

IGNORE = 255  # the ignore index pseudo masks use when the config sets none


def ignore_value(config: Config) -> int:
    if config.segmentation.mode == "multilabel":
        raise ConfigError("pseudo: segmentation pseudo-labels need segmentation.mode=multiclass (an ignore index)")
    if any(weight > 0 for name, weight in config.segmentation.losses.items() if name == "jaccard"):
        raise ConfigError("pseudo: smp's jaccard loss has no ignore index; use dice, focal, lovasz, tversky or ce")
    return IGNORE if config.segmentation.ignore_index is None else config.segmentation.ignore_index


def pseudo_mask(probs: np.ndarray, size: tuple[float, float], threshold: float, ignore: int) -> np.ndarray:
    """(H, W) index mask at the image's own size from (C, h, w) uint8 probabilities; unsure pixels are `ignore`."""
    width, height = (int(v) for v in size)
    maps = np.stack([cv2.resize(p, (width, height), interpolation=cv2.INTER_LINEAR) for p in probs])
    mask = maps.argmax(axis=0).astype(np.uint8)
    mask[maps.max(axis=0) < threshold * 255] = ignore
    return mask


def write_pseudo_labels(
    task: Any, config: Config, source: Path, image_paths: dict[str, str], folder: Path
) -> dict[str, Any]:
    """`folder`/pseudo_masks/<id>.png and `folder`/pseudo_labels.csv (id, path, width, height, mask); images whose
    every pixel is unsure are left out."""
    ignore = ignore_value(config)
    ids, outputs = read_member(task, source.with_suffix(".npz"), "test")  # run predict (or ensemble) first
    rows, ignored = [], 0
    for image_id, output in zip(ids, outputs, strict=True):
        if image_id not in image_paths:
            raise DataError(f"pseudo: prediction id '{image_id}' has no image in data.test_images")
        mask = pseudo_mask(output["probs"], output["size"], config.pseudo.threshold, ignore)
        unsure = float((mask == ignore).mean())
        if unsure == 1.0:
            continue
        ignored += unsure
        path = write_mask_png(folder / "pseudo_masks" / f"{image_id}.png", mask)
        height, width = mask.shape
        rows.append({"id": image_id, "path": image_paths[image_id], "width": width, "height": height, "mask": path})
    if not rows:
        raise DataError(f"{source.with_suffix('.npz')}: no pixel reaches pseudo.threshold={config.pseudo.threshold}")
    file = write_csv(folder / "pseudo_labels.csv", pd.DataFrame(rows))
    return {"file": file, "selected": len(rows), "of": len(ids), "ignored_pixel_share": round(ignored / len(rows), 4)}


def round_overrides(config: Config) -> dict[str, Any]:
    return {"segmentation": {"ignore_index": ignore_value(config)}}


def with_pseudo_labels(
    table: LabelledTable, folds: np.ndarray, path: Path, config: Config
) -> tuple[LabelledTable, np.ndarray, None]:
    """Pseudo rows whose targets are their index masks (with the ignore index allowed)."""
    ignore = ignore_value(config)
    frame = read_csv(path)
    require_columns(frame, ["id", "path", "width", "height", "mask"], path)
    check_unique_ids(frame["id"], path)
    missing = [mask for mask in frame["mask"] if not Path(mask).is_file()]
    if missing:
        raise DataError(f"{path}: pseudo mask {missing[0]} not found")
    specs = np.empty(len(frame), dtype=object)
    specs[:] = [{"mask": str(mask), "binary": False, "ignore": ignore} for mask in frame["mask"]]
    extended, all_folds = with_pseudo_rows(table, folds, frame[["id", "path", "width", "height"]], specs, path)
    return extended, all_folds, None

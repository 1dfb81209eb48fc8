"""Test-time augmentation: named views of an NCHW batch and the average of the model's probabilities."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

View = Callable[[torch.Tensor], torch.Tensor]

TTA_VIEWS: dict[str, View] = {
    "identity": lambda x: x,
    "hflip": lambda x: x.flip(-1),
    "vflip": lambda x: x.flip(-2),
    "rot90": lambda x: torch.rot90(x, 1, dims=(-2, -1)),
    "rot180": lambda x: torch.rot90(x, 2, dims=(-2, -1)),
    "rot270": lambda x: torch.rot90(x, 3, dims=(-2, -1)),
    "transpose": lambda x: x.transpose(-2, -1),
}


def _scale_view(factor: float) -> View:
    def view(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)

    return view


def get_view(name: str) -> View:
    """A registered view, or `scale_F` (resize by factor F, e.g. scale_1.25)."""
    if name in TTA_VIEWS:
        return TTA_VIEWS[name]
    if name.startswith("scale_"):
        try:
            factor = float(name.removeprefix("scale_"))
        except ValueError:
            factor = 0.0
        if factor > 0:
            return _scale_view(factor)
    known = ", ".join([*TTA_VIEWS, "scale_<factor>"])
    raise ValueError(f"unknown TTA view '{name}'; expected one of {known}")


# Views a task can map its outputs back from; a task not listed takes every view (boxes only flip and scale).
TASK_VIEWS: dict[str, tuple[str, ...]] = {"detection": ("identity", "hflip", "vflip")}


def check_views(views: list[str], task: str) -> None:
    """Raise ValueError naming the first view that is unknown or that `task` cannot invert."""
    if not views:
        raise ValueError("TTA needs at least one view, e.g. [identity]")
    allowed = TASK_VIEWS.get(task)
    for name in views:
        get_view(name)
        if allowed is not None and name not in allowed and not name.startswith("scale_"):
            raise ValueError(
                f"TTA view '{name}' has no box inverse for {task}; use {', '.join(allowed)}, scale_<factor>"
            )


def tta_probabilities(
    predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, views: list[str]
) -> torch.Tensor:
    """Mean over views of `predict(view(images))` (probabilities, so the mean stays a distribution)."""
    if not views:
        raise ValueError("TTA needs at least one view, e.g. [identity]")
    total = None
    for name in views:
        probabilities = predict(get_view(name)(images))
        total = probabilities if total is None else total + probabilities
    return total / len(views)


def deaugment_boxes(view: str, boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Map xyxy boxes predicted on `view(image)` back to the image (width, height are the view's input size)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    if view == "identity" or view.startswith("scale_"):
        return boxes  # the detector already returns boxes in its input's coordinates
    if view == "hflip":
        return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)
    if view == "vflip":
        return np.stack([boxes[:, 0], height - boxes[:, 3], boxes[:, 2], height - boxes[:, 1]], axis=1)
    raise ValueError(f"TTA view '{view}' is not supported for detection; use identity, hflip, vflip or scale_<f>")

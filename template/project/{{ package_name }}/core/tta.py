"""Test-time augmentation for every task: named views of an NCHW batch and their exact inverses, for class
probabilities (views averaged), probability maps (mapped back, then soft or hard voting) and boxes."""

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


# The view that undoes each view (maps predicted on a view are mapped back before they are merged).
INVERSE_VIEWS: dict[str, str] = {
    "identity": "identity",
    "hflip": "hflip",
    "vflip": "vflip",
    "rot90": "rot270",
    "rot180": "rot180",
    "rot270": "rot90",
    "transpose": "transpose",
}


def _scale_view(factor: float, multiple: int | None) -> View:
    def view(x: torch.Tensor) -> torch.Tensor:
        if multiple is None:
            return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
        size = [max(multiple, round(side * factor / multiple) * multiple) for side in x.shape[-2:]]
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    return view


def get_view(name: str, multiple: int | None = None) -> View:
    """A registered view, or `scale_F` (resize by factor F, e.g. scale_1.25; to sides that are multiples of
    `multiple` when given: segmentation encoders need multiples of 32)."""
    if name in TTA_VIEWS:
        return TTA_VIEWS[name]
    if name.startswith("scale_"):
        try:
            factor = float(name.removeprefix("scale_"))
        except ValueError:
            factor = 0.0
        if factor > 0:
            return _scale_view(factor, multiple)
    known = ", ".join([*TTA_VIEWS, "scale_<factor>"])
    raise ValueError(f"unknown '{name}'; expected one of {known}")


def check_views(views: list[str]) -> None:
    """Raise ValueError naming the first view that is unknown (which views a task maps back is its TaskSpec's)."""
    if not views:
        raise ValueError("TTA needs at least one view, e.g. [identity]")
    for name in views:
        get_view(name)


def select_views(
    candidates: list[str], score_views: Callable[[list[str]], float], higher_is_better: bool = True
) -> tuple[list[str], dict[str, float]]:
    """Greedy forward selection: start from the first candidate, add each next one only if the score of the
    views so far does not drop. Returns the views kept and the score of every combination tried ('+'-joined)."""
    if not candidates:
        raise ValueError("TTA needs at least one view, e.g. [identity]")
    chosen = [candidates[0]]
    best = score_views(chosen)
    tried = {candidates[0]: best}
    for view in candidates[1:]:
        trial = [*chosen, view]
        score = score_views(trial)
        tried["+".join(trial)] = score
        if (score >= best) if higher_is_better else (score <= best):
            chosen, best = trial, score
    return chosen, tried


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


def view_pair(name: str, multiple: int | None = 32) -> tuple[View, View]:
    """(view, inverse) for maps; a scale view's inverse is the identity, as maps are resized back to the input."""
    view = get_view(name, multiple)
    return view, (TTA_VIEWS[INVERSE_VIEWS[name]] if name in INVERSE_VIEWS else TTA_VIEWS["identity"])


def map_probabilities(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    views: list[str],
    hard: bool,
    multilabel: bool,
) -> torch.Tensor:
    """Per-pixel class probabilities merged over views: their mean (soft voting) or, with `hard`, the share of
    views whose argmax (multiclass) or 0.5 threshold (multilabel) picks each class (hard voting)."""
    total = None
    for name in views:
        forward, inverse = view_pair(name)
        output = inverse(predict(forward(images)))
        if output.shape[-2:] != images.shape[-2:]:
            output = F.interpolate(output, size=images.shape[-2:], mode="bilinear", align_corners=False)
        if hard:
            if multilabel:
                output = (output >= 0.5).float()
            else:
                output = F.one_hot(output.argmax(1), output.shape[1]).permute(0, 3, 1, 2).float()
        total = output if total is None else total + output
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

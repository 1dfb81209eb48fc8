"""Segmentation losses by name from smp (dice, jaccard, focal, lovasz, tversky) and cross-entropy, summed with
the weights of segmentation.losses."""

from __future__ import annotations

from collections.abc import Callable

import segmentation_models_pytorch as smp
import torch
from torch import nn

from ...config import Config
from ...core.errors import ConfigError
from ...core.registry import lookup

LOSSES: dict[str, Callable[[str, int | None], nn.Module]] = {
    "dice": lambda mode, ignore: smp.losses.DiceLoss(mode, ignore_index=ignore),
    "jaccard": lambda mode, ignore: smp.losses.JaccardLoss(mode),
    "focal": lambda mode, ignore: smp.losses.FocalLoss(mode, ignore_index=ignore),
    "lovasz": lambda mode, ignore: smp.losses.LovaszLoss(mode, ignore_index=ignore),
    "tversky": lambda mode, ignore: smp.losses.TverskyLoss(mode, ignore_index=ignore),
    "ce": lambda mode, ignore: (
        nn.CrossEntropyLoss(ignore_index=-100 if ignore is None else ignore)
        if mode == "multiclass"
        else smp.losses.SoftBCEWithLogitsLoss(ignore_index=ignore)
    ),
}


def create_loss(config: Config) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The weighted sum of smp losses named in segmentation.losses."""
    seg = config.segmentation
    weighted = {name: weight for name, weight in seg.losses.items() if weight}  # a weight of 0 switches one off
    if not weighted:
        names = ", ".join(LOSSES)
        raise ConfigError(f"segmentation.losses: no weight above 0; expected names from {names} with weights")
    parts = [
        (weight, lookup(LOSSES, name, "segmentation.losses")(seg.mode, seg.ignore_index))
        for name, weight in weighted.items()
    ]

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        return sum(weight * part(logits, target) for weight, part in parts)

    return loss

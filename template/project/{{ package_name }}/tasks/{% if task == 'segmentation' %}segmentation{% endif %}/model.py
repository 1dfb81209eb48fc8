"""Segmentation models: smp architectures (segmentation.architecture) on timm encoders (smp's tu- encoders)."""

from __future__ import annotations

from typing import Any

import segmentation_models_pytorch as smp
import timm
from torch import nn

from ...config import ModelConfig
from ...core.errors import ConfigError, ModelError
from ...core.task_config import SegmentationConfig
from ...core.weights import build_model, check_backbone, offline_hint


def create_segmenter(
    model_config: ModelConfig, seg: SegmentationConfig, num_outputs: int, pretrained: bool | None = None
) -> nn.Module:
    """An smp model with `num_outputs` channels on the timm encoder model.backbone."""
    check_backbone(model_config.backbone)  # smp's tu- encoders are timm models
    return build_model(lambda use: _create(model_config, seg, num_outputs, use), model_config, pretrained)


def _create(model_config: ModelConfig, seg: SegmentationConfig, num_outputs: int, use_pretrained: bool) -> nn.Module:
    kwargs: dict[str, Any] = {}
    if seg.decoder_channels is not None:
        kwargs["decoder_channels"] = seg.decoder_channels
    try:
        return smp.create_model(
            seg.architecture,
            encoder_name=f"tu-{model_config.backbone}",
            encoder_weights="imagenet" if use_pretrained else None,
            in_channels=model_config.in_chans,
            classes=num_outputs,
            **kwargs,
        )
    except KeyError as error:
        raise ConfigError(f"segmentation.architecture '{seg.architecture}' is not an smp architecture") from error
    except (OSError, RuntimeError) as error:
        if use_pretrained:
            what = f"ImageNet weights for the encoder 'tu-{model_config.backbone}'"
            raise ModelError(f"{offline_hint(what)} ({' '.join(str(error).split())[:200]})") from error
        raise ModelError(
            f"cannot build {seg.architecture} on 'tu-{model_config.backbone}': {' '.join(str(error).split())[:200]}"
        ) from error


def encoder_normalisation(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std of the encoder's pretrained weights (ImageNet's when timm has none)."""
    config = timm.get_pretrained_cfg(backbone)
    mean = getattr(config, "mean", None) or (0.485, 0.456, 0.406)
    std = getattr(config, "std", None) or (0.229, 0.224, 0.225)
    return tuple(mean), tuple(std)

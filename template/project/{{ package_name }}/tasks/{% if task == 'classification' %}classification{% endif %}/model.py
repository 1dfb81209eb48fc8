"""timm backbones: name checks, offline weights from a local file, normalisation constants."""

from __future__ import annotations

import timm
import torch

from ...config import ModelConfig
from ...core.errors import ModelError
from ...core.weights import build_model, check_backbone, offline_hint


def create_model(config: ModelConfig, num_classes: int, pretrained: bool | None = None) -> torch.nn.Module:
    """`timm.create_model` with the config's knobs; `model.weights` loads pretrained weights from a file."""
    check_backbone(config.backbone)
    return build_model(lambda use_pretrained: _create(config, num_classes, use_pretrained), config, pretrained)


def _create(config: ModelConfig, num_classes: int, use_pretrained: bool) -> torch.nn.Module:
    kwargs: dict = {
        "num_classes": num_classes,
        "drop_rate": config.drop_rate,
        "in_chans": config.in_chans,
    }
    if config.drop_path_rate:
        kwargs["drop_path_rate"] = config.drop_path_rate
    try:
        model = timm.create_model(config.backbone, pretrained=use_pretrained, **kwargs)
    except (OSError, RuntimeError, ValueError) as error:
        if use_pretrained:
            raise ModelError(
                f"{offline_hint(f'pretrained weights for {config.backbone!r}')} "
                f"({type(error).__name__}: {' '.join(str(error).split())[:200]})"
            ) from error
        raise ModelError(f"cannot build '{config.backbone}': {' '.join(str(error).split())[:300]}") from error
    if config.stem_pool == "drop":
        drop_stem_pool(model)
    return model


def drop_stem_pool(model: torch.nn.Module) -> bool:
    """Replace a ResNet-style stem's max-pool (timm's `maxpool`) by identity: the stages see twice the resolution
    for four times the compute; the weights are unchanged, so pretrained ones still load. False when there is none."""
    if not isinstance(getattr(model, "maxpool", None), torch.nn.MaxPool2d):
        return False
    model.maxpool = torch.nn.Identity()
    return True


def normalisation(model: torch.nn.Module) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std the backbone was pretrained with (timm's pretrained config)."""
    data_config = timm.data.resolve_data_config({}, model=model)
    return tuple(data_config["mean"]), tuple(data_config["std"])

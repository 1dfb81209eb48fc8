"""albumentations pipelines from config (albumentations' own YAML/dict serialisation), framed by resize and
the backbone's normalisation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

import albumentations as A
from albumentations.pytorch import ToTensorV2

from .errors import ConfigError


def load_augmentations(spec: str | dict[str, Any] | None, key: str = "aug") -> A.BaseCompose | None:
    """A serialised albumentations pipeline: a file saved by `A.save`, or an `A.to_dict` mapping."""
    if spec is None:
        return None
    try:
        if isinstance(spec, dict):
            return A.from_dict(spec)
        path = Path(spec)
        if not path.is_file():
            raise ConfigError(f"{key}: augmentation file {path} not found")
        data_format = "json" if path.suffix == ".json" else "yaml"
        return A.load(str(path), data_format=data_format)
    except ConfigError:
        raise
    except Exception as error:  # albumentations raises ValueError/KeyError/TypeError on unknown transforms
        where = spec if isinstance(spec, str) else "inline pipeline"
        raise ConfigError(f"{key}: albumentations cannot load {where}: {' '.join(str(error).split())}") from error


def create_transform(
    augmentations: A.BaseCompose | None,
    *,
    image_size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> A.Compose:
    """Resize, then the configured augmentations, then normalisation and a CHW float tensor."""
    steps: list[Any] = [A.Resize(image_size, image_size)]
    if augmentations is not None:
        steps.append(augmentations)
    steps += [A.Normalize(mean=mean, std=std), ToTensorV2()]
    return A.Compose(steps)

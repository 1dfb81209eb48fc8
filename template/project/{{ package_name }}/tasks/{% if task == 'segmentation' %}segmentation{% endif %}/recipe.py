"""segmentation.train_crop: large images train on crops (auto: chosen with its reason), a crop smaller than the
image, and `check`'s advice to crop images much larger than model.image_size."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ...core.errors import ConfigError
from ...core.task import Choice

if TYPE_CHECKING:
    from ...config import Config

CROP_FROM_SIZE = 384  # segmentation.train_crop=auto crops images the model reads at this side or more
SMALLEST_CROP = 256


def auto_crop(image_size: int) -> int | None:
    """segmentation.train_crop=auto: half the side (a multiple of 32, at least SMALLEST_CROP) from CROP_FROM_SIZE up,
    else None (no crop)."""
    if image_size < CROP_FROM_SIZE:
        return None
    return max(SMALLEST_CROP, image_size // 2 // 32 * 32)


def crop_choice(config: Config) -> Choice | None:
    if config.segmentation.train_crop != "auto":
        return None
    size = config.model.image_size
    crop = auto_crop(size)
    if crop is None:
        return Choice(
            {"segmentation": {"train_crop": None}},
            f"segmentation.train_crop=null: model.image_size={size} is under {CROP_FROM_SIZE}, whole images train",
        )
    return Choice(
        {"segmentation": {"train_crop": crop}},
        f"segmentation.train_crop={crop}: model.image_size={size} images train on {crop}-px crops (around objects "
        f"where the mask has any), {(size / crop) ** 2:.1f}x the updates a budget buys; predictions see whole images",
    )


def check_crop(config: Config) -> None:
    crop = config.segmentation.train_crop
    if isinstance(crop, int) and crop >= config.model.image_size:
        raise ConfigError(
            f"segmentation.train_crop={crop} is not smaller than model.image_size={config.model.image_size}: "
            "it would crop nothing"
        )


def propose_crop(config: Config, median_side: float) -> list[str]:
    """Images more than twice model.image_size: shrinking them erases thin structures, so propose training at
    their own size on crops (predictions still see whole images)."""
    image_size = config.model.image_size
    if isinstance(config.segmentation.train_crop, int) or median_side < 2 * image_size:
        return []
    full = math.ceil(median_side / 32) * 32
    return [
        f"train images are about {median_side:.0f} px: model.image_size={image_size} shrinks them "
        f"{median_side / image_size:.0f}x and thin structures vanish; train at full size on crops: "
        f"model.image_size={full} segmentation.train_crop={image_size}"
    ]

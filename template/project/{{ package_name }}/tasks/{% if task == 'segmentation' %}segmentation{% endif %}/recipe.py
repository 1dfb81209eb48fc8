"""segmentation.train_crop=auto: large images train on crops, each choice with its reason."""

from __future__ import annotations

from typing import TYPE_CHECKING

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

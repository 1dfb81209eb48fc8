"""detection.fit_image_size: under a time budget, the resolution the small boxes allow, with its reason."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ...core.task import Choice

if TYPE_CHECKING:
    from ...config import Config

SMALLEST_FITTED_SIZE = 256  # detection.fit_image_size never goes below (a 5-level FPN's coarsest map is then 8x8)
SMALL_BOX_SIDE = 16  # px: about the smallest side a stride-8 feature map still detects


def fitted_image_size(small_side: float, image_size: int) -> int:
    """The smallest side (a multiple of 32, at least SMALLEST_FITTED_SIZE, at most `image_size`) at which a box whose
    side is `small_side` at `image_size` keeps SMALL_BOX_SIDE px."""
    if small_side <= 0:
        return image_size
    needed = math.ceil(image_size * SMALL_BOX_SIDE / small_side / 32) * 32
    return min(image_size, max(needed, SMALLEST_FITTED_SIZE))


def image_size_choice(config: Config, sides: Any) -> Choice | None:
    """detection.fit_image_size: under a time budget, the resolution the small boxes (5th percentile side, `sides`
    at model.image_size) allow; None when it is the configured one."""
    size = config.model.image_size
    if not config.detection.fit_image_size or config.train.time_budget_minutes is None or len(sides) == 0:
        return None
    import numpy as np

    small = float(np.percentile(sides, 5))
    fitted = fitted_image_size(small, size)
    if fitted == size:
        return None
    return Choice(
        {"model": {"image_size": fitted}},
        f"model.image_size={fitted} (from {size}): under the time budget, the 5th-percentile box side "
        f"{small:.0f} px at {size} keeps {small * fitted / size:.0f} px (>= {SMALL_BOX_SIDE}), with "
        f"{(size / fitted) ** 2:.1f}x fewer pixels a step (detection.fit_image_size=false keeps {size})",
    )

"""Semantic segmentation: task.py (the object the loop calls), model.py, loss.py, data.py, labels.py,
postprocess.py, metric.py, submission.py. Edit these to change how the competition is modelled; `SPEC` is the
face the stages see."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from ...core.errors import ConfigError
from ...core.task import AnalysisPart, BlendPart, EdaPart, LabelsPart, PlotsPart, PseudoPart, TaskParts, TaskSpec

if TYPE_CHECKING:
    from ...config import Config
    from .task import SegmentationTask


def create_task(config: Config, classes: list[str]) -> SegmentationTask:
    from .task import SegmentationTask

    return SegmentationTask(config, classes)


def load_labels() -> LabelsPart:
    from . import labels

    return labels


def load_blend() -> BlendPart:
    from . import blend

    return blend


def load_pseudo() -> PseudoPart:
    from . import pseudo

    return pseudo


def load_eda() -> EdaPart:
    from . import eda

    return eda


def load_analysis() -> AnalysisPart:
    from . import analysis

    return analysis


def load_plots() -> PlotsPart:
    from . import plots

    return plots


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


SPEC = TaskSpec(
    name="segmentation",
    layouts=("masks", "rle_csv", "coco_polygons"),
    metrics=("dice", "iou"),
    # per-pixel soft (weighted mean of probabilities) and hard (weighted vote of each member's mask) voting
    blend_methods=("soft", "hard"),
    create_task=create_task,
    parts=TaskParts(load_labels, load_blend, load_pseudo, load_eda, load_analysis, load_plots),
    sample_rows_per_class=True,
    extra_checks=(check_crop,),
    image_advice=propose_crop,
)

"""Semantic segmentation: task.py (the object the loop calls), model.py, loss.py, data.py, labels.py,
postprocess.py, metric.py, submission.py. Edit these to change how the competition is modelled; `SPEC` is the
face the stages see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.task import AnalysisPart, BlendPart, EdaPart, LabelsPart, PlotsPart, PseudoPart, TaskParts, TaskSpec
from .recipe import check_crop, propose_crop

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

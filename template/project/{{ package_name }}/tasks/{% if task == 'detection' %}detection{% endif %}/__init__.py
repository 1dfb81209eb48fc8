"""Object detection: task.py (the object the loop calls), model.py, data.py, labels.py, postprocess.py,
metric.py, submission.py. Edit these to change how the competition is modelled; `SPEC` is the face the stages see."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...core.task import AnalysisPart, BlendPart, EdaPart, LabelsPart, PlotsPart, PseudoPart, TaskParts, TaskSpec

if TYPE_CHECKING:
    from ...config import Config
    from .task import DetectionTask


def create_task(config: Config, classes: list[str]) -> DetectionTask:
    from .task import DetectionTask

    return DetectionTask(config, classes)


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


def placeholder_settings(config: Config) -> dict[str, Any]:
    """detection.anchor_sizes=auto is filled in from the boxes by `train`; any sizes build the same modules."""
    if config.detection.anchor_sizes != "auto":
        return {}
    return {"detection": {"anchor_sizes": [32 * 2**level for level in range(6)]}}


SPEC = TaskSpec(
    name="detection",
    layouts=("coco", "boxes_csv", "voc"),
    metrics=("map", "map50", "kaggle_map"),
    blend_methods=("wbf", "nms", "soft_nms", "nmw"),  # box fusion (ensemble-boxes)
    create_task=create_task,
    parts=TaskParts(load_labels, load_blend, load_pseudo, load_eda, load_analysis, load_plots),
    views=("identity", "hflip", "vflip"),  # the views a box maps back from
    exports_onnx=False,
    placeholder_settings=placeholder_settings,
)

"""Image classification: task.py (the object the loop calls), model.py, loss.py, labels.py, metric.py,
submission.py. Edit these to change how the competition is modelled; `SPEC` is the face the stages see."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.task import AnalysisPart, BlendPart, EdaPart, LabelsPart, PlotsPart, PseudoPart, TaskParts, TaskSpec

if TYPE_CHECKING:
    from ...config import Config
    from .task import ClassificationTask


def create_task(config: Config, classes: list[str]) -> ClassificationTask:
    from .task import ClassificationTask

    return ClassificationTask(config, classes)


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
    name="classification",
    layouts=("csv", "folders"),
    metrics=("accuracy", "f1_macro", "log_loss", "roc_auc", "qwk"),
    # voting over probabilities: mean, geometric mean, rank average, majority vote
    blend_methods=("mean", "geometric", "rank", "majority"),
    create_task=create_task,
    parts=TaskParts(load_labels, load_blend, load_pseudo, load_eda, load_analysis, load_plots),
)

"""Tasks behind one registry: a task owns model, loss, probabilities, metric and prediction files."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Config
    from .classification import ClassificationTask

# Task modules are rendered only for the project's task, so they are imported by name on demand.
TASK_MODULES = {
    "classification": ".classification",
}


def create_task(config: Config, classes: list[str]) -> ClassificationTask:
    """The task object for `config.task`; raises on a task this project was not rendered with."""
    module_name = TASK_MODULES.get(config.task)
    if module_name is None:
        raise ValueError(f"unknown task '{config.task}'; expected one of {', '.join(TASK_MODULES)}")
    module = importlib.import_module(module_name, __package__)
    return module.TASK(config, classes)

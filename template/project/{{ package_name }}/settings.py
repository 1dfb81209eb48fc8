"""A command's settings, loaded and checked: what the task cannot use (its TaskSpec.check) and what loads as a
config but cannot run (a backbone timm lacks, a TTA view, a pipeline, a loss, a device). Every stage refuses them
before it moves, writes or locks anything, and `check` lists them all."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from .config import load_config, with_overrides
from .core.errors import ConfigError, ProjectError
from .tasks import SPEC, create_task

if TYPE_CHECKING:
    from pathlib import Path

    from .config import Config

# Classes a model is built with to check its settings: heads start random, so the count does not matter.
PLACEHOLDER_CLASSES = ["class_0", "class_1"]


@dataclass(frozen=True)
class Problem:
    where: str  # the file, key or row
    what: str

    @property
    def line(self) -> str:
        return self.what if self.what.startswith(self.where) else f"{self.where}: {self.what}"


def problem_from(error: Exception, where: str) -> Problem:
    """A ProjectError's one line as a Problem: its own `file: what` prefix when it has one, else `where`."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    head, sep, rest = text.partition(": ")
    return Problem(head, rest) if sep and ("/" in head or "." in head) else Problem(where, text)


def _device(config: Config) -> None:
    from .core.distributed import resolve_device

    resolve_device(config.train.device)


def _views(config: Config) -> None:
    from .core.tta import check_views

    try:
        check_views(config.predict.tta)
    except ValueError as error:
        raise ConfigError(f"predict.tta: {error}") from error


def _optimizer(config: Config) -> None:
    import difflib

    from timm.optim import list_optimizers

    known = list_optimizers()
    name = config.train.optimizer.lower()
    if name not in known and name.split("_")[-1] not in known:  # timm accepts prefixes such as lookahead_adamw
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ConfigError(f"train.optimizer: '{config.train.optimizer}' is not a timm optimizer{hint}")


def _weights_file(config: Config) -> None:
    weights = config.model.weights
    if weights is not None and not weights.is_file():
        raise ConfigError(f"model.weights: {weights} not found (save one with the `weights` command)")


def _model(config: Config) -> None:
    """The task and its model, built on the meta device (no memory, no download): backbone, architecture,
    decoder, losses and metric names are all checked by the code that uses them."""
    task = create_task(with_overrides(config, SPEC.placeholder_settings(config)), PLACEHOLDER_CLASSES)
    try:
        with torch.device("meta"):
            task.create_model(pretrained=False)
    except ProjectError:
        raise
    except Exception as error:  # a library refusing the combination (e.g. a decoder the encoder cannot feed)
        detail = " ".join(str(error).split())[:200]
        raise ConfigError(f"model: cannot build {config.model.backbone} ({type(error).__name__}: {detail})") from error


def _augmentations(config: Config) -> list[Problem]:
    from .core.augment import load_augmentations

    problems = []
    for key in ("train", "valid", "test"):
        try:
            load_augmentations(getattr(config.aug, key), f"aug.{key}")
        except ProjectError as error:
            problems.append(problem_from(error, f"aug.{key}"))
    return problems


CHECKS = {
    "train.device": _device,
    "predict.tta": _views,
    "train.optimizer": _optimizer,
    "model.weights": _weights_file,
    "model": _model,
}
_VALID: set[str] = set()  # configs (as JSON) already found valid in this process


def settings_problems(config: Config) -> list[Problem]:
    """Every setting that would stop a stage after it started: all of them, not the first. What the task cannot use
    comes first; the model is not built from such settings (its errors would only repeat it)."""
    problems = []
    try:
        SPEC.check(config)
    except ProjectError as error:
        problems.append(problem_from(error, "task"))
    task_problem = bool(problems)
    problems.extend(_augmentations(config))
    for where, check in CHECKS.items():
        if where == "model" and task_problem:
            continue
        try:
            check(config)
        except ProjectError as error:
            problems.append(problem_from(error, where))
    return problems


def require_valid_settings(config: Config) -> None:
    """Raise ConfigError naming the first unusable setting (and how many there are); call before touching a run."""
    key = json.dumps(config.model_dump(mode="json"), sort_keys=True)
    if key in _VALID:
        return
    SPEC.check(config)  # what the task cannot use, in its own words
    problems = settings_problems(config)
    if problems:
        first = problems[0].line
        more = f" ({len(problems) - 1} more: `check` lists them)" if len(problems) > 1 else ""
        raise ConfigError(first + more)
    _VALID.add(key)


def load_settings(
    overrides: list[str] | None, config_files: list[Path] | None, experiment: str | None, *, validate: bool = True
) -> Config:
    """The command's config, refused at once when the task cannot use it; with `validate`, settings no stage could
    run with stop here too, before any file is touched (`check` lists them all instead)."""
    config = load_config(overrides or [], config_files=config_files, experiment=experiment)
    SPEC.check(config)
    if validate:
        require_valid_settings(config)
    return config


def load_run_settings(
    overrides: list[str] | None, config_files: list[Path] | None, experiment: str | None, stage: str
) -> Config:
    """A stage after `train`: the run's own resolved config, with this command's overlays and overrides on top."""
    from .core.run_config import load_run_config

    config = load_run_config(overrides or [], config_files=config_files, experiment=experiment, stage=stage)
    require_valid_settings(config)
    return config


def load_all_settings(
    overrides: list[str] | None, config_files: list[Path] | None, experiments: list[str] | None
) -> list[Config]:
    return [load_settings(overrides, config_files, name) for name in experiments or [None]]

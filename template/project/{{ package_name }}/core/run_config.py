"""A run's own settings for the stages after `train`: the run's resolved config is the base, only a command's
explicit overrides go on top, and settings that would change how the checkpoints see images are refused."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from ..config import Config, deep_merge, dotted_value, explicit_changes, load_config, with_overrides
from .errors import ConfigError
from .runs import RunPaths
from .task_config import RUN_DEFINING_TASK_KEYS

# Keys that fix how a trained model sees its images: later stages must use the run's values.
RUN_DEFINING_KEYS = (
    "task",
    "model.backbone",
    "model.image_size",
    "model.in_chans",
    "model.stem_pool",
    "data.layout",
    "data.multi_label",
    "data.mask_values",
    *RUN_DEFINING_TASK_KEYS,  # the task's own (core/task_config.py)
)
# Keys a later stage may change on purpose, but not without a word.
RUN_WARNING_KEYS = ("aug.valid", "aug.test")


def run_differences(trained: Config, config: Config, keys: tuple[str, ...]) -> list[str]:
    """`key=new (run: old)` for each of `keys` whose value differs between the run's config and `config`."""
    changed = []
    for key in keys:
        old, new = dotted_value(trained, key), dotted_value(config, key)
        if old != new:
            changed.append(f"{key}={new} (run: {old})")
    return changed


def with_run_values_for_auto(trained: Config, config: Config) -> Config:
    """Run-defining `auto` settings (what `train` took from the data) take the values the run recorded."""
    changes: dict[str, Any] = {}
    for key in RUN_DEFINING_KEYS:
        recorded = dotted_value(trained, key)
        if dotted_value(config, key) == "auto" and recorded != "auto":
            *parents, leaf = key.split(".")
            node = changes
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = recorded
    return with_overrides(config, changes) if changes else config


def check_same_run_settings(trained: Config, config: Config, source: Path, action: str) -> None:
    """Refuse settings that would make checkpoints see images differently from training; warn on TTA inputs."""
    refused = run_differences(trained, config, RUN_DEFINING_KEYS)
    if refused:
        raise ConfigError(
            f"{source}: {action} with {refused[0]} would not match how the checkpoints were trained; "
            "drop the override or train again"
        )
    for warning in run_differences(trained, config, RUN_WARNING_KEYS):
        print(f"warning: {warning} differs from the run's {source}", file=sys.stderr)


# Keys that name the run folder: they located the run, so a run's own values are never overridden by them.
RUN_LOCATION_KEYS = ("experiment", "output_dir", "seeds")


def resolved_config_file(paths: RunPaths) -> Path | None:
    """The run's defining config: config.yaml of a training, or config.ensemble.yaml of a blend."""
    for path in (paths.config, paths.root / "config.ensemble.yaml"):
        if path.is_file():
            return path
    return None


def rebase_on_run(located: Config, saved: Path, changes: dict[str, Any], action: str) -> Config:
    """The run's resolved config (`saved`) with only the user's explicit `changes` on top: an experiment overlay
    was resolved into the run when it trained, so it is not applied a second time. Settings that would change how
    the checkpoints see images are refused, naming the override that asked for them."""
    trained = load_config(base=saved)
    changes = {key: value for key, value in changes.items() if key not in RUN_LOCATION_KEYS}
    location = {"experiment": located.experiment, "output_dir": str(located.output_dir), "seeds": None}
    staged = with_overrides(trained, deep_merge(changes, location))
    staged = with_run_values_for_auto(trained, staged)
    check_same_run_settings(trained, staged, saved, action)
    return staged


def load_run_config(
    overrides: list[str] | None = None,
    *,
    config_files: list[Path] | None = None,
    experiment: str | None = None,
    stage: str = "this stage",
) -> Config:
    """The config of a stage after `train`: `-e NAME` (or experiment=NAME) selects the run, whose resolved
    config.yaml is the base; only this command's overlay files and overrides go on top."""
    config = load_config(overrides, config_files=config_files, experiment=experiment)
    saved = resolved_config_file(RunPaths.from_config(config))
    if saved is None:
        return config
    return rebase_on_run(config, saved, explicit_changes(overrides, config_files), stage)


def resumed_config(variant: Config, changes: dict[str, Any]) -> Config:
    """`--resume`: the interrupted run's own config.yaml with only the command's explicit changes on top."""
    saved = RunPaths.from_config(variant).config
    return rebase_on_run(variant, saved, changes, "--resume") if saved.is_file() else variant

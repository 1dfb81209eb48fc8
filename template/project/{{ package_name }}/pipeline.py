"""`run`: every stage in order (check, folds, train, predict, then a blend of the runs when there are several,
then submit), each one the same function its own command calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, with_overrides
from .core.run_config import resumed_config
from .core.runs import RunPaths, RunResult, expand_variants
from .folds import make_folds
from .predict import predict
from .submit import submit
from .train import train


def make_fold_files(configs: list[Config], variants: list[Config], resume: bool) -> None:
    """One fold file per run folder, shared by variants that share it; fold files the user named (folds.path)
    are only read, and so are ours when resuming. The variants' earlier trainings may have used them: those are
    trained again (moved to previous/ first), so only other runs' trainings keep a fold file as it is."""
    user_files = {RunPaths.from_config(c).folds for c in configs if c.folds.path is not None}
    retraining = tuple(RunPaths.from_config(variant).root for variant in variants)
    made: set[Path] = set()
    for variant in variants:
        fold_file = RunPaths.from_config(variant).folds
        if fold_file in made or (fold_file.is_file() and (fold_file in user_files or resume)):
            continue
        make_folds(variant, retraining=retraining)
        made.add(fold_file)


def run_stages(
    configs: list[Config],
    *,
    resume: bool = False,
    preflight: Callable[[Config], None] | None = None,
    changes: dict[str, Any] | None = None,
) -> tuple[RunResult, Path]:
    """Train and predict every variant (seeds=[...] or several experiments), blend them when there are several,
    and submit; returns what was submitted (the last run or the blend) and the submission file. With `resume`, a
    run that started goes on with its own config.yaml and only `changes` (the command's overrides) on top."""
    variants, blend = expand_variants(configs)
    if resume:
        variants = [resumed_config(variant, changes or {}) for variant in variants]
    if preflight is not None:
        preflight(configs[0])
    make_fold_files(configs, variants, resume)
    for position, settings in enumerate(variants):
        # Predicted with the settings train ran with, as config.yaml has them: what it fitted to the data (a
        # budget's resolution and anchors) is how the checkpoints saw the images.
        result = train(settings, resume=resume)
        variants[position] = result.config
        predict(result.config)
    if len(variants) > 1:
        from .tools.ensemble import ensemble

        members = [str(RunPaths.from_config(variant).root) for variant in variants]
        result = ensemble(
            with_overrides(configs[0], {"experiment": blend, "seeds": None, "ensemble": {"members": members}})
        )
    submission, _ = submit(result.config)
    return result, submission

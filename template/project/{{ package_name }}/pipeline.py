"""`run`: every stage in order (check, folds, train, predict, then a blend of the runs when there are several,
then submit), each one the same function its own command calls."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .config import Config, load_config, with_overrides
from .core.runs import RunPaths, expand_variants, with_run_values_for_auto
from .folds import make_folds
from .predict import predict
from .submit import submit
from .train import train


def make_fold_files(configs: list[Config], variants: list[Config], resume: bool) -> None:
    """One fold file per run folder, shared by variants that share it; fold files the user named (folds.path)
    are only read, and so are ours when resuming."""
    user_files = {RunPaths.from_config(c).folds for c in configs if c.folds.path is not None}
    made: set[Path] = set()
    for variant in variants:
        fold_file = RunPaths.from_config(variant).folds
        if fold_file in made or (fold_file.is_file() and (fold_file in user_files or resume)):
            continue
        make_folds(variant)
        made.add(fold_file)


def run_stages(
    configs: list[Config], *, resume: bool = False, preflight: Callable[[Config], None] | None = None
) -> tuple[Config, dict[str, Any], Path]:
    """Train and predict every variant (seeds=[...] or several experiments), blend them when there are several,
    and submit; returns (the config of what was submitted, its metrics, the submission file)."""
    variants, blend = expand_variants(configs)
    if preflight is not None:
        preflight(configs[0])
    make_fold_files(configs, variants, resume)
    for position, settings in enumerate(variants):
        metrics = train(settings, resume=resume)
        trained = load_config(base=RunPaths.from_config(settings).config)
        variants[position] = with_run_values_for_auto(trained, settings)  # with what train took from the data
        predict(variants[position])
    final = variants[0]
    if len(variants) > 1:
        from .tools.ensemble import ensemble

        members = [str(RunPaths.from_config(variant).root) for variant in variants]
        final = with_overrides(configs[0], {"experiment": blend, "seeds": None, "ensemble": {"members": members}})
        result = ensemble(final)
        metrics = {**result, "cv_mean": result["oof_score"], "cv_std": 0.0}
    submission, _ = submit(final)
    return final, metrics, submission

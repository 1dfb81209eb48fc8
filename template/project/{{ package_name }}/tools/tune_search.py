"""How `tune` searches: Optuna's sampler (seeded per trial, so workers sharing a study draw different points) and
pruner, built from tune.* settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from ..config import Config


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """The configured sampler, seeded with tune.seed plus the trial's number before each trial. Trial numbers are
    unique across the processes sharing a study, so workers started together draw different points (one seed for
    all would make them run the same first trials), and a study run by one process stays reproducible."""

    def __init__(self, create: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._create, self._seed = create, seed
        self._inner = create(seed)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._inner = self._create(self._seed + trial.number)  # TPE and random keep no state but their RNG
        self._inner.before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
        return self._inner.infer_relative_search_space(study, trial)

    def sample_relative(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, search_space: dict[str, Any]
    ) -> dict[str, Any]:
        return self._inner.sample_relative(study, trial, search_space)

    def sample_independent(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, name: str, distribution: Any
    ) -> Any:
        return self._inner.sample_independent(study, trial, name, distribution)

    def after_trial(
        self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: Any, values: list[float] | None
    ) -> None:
        self._inner.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._inner.reseed_rng()


def create_sampler(config: Config) -> optuna.samplers.BaseSampler:
    startup = config.tune.startup_trials
    samplers: dict[str, Callable[[int], optuna.samplers.BaseSampler]] = {
        "tpe": lambda seed: optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup),
        "random": lambda seed: optuna.samplers.RandomSampler(seed=seed),
    }
    return TrialSeededSampler(samplers[config.tune.sampler], config.tune.seed)


def create_pruner(config: Config) -> optuna.pruners.BasePruner:
    first = config.tune.prune_after  # evaluations every trial gets before it can be stopped
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(
            n_startup_trials=config.tune.startup_trials,
            n_warmup_steps=first,  # reports are steps 1, 2, ...
        ),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=first),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    return pruners[config.tune.pruner]()

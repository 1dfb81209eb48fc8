"""`tune`: an Optuna study over config keys. Each trial trains the chosen folds and reports every validation so
the pruner stops laggards; the study lives in SQLite (or any Optuna RDB URL), so it resumes and several
processes or machines can share it. The best trial becomes configs/experiment/tuned.yaml."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml

from ..config import (
    EXPERIMENT_DIR,
    Config,
    SearchDimension,
    deep_merge,
    known_keys,
    load_config,
    unknown_key_message,
    with_overrides,
)
from ..core.errors import ConfigError, ProjectError
from ..core.runs import RunPaths, write_text
from ..core.tracking import create_tracker
from ..folds import make_folds
from ..settings import require_valid_settings
from ..tasks import create_task, read_train_table
from ..train import train
from .tune_search import create_pruner, create_sampler
from .tune_study import FINISHED, WORKER_ATTR, finisher, open_study, run_worker

PACKAGE = __name__.split(".")[0]
# Keys a trial may not change: they decide where and on what the study itself runs.
UNTUNABLE = ("experiment", "output_dir", "seeds", "folds", "tune", "wandb", "data", "task", "metric")


def nested(key: str, value: Any) -> dict[str, Any]:
    """`train.lr`, 1e-3 as {"train": {"lr": 1e-3}}."""
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def merge_nested(changes: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys and values as one nested mapping."""
    merged: dict[str, Any] = {}
    for key, value in changes.items():
        cursor = merged
        parts = key.split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return merged


def search_space(config: Config) -> dict[str, SearchDimension]:
    """The configured space without the keys an overlay set to null."""
    return {key: dimension for key, dimension in config.tune.space.items() if dimension is not None}


def check_space(config: Config) -> dict[str, SearchDimension]:
    """Every key known and tunable, and every bound or choice a value the key takes; else one ConfigError line."""
    space = search_space(config)
    if not space:
        raise ConfigError("tune.space is empty: map config keys to distributions, e.g. train.lr: {type: float, ...}")
    keys = known_keys()
    for key, dimension in space.items():
        if key not in keys:
            raise ConfigError(f"tune.space: {unknown_key_message(key, keys)}")
        if key.split(".")[0] in UNTUNABLE:
            raise ConfigError(f"tune.space: '{key}' cannot be tuned (it decides where and on what the study runs)")
        candidates = dimension.choices if dimension.type == "categorical" else [dimension.low, dimension.high]
        for value in candidates or []:
            sample = int(value) if dimension.type == "int" else value
            try:  # a value the config takes, and one a trial could run with (a backbone timm has, ...)
                require_valid_settings(with_overrides(config, nested(key, sample)))
            except ProjectError as error:
                raise ConfigError(f"tune.space.{key}: {sample!r} is not a value it takes ({error})") from error
    return space


def suggest(trial: optuna.Trial, key: str, dimension: SearchDimension) -> Any:
    """One value of `dimension` from Optuna's sampler."""
    if dimension.type == "categorical":
        return trial.suggest_categorical(key, dimension.choices)
    if dimension.type == "int":
        step = int(dimension.step or 1)
        return trial.suggest_int(key, int(dimension.low), int(dimension.high), step=step, log=dimension.log)
    return trial.suggest_float(key, dimension.low, dimension.high, step=dimension.step, log=dimension.log)


def tune_dir(config: Config) -> Path:
    return RunPaths.from_config(config).root / "tune"


def storage_url(config: Config) -> str:
    return config.tune.storage or f"sqlite:///{(tune_dir(config) / 'study.db').resolve()}"


def create_study(config: Config, maximize: bool) -> optuna.Study:
    """The study in its storage (tune/study.db, or tune.storage), created with its trials queued, or joined."""
    tune_dir(config).mkdir(parents=True, exist_ok=True)
    name = config.tune.study_name or config.experiment
    return open_study(name, storage_url(config), config, maximize, create_sampler(config), create_pruner(config))


def trial_config(config: Config, params: dict[str, Any], number: int, folds_file: Path, study: str) -> Config:
    """The base config with the trial's parameters, training the tuned folds into <run>/tune/trial_<n>/. A sampled
    batch size or learning rate is trained as sampled: a budget's fit would train other values than the study
    records."""
    kept = {"train.fit_batch_to_budget": False} if {"train.batch_size", "train.lr"} & set(params) else {}
    return with_overrides(
        config,
        {
            **merge_nested({**params, **kept}),
            "output_dir": str(tune_dir(config)),
            "experiment": f"trial_{number:03d}",
            "seeds": None,
            "folds": {"path": str(folds_file), "train_folds": config.tune.folds},
            "wandb": {"group": study},
        },
    )


def shown(params: dict[str, Any]) -> str:
    """A trial's settings in one short line: `train.lr=0.00031 model.drop_rate=0.2`."""
    items = params.items()
    return " ".join(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}" for key, value in items)


def create_objective(
    config: Config, space: dict[str, SearchDimension], folds_file: Path, study: str
) -> Callable[[optuna.Trial], float]:
    """Train the trial's folds; every validation is reported, and the pruner may stop the trial there. Each trial
    says its settings when it starts and its score (or where it was pruned) when it ends, in one line each."""

    def objective(trial: optuna.Trial) -> float:
        params = {key: suggest(trial, key, dimension) for key, dimension in space.items()}
        print(f"tune: trial {trial.number}: {shown(params)}", flush=True)
        settings = trial_config(config, params, trial.number, folds_file, study)
        step = 0

        def report(fold: int, epoch: int, score: float) -> None:
            nonlocal step
            step += 1  # evaluations so far in this trial: fold after fold
            trial.report(score, step)
            if trial.should_prune():
                where = f"fold {fold} epoch {epoch}: {config.metric} {score:.4f}"
                print(f"tune: trial {trial.number} pruned at {where}", flush=True)
                raise optuna.TrialPruned(where)

        metrics = train(settings, on_evaluation=report).metrics
        tracker = create_tracker(settings, RunPaths.from_config(settings).root, "trial", "tune")
        tracker.summary({"value": metrics["cv_mean"], **params})
        tracker.finish()
        print(f"tune: trial {trial.number} done: {config.metric} {metrics['cv_mean']:.4f}", flush=True)
        return float(metrics["cv_mean"])

    return objective


# Sections an overlay leaves to the run that uses it.
NOT_IN_OVERLAY = ("experiment", "output_dir", "seeds", "folds", "tune", "wandb")
# Keys that only shorten trials (a smoke overlay's caps, fewer epochs on the command line): the tuned run trains in
# full with the project's values, unless the search itself tuned them.
TRIAL_LIMITS = ("train.epochs", "train.max_steps_per_epoch", "train.max_eval_batches", "train.time_budget_minutes")


def config_changes(base: Config, reference: Config, skip: tuple[str, ...] = NOT_IN_OVERLAY) -> dict[str, Any]:
    """The nested keys whose values differ between `base` and `reference` (sections in `skip` left out)."""

    def diff(new: Any, old: Any) -> Any:
        if isinstance(new, dict) and isinstance(old, dict):
            changed = {key: diff(value, old.get(key)) for key, value in new.items()}
            kept = {key: value for key, value in changed.items() if value is not _SAME}
            return kept or _SAME  # a section with nothing changed is left out
        return _SAME if new == old else new

    changed = diff(base.model_dump(mode="json"), reference.model_dump(mode="json"))
    return {} if changed is _SAME else {key: value for key, value in changed.items() if key not in skip}


_SAME = object()


def _pop_dotted(mapping: dict[str, Any], key: str) -> tuple[bool, Any]:
    """Remove a dotted key from a nested mapping (and the sections it leaves empty); (found, value)."""
    section, _, leaf = key.rpartition(".")
    parent = mapping.get(section) if section else mapping
    if not isinstance(parent, dict) or leaf not in parent:
        return False, None
    value = parent.pop(leaf)
    if section and not parent:
        mapping.pop(section)
    return True, value


def tuned_overlay(config: Config, params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The tuned run's overlay: what this tune changed from the project's defaults (the backbone, data, ... the
    trials ran with) less the trial limits, with the best parameters on top; and the limits left out."""
    overlay = config_changes(config, load_config())
    left_out = {}
    for key in TRIAL_LIMITS:
        found, value = _pop_dotted(overlay, key)
        if found and key not in params:
            left_out[key] = value
    return deep_merge(overlay, merge_nested(params)), left_out


def run_command(overlay: Path) -> str:
    """The command that trains every fold with a tuned overlay (by name inside configs/experiment)."""
    in_experiments = overlay.resolve().parent == EXPERIMENT_DIR.resolve()
    return f"python -m {PACKAGE} run -e {overlay.stem if in_experiments else overlay}"


def write_tuned_overlay(config: Config, study: optuna.Study, path: Path) -> Path:
    """The best trial's parameters, on top of what this tune's config changed from the project's defaults, as an
    experiment overlay: `run -e tuned` then trains every fold with them, in full."""
    best = study.best_trial
    overlay, left_out = tuned_overlay(config, best.params)
    header = [
        f"# Written by `tune`: trial {best.number} of study '{study.study_name}', {config.metric} {best.value:.4f} "
        f"on folds {config.tune.folds}.",
        f"# Train every fold with it: {run_command(path)}",
    ]
    if left_out:
        limits = " ".join(f"{key}={value}" for key, value in left_out.items())
        header.append(f"# Left out, as they only shortened the trials (the project's values apply): {limits}")
    return write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(overlay, sort_keys=False))


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    rows = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else math.nan
        value = trial.value if trial.value is not None else math.nan
        row = {"trial": trial.number, "state": trial.state.name, "value": value, "seconds": duration}
        rows.append({**row, **trial.params})
    return pd.DataFrame(rows)


def write_report(config: Config, study: optuna.Study, path: Path) -> Path:
    """The study's HTML report (tools/tune_report.py): trials, history, importances (or why not yet) and slices."""
    from .tune_report import tune_report

    return write_text(path, tune_report(study, trials_frame(study), config.metric, config.tune.overlay))


def tune(config: Config) -> dict[str, Any]:
    """Run (or resume, or join) the study until it holds tune.n_trials finished trials or the time is up."""
    space = check_space(config)
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # each trial says its settings and score in one line
    table = read_train_table(config.data)
    maximize = create_task(config, table.classes).metric.higher_is_better
    paths = RunPaths.from_config(config)
    folds_file = paths.folds
    if not folds_file.is_file():
        make_folds(config, table, lock_wait=60)  # workers starting together: one writes, the others wait
    study = create_study(config, maximize)
    tune_config = config.tune
    done_before = sum(trial.state in FINISHED for trial in study.get_trials(deepcopy=False)) >= tune_config.n_trials
    ran = run_worker(
        study,
        create_objective(config, space, folds_file, study.study_name),
        tune_config.n_trials,
        tune_config.timeout_minutes * 60 if tune_config.timeout_minutes else None,
        tune_config.heartbeat_seconds,
    )
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"tune: no trial of study '{study.study_name}' completed; see the trials' output above")
    last = finisher(study)
    # One worker writes the overlay: the one that ran the trial completed last (a worker that ran none while others
    # finished the study does not), or one started once the study had ended (to write it on its own machine).
    writes = (last is not None and last.number in ran) or done_before
    overlay = write_tuned_overlay(config, study, tune_config.overlay) if writes else None
    report = write_report(config, study, tune_dir(config) / "report.html") if writes else None
    if writes:
        print(f"tune: this worker finished the study and wrote {overlay} and {report}", flush=True)
    return {
        "study": study.study_name,
        "storage": storage_url(config),
        "trials": len(trials),
        "complete": len(complete),
        "pruned": sum(trial.state == optuna.trial.TrialState.PRUNED for trial in trials),
        "best_value": study.best_value,
        "best_trial": study.best_trial.number,
        "best_params": study.best_params,
        "overlay": None if overlay is None else str(overlay),
        "report": None if report is None else str(report),
        "finished_by": None if last is None else last.user_attrs.get(WORKER_ATTR),
    }

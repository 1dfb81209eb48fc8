"""Training: `train(config) -> RunResult` runs each fold, keeps checkpoints, history and OOF predictions in the
run folder, and reports CV mean ± std. The loop knows nothing of the task: the task object does."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .config import Config, load_config, validate_config, with_overrides
from .core.augment import cached_image_size, start_image_cache
from .core.budget import Planner, RunBudget, create_run_budget
from .core.checkpoints import FoldResult
from .core.console import count_parameters, run_header
from .core.data import LabelledTable
from .core.distributed import Runtime, barrier, broadcast, init_runtime, lost_peer, resolve_device, shutdown
from .core.engine import describe_precision
from .core.errors import ProjectError
from .core.fold import FoldRun
from .core.fold_file import check_fold_count, folds_to_train, read_folds
from .core.perf import Eta
from .core.probe import fit_batch_to_budget
from .core.recipe import fit_to_data
from .core.run_config import check_same_run_settings
from .core.runs import (
    RunPaths,
    RunResult,
    move_previous_training,
    read_json,
    run_lock,
    save_resolved_config,
    write_json,
)
from .core.tracking import create_tracker
from .settings import require_valid_settings
from .tasks import SPEC, Task, create_task, read_train_table

EvaluationHook = Callable[[int, int, float], None]  # (fold, epoch, score) after each validation


def fold_planner(run_budget: RunBudget, runtime: Runtime, config: Config) -> Planner:
    """The first fold's planner: how many folds the run budget can train (rank 0's clock decides for all)."""

    def plan(step_seconds: float, fold_elapsed: float) -> float | None:
        planned = run_budget.plan(0, step_seconds, fold_elapsed)
        planned, run_budget.folds = broadcast(runtime, (planned, run_budget.folds))
        if runtime.is_main:
            fold_seconds = planned if planned is not None else (run_budget.left() + fold_elapsed) / run_budget.folds
            updates = fold_seconds / run_budget.update_seconds(step_seconds)
            print(
                f"time budget: an optimizer update takes about {run_budget.update_seconds(step_seconds):.3g} s, so "
                f"{run_budget.folds} fold(s) get about {updates:.0f} updates each "
                f"(train.time_budget_min_steps={config.train.time_budget_min_steps})"
            )
        return planned

    return Planner(plan, until_planned=run_budget.left())


def train_fold(
    config: Config,
    task: Task,
    table: LabelledTable,
    folds: np.ndarray,
    fold: int,
    *,
    runtime: Runtime,
    paths: RunPaths,
    resume: bool = False,
    training_targets: np.ndarray | None = None,
    on_evaluation: EvaluationHook | None = None,
    eta: Eta | None = None,
    budget_seconds: float | None = None,
    run_budget: RunBudget | None = None,
) -> FoldResult:
    """Train one fold; write last.pt every train.checkpoint_every epochs, best.pt and OOF on improvement,
    metrics.json at the end. `on_evaluation(fold, epoch, score)` runs after each validation's files are written
    (tune prunes there). `training_targets` replaces the table's targets for training rows (soft pseudo-labels);
    validation always scores against the table's own labels. `budget_seconds`: train against the clock;
    `run_budget`: this is the run's first fold, which plans early in its first epoch how many folds the run trains."""
    run = FoldRun.build(
        config,
        task,
        table,
        folds,
        fold,
        runtime=runtime,
        paths=paths,
        resume=resume,
        training_targets=training_targets,
        budget_seconds=budget_seconds,
        budget_planner=None if run_budget is None else fold_planner(run_budget, runtime, config),
    )
    for epoch in range(run.parts.state.epoch, run.epoch_limit):
        result = run.epoch(epoch, eta)
        if on_evaluation is not None and result.evaluated and runtime.is_main:
            on_evaluation(fold, epoch + 1, result.score)
        if result.stopping:
            break
    if run.budget is not None and run.parts.state.history:
        rate = run.parts.state.history[-1]["images_per_s"]
        run.budget.plan_at_end(config.train.batch_size / max(rate, 1e-9))  # this process's images
    return run.finish()


def summarise(config: Config, task: Task, table: LabelledTable, results: list[FoldResult], paths: RunPaths) -> dict:
    """CV mean ± std over folds and the score of the concatenated OOF predictions."""
    scores = np.array([result.score for result in results], dtype=np.float64)
    parts = [task.read_predictions(paths.fold_oof(r.fold)) for r in results]
    ids = np.concatenate([part[0] for part in parts])
    outputs = np.concatenate([part[1] for part in parts])
    fold_column = np.concatenate([np.full(len(part[0]), r.fold) for part, r in zip(parts, results, strict=True)])
    task.write_predictions(paths.oof, ids, outputs, fold_column)
    position = {image_id: i for i, image_id in enumerate(table.ids)}
    rows = np.array([position[image_id] for image_id in ids], dtype=np.int64)
    oof_score = task.score(table.targets[rows], outputs)
    extra = task.tune_postprocessing(outputs, paths.root)  # segmentation: thresholds and minimum areas on OOF
    return {
        **extra,
        "metric": config.metric,
        "higher_is_better": task.metric.higher_is_better,
        "cv_mean": float(scores.mean()),
        "cv_std": float(scores.std()),
        "oof_score": float(oof_score),
        "folds": {str(r.fold): r.score for r in results},
        "best_epochs": {str(r.fold): r.best_epoch for r in results},
        "experiment": config.experiment,
        "backbone": config.model.backbone,
    }


def train(config: Config, *, resume: bool = False, on_evaluation: EvaluationHook | None = None) -> RunResult:
    """Train every fold of the fold file; returns the settings it trained with (what it fitted to the data
    included) and the metrics it saved as metrics.json: CV mean ± std and OOF score (empty on other ranks)."""
    require_valid_settings(config)
    paths = RunPaths.from_config(config)
    with run_lock(paths, "train"):
        return _train_locked(config, paths, resume, on_evaluation)


def _prepare_run_folder(
    config: Config, paths: RunPaths, resume: bool, precision: str, budget_batch: dict[str, Any] | None
) -> None:
    """--resume continues only with the run's own settings; a new training moves an earlier one aside. run.json
    keeps what this machine chose: the precision, and the batch and lr fitted to the budget (--resume keeps them)."""
    if resume and paths.config.is_file():
        check_same_run_settings(load_config(base=paths.config), config, paths.config, "--resume")
    if not resume:
        moved = move_previous_training(paths)
        if moved is not None:
            print(f"{paths.root}: an earlier training was there; moved it to {moved}")
    facts = {"precision": precision} | ({"budget_batch": budget_batch} if budget_batch is not None else {})
    save_resolved_config(config, paths, "train", **facts)


@dataclass
class FoldInputs:
    """What every fold trains from: the labels (with pseudo-labels), the fold of each row and the task."""

    table: LabelledTable
    folds: np.ndarray
    task: Task
    training_targets: np.ndarray | None


def read_fold_inputs(config: Config, paths: RunPaths) -> FoldInputs:
    table = read_train_table(config.data)
    folds = read_folds(paths.folds, table)
    check_fold_count(folds, config, paths.folds)
    task = create_task(config, table.classes)
    training_targets = None
    if config.data.pseudo_labels is not None:
        labeller = SPEC.parts.pseudo()
        table, folds, training_targets = labeller.with_pseudo_labels(table, folds, config.data.pseudo_labels, config)
    return FoldInputs(table, folds, task, training_targets)


def fold_plan_note(folds: np.ndarray, trained: list[int], n_splits: int) -> str:
    """What the CV of a budget-cut fold plan rests on, and the plans a competitor would pick instead."""
    validation, total = int(np.isin(folds, trained).sum()), int((folds >= 0).sum())
    return (
        f"the CV rests on {validation} validation image(s) (fold(s) {trained} of {n_splits}); instead, train one "
        f"fold longer (folds.train_folds=[0]) or hold out a tenth and train on the other {total - total // 10} "
        "images (folds.n_splits=10 folds.train_folds=[0], after `folds` again)"
    )


def train_folds(
    config: Config,
    inputs: FoldInputs,
    fold_list: list[int],
    *,
    runtime: Runtime,
    paths: RunPaths,
    resume: bool = False,
    on_evaluation: EvaluationHook | None = None,
) -> list[FoldResult]:
    """Train `fold_list` one after another in this process; with --resume, finished folds are read back."""
    results = []
    eta = Eta(total_epochs=len(fold_list) * config.train.epochs)
    train_config = config.train
    run_budget = create_run_budget(
        train_config.time_budget_minutes,
        train_config.time_budget_scope,
        train_config.time_budget_min_steps,
        len(fold_list),
        train_config.accumulate_steps,
    )
    for position, fold in enumerate(fold_list):
        if run_budget is not None and position >= run_budget.folds:
            if runtime.is_main:
                print(
                    f"time budget: folds {fold_list[position:]} left out, {train_config.time_budget_minutes:g} min "
                    f"give {position} fold(s) train.time_budget_min_steps={train_config.time_budget_min_steps} "
                    "optimizer updates each (a longer budget or a lower minimum trains them)"
                )
                print(fold_plan_note(inputs.folds, fold_list[:position], config.folds.n_splits))
            break
        if resume and paths.fold_metrics(fold).is_file():
            results.append(FoldResult.from_json(read_json(paths.fold_metrics(fold))))
            if runtime.is_main:
                print(f"fold {fold}: already trained, skipped (--resume)")
            continue
        results.append(
            train_fold(
                config,
                inputs.task,
                inputs.table,
                inputs.folds,
                fold,
                runtime=runtime,
                paths=paths,
                resume=resume,
                training_targets=inputs.training_targets,
                on_evaluation=on_evaluation,
                eta=eta,
                budget_seconds=run_budget.fold_seconds(position)
                if run_budget is not None
                else None
                if train_config.time_budget_minutes is None
                else train_config.time_budget_minutes * 60,
                run_budget=run_budget if position == 0 else None,
            )
        )
    return results


def _train_locked(config: Config, paths: RunPaths, resume: bool, on_evaluation: EvaluationHook | None) -> RunResult:
    runtime = init_runtime(config.train.device, config.train.ddp_timeout_minutes)
    try:
        # Everything that can be refused is read before the run folder changes.
        inputs = read_fold_inputs(config, paths)
        to_train = folds_to_train(inputs.folds, config.folds.train_folds)
        train_images = min(int((inputs.folds != fold).sum()) for fold in to_train)
        processes = min(config.train.parallel_folds, len(to_train))
        parallel = processes > 1 and not runtime.distributed and on_evaluation is None
        # Recorded in the run's config.yaml, so --resume and later stages keep what the data decided.
        copies = processes if parallel else int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # each keeps a RAM cache

        def task_for(settings: Config) -> Task:
            return create_task(settings, inputs.table.classes)

        config, choices = fit_to_data(
            config, inputs.table, train_images, runtime.world_size, task_for, cache_copies=copies
        )
        recorded = read_json(paths.run_info).get("train", {}) if resume and paths.run_info.is_file() else {}
        first_train_index = np.flatnonzero(inputs.folds != to_train[0])
        batch = fit_batch_to_budget(
            config, task_for, inputs.table, first_train_index, runtime, resume, recorded.get("budget_batch")
        )
        if batch is not None:
            choices.append(batch)
            config = with_overrides(config, batch.settings)
        if choices:
            inputs.task = create_task(config, inputs.table.classes)
            if runtime.is_main:
                print("\n".join(f"fitted to the data: {choice.reason}" for choice in choices))
        if parallel and config.data.cache == "ram":
            print(_ram_cache_cost(config, inputs, processes))
        if runtime.is_main:
            precision = describe_precision(config.train.amp, runtime.device)
            print("\n".join(_header(config, inputs, runtime, precision, train_images, to_train)))
            _prepare_run_folder(config, paths, resume, precision, None if batch is None else batch.settings["train"])
            write_json(paths.classes, inputs.table.classes)
        barrier(runtime)
        if parallel:
            from .core.parallel import train_folds_in_parallel

            results = train_folds_in_parallel(_train_share, config, to_train, processes, resume=resume)
        else:
            start_image_cache(config, inputs.task, inputs.table.frame["path"].astype(str).tolist())
            results = train_folds(
                config, inputs, to_train, runtime=runtime, paths=paths, resume=resume, on_evaluation=on_evaluation
            )
        metrics: dict[str, Any] = {}
        if runtime.is_main:
            metrics = summarise(config, inputs.task, inputs.table, results, paths)
            write_json(paths.metrics, metrics)
            tracker = create_tracker(config, paths.root, "cv", "summary")
            tracker.summary({key: value for key, value in metrics.items() if isinstance(value, float)})
            tracker.finish()
        barrier(runtime)
        return RunResult(config, metrics)
    except RuntimeError as error:
        reason = lost_peer(runtime, error)
        if reason is None:
            raise
        raise ProjectError(
            f"rank {runtime.rank}: another process of the distributed run stopped ({reason}); the run is incomplete: "
            "start every node again with `train --resume`"
        ) from None
    finally:
        shutdown(runtime)


def _header(
    config: Config, inputs: FoldInputs, runtime: Runtime, precision: str, images: int, folds: list[int]
) -> list[str]:
    bare = with_overrides(config, {"model": {"pretrained": False, "weights": None}})
    task = create_task(bare, inputs.table.classes)
    labelled = int((inputs.folds >= 0).sum())
    model = (task.model_name(), count_parameters(task.create_model))
    return run_header(config, runtime, precision, model, (labelled, images), folds)


def _ram_cache_cost(config: Config, inputs: FoldInputs, processes: int) -> str:
    from .core.parallel import available_memory, decoded_bytes, ram_cache_cost

    image_paths = inputs.table.frame["path"].astype(str).tolist()
    per_process = decoded_bytes(image_paths, cached_image_size(config, inputs.task), config.model.in_chans)
    return ram_cache_cost(per_process, processes, available_memory())


def _train_share(
    settings: dict[str, Any], folds: list[int], device: str, threads: int, resume: bool
) -> list[FoldResult]:
    """A parallel-folds worker process: train `folds` on `device` with the run's settings. Its GPU is made the
    current device first, so the CUDA context, pinned memory and cuDNN handles are made there, not on GPU 0."""
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    torch.set_num_threads(threads)
    config = with_overrides(validate_config(settings), {"train": {"device": device, "parallel_folds": 1}})
    paths = RunPaths.from_config(config)
    inputs = read_fold_inputs(config, paths)
    start_image_cache(config, inputs.task, inputs.table.frame["path"].astype(str).tolist())
    runtime = Runtime(resolve_device(device))
    return train_folds(config, inputs, folds, runtime=runtime, paths=paths, resume=resume)

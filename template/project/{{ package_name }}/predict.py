"""Inference: every fold's checkpoint on the test images with TTA; per-fold and mean probabilities."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .config import Config
from .core.augment import InputNormaliser, load_augmentations, start_image_cache
from .core.checkpoints import fold_checkpoints, load_checkpoint
from .core.data import read_test_table
from .core.distributed import Runtime, resolve_device
from .core.engine import autocast_dtype, evaluate
from .core.errors import DataError
from .core.fold_file import read_folds
from .core.loaders import validation_loader
from .core.perf import configure_backends
from .core.runs import (
    RunPaths,
    read_json,
    run_lock,
    save_resolved_config,
    write_json,
)
from .core.tta import select_views
from .settings import require_valid_settings
from .tasks import Task, create_task, read_train_table


@torch.inference_mode()
def predict_loader(
    task: Task,
    model: torch.nn.Module,
    loader: DataLoader,
    views: list[str],
    device: torch.device,
    amp_dtype: torch.dtype | None,
    description: str,
    normalise: InputNormaliser,
) -> np.ndarray:
    """The task's per-image outputs over `loader` (TTA views merged the task's way)."""
    outputs = []
    for images, meta in tqdm(loader, desc=description, leave=False, disable=None):
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            outputs.append(task.predict_batch(model, normalise(images), meta, views))
    return np.concatenate(outputs)


def _selection_key(config: Config, checkpoints_by_fold: dict[int, list[Path]]) -> dict:
    files = [path for paths in checkpoints_by_fold.values() for path in paths]
    return {
        "candidates": config.predict.tta,
        "images": config.predict.tta_select_images,
        "checkpoints": {str(path): path.stat().st_mtime_ns for path in files},
    }


def choose_views(
    config: Config,
    paths: RunPaths,
    task: Task,
    checkpoints_by_fold: dict[int, list[Path]],
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> list[str]:
    """predict.tta_select=oof: the candidate views greedily kept on the folds' validation images (a view joins
    only if the OOF score does not drop: a flip hurts digits and text); recorded in tta.json and reused while the
    checkpoints are unchanged."""
    candidates = config.predict.tta
    if config.predict.tta_select == "off" or len(candidates) == 1:
        return candidates
    key = _selection_key(config, checkpoints_by_fold)
    recorded = read_json(paths.tta) if paths.tta.is_file() else {}
    if recorded.get("key") == key:
        return recorded["chosen"]
    try:
        table = read_train_table(config.data)
        folds = read_folds(paths.folds, table)
    except DataError as error:  # predicting where the training data is not (an inference bundle)
        views = recorded.get("chosen", candidates)
        print(f"predict: TTA views {views} ({'as chosen before' if recorded else 'all'}): cannot score them: {error}")
        return views
    task.load_postprocessing(paths.root)
    runtime = Runtime(device)
    generator = np.random.default_rng(config.seed)
    per_fold = max(1, config.predict.tta_select_images // len(checkpoints_by_fold))
    evaluations = []
    for fold, checkpoints in checkpoints_by_fold.items():
        valid_index = np.flatnonzero(folds == fold)
        if len(valid_index) > per_fold:  # a random sample: tables are often sorted by class
            valid_index = np.sort(generator.choice(valid_index, per_fold, replace=False))
        loader = validation_loader(config, task, table, valid_index, runtime=runtime)
        # Kept in host memory between passes: every fold's models at once may not fit on the device.
        models = [load_checkpoint(task, checkpoint, torch.device("cpu")) for checkpoint in checkpoints]
        evaluations.append((valid_index, loader, models))
    fold_names = list(checkpoints_by_fold)

    cache: dict[tuple[int, int, str], tuple[np.ndarray, np.ndarray]] = {}

    def model_outputs(position: int, index: int, views: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(outputs, dataset indices) of one model on its fold's sample; each view is evaluated once and views
        are merged as models are, unless the task merges them otherwise (segmentation's hard voting)."""
        _, loader, models = evaluations[position]
        model, meta = models[index]
        normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), device)

        def run(selected: list[str]) -> tuple[np.ndarray, np.ndarray]:
            _, found, indices = evaluate(
                model.to(device),
                loader,
                task,
                runtime=runtime,
                amp_dtype=amp_dtype,
                normalise=normalise,
                views=selected,
                description=f"TTA choice: fold {fold_names[position]} views {'+'.join(selected)}",
            )
            model.cpu()
            return found, indices

        if not task.views_merge_as_models:
            return run(views)
        for view in views:
            if (position, index, view) not in cache:
                cache[(position, index, view)] = run([view])
        parts = [cache[(position, index, view)] for view in views]
        return (task.merge_models([found for found, _ in parts]) if len(parts) > 1 else parts[0][0]), parts[0][1]

    def score_views(views: list[str]) -> float:
        outputs, targets = [], []
        for position, (valid_index, _, models) in enumerate(evaluations):
            per_model = [model_outputs(position, index, views) for index in range(len(models))]
            outputs.append(task.merge_models([found for found, _ in per_model]))
            targets.append(table.targets[valid_index][per_model[0][1]])
        return task.score(np.concatenate(targets), np.concatenate(outputs))

    chosen, tried = select_views(candidates, score_views, task.metric.higher_is_better)
    scores = ", ".join(f"{views} {score:.4f}" for views, score in tried.items())
    images = sum(len(valid_index) for valid_index, _, _ in evaluations)
    print(f"predict: TTA views chosen on {images} OOF images ({config.metric}: {scores}): {', '.join(chosen)}")
    write_json(paths.tta, {"key": key, "metric": config.metric, "images": images, "scores": tried, "chosen": chosen})
    return chosen


def predict(config: Config) -> Path:
    """Write predictions/test_fold_K for each fold and the merge of all folds as predictions/test."""
    require_valid_settings(config)
    paths = RunPaths.from_config(config)
    with run_lock(paths, "predict", existing=True):
        return _predict_locked(config, paths)


def _predict_locked(config: Config, paths: RunPaths) -> Path:
    if not paths.classes.is_file():
        raise DataError(f"{paths.classes}: not found; run the `train` command first")
    checkpoints_by_fold = fold_checkpoints(paths, config.predict.checkpoints)
    task = create_task(config, read_json(paths.classes))
    test = read_test_table(config.data)
    ids = test["id"].to_numpy()
    device = resolve_device(config.train.device)
    configure_backends(
        device,
        tf32=config.train.tf32,
        deterministic=config.train.deterministic,
        fixed_shapes=not task.variable_input_size,
    )
    amp_dtype = autocast_dtype(config.train.amp, device)
    augmentations = load_augmentations(config.aug.test, "aug.test")
    start_image_cache(config, task, test["path"].tolist())
    save_resolved_config(config, paths, "predict")
    views = choose_views(config, paths, task, checkpoints_by_fold, device, amp_dtype)
    started = time.perf_counter()
    fold_outputs = []
    used = ", ".join(str(fold) for fold in checkpoints_by_fold)
    print(
        f"predict: folds {used} of {paths.root} ({paths.metrics.name}), checkpoints {config.predict.checkpoints},"
        f" TTA {views}"
    )
    for fold, checkpoints in checkpoints_by_fold.items():
        per_checkpoint = []
        for checkpoint in checkpoints:  # several: a snapshot (or checkpoint) ensemble within the fold
            model, meta = load_checkpoint(task, checkpoint, device)
            transform = task.create_transform(augmentations, train=False)
            normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), device)
            dataset = task.create_dataset(test["path"].tolist(), None, transform)
            loader = DataLoader(
                dataset,
                batch_size=config.predict.batch_size,
                num_workers=config.data.num_workers,
                collate_fn=task.collate_fn,
                pin_memory=device.type == "cuda",
            )
            description = f"predict fold {fold} {checkpoint.stem}"
            per_checkpoint.append(predict_loader(task, model, loader, views, device, amp_dtype, description, normalise))
        outputs = task.merge_models(per_checkpoint)
        fold_path = task.write_predictions(paths.fold_test_predictions(fold), ids, outputs)
        task.write_prediction_extras(fold_path, ids, outputs)
        fold_outputs.append(outputs)
    merged = task.merge_models(fold_outputs)
    path = task.write_predictions(paths.test_predictions, ids, merged)
    task.write_prediction_extras(path, ids, merged)
    seconds = time.perf_counter() - started  # what an offline notebook spends per image (export projects it)
    info = read_json(paths.run_info)  # save_resolved_config wrote the stage's entry
    info["predict"].update({"seconds": round(seconds, 3), "images": len(ids), "tta": views})
    write_json(paths.run_info, info)
    return path

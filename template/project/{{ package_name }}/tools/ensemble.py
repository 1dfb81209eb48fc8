"""`ensemble`: blend run folders (or prediction files from any framework in the same contract) into a new run
folder; the task's blend module merges outputs, and weights and its parameters are chosen on OOF."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ..config import Config, deep_merge, validate_config
from ..core.blend import Combiner, choose_weights, normalised_weights
from ..core.errors import ConfigError, DataError
from ..core.run_config import resolved_config_file
from ..core.runs import RunPaths, RunResult, read_json, save_resolved_config, write_json
from ..core.task_config import TaskSections
from ..core.tracking import create_tracker
from ..tasks import SPEC, Task, create_task, read_train_table

# What members must agree on: how the labels are read and scored (classes are compared through classes.json).
MEMBER_SHARED = ("task", "metric", "data", "segmentation.mode")
NOT_SHARED = {"data.num_workers", "data.cache", "data.cache_dir", "data.pseudo_labels", "data.classes"}
# What a blend takes from its first member's resolved config (config.yaml): the labels, metric and task settings
# the members trained with, which may have come from the command line rather than configs/default.yaml.
INHERITED = ("task", "metric", "data", *TaskSections.model_fields)  # the task's own section (core/task_config.py)


def _flat(raw: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def member_settings(folders: list[Path]) -> list[tuple[Path, dict[str, Any]]]:
    """(member, its resolved config as a mapping) for the members that are podium runs (others have none)."""
    found = []
    for folder in folders:
        saved = resolved_config_file(RunPaths(folder))
        if saved is not None:
            found.append((folder, yaml.safe_load(saved.read_text()) or {}))
    return found


def check_members_agree(settings: list[tuple[Path, dict[str, Any]]]) -> None:
    """One line naming the first setting two members read their labels or scores with differently."""
    flats = [(folder, _flat(raw)) for folder, raw in settings]
    first_folder, first = flats[0]
    for folder, flat in flats[1:]:
        for key in sorted(set(first) | set(flat)):
            shared = key.split(".")[0] in MEMBER_SHARED or key in MEMBER_SHARED
            if shared and key not in NOT_SHARED and first.get(key) != flat.get(key):
                raise ConfigError(
                    f"ensemble members disagree on {key}: {first_folder} has {first.get(key)!r}, {folder} has "
                    f"{flat.get(key)!r}; blend runs of one competition setup"
                )


def member_folders(config: Config) -> list[Path]:
    """ensemble.members as folders, each one there."""
    if not config.ensemble.members:
        raise DataError("ensemble.members is empty: name run folders, e.g. ensemble.members=[outputs/a,outputs/b]")
    folders = [Path(member) for member in config.ensemble.members]
    for folder in folders:
        if not folder.is_dir():
            raise DataError(f"ensemble member {folder}: folder not found")
    return folders


def blend_config(config: Config, changes: dict[str, Any]) -> Config:
    """The blend's config: its members' task, data and metric settings (as they trained), then `changes` (what the
    command asked for). Members that disagree on them are refused."""
    settings = member_settings(member_folders(config))
    if not settings:  # prediction folders from other frameworks only: the project's config
        return config
    check_members_agree(settings)
    raw = config.model_dump(mode="json")
    for section in INHERITED:
        if section in settings[0][1]:
            raw[section] = settings[0][1][section]
    location = {"experiment": config.experiment, "output_dir": str(config.output_dir)}
    return validate_config(deep_merge(deep_merge(raw, changes), location))


def check_member_classes(folders: list[Path], classes: list[str], source: Path) -> None:
    """Members' classes.json (where a folder has one) must list the training data's classes in its order:
    predicted labels are indices into it."""
    for folder in folders:
        path = folder / "classes.json"
        if path.is_file() and (found := read_json(path)) != classes:
            raise DataError(f"ensemble member {folder}: classes {found[:6]} differ from {source}'s {classes[:6]}")


def align(members: list[tuple[np.ndarray, np.ndarray]], names: list[str], kind: str) -> tuple[np.ndarray, list]:
    """Members' outputs in the first member's id order; every member must cover exactly the same ids."""
    ids = members[0][0]
    reference = set(ids)
    aligned = []
    for (member_ids, outputs), name in zip(members, names, strict=True):
        other = set(member_ids)
        if other != reference:
            odd = sorted(other ^ reference)[0]
            raise DataError(
                f"ensemble member {name}: {kind} ids differ from {names[0]}'s "
                f"({len(other)} vs {len(reference)} images, e.g. '{odd}')"
            )
        position = {image_id: index for index, image_id in enumerate(member_ids)}
        aligned.append(outputs[[position[image_id] for image_id in ids]])
    return ids, aligned


def search(
    blend: Any, task: Task, config: Config, method: str, members: np.ndarray, score: Any
) -> tuple[dict[str, Any], np.ndarray, Combiner, list[dict[str, Any]]]:
    """The task's parameters (a grid, scored with equal weights), then the weights (ensemble.weights) under them."""
    settings, higher = config.ensemble, task.metric.higher_is_better
    equal = normalised_weights(None, len(members))
    trials = []
    for params in blend.parameter_grid(settings, method):
        trials.append({**params, "oof_score": score(blend.create_combiner(task, method, params)(members, equal))})
    best = (max if higher else min)(trials, key=lambda trial: trial["oof_score"])
    params = {key: value for key, value in best.items() if key != "oof_score"}
    combine = blend.create_combiner(task, method, params)
    evaluations = blend.FIT_EVALUATIONS_PER_MEMBER * len(members)
    weights = choose_weights(settings.weights, members, score, higher, combine, settings.greedy_iterations, evaluations)
    return params, weights, combine, trials if len(trials) > 1 else []


def ensemble(config: Config) -> RunResult:
    """Combine `ensemble.members` into `outputs/<experiment>/`: OOF, test predictions, weights, scores."""
    settings = config.ensemble
    blend = SPEC.parts.blend()
    folders = member_folders(config)
    table = read_train_table(config.data)
    check_member_classes(folders, table.classes, table.source)
    task = create_task(config, table.classes)
    names = [str(folder) for folder in folders]
    read = [blend.read_member(task, folder / blend.OOF_FILE, "OOF") for folder in folders]
    ids, aligned = align(read, names, "OOF")
    oof = blend.stack(aligned, names, "OOF")
    position = {image_id: index for index, image_id in enumerate(table.ids)}
    unknown = [image_id for image_id in ids if image_id not in position]
    if unknown:
        raise DataError(f"ensemble member {names[0]}: OOF id '{unknown[0]}' is not in {table.source}")
    targets = table.targets[[position[image_id] for image_id in ids]]

    def score(outputs: np.ndarray) -> float:
        return float(task.score(targets, outputs))

    method = SPEC.blend_method(settings.method)
    params, weights, combine, trials = search(blend, task, config, method, oof, score)
    combined_oof = combine(oof, weights)
    paths = RunPaths.from_config(config)
    result: dict[str, Any] = {
        "metric": config.metric,
        "higher_is_better": task.metric.higher_is_better,
        "method": method,
        "params": params,
        "weights": dict(zip(names, weights.round(6).tolist(), strict=True)),
        "member_oof_scores": {name: score(member) for name, member in zip(names, oof, strict=True)},
        "oof_score": score(combined_oof),
        "search": trials,
        "correlation": blend.diversity(oof),
    }
    result.update(task.tune_postprocessing(combined_oof, paths.root))  # e.g. masks' thresholds on the blended OOF
    task.write_predictions(paths.oof, ids, combined_oof)
    write_json(paths.classes, task.classes)
    test_files = [folder / blend.TEST_FILE for folder in folders]
    if settings.require_test or all(path.is_file() for path in test_files):
        read = [blend.read_member(task, path, "test") for path in test_files]
        test_ids, aligned = align(read, names, "test")
        combined_test = combine(blend.stack(aligned, names, "test"), weights)
        written = task.write_predictions(paths.test_predictions, test_ids, combined_test)
        task.write_prediction_extras(written, test_ids, combined_test)
    # metrics.json in the training layout, for `submit` and the ledger; a blend has no folds, so no CV of its own.
    metrics = {**result, "cv_mean": None, "cv_std": None}
    write_json(paths.metrics, metrics)
    write_json(paths.root / "ensemble.json", result)
    save_resolved_config(config, paths, "ensemble")  # config.ensemble.yaml; run.json gets the code's revision
    log_blend(config, paths, result)
    return RunResult(config, metrics)


def log_blend(config: Config, paths: RunPaths, result: dict[str, Any]) -> None:
    tracker = create_tracker(config, paths.root, "ensemble", "ensemble")
    summary = {"oof_score": result["oof_score"], **{f"param/{key}": value for key, value in result["params"].items()}}
    summary.update({f"weight/{name}": weight for name, weight in result["weights"].items()})
    summary.update({f"member_oof/{name}": value for name, value in result["member_oof_scores"].items()})
    if result["correlation"] is not None:
        summary["correlation"] = result["correlation"]
    tracker.summary(summary)
    tracker.finish()

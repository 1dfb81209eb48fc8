"""Model soups (Wortsman et al. 2022): weight averages of checkpoints of one architecture, per fold.

Uniform soup averages every candidate; greedy soup adds candidates in order of validation score and keeps one
only if the fold's validation score does not drop. Any task's model: the BatchNorm statistics of an average of
several checkpoints are recomputed on the fold's training images (soup.update_bn, the task's update_bn); detectors'
FrozenBatchNorm2d buffers are the same in every ingredient and not BatchNorm layers, so they stay as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from ..config import Config
from ..core.augment import InputNormaliser
from ..core.distributed import Runtime, resolve_device
from ..core.engine import evaluate
from ..core.errors import ModelError
from ..core.fold_file import folds_to_train, read_folds
from ..core.loaders import fold_loaders
from ..core.runs import RunPaths, read_json, save_torch, write_json
from ..tasks import create_task, read_train_table

StateDict = dict[str, torch.Tensor]


def check_same_architecture(states: list[StateDict], names: list[str]) -> None:
    """Raise ModelError unless every state dict has the first one's keys and shapes."""
    reference = {key: tuple(value.shape) for key, value in states[0].items()}
    for state, name in zip(states[1:], names[1:], strict=True):
        shapes = {key: tuple(value.shape) for key, value in state.items()}
        if shapes != reference:
            differing = sorted(set(shapes.items()) ^ set(reference.items()))[0][0]
            raise ModelError(f"soup: {name} is another architecture than {names[0]} (parameter '{differing}')")


def average_state_dicts(states: list[StateDict]) -> StateDict:
    """The uniform average of floating-point tensors; integer buffers (BN counters) come from the first."""
    averaged = {}
    for key, value in states[0].items():
        if value.is_floating_point():
            averaged[key] = torch.stack([state[key].float() for state in states]).mean(dim=0).to(value.dtype)
        else:
            averaged[key] = value.clone()
    return averaged


def greedy_soup(
    candidates: list[tuple[str, StateDict]],
    evaluate_state: Callable[[StateDict], float],
    higher_is_better: bool = True,
) -> tuple[StateDict, list[str], float]:
    """Greedy soup: rank candidates by their own score, add each one only if the soup's score holds."""
    scored = [(name, state, evaluate_state(state)) for name, state in candidates]
    scored.sort(key=lambda item: item[2], reverse=higher_is_better)
    name, state, best = scored[0]
    ingredients, chosen = [state], [name]
    for name, state, _ in scored[1:]:
        trial = average_state_dicts([*ingredients, state])
        score = evaluate_state(trial)
        if (score >= best) if higher_is_better else (score <= best):
            ingredients.append(state)
            chosen.append(name)
            best = score
    return average_state_dicts(ingredients), chosen, best


def _candidates(paths: RunPaths, runs: list[Path], fold: int, names: list[str]) -> list[tuple[str, StateDict, dict]]:
    files = [paths.checkpoint(fold, name) for name in names]
    files += [RunPaths(Path(run)).checkpoint(fold, "best") for run in runs]
    found = []
    for file in files:
        if not file.is_file():
            raise ModelError(f"soup: {file} not found")
        saved = torch.load(file, map_location="cpu", weights_only=True)
        found.append((str(file), saved["model"], saved.get("meta", {})))
    return found


def soup(config: Config) -> dict[str, Any]:
    """Write fold_K/soup.pt for every trained fold; returns the validation score of each soup."""
    paths = RunPaths.from_config(config)
    table = read_train_table(config.data)
    folds = read_folds(paths.folds, table)
    task = create_task(config, read_json(paths.classes) if paths.classes.is_file() else table.classes)
    runtime = Runtime(resolve_device(config.train.device))
    model = task.create_model(pretrained=False).to(runtime.device)
    report: dict[str, Any] = {"method": config.soup.method, "folds": {}}
    for fold in folds_to_train(folds, config.folds.train_folds):
        candidates = _candidates(paths, config.soup.runs, fold, config.soup.checkpoints)
        names = [name for name, _, _ in candidates]
        check_same_architecture([state for _, state, _ in candidates], names)
        meta = candidates[0][2]
        normalise = InputNormaliser(tuple(meta["mean"]), tuple(meta["std"]), runtime.device)
        valid_index = np.flatnonzero(folds == fold)
        train_index = np.flatnonzero(folds != fold)
        originals = [state for _, state, _ in candidates]
        train_loader, valid_loader = fold_loaders(config, task, table, train_index, valid_index, runtime=runtime)

        def evaluate_state(
            state: StateDict,
            loaders: tuple[Any, Any] = (train_loader, valid_loader),
            index: np.ndarray = valid_index,
            normalise: InputNormaliser = normalise,
            originals: list[StateDict] = originals,
        ) -> float:
            model.load_state_dict(state)
            averaged = all(state is not own for own in originals)  # a checkpoint keeps the statistics it has
            if averaged and config.soup.update_bn and any(isinstance(m, _BatchNorm) for m in model.modules()):
                task.update_batchnorm(model, loaders[0], normalise)
                state.update(model.state_dict())  # the soup is saved with the statistics it was scored with
            _, probabilities, indices = evaluate(model, loaders[1], task, runtime=runtime, normalise=normalise)
            return float(task.score(table.targets[index][indices], probabilities))

        pairs = [(name, state) for name, state, _ in candidates]
        if config.soup.method == "uniform":
            state, chosen = average_state_dicts([s for _, s in pairs]), names
            score = evaluate_state(state)
        else:
            state, chosen, score = greedy_soup(pairs, evaluate_state, task.metric.higher_is_better)
        save_torch(
            paths.checkpoint(fold, "soup"), {"model": state, "meta": meta, "score": score, "ingredients": chosen}
        )
        report["folds"][str(fold)] = {"score": score, "ingredients": chosen}
        print(f"fold {fold} {config.soup.method} soup of {len(chosen)}/{len(names)}: {config.metric} {score:.4f}")
    write_json(paths.root / "soup.json", report)
    return report

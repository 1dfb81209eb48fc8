"""Ensembles of prediction files: voting rules and OOF-fitted weights as small pure functions over arrays,
and `ensemble(config)`, which combines run folders (or any files in the same shape) into a new run folder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.stats import rankdata

from .config import Config
from .data import read_train_table
from .errors import ConfigError, DataError
from .metrics import Metric, create_metric
from .runs import RunPaths, read_json, write_csv, write_json
from .tasks import require_task
from .tracking import create_tracker

Combiner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (members [M, N, C], weights [M]) -> [N, C]


def _normalised(weights: np.ndarray | None, count: int) -> np.ndarray:
    weights = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (count,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {count} non-negative numbers with a positive sum, got {weights.tolist()}")
    return weights / weights.sum()


def mean_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Soft voting: the weighted mean of probabilities."""
    return np.tensordot(_normalised(weights, len(members)), members, axes=1)


def geometric_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """The weighted geometric mean of probabilities, renormalised per row (single-label)."""
    logs = np.tensordot(_normalised(weights, len(members)), np.log(np.clip(members, 1e-12, None)), axes=1)
    combined = np.exp(logs)
    return combined / combined.sum(axis=-1, keepdims=True)


def rank_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Rank averaging per class column (for ranking metrics such as ROC AUC), scaled to [0, 1]."""
    ranks = np.stack([rankdata(member, axis=0) / len(member) for member in members])
    return mean_vote(ranks, weights)


def majority_vote(members: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Hard voting: each member votes for its argmax class with its weight; the result is the vote share.

    Ties go to the class with the higher mean probability (the share gets a tie-break far below one vote).
    """
    weights = _normalised(weights, len(members))
    classes = members.shape[-1]
    votes = np.tensordot(weights, np.eye(classes)[members.argmax(axis=-1)], axes=1)
    tie_break = mean_vote(members, weights) * 1e-6
    shares = votes + tie_break
    return shares / shares.sum(axis=-1, keepdims=True)


VOTES: dict[str, Combiner] = {
    "mean": mean_vote,
    "geometric": geometric_vote,
    "rank": rank_vote,
    "majority": majority_vote,
}


def fit_weights_scipy(
    members: np.ndarray, score: Callable[[np.ndarray], float], higher_is_better: bool, combine: Combiner = mean_vote
) -> np.ndarray:
    """Weights that optimise `score(combine(members, w))` on OOF: Nelder-Mead over softmax-parametrised weights."""

    def loss(logits: np.ndarray) -> float:
        weights = np.exp(logits - logits.max())
        value = score(combine(members, weights / weights.sum()))
        return -value if higher_is_better else value

    result = minimize(loss, np.zeros(len(members)), method="Nelder-Mead", options={"maxiter": 200 * len(members)})
    weights = np.exp(result.x - result.x.max())
    return weights / weights.sum()


def greedy_selection(
    members: np.ndarray,
    score: Callable[[np.ndarray], float],
    higher_is_better: bool,
    iterations: int = 20,
    combine: Combiner = mean_vote,
) -> np.ndarray:
    """Caruana et al. (2004) ensemble selection with replacement: add the member that helps most, repeatedly.

    Returns weights proportional to how often each member was picked; stops early when nothing helps.
    """
    counts = np.zeros(len(members))
    best: float | None = None
    for _ in range(iterations):
        trial_scores = []
        for index in range(len(members)):
            trial = counts.copy()
            trial[index] += 1
            trial_scores.append(score(combine(members, trial)))
        pick = int(np.argmax(trial_scores) if higher_is_better else np.argmin(trial_scores))
        candidate = trial_scores[pick]
        improves = best is None or (candidate > best if higher_is_better else candidate < best)
        if not improves and counts.sum() > 0:
            break
        counts[pick] += 1
        best = candidate
    return counts / counts.sum()


def correlation_matrix(members: np.ndarray) -> np.ndarray:
    """Pearson correlation between members' flattened probabilities (low values add diversity)."""
    return np.corrcoef(members.reshape(len(members), -1))


@dataclass
class Member:
    name: str
    oof: pd.DataFrame
    test: pd.DataFrame | None


def _read_predictions(path: Path, classes: list[str], kind: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path}: {kind} predictions not found (expected id + one column per class)")
    frame = pd.read_csv(path, dtype={"id": str})
    if "id" not in frame.columns:
        raise DataError(f"{path}: missing column 'id'")
    found = [column for column in frame.columns if column not in ("id", "fold")]
    if sorted(found) != sorted(classes):
        raise DataError(f"{path}: class columns {found} differ from {classes}")
    if frame["id"].duplicated().any():
        raise DataError(f"{path}: duplicate id '{frame['id'][frame['id'].duplicated()].iloc[0]}'")
    values = frame[classes].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise DataError(f"{path}: probabilities must be finite numbers in [0, 1]")
    return frame[["id", *classes]]  # class order follows the ensemble's, whatever the file's


def load_member(folder: Path, classes: list[str], need_test: bool) -> Member:
    """A run folder, or any folder with `oof.csv` and `predictions/test.csv` in the prediction file contract."""
    if not folder.is_dir():
        raise DataError(f"ensemble member {folder}: folder not found")
    oof = _read_predictions(folder / "oof.csv", classes, "OOF")
    test_path = folder / "predictions" / "test.csv"
    test = _read_predictions(test_path, classes, "test") if need_test or test_path.is_file() else None
    return Member(folder.name, oof, test)


def align(frames: list[pd.DataFrame], names: list[str], classes: list[str], kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack members' probabilities in one id order; every member must cover exactly the same ids."""
    ids = frames[0]["id"].to_numpy()
    reference = set(ids)
    for frame, name in zip(frames[1:], names[1:], strict=True):
        other = set(frame["id"])
        if other != reference:
            odd = sorted(other ^ reference)[0]
            raise DataError(
                f"ensemble member {name}: {kind} ids differ from {names[0]}'s "
                f"({len(other)} vs {len(reference)} ids, e.g. '{odd}')"
            )
    stacked = np.stack([frame.set_index("id").loc[ids, classes].to_numpy(np.float64) for frame in frames])
    return ids, stacked


def ensemble(config: Config) -> dict:
    """Combine `ensemble.members` into `outputs/<experiment>/`: OOF, test predictions, weights, scores."""
    require_task(config, "ensemble")
    settings = config.ensemble
    if len(settings.members) < 1:
        raise DataError("ensemble.members is empty: name run folders, e.g. ensemble.members=[outputs/a,outputs/b]")
    first = Path(settings.members[0])
    classes = read_json(first / "classes.json") if (first / "classes.json").is_file() else None
    table = read_train_table(config.data)
    classes = classes or table.classes
    members = [load_member(Path(m), classes, need_test=settings.require_test) for m in settings.members]
    names = [str(Path(m)) for m in settings.members]
    ids, oof = align([m.oof for m in members], names, classes, "OOF")
    position = {image_id: i for i, image_id in enumerate(table.ids)}
    unknown = [i for i in ids if i not in position]
    if unknown:
        raise DataError(f"ensemble member {names[0]}: OOF id '{unknown[0]}' is not in {table.source}")
    targets = table.targets[[position[i] for i in ids]]
    metric: Metric = create_metric(config.metric)
    threshold = config.submit.threshold

    def score(probabilities: np.ndarray) -> float:
        return metric.score(targets, probabilities, threshold)

    combine = VOTES[settings.method]
    if settings.weights == "fit":
        weights = fit_weights_scipy(oof, score, metric.higher_is_better, combine)
    elif settings.weights == "greedy":
        weights = greedy_selection(oof, score, metric.higher_is_better, settings.greedy_iterations, combine)
    elif settings.weights == "equal":
        weights = _normalised(None, len(members))
    else:
        try:
            weights = _normalised(np.asarray(settings.weights), len(members))
        except ValueError as error:
            raise ConfigError(f"ensemble.weights: {error}") from error
    combined_oof = combine(oof, weights)
    member_scores = {name: score(member) for name, member in zip(names, oof, strict=True)}
    result = {
        "metric": config.metric,
        "higher_is_better": metric.higher_is_better,
        "method": settings.method,
        "weights": dict(zip(names, weights.round(6).tolist(), strict=True)),
        "member_oof_scores": member_scores,
        "oof_score": score(combined_oof),
        "correlation": correlation_matrix(oof).round(6).tolist(),
    }
    paths = RunPaths.from_config(config)
    frame = pd.DataFrame(combined_oof, columns=classes)
    frame.insert(0, "id", ids)
    write_csv(paths.oof, frame)
    write_json(paths.classes, classes)
    if all(member.test is not None for member in members):
        test_ids, test = align([m.test for m in members], names, classes, "test")
        frame = pd.DataFrame(combine(test, weights), columns=classes)
        frame.insert(0, "id", test_ids)
        write_csv(paths.test_predictions, frame)
    # metrics.json in the training layout so that `submit` reports the ensemble's CV.
    write_json(paths.metrics, {**result, "cv_mean": result["oof_score"], "cv_std": 0.0, "folds": {}})
    write_json(paths.root / "ensemble.json", result)
    tracker = create_tracker(config, paths.root, "ensemble", "ensemble")
    tracker.summary(
        {
            "oof_score": result["oof_score"],
            "correlation": result["correlation"],
            **{f"weight/{name}": weight for name, weight in result["weights"].items()},
            **{f"member_oof/{name}": value for name, value in member_scores.items()},
        }
    )
    tracker.finish()
    return result

"""Weights of an ensemble chosen on OOF, for any task: equal, given, fitted (scipy) or greedy (Caruana); a
combiner turns members' outputs (M, N, ...) and weights (M,) into one output."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize

from .errors import ConfigError

Combiner = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (members (M, N, ...), weights (M,)) -> (N, ...)
Scorer = Callable[[np.ndarray], float]


def normalised_weights(weights: Any, count: int) -> np.ndarray:
    """Weights that sum to one; None means equal."""
    weights = np.ones(count) if weights is None else np.asarray(weights, dtype=np.float64)
    if weights.shape != (count,) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"weights must be {count} non-negative numbers with a positive sum, got {weights.tolist()}")
    return weights / weights.sum()


def fit_weights_scipy(
    members: np.ndarray, score: Scorer, higher_is_better: bool, combine: Combiner, max_evaluations: int | None = None
) -> np.ndarray:
    """Weights that optimise `score(combine(members, w))` on OOF: Nelder-Mead over softmax-parametrised weights."""

    def loss(logits: np.ndarray) -> float:
        weights = np.exp(logits - logits.max())
        value = score(combine(members, weights / weights.sum()))
        return -value if higher_is_better else value

    evaluations = max_evaluations or 200 * len(members)
    options = {"maxiter": evaluations, "maxfev": evaluations}
    result = minimize(loss, np.zeros(len(members)), method="Nelder-Mead", options=options)
    weights = np.exp(result.x - result.x.max())
    return weights / weights.sum()


def greedy_selection(
    members: np.ndarray, score: Scorer, higher_is_better: bool, iterations: int, combine: Combiner
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
            trial_scores.append(score(combine(members, trial / trial.sum())))
        pick = int(np.argmax(trial_scores) if higher_is_better else np.argmin(trial_scores))
        candidate = trial_scores[pick]
        improves = best is None or (candidate > best if higher_is_better else candidate < best)
        if not improves and counts.sum() > 0:
            break
        counts[pick] += 1
        best = candidate
    return counts / counts.sum()


def choose_weights(
    choice: str | list[float],
    members: np.ndarray,
    score: Scorer,
    higher_is_better: bool,
    combine: Combiner,
    greedy_iterations: int,
    fit_evaluations: int | None = None,
) -> np.ndarray:
    """ensemble.weights: equal | fit | greedy | a list of numbers."""
    if choice == "fit":
        return fit_weights_scipy(members, score, higher_is_better, combine, fit_evaluations)
    if choice == "greedy":
        return greedy_selection(members, score, higher_is_better, greedy_iterations, combine)
    try:
        return normalised_weights(None if choice == "equal" else choice, len(members))
    except ValueError as error:
        raise ConfigError(f"ensemble.weights: {error}") from error


def correlation_matrix(members: np.ndarray) -> np.ndarray:
    """Pearson correlation between members' flattened outputs (low values add diversity)."""
    return np.corrcoef(members.reshape(len(members), -1).astype(np.float64))

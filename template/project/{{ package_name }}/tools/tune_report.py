"""The tune study's HTML report: the trials in a table that fits the page, the optimisation history, parameter
importances once enough trials completed to rank them (said otherwise), and a readable slice plot per parameter."""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import optuna
import pandas as pd

from ..core.report.page import Report, figure_png, plt
from ..core.report.plots import legend_outside

# fANOVA ranks parameters by the variance of a forest fitted to the completed trials. Below MIN_IMPORTANCE_TRIALS
# the report says so instead of drawing it; below TRIALS_PER_PARAMETER a parameter it says so beside the plot.
# Measured on a study where one log-uniform parameter of 6 or 12 drives the score (noise a sixth of its effect): it
# ranked first in 5 of 5 seeds from 40 trials, but anywhere from 1st to 5th of 6 at 10-20 trials.
MIN_IMPORTANCE_TRIALS = 10
TRIALS_PER_PARAMETER = 4
SLICE_COLUMNS = 3  # slice panels per row, each 4 x 3 inches


def completed(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]


def history_figure(trials: list[optuna.trial.FrozenTrial], metric: str, maximize: bool) -> bytes:
    """Each completed trial's value and the best so far, by trial number."""
    numbers = np.array([t.number for t in trials])
    values = np.array([t.value for t in trials], dtype=np.float64)
    best = np.maximum.accumulate(values) if maximize else np.minimum.accumulate(values)
    figure, axis = plt.subplots(figsize=(7, 3.2))
    axis.scatter(numbers, values, s=16, color="C0", label="trial")
    axis.step(numbers, best, where="post", color="C3", label="best so far")
    axis.set(xlabel="trial", ylabel=metric, title=f"{metric} by trial ({'higher' if maximize else 'lower'} is better)")
    legend_outside(axis)
    return figure_png(figure)


def importance_figure(importances: dict[str, float]) -> bytes:
    """Horizontal bars, the most important parameter on top."""
    names, shares = list(importances)[::-1], list(importances.values())[::-1]
    figure, axis = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    axis.barh(names, shares, color="C0")
    for y, share in enumerate(shares):
        axis.text(share, y, f" {share:.2f}", va="center", fontsize=7)
    axis.set(xlabel="importance (fANOVA, sums to 1)", xlim=(0, max(max(shares, default=0) * 1.2, 0.1)))
    return figure_png(figure)


def tick_label(choice: str, width: int = 18) -> str:
    """A category as a tick: a path by its file name, anything longer than `width` cut with an ellipsis."""
    name = choice.rsplit("/", 1)[-1]
    return name if len(name) <= width else name[: width - 1] + "…"


def slice_figure(trials: list[optuna.trial.FrozenTrial], metric: str) -> bytes:
    """One panel per parameter: the value of each completed trial against the parameter's value, coloured by trial
    number (late trials yellow); log axes for log-scale parameters, categories by name."""
    names = sorted({name for t in trials for name in t.params})
    rows = -(-len(names) // SLICE_COLUMNS)
    columns = min(len(names), SLICE_COLUMNS)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3.1 * rows), squeeze=False)
    for axis in axes.flat[len(names) :]:
        axis.axis("off")
    numbers = [t.number for t in trials]
    norm = plt.Normalize(min(numbers), max(max(numbers), min(numbers) + 1))
    points = None
    for axis, name in zip(axes.flat, names, strict=False):
        own = [t for t in trials if name in t.params]
        distribution = own[0].distributions[name]
        x = [t.params[name] for t in own]
        if isinstance(distribution, optuna.distributions.CategoricalDistribution):
            choices = [str(c) for c in distribution.choices]
            x = [choices.index(str(v)) for v in x]
            slanted = {"rotation": 30, "ha": "right"} if len(choices) > 3 else {}
            axis.set_xticks(range(len(choices)), [tick_label(c) for c in choices], fontsize=7, **slanted)
            axis.set_xlim(-0.5, len(choices) - 0.5)
        elif getattr(distribution, "log", False):
            axis.set_xscale("log")
        values = [t.value for t in own]
        points = axis.scatter(x, values, c=[t.number for t in own], cmap="viridis", norm=norm, s=22, edgecolors="none")
        axis.set(xlabel=name, ylabel=metric)
    figure.subplots_adjust(hspace=0.55)  # room for slanted category names between the rows
    if points is not None:
        figure.colorbar(points, ax=axes.ravel().tolist(), label="trial", fraction=0.02, pad=0.02)
    return figure_png(figure)


def tune_report(study: optuna.Study, frame: pd.DataFrame, metric: str, overlay: Path | None = None) -> str:
    """The report's HTML: key findings, the trials, the history, importances (or why they are left out), slices."""
    trials = completed(study)
    pruned = int((frame["state"] == "PRUNED").sum()) if len(frame) else 0
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE
    report = Report(f"tune: study {study.study_name}")
    findings = []
    if trials:
        findings.append(f"best {metric}: {study.best_value:.4f} (trial {study.best_trial.number})")
    parameters = len({name for t in trials for name in t.params})
    needed = max(MIN_IMPORTANCE_TRIALS, TRIALS_PER_PARAMETER * parameters)
    few = len(trials) < MIN_IMPORTANCE_TRIALS
    too_few = (
        f"too few trials to rank the parameters: {len(trials)} completed for {parameters} parameter(s), importances "
        f"need {needed} or more (raise tune.n_trials)" + ("; read the slices instead" if few else ": a rough order")
    )
    if len(trials) < needed:
        findings.append(too_few)
    advice = [f"train every fold with the best parameters: run -e {overlay.stem}"] if overlay is not None else []
    finished = len(trials) + pruned
    headline = (
        f"{len(frame)} trials: {len(trials)} complete, {pruned} pruned ({pruned / max(finished, 1):.0%} of finished)"
    )
    report.summary(headline, findings, advice)
    report.section("Trials", "one row per trial: its state, value, seconds and parameters")
    report.table("trials", frame)
    if not trials:
        return report.html()
    report.section("optimisation history")
    report.image("optimisation_history", history_figure(trials, metric, maximize))
    report.section("parameter importances")
    if len(trials) < needed:
        report.parts.append(f"<p><strong>{html.escape(too_few)}</strong></p>")
    if not few:
        try:
            report.image("parameter_importances", importance_figure(optuna.importance.get_param_importances(study)))
        except (ValueError, RuntimeError) as error:  # e.g. every trial with the same values
            report.parts.append(f"<p>not available: {' '.join(str(error).split())}</p>")
    if any(t.params for t in trials):
        report.section("slices", f"{metric} of each completed trial against each parameter, coloured by trial number")
        report.image("slices", slice_figure(trials, metric))
    return report.html()

"""Commands of the tools (ensembles, soups, pseudo-labels, tuning, EDA, augmentation preview, analysis), on the
stage commands' app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..core.commands import (
    ConfigFiles,
    Experiment,
    Overrides,
    command,
    console,
    metrics_table,
)
from ..core.errors import ProjectError
from ..core.runs import read_json
from ..settings import load_run_settings, load_settings, require_valid_settings


@command
def ensemble(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Blend prediction files of several runs (ensemble.members) into outputs/<experiment>/, weights on OOF."""
    from ..config import deep_merge, experiment_overlay, explicit_changes
    from ..core.runs import RunPaths, run_lock
    from .ensemble import blend_config
    from .ensemble import ensemble as run_ensemble

    asked = deep_merge(experiment_overlay(experiment) if experiment else {}, explicit_changes(overrides, config))
    settings = blend_config(load_settings(overrides, config, experiment, validate=False), asked)
    require_valid_settings(settings)
    with run_lock(RunPaths.from_config(settings), "ensemble"):
        result = run_ensemble(settings).metrics
    console.print(metrics_table(result, settings.experiment))
    chosen = " ".join(f"{key}={value:g}" for key, value in result["params"].items())
    tuned = f"; after re-tuning post-processing {result['oof_score_tuned']:.4f}" if "oof_score_tuned" in result else ""
    console.print(f"blend: {result['method']} {chosen}".rstrip() + tuned)


@command
def soup(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Average checkpoints of one architecture per fold (uniform or greedy soup) into fold_K/soup.pt."""
    from ..core.runs import RunPaths, run_lock
    from .soup import soup as make_soup

    settings = load_run_settings(overrides, config, experiment, "soup")
    with run_lock(RunPaths.from_config(settings), "soup", existing=True):
        make_soup(settings)
    console.print("predict with the soups: predict.checkpoints=[soup]")


@command
def pseudo(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Label confident test predictions and retrain with them in every fold's training part."""
    from .pseudo import pseudo as run_pseudo

    table = Table(title="pseudo-labelling")
    for column in ("round", "labelled", "also", "CV before", "CV after", "run"):
        table.add_column(column)
    from ..core.runs import RunPaths, run_lock

    settings = load_run_settings(overrides, config, experiment, "pseudo")
    with run_lock(RunPaths.from_config(settings), "pseudo", existing=True):
        rounds = run_pseudo(settings)
    for item in rounds:
        labelled = f"{item['selected']}/{item['of']}"
        also = ", ".join(f"{key} {value}" for key, value in item.items() if key in ("boxes", "ignored_pixel_share"))
        row = [str(item["round"]), labelled, also, f"{item['cv_before']:.4f}", f"{item['cv_after']:.4f}", item["run"]]
        table.add_row(*row)
    console.print(table)


@command
def tune(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Search hyper-parameters with Optuna over tune.space (pruned, resumable; several processes can share one
    study); the best trial becomes configs/experiment/tuned.yaml."""
    from .tune import run_command
    from .tune import tune as run_tune

    result = run_tune(load_settings(overrides, config, experiment))
    table = Table(title=f"study {result['study']}: {result['trials']} trials")
    table.add_column("")
    table.add_column("", overflow="fold")
    table.add_row("complete / pruned", f"{result['complete']} / {result['pruned']}")
    table.add_row(f"best (trial {result['best_trial']})", f"{result['best_value']:.4f}")
    for key, value in result["best_params"].items():
        table.add_row(f"  {key}", f"{value:.4g}" if isinstance(value, float) else str(value))
    console.print(table)
    console.print(f"storage: {result['storage']}", soft_wrap=True)
    if result["overlay"] is not None:  # paths and the command on lines of their own: nothing cut at 80 columns
        console.print(f"overlay:\n  {result['overlay']}\nreport:\n  {result['report']}", soft_wrap=True)
        console.print(f"train every fold with it:\n  {run_command(Path(result['overlay']))}", soft_wrap=True)
    else:  # another worker ran the study's last trial: it wrote them (`tune` once more writes them here too)
        console.print(f"overlay and report written by {result['finished_by']}, which finished the study")


@command
def eda(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    output: Annotated[Path, typer.Option(help="Folder for eda.html and eda.json.")] = Path("reports"),
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: all cores).")] = None,
    suggested: Annotated[Path, typer.Option(help="Where to write the proposed augmentations.")] = Path(
        "configs/aug/suggested.yaml"
    ),
) -> None:
    """Explore train and test images and the task's labels (classes, boxes or masks): distributions, outliers,
    duplicates, shift; propose overrides (image size, anchors, crops, losses, augmentations) with their reasons."""
    from .eda import eda as run_eda

    path = run_eda(load_settings(overrides, config, experiment), output, workers, suggested)
    stats = read_json(output / "eda.json")
    written = f"; proposed augmentations: {stats['suggested_aug']}" if "suggested_aug" in stats else ""
    proposed = " ".join(stats["proposed_overrides"])
    adopt = f"adopt the proposals: train {proposed}" if proposed else "no settings to change"
    console.print(f"EDA report: {path}{written}; {adopt}", soft_wrap=True)


@command
def augment_preview(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    output: Annotated[Path | None, typer.Option(help="PNG path (default <run>/reports/augment_preview.png).")] = None,
) -> None:
    """Draw n training images and their augmented versions (n=16 by default) with aug.train."""
    from .preview import pipeline_name, preview_augmentations

    words = [word for word in overrides or [] if not word.startswith("n=")]
    counts = [word for word in overrides or [] if word.startswith("n=")]
    count = int(counts[-1].removeprefix("n=")) if counts and counts[-1].removeprefix("n=").isdigit() else 16
    settings = load_run_settings(words, config, experiment, "augment-preview")  # a trained run: its own pipeline
    path = preview_augmentations(settings, count, output)
    console.print(f"augmentation preview of aug.train = {pipeline_name(settings.aug.train)}:\n  {path}")


@command
def analyze(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Report on a run's predictions (HTML + W&B): errors, distributions, correlations, Grad-CAM, CV vs LB.
    Name the run as a folder (analyze outputs/blend), with -e NAME, or with experiment=NAME."""
    from .analyze import analyze as run_analysis

    words = list(overrides or [])
    folders = [word for word in words if "=" not in word]
    if folders:
        run_dir = Path(folders[0])
        if not run_dir.is_dir():
            raise ProjectError(f"analyze: run folder {run_dir} not found")
        words = [w for w in words if "=" in w] + [f"output_dir={run_dir.parent}", f"experiment={run_dir.name}"]
    from ..core.runs import RunPaths, run_lock

    settings = load_run_settings(words, config, experiment, "analyze")
    with run_lock(RunPaths.from_config(settings), "analyze", existing=True):
        console.print(f"analysis: {run_analysis(settings)}")

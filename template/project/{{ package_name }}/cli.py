"""The competition CLI: a command per stage; each loads the config and calls one function."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer
from rich.console import Console
from rich.table import Table

from .config import Config, load_config
from .errors import ProjectError, one_line

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Competition pipeline: folds -> train -> predict (TTA) -> submit. Overrides: key=value.",
)
console = Console()
F = TypeVar("F", bound=Callable[..., Any])

Overrides = Annotated[
    list[str] | None, typer.Argument(help="Config overrides, e.g. train.epochs=5 model.backbone=resnet34.")
]
ConfigFiles = Annotated[
    list[Path] | None, typer.Option("--config", "-c", help="Extra YAML overlay(s) on configs/default.yaml.")
]
Resume = Annotated[bool, typer.Option("--resume", help="Continue interrupted folds, skip finished ones.")]
Experiment = Annotated[
    str | None, typer.Option("--experiment", "-e", help="Overlay configs/experiment/NAME.yaml; runs in outputs/NAME.")
]


def _command(func: F) -> F:
    """Register a command; a ProjectError (also from a DataLoader worker) becomes one red line."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProjectError as error:
            console.print(f"[red]error:[/red] {one_line(error)}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None

    app.command()(wrapper)
    return func


def _load(overrides: list[str] | None, config_files: list[Path] | None, experiment: str | None) -> Config:
    return load_config(overrides or [], config_files=config_files, experiment=experiment)


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("fold")
    table.add_column(metrics.get("metric", "score"), justify="right")
    table.add_column("best epoch", justify="right")
    for fold, score in metrics.get("folds", {}).items():
        table.add_row(fold, f"{score:.4f}", str(metrics.get("best_epochs", {}).get(fold, "")))
    table.add_section()
    table.add_row("CV", f"{metrics['cv_mean']:.4f} ± {metrics['cv_std']:.4f}", "")
    table.add_row("OOF", f"{metrics['oof_score']:.4f}", "")
    return table


@_command
def folds(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Split the training images into folds and write the fold file."""
    from .folds import make_folds

    path = make_folds(_load(overrides, config, experiment))
    console.print(f"fold file: {path}")


@_command
def train(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    resume: Resume = False,
) -> None:
    """Train every fold (works under torchrun for DDP); prints CV mean ± std."""
    from .train import train as run_training

    metrics = run_training(_load(overrides, config, experiment), resume=resume)
    if metrics:
        console.print(_metrics_table(metrics, "Cross-validation"))


@_command
def predict(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Predict the test images with every fold's checkpoint and the configured TTA views."""
    from .predict import predict as run_prediction

    console.print(f"test predictions: {run_prediction(_load(overrides, config, experiment))}")


@_command
def submit(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    predictions: Annotated[
        Path | None, typer.Option(help="Prediction CSV (id + class columns) to submit instead of the run's.")
    ] = None,
) -> None:
    """Write a validated submission in the sample submission's format."""
    from .submit import submit as write_submission

    path, metrics = write_submission(_load(overrides, config, experiment), predictions)
    cv = f"CV {metrics['metric']} {metrics['cv_mean']:.4f} ± {metrics['cv_std']:.4f}" if metrics else "no CV found"
    console.print(f"submission: {path} ({cv}); latest copy: {path.parent / 'submission.csv'}")


@_command
def run(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    resume: Resume = False,
) -> None:
    """All stages in order: folds -> train -> predict -> submit, with a summary at the end."""
    from .folds import make_folds
    from .predict import predict as run_prediction
    from .runs import RunPaths
    from .submit import submit as write_submission
    from .train import train as run_training

    settings = _load(overrides, config, experiment)
    started = time.perf_counter()
    fold_file = RunPaths.from_config(settings).folds
    # A shared fold file (folds.path) is only read; the run's own is re-made unless resuming.
    if not fold_file.is_file() or (settings.folds.path is None and not resume):
        make_folds(settings)
    metrics = run_training(settings, resume=resume)
    predictions = run_prediction(settings)
    submission, _ = write_submission(settings)
    table = _metrics_table(metrics, f"{settings.experiment}: {settings.model.backbone}")
    table.add_section()
    table.add_row("test predictions", str(predictions), "")
    table.add_row("submission", str(submission), "")
    table.add_row("seconds", f"{time.perf_counter() - started:.0f}", "")
    console.print(table)


def main() -> None:
    app()

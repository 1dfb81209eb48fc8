"""The CLI's machinery: the Typer app, option types, config loading, and the wrapper that turns a ProjectError
into one red line and Ctrl-C into a resume hint. Stage commands live in cli.py, tool commands in tools/commands.py."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..config import Config
from .console import cv_value
from .errors import ProjectError, one_line

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Competition pipeline: check -> folds -> train -> predict (TTA) -> submit. Overrides: key=value.",
)
console = Console(markup=False)  # hints such as predict.checkpoints=[soup] print as written, never as markup
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
Experiments = Annotated[
    list[str] | None,
    typer.Option(
        "--experiment", "-e", help="Overlay configs/experiment/NAME.yaml (repeat for a hyper-parameter ensemble)."
    ),
]


PACKAGE = (__package__ or "<package>").split(".")[0]
# What to type after Ctrl-C; finished files are intact because every write is atomic.
RESUME_HINTS = {
    "train": f"continue with: python -m {PACKAGE} train --resume (same options)",
    "run": f"continue with: python -m {PACKAGE} run --resume (same options)",
}


def command(func: F) -> F:
    """Register a command; a ProjectError (also from a DataLoader worker) becomes one red line, Ctrl-C a hint."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProjectError as error:
            console.print(Text.assemble(("error:", "red"), f" {one_line(error)}"), highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            hint = RESUME_HINTS.get(func.__name__, "run the command again")
            message = Text.assemble(("interrupted", "yellow"), f": files already written are whole; {hint}")
            console.print(message, highlight=False)
            raise typer.Exit(130) from None

    app.command()(wrapper)
    return func


def metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("fold / member")
    table.add_column(metrics.get("metric", "score"), justify="right")
    table.add_column("best epoch / weight", justify="right")
    for fold, score in metrics.get("folds", {}).items():
        table.add_row(fold, f"{score:.4f}", str(metrics.get("best_epochs", {}).get(fold, "")))
    for member, score in metrics.get("member_oof_scores", {}).items():
        table.add_row(member, f"{score:.4f}", f"{metrics['weights'][member]:.3f}")
    table.add_section()
    if metrics.get("cv_mean") is not None:  # a blend has no folds of its own
        table.add_row("CV", cv_value(metrics), "")
    table.add_row("OOF", f"{metrics['oof_score']:.4f}", "")
    return table


def next_steps(config: Config, root: Path) -> list[str]:
    """What a competitor does after `run`: study the errors, upload, and sync an offline W&B run."""
    # experiment=NAME selects the run folder; -e NAME would need configs/experiment/NAME.yaml, which a run made
    # through another overlay (`run -e demo` with experiment: baseline) does not have.
    experiment = f" experiment={config.experiment}"
    steps = [
        "next:",
        f"  python -m {PACKAGE} analyze{experiment}   errors, Grad-CAM and CV against LB as HTML",
        f"  python -m {PACKAGE} submit{experiment} --kaggle COMPETITION   upload the submission",
    ]
    if (os.environ.get("WANDB_MODE") or config.wandb.mode) == "offline":
        steps.append(f"  wandb sync {root / 'wandb'}/offline-run-*   send this run to W&B")
    return steps

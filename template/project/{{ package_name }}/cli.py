"""The competition CLI: a command per stage; each loads the config and calls one function."""

from __future__ import annotations

import functools
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import typer
from rich.console import Console
from rich.table import Table

from .config import Config, load_config, with_overrides
from .core.errors import ProjectError, one_line

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Competition pipeline: check -> folds -> train -> predict (TTA) -> submit. Overrides: key=value.",
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
Experiments = Annotated[
    list[str] | None,
    typer.Option(
        "--experiment", "-e", help="Overlay configs/experiment/NAME.yaml (repeat for a hyper-parameter ensemble)."
    ),
]


PACKAGE = __package__ or "<package>"
# What to type after Ctrl-C; finished files are intact because every write is atomic.
RESUME_HINTS = {
    "train": f"continue with: python -m {PACKAGE} train --resume (same options)",
    "run": f"continue with: python -m {PACKAGE} run --resume (same options)",
}


def _command(func: F) -> F:
    """Register a command; a ProjectError (also from a DataLoader worker) becomes one red line, Ctrl-C a hint."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ProjectError as error:
            console.print(f"[red]error:[/red] {one_line(error)}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            hint = RESUME_HINTS.get(func.__name__, "run the command again")
            console.print(f"[yellow]interrupted[/yellow]: files already written are whole; {hint}", highlight=False)
            raise typer.Exit(130) from None

    app.command()(wrapper)
    return func


def _rendered(tool: str) -> bool:
    """Tools are rendered only for the tasks they support; their commands exist only where they are."""
    return importlib.util.find_spec(f"{PACKAGE}.tools.{tool}") is not None


def _tool_command(tool: str) -> Callable[[F], F]:
    def register(func: F) -> F:
        return _command(func) if _rendered(tool) else func

    return register


def _load(overrides: list[str] | None, config_files: list[Path] | None, experiment: str | None) -> Config:
    return load_config(overrides or [], config_files=config_files, experiment=experiment)


def _load_run(
    overrides: list[str] | None, config_files: list[Path] | None, experiment: str | None, stage: str
) -> Config:
    """A stage after `train`: the run's own resolved config, with overlays and overrides on top."""
    from .core.runs import load_run_config

    return load_run_config(overrides or [], config_files=config_files, experiment=experiment, stage=stage)


def _load_all(
    overrides: list[str] | None, config_files: list[Path] | None, experiments: list[str] | None
) -> list[Config]:
    return [_load(overrides, config_files, name) for name in experiments or [None]]


def _metrics_table(metrics: dict[str, Any], title: str) -> Table:
    table = Table(title=title)
    table.add_column("fold / member")
    table.add_column(metrics.get("metric", "score"), justify="right")
    table.add_column("best epoch / weight", justify="right")
    for fold, score in metrics.get("folds", {}).items():
        table.add_row(fold, f"{score:.4f}", str(metrics.get("best_epochs", {}).get(fold, "")))
    for member, score in metrics.get("member_oof_scores", {}).items():
        table.add_row(member, f"{score:.4f}", f"{metrics['weights'][member]:.3f}")
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
    experiment: Experiments = None,
    resume: Resume = False,
) -> None:
    """Train every fold (works under torchrun for DDP); prints CV mean ± std. seeds=[0,1,2] or several -e
    train one run each, sharing the first run's fold file."""
    from .core.runs import expand_variants
    from .train import train as run_training

    variants, _ = expand_variants(_load_all(overrides, config, experiment))
    for settings in variants:
        metrics = run_training(settings, resume=resume)
        if metrics:
            console.print(_metrics_table(metrics, f"{settings.experiment}: cross-validation"))


@_command
def predict(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Predict the test images with every fold's checkpoint(s) and the configured TTA views."""
    from .predict import predict as run_prediction

    path = run_prediction(_load_run(overrides, config, experiment, "predict"))
    console.print(f"test predictions: {path}")


@_tool_command("ensemble")
def ensemble(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Blend prediction files of several runs (ensemble.members) into outputs/<experiment>/, weights on OOF."""
    from .core.runs import RunPaths, run_lock
    from .tools.ensemble import ensemble as run_ensemble

    settings = _load(overrides, config, experiment)
    with run_lock(RunPaths.from_config(settings), "ensemble"):
        result = run_ensemble(settings)
    console.print(_metrics_table({**result, "cv_mean": result["oof_score"], "cv_std": 0.0}, settings.experiment))


@_tool_command("soup")
def soup(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Average checkpoints of one architecture per fold (uniform or greedy soup) into fold_K/soup.pt."""
    from .core.runs import RunPaths, run_lock
    from .tools.soup import soup as make_soup

    settings = _load_run(overrides, config, experiment, "soup")
    with run_lock(RunPaths.from_config(settings), "soup"):
        make_soup(settings)
    console.print("predict with the soups: predict.checkpoints=[soup]")


@_tool_command("pseudo")
def pseudo(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Label confident test predictions and retrain with them in every fold's training part."""
    from .tools.pseudo import pseudo as run_pseudo

    table = Table(title="pseudo-labelling")
    for column in ("round", "labelled", "CV before", "CV after", "run"):
        table.add_column(column)
    from .core.runs import RunPaths, run_lock

    settings = _load_run(overrides, config, experiment, "pseudo")
    with run_lock(RunPaths.from_config(settings), "pseudo"):
        rounds = run_pseudo(settings)
    for item in rounds:
        labelled = f"{item['selected']}/{item['of']}"
        table.add_row(str(item["round"]), labelled, f"{item['cv_before']:.4f}", f"{item['cv_after']:.4f}", item["run"])
    console.print(table)


@_command
def tune(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Search hyper-parameters with Optuna over tune.space (pruned, resumable; several processes can share one
    study); the best trial becomes configs/experiment/tuned.yaml."""
    from .tools.tune import tune as run_tune

    result = run_tune(_load(overrides, config, experiment))
    table = Table(title=f"study {result['study']}: {result['trials']} trials")
    table.add_column("")
    table.add_column("", overflow="fold")
    table.add_row("complete / pruned", f"{result['complete']} / {result['pruned']}")
    table.add_row(f"best (trial {result['best_trial']})", f"{result['best_value']:.4f}")
    for key, value in result["best_params"].items():
        table.add_row(f"  {key}", str(value))
    table.add_row("overlay", f"{result['overlay']} (train every fold: run -e tuned)")
    table.add_row("report", result["report"])
    table.add_row("storage", result["storage"])
    console.print(table)


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

    path, metrics = write_submission(_load_run(overrides, config, experiment, "submit"), predictions)
    cv = f"CV {metrics['metric']} {metrics['cv_mean']:.4f} ± {metrics['cv_std']:.4f}" if metrics else "no CV found"
    console.print(f"submission: {path} ({cv}); latest copy: {path.parent / 'submission.csv'}")


@_command
def check(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    workers: Annotated[int | None, typer.Option(help="Processes decoding images (default: all cores).")] = None,
) -> None:
    """Preflight: config, labels, folds, sample submission and every image; lists every problem found."""
    _preflight(_load(overrides, config, experiment), workers)


def _preflight(settings: Config, workers: int | None = None) -> None:
    from .check import run_check

    report = run_check(settings, workers)
    speed = f"{report.images} images decoded in {report.seconds:.1f} s ({report.images_per_second:.0f} images/s)"
    if not report.problems:
        console.print(f"check: no problems; {speed}")
        return
    table = Table(title=f"check: {len(report.problems)} problem(s)")
    table.add_column("where", overflow="fold")
    table.add_column("problem", overflow="fold")
    for problem in report.problems[:50]:
        table.add_row(problem.where, problem.what)
    if len(report.problems) > 50:
        table.add_row("...", f"{len(report.problems) - 50} more")
    console.print(table)
    first = f"{report.problems[0].where}: {report.problems[0].what}"
    if len(report.problems) == 1:
        raise ProjectError(first)
    raise ProjectError(f"check found {len(report.problems)} problems, the first: {first}")


@_tool_command("eda")
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
    """Explore train and test images: distributions, outliers, duplicates, shift; propose augmentations."""
    from .tools.eda import eda as run_eda

    path = run_eda(_load(overrides, config, experiment), output, workers, suggested)
    console.print(f"EDA report: {path}; proposed augmentations: {suggested} (adopt: aug.train={suggested})")


@_command
def augment_preview(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiment = None,
    output: Annotated[Path | None, typer.Option(help="PNG path (default <run>/reports/augment_preview.png).")] = None,
) -> None:
    """Draw n training images and their augmented versions (n=16 by default) with aug.train."""
    from .tools.preview import preview_augmentations

    words = [word for word in overrides or [] if not word.startswith("n=")]
    counts = [word for word in overrides or [] if word.startswith("n=")]
    count = int(counts[-1].removeprefix("n=")) if counts and counts[-1].removeprefix("n=").isdigit() else 16
    path = preview_augmentations(_load(words, config, experiment), count, output)
    console.print(f"augmentation preview: {path}")


@_tool_command("analyze")
def analyze(overrides: Overrides = None, config: ConfigFiles = None, experiment: Experiment = None) -> None:
    """Report on a run's predictions (HTML + W&B): errors, distributions, correlations, Grad-CAM, CV vs LB.
    Name the run as a folder (analyze outputs/blend), with -e NAME, or with experiment=NAME."""
    from .tools.analyze import analyze as run_analysis

    words = list(overrides or [])
    folders = [word for word in words if "=" not in word]
    if folders:
        run_dir = Path(folders[0])
        if not run_dir.is_dir():
            raise ProjectError(f"analyze: run folder {run_dir} not found")
        words = [w for w in words if "=" in w] + [f"output_dir={run_dir.parent}", f"experiment={run_dir.name}"]
    from .core.runs import RunPaths, run_lock

    settings = _load_run(words, config, experiment, "analyze")
    with run_lock(RunPaths.from_config(settings), "analyze"):
        console.print(f"analysis: {run_analysis(settings)}")


@_command
def lb(
    submission: Annotated[str | None, typer.Argument(help="Submission file (path or name) to score.")] = None,
    score: Annotated[float | None, typer.Argument(help="Its public leaderboard score.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Config override key=value.")] = None,
    kaggle: Annotated[
        str | None, typer.Option(help="Fetch public scores of all submissions from the kaggle CLI: COMPETITION.")
    ] = None,
) -> None:
    """Record public leaderboard scores in outputs/submissions.csv (by hand, or --kaggle COMPETITION)."""
    from .submit import kaggle_scores, read_ledger, record_lb

    settings = _load(overrides, None, None)
    if kaggle:
        scores = kaggle_scores(kaggle)
        known = set(read_ledger(settings.output_dir)["file"].map(lambda f: Path(f).name))
        for name, value in scores.items():
            if name in known:
                record_lb(settings.output_dir, name, value)
    elif submission is None or score is None:
        raise ProjectError("lb: give SUBMISSION SCORE, or --kaggle COMPETITION")
    else:
        record_lb(settings.output_dir, submission, score)
    console.print(read_ledger(settings.output_dir).to_string(index=False))


@_command
def run(
    overrides: Overrides = None,
    config: ConfigFiles = None,
    experiment: Experiments = None,
    resume: Resume = False,
    skip_check: Annotated[bool, typer.Option("--skip-check", help="Do not run the `check` preflight first.")] = False,
) -> None:
    """All stages in order: check -> folds -> train -> predict -> submit, with a summary at the end. With
    seeds=[...] or several -e, every run is trained and predicted, then blended (mean) and the blend is submitted."""
    from .core.runs import RunPaths, expand_variants
    from .folds import make_folds
    from .predict import predict as run_prediction
    from .submit import submit as write_submission
    from .train import train as run_training

    started = time.perf_counter()
    configs = _load_all(overrides, config, experiment)
    variants, blend = expand_variants(configs)
    if len(variants) > 1 and not _rendered("ensemble"):
        raise ProjectError(
            f"run: seeds=[...] and several -e blend runs with `ensemble`, which {configs[0].task} projects do not have"
        )
    if not skip_check:
        _preflight(configs[0], configs[0].data.num_workers or None)
    # Fold files the user named (folds.path) are only read, and so are ours when resuming.
    user_files = {RunPaths.from_config(c).folds for c in configs if c.folds.path is not None}
    made: set[Path] = set()
    for variant in variants:
        fold_file = RunPaths.from_config(variant).folds
        if fold_file in made or (fold_file.is_file() and (fold_file in user_files or resume)):
            continue
        make_folds(variant)
        made.add(fold_file)
    for settings in variants:
        metrics = run_training(settings, resume=resume)
        run_prediction(settings)
    final = variants[0]
    if len(variants) > 1:
        members = [str(RunPaths.from_config(variant).root) for variant in variants]
        final = with_overrides(configs[0], {"experiment": blend, "seeds": None, "ensemble": {"members": members}})
        from .tools.ensemble import ensemble as run_ensemble

        result = run_ensemble(final)
        metrics = {**result, "cv_mean": result["oof_score"], "cv_std": 0.0}
    submission, _ = write_submission(final)
    table = _metrics_table(metrics, f"{final.experiment}: {final.model.backbone}")
    table.add_section()
    table.add_row("test predictions", str(RunPaths.from_config(final).test_predictions), "")
    table.add_row("submission", str(submission), "")
    table.add_row("seconds", f"{time.perf_counter() - started:.1f}", "")
    console.print(table)


def main() -> None:
    app()
